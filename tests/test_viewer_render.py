"""Offscreen rendering: render_scan, `gaze3d render`, `gaze3d view` smoke, the VTK leak guard."""
from __future__ import annotations

import json

import numpy as np
import pytest

from viewer_helpers import WINDOW, box_scene, hot_mask, scene_camera, screen_box

pytestmark = pytest.mark.render


def _mesh_grid(n=30):
    from gaze3d.scan import Mesh

    x, y = np.meshgrid(np.linspace(0, 10, n), np.linspace(0, 10, n), indexing="ij")
    v = np.c_[x.ravel(), y.ravel(), 0.5 * np.sin(x.ravel())]
    g = np.arange(n * n).reshape(n, n)
    q = np.stack([g[:-1, :-1], g[1:, :-1], g[1:, 1:], g[:-1, 1:]], -1).reshape(-1, 4)
    f = np.r_[q[:, [0, 1, 2]], q[:, [0, 2, 3]]]
    return Mesh(v, f)


def test_render_scan_cloud_heat_where_the_scalars_are(tmp_path):
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.render import render_scan

    xyz, truth = box_scene(8000, 1500)
    att = (truth == 6).astype(np.float32)
    cam = scene_camera()
    out = tmp_path / "shot.png"
    img = render_scan(PointCloud(xyz), att, camera=cam, out=out, window_size=WINDOW, title="t")
    assert img.shape == (WINDOW[1], WINDOW[0], 3) and img.dtype == np.uint8
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), img)
    hot = hot_mask(img)
    u0, v0, u1, v1 = screen_box(cam, xyz[truth == 6])
    inside = np.zeros_like(hot)
    inside[v0:v1, u0:u1] = True
    bar = np.zeros_like(hot)
    bar[:, int(0.85 * WINDOW[0]):] = True          # the colour bar is hot too, on the right
    assert hot[inside].sum() > 50
    assert hot[~inside & ~bar].sum() < 0.02 * hot[inside].sum() + 2
    plain = render_scan(PointCloud(xyz), None, camera=cam, window_size=WINDOW)
    assert hot_mask(plain)[inside].sum() < 0.05 * hot[inside].sum()


def test_render_scan_mesh_and_volume():
    from gaze3d.scan import Volume
    from gaze3d.viewer.render import render_scan

    mesh = _mesh_grid()
    att = np.exp(-((mesh.vertices[:, :2] - 5) ** 2).sum(1))
    img = render_scan(mesh, att, window_size=(160, 120))
    assert hot_mask(img).sum() > 20

    rng = np.random.default_rng(0)
    arr = rng.normal(0, 5, (32, 28, 20)).astype(np.float32)
    arr[8:24, 8:20, 5:15] += 100
    vol = Volume(arr, np.diag([2.0, 2.0, 3.0, 1.0]))
    a = np.zeros_like(arr)
    a[12:20, 10:18, 8:12] = 1.0
    with_vr = render_scan(vol, a, window_size=(160, 120))
    slices_only = render_scan(vol, a, window_size=(160, 120), volume_render=False)
    assert hot_mask(with_vr).sum() > 10
    assert not np.array_equal(with_vr, slices_only)     # the volume rendering adds something
    from gaze3d.errors import InputError

    with pytest.raises(InputError, match=r"scalars: expected shape \(32, 28, 20\)"):
        render_scan(vol, np.zeros(10), window_size=(64, 64))


def test_cli_render_with_camera_file_and_attention(tmp_path):
    from gaze3d.cli import main
    from gaze3d.io import save_scan
    from gaze3d.scan import PointCloud

    xyz, truth = box_scene(4000, 800)
    save_scan(PointCloud(xyz), tmp_path / "scan.ply")
    np.save(tmp_path / "att.npy", (truth == 6).astype(np.float32))
    (tmp_path / "cam.json").write_text(json.dumps(scene_camera().to_dict()))
    out = tmp_path / "shot.png"
    rc = main(["render", str(tmp_path / "scan.ply"), "--attention", str(tmp_path / "att.npy"),
               "--camera", str(tmp_path / "cam.json"), "--out", str(out), "--window", "320x240"])
    assert rc == 0
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (240, 320, 3)
    u0, v0, u1, v1 = screen_box(scene_camera(), xyz[truth == 6])
    assert hot_mask(img)[v0:v1, u0:u1].sum() > 30
    np.save(tmp_path / "short.npy", np.zeros(7, dtype=np.float32))
    assert main(["render", str(tmp_path / "scan.ply"), "--attention", str(tmp_path / "short.npy"),
                 "--out", str(tmp_path / "x.png"), "--window", "64x64"]) == 2
    assert main(["render", str(tmp_path / "scan.ply"), "--attention", "nope",
                 "--out", str(tmp_path / "x.png"), "--window", "64x64"]) == 2
    assert not (tmp_path / "x.png").exists()


