"""Volume heat where the attention is: slices, volume rendering and both, in the viewer and in
``render_scan`` (attention from the volume rendering lies inside the volume, off the slice planes)."""
from __future__ import annotations

import numpy as np
import pytest

from viewer_helpers import WINDOW, hot_mask

pytestmark = pytest.mark.render


def _phantom():
    from gaze3d.scan import Volume

    rng = np.random.default_rng(3)
    arr = rng.normal(0, 5, (40, 36, 30)).astype(np.float32)
    arr[24:34, 6:18, 8:22] += 300.0                 # a bright block away from the middle planes
    return Volume(arr, np.diag([2.0, 2.0, 2.5, 1.0]))


def _render_attention(vol):
    """Attention of a gaze on the block through the volume rendering (``render`` mode)."""
    from gaze3d.attention import AttentionAccumulator
    from gaze3d.camera import Camera

    target = (vol.affine @ [29, 12, 15, 1])[:3]
    cam = Camera(position=target + [160.0, -120.0, 90.0], focal_point=target, view_up=(0, 0, 1),
                 width=WINDOW[0], height=WINDOW[1])
    acc = AttentionAccumulator(vol, fixations_only=False, mode="render", sigma_deg=1.5,
                               opacity=[[50.0, 250.0], [0.0, 0.6]], rate_hz=100.0)
    for _ in range(5):
        acc.add(cam, [[0.5, 0.5]])
    return acc.values, cam


@pytest.mark.parametrize("slices, volume_render", [(True, True), (True, False), (False, True)])
def test_render_scan_shows_volume_attention_in_every_mode(slices, volume_render):
    from gaze3d.viewer.render import render_scan

    vol = _phantom()
    att, cam = _render_attention(vol)
    on_planes = np.zeros(vol.shape, bool)
    mid = [s // 2 for s in vol.shape]
    for axis in range(3):
        cut = [slice(None)] * 3
        cut[axis] = mid[axis]
        on_planes[tuple(cut)] = True
    # the premise: nearly all of it lies off the slice planes
    assert att[on_planes].sum() < 0.2 * att.sum()
    kw = dict(camera=cam, window_size=WINDOW, colorbar=False, slices=slices, volume_render=volume_render)
    with_heat = hot_mask(render_scan(vol, att, **kw)).sum()
    without = hot_mask(render_scan(vol, np.zeros_like(att), **kw)).sum()
    assert without == 0
    assert with_heat > 40, f"only {with_heat} hot pixels"


def test_render_scan_refuses_a_volume_with_nothing_drawn():
    from gaze3d.errors import InputError
    from gaze3d.viewer.render import render_scan

    with pytest.raises(InputError, match="slice planes, the volume rendering or both"):
        render_scan(_phantom(), slices=False, volume_render=False, window_size=WINDOW)


def test_viewer_shows_heat_inside_the_volume_with_the_slices_hidden(vtk_freed):
    from gaze3d.viewer.app import ViewerApp

    vol = _phantom()
    app = ViewerApp(vol, off_screen=True, window_size=WINDOW, segmenter="grow")
    vtk_freed.watch_plotter(app.plotter)
    try:
        att, cam = _render_attention(vol)
        app.scene.set_camera(cam)
        app.press("v")                                          # slices hidden: the rendering counts
        assert not app.scene.actor.GetVisibility()
        shown = app.scene.update_attention(att)
        assert shown >= 0 and app.scene.heat_actor.GetVisibility()
        app.plotter.render()
        hot = hot_mask(app.screenshot()).sum()
        assert hot > 40, f"only {hot} hot pixels"
        app.press("v")                                          # slices back: heat off the planes stays
        assert app.scene.actor.GetVisibility() and app.scene.heat_actor.GetVisibility()
        app.press("c")                                          # cleared: no heat anywhere
        app.plotter.render()
        assert not app.scene.heat_actor.GetVisibility()
        assert hot_mask(app.screenshot()).sum() == 0
    finally:
        app.close()
    del app
