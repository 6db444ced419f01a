"""What the viewer shows is the truth: a scan's own RGB, a status line whose separators and lines are drawn.

Pixel tests on the offscreen window (VTK); each watched plotter must be freed.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyvista", reason="the viewer needs VTK/pyvista (gaze3d[viewer])")

from viewer_helpers import WINDOW, box_scene, scene_camera  # noqa: E402

from gaze3d.scan import PointCloud  # noqa: E402

GREEN = np.array([0.1, 0.8, 0.2])


def _app(scan, **kw):
    from gaze3d.viewer.app import ViewerApp

    return ViewerApp(scan, off_screen=True, window_size=WINDOW, **kw)


def _box_pixels(app, xyz, is_box):
    from viewer_helpers import screen_box

    img = app.screenshot().astype(int)
    u0, v0, u1, v1 = screen_box(scene_camera(), xyz[is_box], margin=-4)
    return img[v0:v1, u0:u1].reshape(-1, 3)


def _greenish(px):
    return (px[:, 1] > 120) & (px[:, 1] > px[:, 0] + 60) & (px[:, 1] > px[:, 2] + 60)


def test_a_classified_cloud_with_rgb_shows_its_rgb_and_class_tint_is_a_key(vtk_freed):
    xyz, truth = box_scene()
    cloud = PointCloud(xyz, colors=np.tile(GREEN, (len(xyz), 1)), labels=truth)   # a classified LAS with RGB
    app = _app(cloud)
    vtk_freed.watch_plotter(app.plotter)
    try:
        app.scene.set_camera(scene_camera())
        is_box = truth == 6
        assert not app.scene.class_tint
        rgb = _box_pixels(app, xyz, is_box)
        assert _greenish(rgb).mean() > 0.5, "the scan's own colours are not shown"
        app.press("t")
        assert app.scene.class_tint and "class colours on" in app.session.message
        tinted = _box_pixels(app, xyz, is_box)
        assert _greenish(tinted).mean() < 0.05, "class tint on: the building class colour should cover the RGB"
        app.press("t")
        assert np.array_equal(_box_pixels(app, xyz, is_box), rgb)
        # a label made in the viewer shows while the class tint is off
        new = app.session.labels.copy()
        new[is_box] = 4                    # class4: red
        app.scene.set_labels(new, changed=np.flatnonzero(is_box))
        assert _greenish(_box_pixels(app, xyz, is_box)).mean() < 0.05
    finally:
        app.close()


def test_a_classified_cloud_without_rgb_keeps_the_class_tint(vtk_freed):
    xyz, truth = box_scene()
    app = _app(PointCloud(xyz, labels=truth))
    vtk_freed.watch_plotter(app.plotter)
    try:
        assert app.scene.class_tint
    finally:
        app.close()


def _lit(img):
    return img.astype(int).sum(axis=2) > 150


def test_status_separators_are_drawn_and_lines_start_at_one_x(vtk_freed):
    from gaze3d.viewer.app import STATUS_SEPARATOR, status_text

    xyz, _ = box_scene(n_ground=500, n_box=100)
    app = _app(PointCloud(xyz))
    vtk_freed.watch_plotter(app.plotter)
    try:
        app._palette.SetText(2, "")
        app.scene.actor.SetVisibility(False)
        drawn = {}
        for glyph in ("", "|", STATUS_SEPARATOR.strip()):
            app._status.SetInput(f"a{glyph}")
            drawn[glyph] = int(_lit(app.screenshot()).sum())
        assert drawn[STATUS_SEPARATOR.strip()] > drawn[""] + 8, drawn     # the separator adds its pixels
        assert status_text("a | b | c\nmessage ") == f"a{STATUS_SEPARATOR}b{STATUS_SEPARATOR}c\nmessage"
        app.session.message = "DRIFT ALERT 1.3 deg"
        app.typing = "build"
        app.update_status()
        img = _lit(app.screenshot())
        rows = np.flatnonzero(img.any(axis=1))
        assert 3 * 10 <= len(rows) <= 3 * 30, f"{len(rows)} rows of text for three lines"
        bands = np.array_split(np.arange(rows[0], rows[-1] + 1), 3)      # one fixed font size: equal lines
        starts = [int(np.flatnonzero(img[b].any(axis=0))[0]) for b in bands]
        assert max(starts) - min(starts) <= 2, f"status lines start at x = {starts}"
    finally:
        app.close()


def test_mouse_as_gaze_shows_the_mouse_rate_not_blanks(vtk_freed):
    xyz, _ = box_scene(n_ground=500, n_box=100)
    app = _app(PointCloud(xyz))
    vtk_freed.watch_plotter(app.plotter)
    try:
        app._mouse_xy = (0.5, 0.5)
        for _ in range(5):
            app.frame(render=False)
        line = app.session.status_line().split("\n")[0]
        assert "mouse 5 Hz" in line and "- Hz" not in line and "valid -" not in line, line
    finally:
        app.close()
