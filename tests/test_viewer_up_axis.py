"""`gaze3d render` stands the scene on its own up axis: the file's convention or its data (y-up bunny)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyvista", reason="the viewer needs VTK/pyvista (gaze3d[viewer])")

from gaze3d.scan import Mesh, PointCloud, Volume  # noqa: E402


def _resting_object(up_axis: int, sign: float = 1.0, n: int = 20_000, seed: int = 0) -> np.ndarray:
    """A blob sitting on a flat base (like the Stanford bunny), its up along ``sign * up_axis``."""
    rng = np.random.default_rng(seed)
    body = rng.normal(0, 1, (n, 3))
    body /= np.linalg.norm(body, axis=1, keepdims=True)
    body *= [0.8, 0.6, 1.0]                     # an ellipsoid, tallest along its up ("z" here)
    body[:, 2] += 1.0                           # resting on the base at height 0
    base_xy = rng.uniform(-0.6, 0.6, (n // 4, 2))
    base = np.c_[base_xy, np.zeros(n // 4)]
    pts = np.r_[body[body[:, 2] > 0.05], base]
    pts[:, 2] *= sign
    order = {2: [0, 1, 2], 1: [0, 2, 1], 0: [2, 1, 0]}[up_axis]   # move the local up to axis up_axis
    out = np.empty_like(pts)
    out[:, order] = pts
    return out


@pytest.mark.parametrize("axis,sign", [(1, 1.0), (2, 1.0), (0, 1.0), (1, -1.0)])
def test_an_object_stands_on_the_side_it_rests_on(axis, sign):
    from gaze3d.viewer.scene import choose_up

    up, why = choose_up(PointCloud(_resting_object(axis, sign)))
    want = np.zeros(3)
    want[axis] = sign
    assert np.array_equal(up, want), why
    assert "from the data" in why and "xyz"[axis] in why.split()[0]


def test_conventions_and_flat_scenes():
    from gaze3d.viewer.scene import choose_up

    rng = np.random.default_rng(1)
    terrain = np.c_[rng.uniform(0, 100, (5000, 2)), rng.normal(0, 1, 5000)]
    terrain[:500, 2] += 8.0                              # a few trees above the ground
    up, why = choose_up(PointCloud(terrain))
    assert np.array_equal(up, [0, 0, 1]) and "flat scene" in why
    assert np.array_equal(choose_up(Volume(np.zeros((4, 5, 6), np.float32)))[0], [0, 0, 1])


def test_render_uses_it_and_says_which(tmp_path, capsys):
    from gaze3d.cli import main
    from gaze3d.io import save_scan

    xyz = _resting_object(1)                               # y-up, like the Stanford bunny PLY
    save_scan(PointCloud(xyz), tmp_path / "bunny.ply")
    assert main(["render", str(tmp_path / "bunny.ply"), "--out", str(tmp_path / "b.png"), "--window", "320x240"]) == 0
    out = capsys.readouterr().out
    assert "up axis: +y" in out


def test_the_default_view_looks_from_above_along_the_chosen_up(tmp_path):
    from gaze3d.viewer._vtk import make_plotter
    from gaze3d.viewer.scene import Scene

    plotter = make_plotter(off_screen=True, window_size=(200, 150))
    try:
        scene = Scene(plotter, PointCloud(_resting_object(1)))
        why = scene.default_camera()
        cam = scene.camera()
        assert np.allclose(cam.view_up / np.linalg.norm(cam.view_up), [0, 1, 0], atol=0.35), cam.view_up
        assert (cam.position - cam.focal_point)[1] > 0, "the camera should look down on the object"
        assert why.startswith("+y")
    finally:
        plotter.close()
        plotter.deep_clean()
