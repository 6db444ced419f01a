"""The point budget (viewer/lod.py): what is drawn while interacting, and that only the picture depends on it.

* the drawing order is spatially even and nested (octree levels, one point per occupied cell);
* the budget is sized from measured renders (auto), fixed, or off; a still frame follows idle;
* a budget frame and the still frame show the same labels, tint and heat where points are drawn (pixels);
* attention, labels and the recording are bit-identical with and without a budget.
"""
from __future__ import annotations

import numpy as np
import pytest

from gaze3d.errors import InputError
from gaze3d.viewer.lod import PointBudget, nested_order, parse_budget, point_levels

pytestmark = pytest.mark.timeout(120)


def _clustered(n=60_000, seed=0):
    """(n, 3): 90 % of the points in a ball of radius 1 inside a 100 m cube, the rest spread evenly."""
    rng = np.random.default_rng(seed)
    k = int(0.9 * n)
    ball = rng.normal(0, 0.4, (k, 3)) + 50.0
    rest = rng.uniform(0, 100, (n - k, 3))
    return np.r_[ball, rest]


def test_drawing_order_is_a_permutation_deterministic_and_holds_the_bounding_box():
    xyz = _clustered(20_000)
    order = nested_order(xyz, seed=3)
    assert np.array_equal(np.sort(order), np.arange(len(xyz)))
    assert np.array_equal(order, nested_order(xyz, seed=3))
    assert not np.array_equal(order, nested_order(xyz, seed=4))
    for m in (6, 50, 1000):        # every prefix has the whole cloud's bounds: same camera clipping range
        sub = xyz[order[:m]]
        assert np.array_equal(sub.min(axis=0), xyz.min(axis=0)) and np.array_equal(sub.max(axis=0), xyz.max(axis=0))


def test_levels_nest_one_point_per_occupied_cell():
    xyz = _clustered(30_000)
    level, _, _ = point_levels(xyz, seed=1)
    lo, ext = xyz.min(axis=0), (xyz.max(axis=0) - xyz.min(axis=0)).max()
    for k in range(0, 7):
        cells = np.clip(((xyz - lo) / ext * (1 << k)).astype(np.int64), 0, (1 << k) - 1)
        key = (cells[:, 0] << 40) | (cells[:, 1] << 20) | cells[:, 2]
        chosen = level <= k
        # exactly one chosen point in every occupied cell of level k: even at every level, and
        # the points of level <= k are a superset of those of level <= k - 1 (nested)
        assert len(np.unique(key[chosen])) == chosen.sum() == len(np.unique(key))


def test_a_budget_prefix_is_spatially_even_where_a_random_subset_is_not():
    xyz = _clustered(60_000)
    order = nested_order(xyz)
    m = 2_000
    in_ball = np.linalg.norm(xyz - 50.0, axis=1) < 2.0
    rnd = np.random.default_rng(0).choice(len(xyz), m, replace=False)
    assert in_ball[rnd].mean() > 0.85                      # a random subset: the cluster eats the budget
    assert in_ball[order[:m]].mean() < 0.2                 # the budget covers the whole cloud
    coarse = np.floor(xyz / 25.0).astype(int)              # every occupied 25 m cell is drawn
    occupied = {tuple(c) for c in coarse}
    assert {tuple(c) for c in coarse[order[:m]]} == occupied


def test_budget_values_fixed_off_and_bad():
    assert PointBudget(1000, 0).size == 1000 and not PointBudget(1000, 0).active
    assert PointBudget(1000, "300").size == 300 and PointBudget(1000, 300).active
    assert PointBudget(1000, 5000).size == 1000
    assert parse_budget("auto") is None and parse_budget("1_000") == 1000
    for bad in ("lots", -1, 2.5, True):
        with pytest.raises(InputError, match="point budget"):
            parse_budget(bad)


def test_auto_budget_converges_to_the_target_frame_time_and_is_everything_where_that_fits():
    n = 1_000_000
    b = PointBudget(n, "auto", target_s=0.04, minimum=1000)
    assert b.size == n                                      # nothing measured yet: everything
    render = lambda m: 0.010 + 1.0e-6 * m                   # a slow renderer: 10 ms + 1 us a point
    b.note_render(n, render(n))
    assert b.active
    for _ in range(30):                                     # interactive frames of the budget
        b.note_render(b.size, render(b.size))
    assert abs(render(b.size) - 0.04) < 0.004
    fast = PointBudget(n, "auto", target_s=0.04)
    fast.note_render(n, 0.012)                              # a GPU: the whole cloud fits the target
    assert fast.size == n and not fast.active