def test_cli_view_smoke_offscreen(tmp_path, capsys):
    from gaze3d.cli import main
    from gaze3d.io import save_scan
    from gaze3d.scan import PointCloud

    xyz, truth = box_scene(2000, 300)
    save_scan(PointCloud(xyz, labels=truth), tmp_path / "scan.ply")
    (tmp_path / "labels.txt").write_text("6 building\n2 ground\n")
    assert main(["view", str(tmp_path / "scan.ply"), "--labels", str(tmp_path / "labels.txt"),
                 "--window", "160x120", "--off-screen", "--record", str(tmp_path / "s.sqlite")]) == 0
    assert (tmp_path / "s.sqlite").is_file()
    assert main(["view", str(tmp_path / "scan.ply"), "--labels", str(tmp_path / "missing.json"),
                 "--off-screen"]) == 2
    assert "missing.json: label set file not found" in capsys.readouterr().err


def test_app_frees_vtk_objects(vtk_freed):
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.app import ViewerApp

    xyz, _ = box_scene(2000, 300)
    app = ViewerApp(PointCloud(xyz), off_screen=True, window_size=(160, 120))
    vtk_freed.watch_plotter(app.plotter)
    app._mouse_xy = (0.5, 0.5)
    app.frame()
    app.press("c")
    app.close()
    del app


def test_vtk_guard_reports_a_leak():
    """Negative control: the guard must fail when a plotter outlives the test."""
    from viewer_helpers import VTKFreedGuard

    from gaze3d.viewer._vtk import make_plotter, pv

    guard = VTKFreedGuard()
    plotter = make_plotter(off_screen=True, window_size=(64, 64))
    plotter.add_mesh(pv.Sphere())
    guard.watch_plotter(plotter)
    problems = guard.check()
    assert any("plotter(s) still registered" in p for p in problems)
    assert any("render window" in p for p in problems)
    plotter.close()
    plotter.deep_clean()
    del plotter
    assert VTKFreedGuard().check() == []


def test_vtk_guard_sees_a_render_window_kept_alive_after_close():
    """Negative control for the guard's render-window watch: PyVista >= 0.49.2 strips the
    window's observers on close, so the guard must still see a window that a caller keeps."""
    from viewer_helpers import VTKFreedGuard

    from gaze3d.viewer._vtk import make_plotter, pv

    guard = VTKFreedGuard()
    plotter = make_plotter(off_screen=True, window_size=(64, 64))
    plotter.add_mesh(pv.Sphere())
    plotter.render()
    guard.watch_render_window("kept window", plotter.ren_win)
    kept = plotter.ren_win           # a leak as a viewer could make it: a stray reference
    plotter.close()
    plotter.deep_clean()
    del plotter
    assert any("kept window" in p for p in guard.check())
    guard.watch_render_window("kept window", kept)
    del kept
    assert guard.check() == []


def test_volume_app_attention_follows_the_visible_slices_then_the_rendering(vtk_freed):
    from gaze3d.scan import Volume
    from gaze3d.viewer.app import ViewerApp

    rng = np.random.default_rng(1)
    arr = rng.normal(0, 5, (30, 26, 20)).astype(np.float32)
    arr[8:22, 6:20, 4:16] += 100
    app = ViewerApp(Volume(arr, np.diag([2.0, 2.0, 3.0, 1.0])), off_screen=True, window_size=WINDOW,
                    segmenter="grow")
    vtk_freed.watch_plotter(app.plotter)
    try:
        app.plotter.renderer.GetActiveCamera().Zoom(2.5)
        s = app.session
        app.sync_volume_attention()
        engine = s.accumulator.engine
        assert engine.mode == "slice"
        assert engine.planes == list(enumerate(app.scene.slice_index))   # all three planes shown
        t0 = s.now_ns()
        for i in range(0, 160, 8):
            s.tick(local_samples=[s.mouse_sample(0.5, 0.5, t_ns=t0 + (i + j) * 5_000_000) for j in range(8)])
        s.commit_attention()
        att = s.attention.reshape(arr.shape)
        assert att.sum() > 0
        on_planes = np.zeros(arr.shape, bool)
        per_plane = []
        for axis, index in enumerate(app.scene.slice_index):
            cut = [slice(None)] * 3
            cut[axis] = index
            on_planes[tuple(cut)] = True
            per_plane.append(np.take(att, index, axis=axis).sum())
        assert att[on_planes].sum() == pytest.approx(att.sum())   # all of it on the slice planes
        # the gaze rests where the planes cross: more than one plane is seen there
        assert sum(p > 0.05 * att.sum() for p in per_plane) >= 2, per_plane
        img = app.screenshot()
        assert hot_mask(img).sum() > 5
        app.press("v")                                         # slices hidden: the volume rendering counts
        app.frame(render=False)
        assert engine.mode == "render" and not app.scene.actor.GetVisibility()
        before = app.scene.transfer[0]
        app.press("bracketright")
        assert app.scene.transfer[0] > before
        xs, alphas = app.scene.opacity_points()
        assert np.allclose(engine.opacity(xs), alphas)         # attention uses the ramp on screen
    finally:
        app.close()
    del app
