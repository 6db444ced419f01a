"""VR sessions drawn over a scan: the head path and gaze rays (used by ``gaze3d render`` and the viewer's replay).

Geometry is built in the scene's render coordinates (world minus
:attr:`Scene.offset`, OpenGL works in float32).
"""
from __future__ import annotations

import numpy as np

from gaze3d.attention import AttentionAccumulator
from gaze3d.errors import InputError
from gaze3d.protocol import TOPIC_GAZE_3D
from gaze3d.scan import Volume
from gaze3d.vr.analysis import choose_topic, read_rays

from ._vtk import make_plotter, pv
from .render import write_png
from .scene import Scene

HEAD_PATH_COLOR = (0.10, 0.45, 0.95)
RAY_COLOR = (0.05, 0.75, 0.35)
CURRENT_RAY_COLOR = (0.95, 0.15, 0.15)


def head_path_polydata(scene, positions) -> "pv.PolyData | None":
    """(n, 3) world head positions -> a polyline (None if fewer than two finite positions)."""
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < 2:
        return None
    return pv.lines_from_points(p - scene.offset)


def rays_polydata(scene, origins, directions, length=None, max_rays: int = 400) -> "pv.PolyData | None":
    """Segments along (n, 3) world rays, at most ``max_rays`` evenly picked (None if none is finite).

    ``length`` (scene units, scalar or (n,)) defaults to 15 % of the scan's diagonal.
    """
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    if length is None:
        b = scene.dataset.bounds
        length = 0.15 * float(np.linalg.norm([b[1] - b[0], b[3] - b[2], b[5] - b[4]]))
    ln = np.broadcast_to(np.asarray(length, dtype=np.float64), (len(o),))
    ok = np.flatnonzero(np.isfinite(o).all(1) & np.isfinite(d).all(1) & np.isfinite(ln))
    if len(ok) == 0:
        return None
    if len(ok) > max_rays:
        ok = ok[np.linspace(0, len(ok) - 1, max_rays).round().astype(int)]
    dn = d[ok] / np.linalg.norm(d[ok], axis=1, keepdims=True)
    a = o[ok] - scene.offset
    b = a + dn * ln[ok, None]
    pts = np.empty((2 * len(ok), 3))
    pts[0::2], pts[1::2] = a, b
    lines = np.c_[np.full(len(ok), 2), np.arange(0, 2 * len(ok), 2), np.arange(1, 2 * len(ok), 2)].ravel()
    return pv.PolyData(pts, lines=lines)


def add_vr_overlay(plotter, scene, head_path=None, gaze_rays=None, line_px: float = 3.0) -> list:
    """Add the head path (blue polyline) and gaze rays (green segments) to ``plotter``; returns the actors."""
    actors = []
    if head_path is not None:
        poly = head_path_polydata(scene, head_path)
        if poly is not None:
            actors.append(plotter.add_mesh(poly, color=HEAD_PATH_COLOR, line_width=line_px, lighting=False,
                                           reset_camera=False))
    if gaze_rays is not None:
        poly = rays_polydata(scene, *gaze_rays)
        if poly is not None:
            actors.append(plotter.add_mesh(poly, color=RAY_COLOR, line_width=max(1.0, line_px / 2), opacity=0.6,
                                           lighting=False, reset_camera=False))
    return actors


