"""Where the viewer sits on the screen, and tracker coordinates <-> viewport pixels <-> degrees.

Three frames are involved:

* **tracker coordinates**: normalised ``(x, y)`` in ``[0, 1]``, origin at the
  top-left of the tracker's *display area* (what eye trackers report);
* **desktop coordinates**: the OS's virtual desktop in *logical* pixels
  (what Qt's ``QScreen.geometry()`` and ``QWidget.geometry()`` give), spanning
  every monitor; a monitor with OS scaling ``s`` shows ``s`` physical pixels
  per logical pixel;
* **viewport coordinates**: pixels of the viewer's render area, origin
  top-left (``gaze3d.camera`` conventions), or those divided by the viewport
  size (normalised viewport coordinates, what ``Camera.unproject`` takes).

Degrees of visual angle come from :class:`gaze3d.display.DisplayGeometry` of
the tracker's display area; the eye-to-screen distance is taken from the
tracker's 3D gaze origin when the device reports one
(:meth:`TrackerDisplayArea.eye_geometry`), else from the configured distance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import List, Optional, Sequence

import numpy as np

from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError


def _positive(value, name: str) -> float:
    v = float(value)
    if not (np.isfinite(v) and v > 0):
        raise InputError(f"{name}: expected a positive number, got {value!r}")
    return v


@dataclass(frozen=True)
class Monitor:
    """One monitor of the virtual desktop.

    Parameters
    ----------
    name : str
    x, y : float
        Top-left corner on the virtual desktop, logical pixels.
    width_px, height_px : int
        Native (physical) resolution.
    width_mm, height_mm : float
        Size of the visible image.
    scale : float
        OS scaling (device pixel ratio): physical pixels per logical pixel.
    """

    name: str = "primary"
    x: float = 0.0
    y: float = 0.0
    width_px: int = 1920
    height_px: int = 1080
    width_mm: float = 527.0
    height_mm: float = 296.0
    scale: float = 1.0

    def __post_init__(self):
        for name in ("width_px", "height_px", "width_mm", "height_mm", "scale"):
            _positive(getattr(self, name), f"monitor {self.name!r} {name}")

    @property
    def logical_size(self) -> tuple:
        """(width, height) in logical desktop pixels."""
        return self.width_px / self.scale, self.height_px / self.scale

    def contains(self, x: float, y: float) -> bool:
        w, h = self.logical_size
        return self.x <= x < self.x + w and self.y <= y < self.y + h


@dataclass(frozen=True)
class TrackerDisplayArea:
    """The tracker's display area as a rectangle in the tracker's 3D frame (mm).

    Tobii calls this the display area and gives its three corners in the
    user coordinate system (origin at the tracker, x right, y up, z towards
    the user); the rectangle's edges are ``top_right - top_left`` (width) and
    ``bottom_left - top_left`` (height).

    Parameters
    ----------
    top_left, top_right, bottom_left : (3,) float
        Corners in millimetres.
    """

    top_left: tuple
    top_right: tuple
    bottom_left: tuple

    def __post_init__(self):
        for name in ("top_left", "top_right", "bottom_left"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.shape != (3,) or not np.all(np.isfinite(v)):
                raise InputError(f"display area {name}: expected 3 finite numbers (mm), got {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(float(c) for c in v))
        if self.width_mm < 1e-6 or self.height_mm < 1e-6:
            raise InputError("display area: corners are degenerate (zero width or height)")

    @classmethod
    def below_screen(cls, width_mm: float, height_mm: float, gap_mm: float = 10.0,
                     tilt_deg: float = 0.0) -> "TrackerDisplayArea":
        """A screen-mounted tracker centred under the bottom edge, screen tilted back by ``tilt_deg``."""
        w, h = _positive(width_mm, "width_mm"), _positive(height_mm, "height_mm")
        t = np.radians(tilt_deg)
        up = np.array([0.0, np.cos(t), -np.sin(t)])        # screen's up edge, leaning away from the user
        bottom_mid = np.array([0.0, gap_mm, 0.0])
        top_mid = bottom_mid + h * up
        return cls(tuple(top_mid + [-w / 2, 0, 0]), tuple(top_mid + [w / 2, 0, 0]),
                   tuple(bottom_mid + [-w / 2, 0, 0]))

    @property
    def width_mm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.top_right, self.top_left)))

    @property
    def height_mm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.bottom_left, self.top_left)))

    def _axes(self):
        tl = np.asarray(self.top_left)
        ex = np.subtract(self.top_right, tl)
        ey = np.subtract(self.bottom_left, tl)
        n = np.cross(ey, ex)                                # points towards the user (+z) for a normal screen
        return tl, ex, ey, n / np.linalg.norm(n)

    def norm_to_3d(self, xy) -> np.ndarray:
        """(n, 2) tracker coordinates -> (n, 3) points on the display area, mm."""
        tl, ex, ey, _ = self._axes()
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return tl + xy[:, :1] * ex + xy[:, 1:2] * ey

    def eye_geometry(self, origin_mm) -> tuple:
        """Eye-to-screen distance and foot point for a 3D gaze origin.

        Parameters
        ----------
        origin_mm : (3,) or (n, 3) float
            Gaze origin(s) in the tracker frame; rows with NaN are ignored and
            the rest averaged.

        Returns
        -------
        distance_mm : float
            Perpendicular distance from the eye to the display plane.
        eye_xy : (2,) float
            Where that perpendicular meets the display, in tracker coordinates.
        """
        o = np.asarray(origin_mm, dtype=np.float64).reshape(-1, 3)
        o = o[np.all(np.isfinite(o), axis=1)]
        if len(o) == 0:
            raise InputError("gaze origin: no finite 3D gaze origin to take the eye distance from")
        o = o.mean(axis=0)
        tl, ex, ey, n = self._axes()
        distance = float(np.dot(o - tl, n))
        if distance <= 0:
            raise InputError(f"gaze origin {o.round(1).tolist()} mm is behind the display area, "
                             "expected the eye in front of the screen")
        foot = o - distance * n - tl
        eye_xy = (float(np.dot(foot, ex) / np.dot(ex, ex)), float(np.dot(foot, ey) / np.dot(ey, ey)))
        return distance, eye_xy

    def angle_from_origin_deg(self, origin_mm, xy_a, xy_b) -> np.ndarray:
        """(n,) angle between two (n, 2) display positions seen from (n, 3) or (3,) eye origins."""
        o = np.asarray(origin_mm, dtype=np.float64).reshape(-1, 3)
        a = self.norm_to_3d(xy_a) - o
        b = self.norm_to_3d(xy_b) - o
        cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

    def to_dict(self) -> dict:
        return {"top_left": list(self.top_left), "top_right": list(self.top_right),
                "bottom_left": list(self.bottom_left)}


@dataclass(frozen=True)
class ViewerWindow:
    """The viewer's render area on the virtual desktop, logical pixels (x, y, width, height)."""

    x: float
    y: float
    width: float
    height: float

    def __post_init__(self):
        _positive(self.width, "viewer window width")
        _positive(self.height, "viewer window height")


