"""Helpers for the viewer tests: small scenes, hot-pixel checks, a VTK leak guard."""
from __future__ import annotations

import gc
import json

import numpy as np

WINDOW = (320, 240)
OFFSET = np.array([870000.0, 6618000.0, 50.0])   # Lambert-93-like coordinates: float32 would jitter


def box_scene(n_ground: int = 15000, n_box: int = 3000, seed: int = 0):
    """(xyz (n, 3), truth (n,) int32): a 20 m x 20 m ground (label 2) with a 3 m box (label 6) on it."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(0, 20, (n_ground, 2))
    ground = np.c_[g, rng.normal(0, 0.02, n_ground)]
    box = rng.uniform(0, 1, (n_box, 3)) * [3, 3, 3] + [12, 12, 0]
    xyz = np.r_[ground, box] + OFFSET
    truth = np.r_[np.full(n_ground, 2), np.full(n_box, 6)].astype(np.int32)
    return xyz, truth


def scene_camera():
    """A fixed camera south of and above the scene, sized like the test window."""
    from gaze3d.camera import Camera

    return Camera.look_at(OFFSET + [10, -10, 30], OFFSET + [10, 10, 0], vfov_deg=40,
                          width=WINDOW[0], height=WINDOW[1])


def write_sim_scene(tmp_path):
    """Write the labelled box scene (PLY) and a static camera path (JSON) for the ``sim`` source."""
    from gaze3d.camera import CameraPath
    from gaze3d.io import save_scan
    from gaze3d.scan import PointCloud

    xyz, truth = box_scene()
    scene = tmp_path / "scene.ply"
    save_scan(PointCloud(xyz, labels=truth), scene)
    cam = scene_camera()
    path = tmp_path / "path.json"
    path.write_text(json.dumps(CameraPath([0.0, 600.0], [cam, cam]).to_dict()))
    return scene, path


def hot_mask(img: np.ndarray) -> np.ndarray:
    """(h, w) bool: pixels in the hot part of the heat map (orange-yellow: strong red, little blue)."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 170) & (r - b > 70) & (g > 40)


def screen_box(camera, xyz: np.ndarray, margin: int = 6):
    """(u0, v0, u1, v1) pixel bounding box of the projected points, grown by ``margin``."""
    px, _ = camera.project(xyz)
    u0, v0 = np.floor(px.min(axis=0)).astype(int) - margin
    u1, v1 = np.ceil(px.max(axis=0)).astype(int) + margin
    return max(u0, 0), max(v0, 0), u1, v1


class VTKFreedGuard:
    """Watches VTK objects (through their ``DeleteEvent``, holding no reference to them)."""

    def __init__(self):
        self.watched = []

    def watch(self, name: str, obj) -> None:
        box = {"freed": False, "cls": obj.GetClassName()}
        obj.AddObserver("DeleteEvent", lambda *args, box=box: box.__setitem__("freed", True))
        self.watched.append((name, box))

    def watch_render_window(self, name: str, ren_win) -> None:
        """A render window, through the renderer collection that only it owns.

        PyVista >= 0.49.2 removes every observer of the render window when the plotter
        closes, so a ``DeleteEvent`` observer on the window itself never fires even
        though the window is freed; its renderer collection dies with it.
        """
        self.watch(f"{name} (through its renderer collection)", ren_win.GetRenderers())

    def watch_plotter(self, plotter) -> None:
        """The render window, the renderer, every actor with its mapper and data set."""
        self.watch_render_window("render window", plotter.ren_win)
        # PyVista removes the renderer's observers too when it closes: its culler
        # collection, owned by the renderer alone, dies with it
        self.watch("renderer (through its cullers)", plotter.renderer.GetCullers())
        for key, actor in plotter.renderer.actors.items():
            self.watch(f"actor {key}", actor)
            mapper = actor.GetMapper() if hasattr(actor, "GetMapper") else None
            if mapper is not None:
                self.watch(f"mapper of {key}", mapper)
                data = mapper.GetInputDataObject(0, 0)
                if data is not None:
                    self.watch(f"data set of {key}", data)

    def check(self) -> list:
        import pyvista as pv

        gc.collect()
        problems = []
        if pv.plotting.plotter._ALL_PLOTTERS:
            problems.append(f"{len(pv.plotting.plotter._ALL_PLOTTERS)} plotter(s) still registered")
        alive = [f"{name} ({box['cls']})" for name, box in self.watched if not box["freed"]]
        if alive:
            problems.append("still alive: " + ", ".join(alive))
        self.watched.clear()
        return problems


def qt_child_session() -> dict:
    """Run in a child process with a display: drive the Qt panel, return what happened."""
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.labels import LabelSet
    from gaze3d.viewer.qt_panel import QtViewer, qt_application

    qapp = qt_application()
    xyz, truth = box_scene(3000, 600)
    win = QtViewer(PointCloud(xyz), LabelSet.from_names({6: "building", 2: "ground"}), window_size=WINDOW,
                   segmenter="grow")
    win.show()
    qapp.processEvents()
    out = {"labels_listed": win.label_list.count()}
    app = win.app
    app.scene.set_camera(scene_camera())
    cam = app.scene.camera()
    px, _ = cam.project(xyz[truth == 6].mean(axis=0, keepdims=True))
    s = app.session
    t0 = s.now_ns()
    for i in range(0, 200, 10):    # hold the gaze on the box (scripted mouse-as-gaze)
        s.tick(local_samples=[s.mouse_sample(px[0, 0] / cam.width, px[0, 1] / cam.height,
                                             t_ns=t0 + (i + j) * 5_000_000) for j in range(10)])
    win.on_frame()
    win.name_entry.setText("buildng")
    win.name_entry.returnPressed.emit()
    out["typo_status"] = win.status.text()
    win.name_entry.setText("building")
    win.name_entry.returnPressed.emit()
    out["labelled"] = int((s.labels == 6).sum())
    out["labelled_on_box"] = int((s.labels[truth == 6] == 6).sum())
    win.buttons["undo"].click()
    out["after_undo"] = int((s.labels != 0).sum())
    win.buttons["redo"].click()
    out["after_redo"] = int((s.labels == 6).sum())
    img = app.screenshot()
    out["image_std"] = float(img.std())
    out["status"] = win.status.text()
    win.close()
    qapp.processEvents()
    return out


def fixate(session, xy_norm, seconds=1.0, rate=200, seed=0, t0_ns=None):
    """Feed ``session`` a mouse-as-gaze fixation at viewport ``xy_norm`` (0.05 % jitter), 10 samples a tick.

    Starts at ``t0_ns`` (default: now, or just after the session's last sample); returns the
    time just after its last sample.
    """
    rng = np.random.default_rng(seed)
    t0 = max(session.now_ns(), (session._last_t_ns or 0) + 1) if t0_ns is None else t0_ns
    n = int(seconds * rate)
    for i in range(0, n, 10):
        session.tick(local_samples=[
            session.mouse_sample(xy_norm[0] + rng.normal(0, 5e-4), xy_norm[1] + rng.normal(0, 5e-4),
                                 t_ns=t0 + int((i + j) * 1e9 / rate)) for j in range(10)])
    return t0 + int(n * 1e9 / rate)