class VRReplay:
    """``gaze3d view SCAN --replay SESSION``: a VR recording played back over its scan.

    Shows the head path (blue), the current gaze ray up to its point of regard
    or 15 % of the scan's diagonal (red), and the attention built up to the
    current time (heat, on the final attention's scale, so it grows). The
    time is set with a slider, or keys: Right/Left one step, Up/Down ten
    steps, space play/pause, Home/End. Attention snapshots are computed
    once, every ``step_s`` (at most ``max_snapshots``), by the same
    :class:`gaze3d.attention.AttentionAccumulator` as ``gaze3d attention``
    (online fixation filter: a snapshot lacks the last ``lag_s`` = 0.2 s).

    Parameters
    ----------
    scan : PointCloud | Mesh
    recording : path or Recording with ``gaze.3d`` samples
    """

    def __init__(self, scan, recording, *, off_screen: bool = False, window_size=(1280, 800),
                 point_size: float = 3.0, step_s: float = 0.25, max_snapshots: int = 400, sigma_deg: float = 1.0,
                 fixations_only: bool = True):
        if isinstance(scan, Volume):
            raise InputError("--replay: VR sessions are replayed over point clouds and meshes, not volumes")
        if isinstance(recording, (str, bytes)) or hasattr(recording, "__fspath__"):
            choose_topic(recording, TOPIC_GAZE_3D)       # no usable ray: one line, exit 2
        r = read_rays(recording)
        self.t = r["t_s"]
        self.origin, self.direction, self.valid = r["origin"], r["direction"], r["valid"]
        self.point = r["point"]
        duration = float(self.t[-1]) if len(self.t) else 0.0
        step = max(float(step_s), duration / max(1, max_snapshots - 1)) if duration > 0 else 1.0
        self.snap_t = np.arange(0.0, duration + step, step)
        opts = {"point_size": point_size} if type(scan).__name__ == "PointCloud" else {}
        acc = AttentionAccumulator(scan, sigma_deg=sigma_deg, fixations_only=fixations_only, **opts)
        snaps, i = [], 0
        for ts in self.snap_t:
            j = int(np.searchsorted(self.t, ts, side="right"))
            if j > i:
                acc.add_rays(self.origin[i:j], self.direction[i:j], t_s=self.t[i:j], valid=self.valid[i:j])
                i = j
            snaps.append(acc.values.astype(np.float32, copy=True))
        acc.flush()
        snaps[-1] = acc.values.astype(np.float32, copy=True)
        self.snapshots = snaps
        self.vmax = float(max(s.max() for s in snaps)) if snaps and len(snaps[-1]) else 0.0
        w, h = window_size
        self.plotter = make_plotter(off_screen=off_screen, window_size=(w, h))
        self.plotter.set_background("white")
        self.scene = Scene(self.plotter, scan, point_size=point_size,
                           labels=np.zeros(len(scan), dtype=np.int32))
        self.scene.overlay.headroom = 1.0
        b = self.scene.dataset.bounds
        self._diag = float(np.linalg.norm([b[1] - b[0], b[3] - b[2], b[5] - b[4]]))
        add_vr_overlay(self.plotter, self.scene, head_path=self.origin, line_px=3.0)
        self._ray = pv.PolyData(np.zeros((2, 3)), lines=np.array([2, 0, 1]))
        self.plotter.add_mesh(self._ray, color=CURRENT_RAY_COLOR, line_width=4.0, lighting=False, reset_camera=False)
        self._label = self.plotter.add_text("", position="upper_left", font_size=10, color=(0.1, 0.1, 0.1))
        self.scene.default_camera()
        self.time = 0.0
        self._playing = False
        self._step = step
        if not off_screen:
            self.plotter.add_slider_widget(self.set_time, [0.0, max(duration, 1e-6)], value=0.0,
                                           title="time (s)", pointa=(0.25, 0.06), pointb=(0.75, 0.06))
            for key, dt in (("Right", step), ("Left", -step), ("Up", 10 * step), ("Down", -10 * step)):
                self.plotter.add_key_event(key, lambda dt=dt: self.set_time(self.time + dt))
            self.plotter.add_key_event("Home", lambda: self.set_time(0.0))
            self.plotter.add_key_event("End", lambda: self.set_time(duration))
            self.plotter.add_key_event("space", self._toggle)
        self.set_time(0.0)

    @property
    def duration(self) -> float:
        return float(self.t[-1]) if len(self.t) else 0.0

    def sample_at(self, t: float) -> int:
        """Index of the last sample at or before ``t`` (s from the first sample)."""
        return max(0, int(np.searchsorted(self.t, t, side="right")) - 1)

    def set_time(self, t: float) -> None:
        """Show the session at ``t`` seconds: the attention so far and the gaze ray of that moment."""
        t = float(np.clip(t, 0.0, self.duration))
        self.time = t
        k = int(np.clip(np.searchsorted(self.snap_t, t, side="right") - 1, 0, len(self.snapshots) - 1))
        self.scene.overlay.update(self.snapshots[k], vmax=self.vmax)
        i = self.sample_at(t)
        o, d = self.origin[i], self.direction[i]
        if self.valid[i] and np.isfinite(d).all():
            length = float(np.linalg.norm(self.point[i] - o)) if np.isfinite(self.point[i]).all() else 0.15 * self._diag
            pts = np.stack([o, o + d / np.linalg.norm(d) * length]) - self.scene.offset
        else:                                  # a gap: no ray to draw
            pts = np.repeat((o - self.scene.offset)[None], 2, 0) if np.isfinite(o).all() else np.zeros((2, 3))
        self._ray.points = pts
        self._label.SetText(2, f"t = {t:6.2f} / {self.duration:.2f} s   sample {i + 1}/{len(self.t)}"
                               f"{'' if self.valid[i] else '  (gap)'}   keys: <- -> space")
        self.plotter.render()

    def _toggle(self) -> None:
        self._playing = not self._playing
        if self._playing:
            def tick(_step=None):
                if self._playing and self.time < self.duration:
                    self.set_time(self.time + self._step)
            n = int(np.ceil((self.duration - self.time) / self._step)) + 1
            self.plotter.add_timer_event(max_steps=n, duration=int(self._step * 1000), callback=tick)

    def screenshot(self, path=None) -> np.ndarray:
        img = np.array(self.plotter.screenshot(return_img=True), dtype=np.uint8)[:, :, :3]
        if path is not None:
            write_png(img, path)
        return img

    def run(self) -> None:
        self.plotter.show(title="gaze3d view --replay")

    def close(self) -> None:
        self.plotter.close()
        self.plotter.deep_clean()