def test_still_timing_interactive_then_still_then_rate_limited():
    b = PointBudget(10_000, 100, still_delay_s=0.4, still_period_s=0.25)
    b.interact(now=10.0)
    assert b.interactive(now=10.1) and not b.interactive(now=10.5)
    b.last_full_s, b.last_still = 0.2, 11.0
    assert not b.still_due(now=11.3) and b.still_due(now=11.61)      # at most a third of the time


# --------------------------------------------------------------------- in the window
pytest.importorskip("pyvista", reason="the viewer needs VTK/pyvista (gaze3d[viewer])")

BG = np.array([30, 31, 36])          # the window's background (#1e1f24)
T0 = 10 ** 15                        # sample times after every camera's (the latest camera sees them)


def _grid_cloud(nx=40, ny=30, pitch=1.0, seed=0):
    """A plane of well separated points (no two splats overlap on screen) with RGB and two classes."""
    from gaze3d.scan import PointCloud

    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(nx) * pitch, np.arange(ny) * pitch)
    xyz = np.c_[x.ravel(), y.ravel(), np.zeros(x.size)] + [870000.0, 6618000.0, 50.0]
    colors = rng.uniform(0.2, 0.6, (len(xyz), 3))
    labels = np.where(x.ravel() > nx / 2, 6, 2).astype(np.int32)
    return PointCloud(xyz, colors=colors, labels=labels)


def _app(cloud, budget, **kw):
    from gaze3d.camera import Camera
    from gaze3d.viewer.app import ViewerApp

    app = ViewerApp(cloud, off_screen=True, window_size=(400, 300), segmenter="grow", point_budget=budget, **kw)
    c = 0.5 * (cloud.xyz.min(axis=0) + cloud.xyz.max(axis=0))
    app.scene.set_camera(Camera(position=c + [0, 0, 50], focal_point=c, view_up=[0, 1, 0], vfov_deg=40,
                                width=400, height=300))
    return app


def _gaze(app, n, x=0.5, y=0.5, start=0, interact=True):
    for i in range(n):
        if interact:
            app._interacting()
        s = app.session
        s.tick(local_samples=[s.mouse_sample(x, y, t_ns=T0 + (start + i) * 16_000_000)])
        app.draw()


def test_a_budget_frame_and_the_still_frame_show_the_same_labels_and_heat_where_points_are_drawn(vtk_freed):
    app = _app(_grid_cloud(), 300)
    try:
        vtk_freed.watch_plotter(app.plotter)
        for actor in (app._status, app._palette):
            actor.SetVisibility(False)          # 2D text over the points: not what is compared
        app.show_cursor = False
        _gaze(app, 40)
        app.handle_key("1")                     # a label, drawn in the budget only for now
        _gaze(app, 40, x=0.3, y=0.6, start=40)  # heat again, elsewhere
        idx, budget_rgb = app.scene.drawn_index, app.scene.drawn_colors()
        app.draw(still=True)                    # the whole cloud catches up with the label and the heat
        assert np.array_equal(budget_rgb, app.scene.drawn_colors()[idx])
        app.handle_key("t")                     # class tint on: every base colour changes
        _gaze(app, 5, x=0.3, y=0.6, start=80)
        assert app.scene.budget_shown and app.scene.drawn_points == 300
        budget_img = app.screenshot().astype(int)
        idx = app.scene.drawn_index
        budget_rgb = app.scene.drawn_colors()
        app.draw(still=True)
        assert not app.scene.budget_shown and app.scene.drawn_points == 1200
        still_img = app.screenshot().astype(int)
        full_rgb = app.scene.drawn_colors()
        # the drawn subset's colours are the whole cloud's colours of those points
        assert np.array_equal(budget_rgb, full_rgb[idx])
        heat = app.scene._full.overlay.target[:, :3] != app.scene._full.overlay.base[:, :3]
        assert heat[idx].any() and (app.session.labels[idx] != app.scene.file_labels[idx]).any()
        drawn = np.any(budget_img != BG, axis=2)
        assert drawn.sum() > 300                                     # splats of 300 points
        assert np.array_equal(budget_img[drawn], still_img[drawn])   # same pixels where the budget draws
        assert np.any(still_img != BG, axis=2).sum() > 3 * drawn.sum()   # the still frame: every point
    finally:
        app.close()