@dataclass(frozen=True)
class ScreenSetup:
    """Monitors, the tracker's display area, the viewer window and the eye distance.

    The tracker's display area is by default the whole of ``tracker_monitor``;
    ``area_mm = (left, top, width, height)`` narrows it to part of that
    monitor (measured from the monitor's top-left corner), as with a tracker
    configured for a sub-region.

    Parameters
    ----------
    monitors : list of Monitor
    tracker_monitor : str
        Name of the monitor the tracker is mounted on.
    window : ViewerWindow, optional
        The viewer's render area; default the whole tracker display area.
    distance_mm : float
        Eye-to-screen distance used when the tracker gives no 3D gaze origin.
    area_mm : (4,) float, optional
    allow_partial : bool
        Accept a window that is only partly inside the display area (gaze
        outside the tracked area is then simply missing).
    """

    monitors: List[Monitor] = field(default_factory=lambda: [Monitor()])
    tracker_monitor: str = "primary"
    window: Optional[ViewerWindow] = None
    distance_mm: float = 650.0
    area_mm: Optional[tuple] = None
    allow_partial: bool = False

    def __post_init__(self):
        if not self.monitors:
            raise InputError("screen setup monitors: expected at least one monitor")
        names = [m.name for m in self.monitors]
        if len(set(names)) != len(names):
            raise InputError(f"screen setup monitors: names must be unique, got {names}")
        if self.tracker_monitor not in names:
            raise InputError(f"tracker_monitor: {self.tracker_monitor!r} is not one of the monitors {names}")
        _positive(self.distance_mm, "distance_mm")
        m = self.monitor
        if self.area_mm is not None:
            left, top, w, h = (float(v) for v in self.area_mm)
            if w <= 0 or h <= 0 or left < 0 or top < 0 or left + w > m.width_mm + 1e-6 \
                    or top + h > m.height_mm + 1e-6:
                raise InputError(f"area_mm: {self.area_mm} is not inside monitor {m.name!r} "
                                 f"({m.width_mm} x {m.height_mm} mm)")
        if self.window is not None:
            self._check_window()

    # --- the tracker's display area on the desktop -------------------------------------
    @property
    def monitor(self) -> Monitor:
        return next(m for m in self.monitors if m.name == self.tracker_monitor)

    def area_desktop(self) -> tuple:
        """Tracker display area on the desktop: (x, y, width, height) in logical pixels."""
        m = self.monitor
        lw, lh = m.logical_size
        if self.area_mm is None:
            return m.x, m.y, lw, lh
        left, top, w, h = (float(v) for v in self.area_mm)
        sx, sy = lw / m.width_mm, lh / m.height_mm
        return m.x + left * sx, m.y + top * sy, w * sx, h * sy

    def display(self, origin_mm=None, area: Optional[TrackerDisplayArea] = None) -> DisplayGeometry:
        """DisplayGeometry of the tracker's display area.

        Parameters
        ----------
        origin_mm : (3,) or (n, 3) float, optional
            The tracker's 3D gaze origin (mm, tracker frame). When given, the eye
            distance and foot point come from it and ``area`` (default: a
            display area mounted above the tracker); else ``distance_mm``.
        area : TrackerDisplayArea, optional
        """
        m = self.monitor
        x, y, w, h = self.area_desktop()
        width_mm = w / m.logical_size[0] * m.width_mm
        height_mm = h / m.logical_size[1] * m.height_mm
        px = (int(round(w * m.scale)), int(round(h * m.scale)))
        if origin_mm is None:
            return DisplayGeometry(width_mm, height_mm, px[0], px[1], self.distance_mm)
        area = area or TrackerDisplayArea.below_screen(width_mm, height_mm)
        distance, eye_xy = area.eye_geometry(origin_mm)
        return DisplayGeometry(width_mm, height_mm, px[0], px[1], distance, eye_xy)

    # --- the viewer window ---------------------------------------------------------------
    def _window(self) -> ViewerWindow:
        if self.window is not None:
            return self.window
        return ViewerWindow(*self.area_desktop())

    def _check_window(self):
        ax, ay, aw, ah = self.area_desktop()
        w = self.window
        ix = min(w.x + w.width, ax + aw) - max(w.x, ax)
        iy = min(w.y + w.height, ay + ah) - max(w.y, ay)
        desc = (f"viewer window (x={w.x:g}, y={w.y:g}, {w.width:g} x {w.height:g}) is "
                f"{{}} the tracker's display area on monitor {self.tracker_monitor!r} "
                f"(x={ax:g}, y={ay:g}, {aw:g} x {ah:g}, logical desktop pixels)")
        if ix <= 0 or iy <= 0:
            raise InputError(desc.format("outside"))
        if not self.allow_partial and (ix < w.width - 1e-6 or iy < w.height - 1e-6):
            raise InputError(desc.format("partly outside") + "; move it or pass allow_partial=True")

    def viewport_size_px(self) -> tuple:
        """(width, height) of the viewer's render area in physical pixels (what VTK renders)."""
        w = self._window()
        s = self.monitor.scale
        return int(round(w.width * s)), int(round(w.height * s))

    def tracker_to_viewport(self, xy) -> np.ndarray:
        """(n, 2) tracker coordinates -> (n, 2) normalised viewport coordinates.

        Values outside ``[0, 1]`` mean the gaze is on the screen but off the
        viewer; NaN stays NaN.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        ax, ay, aw, ah = self.area_desktop()
        w = self._window()
        desk = np.array([ax, ay]) + xy * np.array([aw, ah])
        return (desk - np.array([w.x, w.y])) / np.array([w.width, w.height])

    def viewport_to_tracker(self, uv) -> np.ndarray:
        """(n, 2) normalised viewport coordinates -> (n, 2) tracker coordinates."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        ax, ay, aw, ah = self.area_desktop()
        w = self._window()
        desk = np.array([w.x, w.y]) + uv * np.array([w.width, w.height])
        return (desk - np.array([ax, ay])) / np.array([aw, ah])

    def tracker_to_viewport_px(self, xy) -> np.ndarray:
        """(n, 2) tracker coordinates -> (n, 2) viewport pixels (physical, top-left origin)."""
        return self.tracker_to_viewport(xy) * np.array(self.viewport_size_px(), dtype=np.float64)

    def viewport_px_to_tracker(self, px) -> np.ndarray:
        """(n, 2) viewport pixels -> (n, 2) tracker coordinates."""
        px = np.asarray(px, dtype=np.float64).reshape(-1, 2)
        return self.viewport_to_tracker(px / np.array(self.viewport_size_px(), dtype=np.float64))

    def viewport_px_to_deg(self, px, origin_mm=None) -> np.ndarray:
        """(n, 2) viewport pixels -> (n, 2) degrees from the eye's foot point (x right, y down)."""
        return self.display(origin_mm).norm_to_deg(self.viewport_px_to_tracker(px))

    def deg_to_viewport_px(self, deg, origin_mm=None) -> np.ndarray:
        """(n, 2) degrees -> (n, 2) viewport pixels; inverse of :meth:`viewport_px_to_deg`."""
        return self.tracker_to_viewport_px(self.display(origin_mm).deg_to_norm(deg))

    def px_per_deg(self, origin_mm=None) -> float:
        """Physical pixels per degree of visual angle at the eye's foot point."""
        return self.display(origin_mm).px_per_deg

    # --- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"monitors": [asdict(m) for m in self.monitors], "tracker_monitor": self.tracker_monitor,
             "distance_mm": self.distance_mm, "allow_partial": self.allow_partial,
             "area_mm": list(self.area_mm) if self.area_mm is not None else None,
             "window": asdict(self.window) if self.window is not None else None}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ScreenSetup":
        try:
            monitors = [Monitor(**m) for m in d.get("monitors", [{}])]
            window = ViewerWindow(**d["window"]) if d.get("window") else None
            return cls(monitors=monitors, tracker_monitor=d.get("tracker_monitor", monitors[0].name),
                       window=window, distance_mm=d.get("distance_mm", 650.0),
                       area_mm=tuple(d["area_mm"]) if d.get("area_mm") else None,
                       allow_partial=bool(d.get("allow_partial", False)))
        except TypeError as exc:
            raise InputError(f"screen setup: unexpected field ({exc})") from None

    def with_window(self, x: float, y: float, width: float, height: float) -> "ScreenSetup":
        """A copy with the viewer window moved (checked against the display area)."""
        return replace(self, window=ViewerWindow(x, y, width, height))


def single_monitor(display: Optional[DisplayGeometry] = None, window: Optional[Sequence[float]] = None,
                   scale: float = 1.0) -> ScreenSetup:
    """A one-monitor setup whose tracker display area is ``display`` (default the core default)."""
    display = display or DisplayGeometry()
    m = Monitor("primary", 0.0, 0.0, display.width_px, display.height_px,
                display.width_mm, display.height_mm, scale)
    win = ViewerWindow(*window) if window is not None else None
    return ScreenSetup([m], "primary", win, display.distance_mm)