def test_a_still_frame_follows_idle(vtk_freed):
    app = _app(_grid_cloud(), 200)
    try:
        # idle is made by moving the last interaction back, not by waiting: a frame on a loaded CI
        # machine can take longer than any short delay (this raced at 0.05 s)
        app.budget.still_delay_s = 60.0
        _gaze(app, 10)
        app.handle_key("c")
        assert app.scene.budget_shown                       # a key: the budget is drawn at once
        app.frame()
        assert app.scene.budget_shown                       # still interacting
        app.budget.last_interaction -= 120.0                # two minutes without a key or camera motion
        before = app.budget.last_still
        _gaze(app, 30, start=10, interact=False)            # heat while idle...
        app.frame()
        assert not app.scene.budget_shown and app.budget.last_still > before   # ...drawn in full
        full = app.scene._full.overlay
        assert full.scale > 0 and np.array_equal(full._last, app.session.attention)   # its heat is today's
        app._interacting()                                  # the budget drawn again catches up with it
        app.draw()
        assert np.array_equal(full.target[app.scene._budget.index], app.scene._budget.overlay.target)
    finally:
        app.close()


def test_attention_labels_and_recording_are_bit_identical_with_and_without_a_budget(tmp_path):
    from gaze3d.camera import Camera
    from gaze3d.recording import Recording

    cloud = _grid_cloud(60, 50, pitch=0.5)
    out = {}
    for budget in (0, 250):
        app = _app(cloud, budget, record=tmp_path / f"b{budget}.gaze3d")
        try:
            cam0 = app.scene.camera()
            for i in range(60):
                if i % 20 == 10:                            # the camera moves while the budget is drawn
                    d = cam0.to_dict()
                    d["position"] = (cam0.position + [3.0 * (i // 20 + 1), -2.0, 0.0]).tolist()
                    app._interacting()
                    app.scene.set_camera(Camera.from_dict(d))
                _gaze(app, 1, x=0.4 + 0.004 * (i % 20), y=0.5, start=i)
                if i == 30:
                    app.handle_key("1")
            app.handle_key("t")
            if budget:
                assert app.scene.point_budget == 250
            out[budget] = (app.session.attention.copy(), app.session.labels.copy())
        finally:
            app.close()
        with Recording(tmp_path / f"b{budget}.gaze3d") as rec:
            _, cams = rec.camera_frames()
            samples = rec.samples()
            out[budget] += ([c.to_dict() for c in cams], samples["t_host_ns"].tobytes(),
                            [{k: v for k, v in e.items() if k not in ("t_host_ns", "time_unix_s")}
                             for e in rec.events()])
    (att0, lab0, cams0, s0, ev0), (att1, lab1, cams1, s1, ev1) = out[0], out[250]
    assert att0.tobytes() == att1.tobytes() and att0.max() > 0
    assert lab0.tobytes() == lab1.tobytes() and (lab0 != cloud.labels).any()
    assert cams0 == cams1 and len(cams0) >= 3
    assert s0 == s1 and ev0 == ev1


def test_camera_motion_draws_the_budget_from_its_first_step():
    app = _app(_grid_cloud(), 200)
    try:
        app.draw(still=True)
        assert not app.scene.budget_shown
        # what VTK's interactor style sends when a drag or a wheel step starts, before it renders
        app.plotter.iren.interactor.GetInteractorStyle().InvokeEvent("StartInteractionEvent")
        assert app.scene.budget_shown and app.budget.interactive()
    finally:
        app.close()


def test_view_point_budget_option(tmp_path, capsys):
    from gaze3d.cli import main
    from gaze3d.io import save_scan

    save_scan(_grid_cloud(20, 15), tmp_path / "c.ply")
    assert main(["view", str(tmp_path / "nothing.ply"), "--off-screen", "--point-budget", "lots"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "point budget" in err and "'lots'" in err   # before the scan is read
    for value in ("auto", "0", "100"):
        assert main(["view", str(tmp_path / "c.ply"), "--off-screen", "--window", "64x48",
                     "--point-budget", value]) == 0
