"""Calibration targets on screen: the bullseye, and the validation window that shows 5/9/13 of them.

:class:`Bullseye` is a classic fixation target drawn as 2D overlay actors: a
white disc with a black centre dot (radius a quarter of the disc's). The
drift check of the labeling window (key ``d``) and :class:`ValidationWindow`
use it.

:class:`ValidationWindow` fills the tracker's display area (full screen when
interactive; any size offscreen): target ``(x, y)`` in tracker coordinates
(normalised, top-left origin) is drawn at pixel ``(x * width, y * height)``
from the top-left. :func:`run_window_validation` shows the targets one at a
time in random order through
:func:`gaze3d.calib.session.run_live_validation` (which stamps each onset on
the tracker clock and sends ``calib.target`` events), validates, and shows
the result: every target as a ring, the mean gaze on it as a dot (green
passed, red failed) and the summary text.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from gaze3d.calib.session import run_live_validation
from gaze3d.calib.validation import GazeData, validate

from ._vtk import make_plotter, vtkActor2D, vtkPolyDataMapper2D, vtkRegularPolygonSource

BACKGROUND = (0.5, 0.5, 0.5)       # mid grey: the target contrasts, the eye is not dazzled


def _disc(plotter, radius: float, color, filled: bool = True, line_width: float = 2.0):
    src = vtkRegularPolygonSource()
    src.SetNumberOfSides(64)
    src.SetRadius(float(radius))
    if filled:
        src.GeneratePolygonOn()
        src.GeneratePolylineOff()
    else:
        src.GeneratePolygonOff()
    mapper = vtkPolyDataMapper2D()
    mapper.SetInputConnection(src.GetOutputPort())
    actor = vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*color)
    actor.GetProperty().SetLineWidth(line_width)
    actor.VisibilityOff()
    plotter.renderer.AddActor(actor)
    return src, actor


class Bullseye:
    """A fixation target (white disc, black centre dot) drawn over a plotter's renderer.

    Parameters
    ----------
    plotter : pyvista.Plotter
    radius_px : float
        Outer radius in pixels.

    Thread-safety: GUI thread only.
    """

    def __init__(self, plotter, radius_px: float = 12.0):
        self.plotter = plotter
        self.radius_px = float(radius_px)
        self._parts = [_disc(plotter, self.radius_px, (1.0, 1.0, 1.0)),
                       _disc(plotter, self.radius_px / 4.0, (0.0, 0.0, 0.0))]
        self.visible = False
        self.center_px: Optional[tuple] = None

    def show(self, u: float, v: float) -> None:
        """Centre the target at pixel ``(u, v)`` from the top-left of the render window."""
        h = self.plotter.window_size[1]
        for src, actor in self._parts:
            src.SetCenter(float(u), float(h - v), 0.0)   # VTK display coordinates: origin bottom-left
            actor.VisibilityOn()
        self.visible, self.center_px = True, (float(u), float(v))

    def hide(self) -> None:
        for _, actor in self._parts:
            actor.VisibilityOff()
        self.visible = False

    def remove(self) -> None:
        for _, actor in self._parts:
            self.plotter.renderer.RemoveActor(actor)
        self._parts = []


class ValidationWindow:
    """A window that shows validation targets one at a time, then the result.

    Parameters
    ----------
    off_screen : bool
        Render offscreen (tests, headless).
    window_size : (2,) int
        Render size offscreen; interactive windows go full screen.
    radius_px : float, optional
        Target radius (default 1.5 % of the window diagonal, at least 8 px).
    on_shown : callable(index, x, y), optional
        Called after each target has been rendered (tests take a screenshot here).

    Thread-safety: GUI thread only.
    """

    def __init__(self, off_screen: bool = False, window_size=(1280, 800), radius_px: Optional[float] = None,
                 on_shown: Optional[Callable] = None):
        self.plotter = make_plotter(off_screen=off_screen, window_size=window_size)
        self.plotter.set_background(BACKGROUND)
        self.off_screen = off_screen
        if not off_screen:
            self.plotter.ren_win.SetFullScreen(True)
            self.plotter.show(title="gaze3d calibrate", interactive_update=True, auto_close=False)
        w, h = self.plotter.window_size
        self.radius_px = float(radius_px) if radius_px else max(8.0, 0.015 * float(np.hypot(w, h)))
        self.target = Bullseye(self.plotter, self.radius_px)
        self.on_shown = on_shown
        self._result_actors: list = []
        self._text = self.plotter.add_text("", position="upper_left", font_size=10, color="black",
                                           name="gaze3d-validation")
        self.closed = False

    def to_px(self, x: float, y: float) -> tuple:
        """Tracker coordinates -> pixel (u, v) from the top-left of this window."""
        w, h = self.plotter.window_size
        return float(x) * w, float(y) * h

    def _draw(self) -> None:
        if self.off_screen:
            self.plotter.render()
        else:
            self.plotter.update()                  # renders and processes window events

    def show_target(self, index: int, x: float, y: float) -> None:
        """Draw target ``index`` at tracker coordinates ``(x, y)`` (the ``show_target`` hook)."""
        self._text.SetText(2, "")
        self.target.show(*self.to_px(x, y))
        self._draw()
        if self.on_shown is not None:
            self.on_shown(index, x, y)

    def show_message(self, text: str) -> None:
        self.target.hide()
        self._text.SetText(2, text)      # corner 2 = upper left
        self._draw()

    def show_result(self, report) -> None:
        """Targets (rings), mean gaze per target (dots: green passed, red failed) and the summary."""
        self.target.hide()
        for t in report.targets:
            u, v = self.to_px(t.x, t.y)
            src, ring = _disc(self.plotter, self.radius_px, (0.0, 0.0, 0.0), filled=False)
            src.SetCenter(u, self.plotter.window_size[1] - v, 0.0)
            ring.VisibilityOn()
            self._result_actors.append(ring)
            if np.isfinite(t.mean_x) and np.isfinite(t.mean_y):
                gu, gv = self.to_px(t.mean_x, t.mean_y)
                src, dot = _disc(self.plotter, max(3.0, self.radius_px / 3),
                                 (0.1, 0.7, 0.2) if t.passed else (0.85, 0.1, 0.1))
                src.SetCenter(gu, self.plotter.window_size[1] - gv, 0.0)
                dot.VisibilityOn()
                self._result_actors.append(dot)
        s = report.summary()
        self._text.SetText(2, (f"{'PASS' if report.passed else 'FAIL'}  accuracy {s['accuracy_deg']:.2f} deg, "
                               f"offset ({s['offset_x_deg']:+.2f}, {s['offset_y_deg']:+.2f}) deg\n"
                               f"precision RMS-S2S {s['precision_rms_deg']:.3f} deg, "
                               f"data loss {s['data_loss_pct']:.1f}%"))
        self._draw()

    def screenshot(self) -> np.ndarray:
        """(h, w, 3) uint8 image of the window as last rendered."""
        self.plotter.render()
        return np.array(self.plotter.screenshot(return_img=True), dtype=np.uint8)[:, :, :3]

    def wait_closed(self, timeout_s: float = 600.0) -> None:
        """Interactive: keep the result on screen until the window is closed (or ``timeout_s``)."""
        if self.off_screen:
            return
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not self.plotter._closed and self.plotter.ren_win is not None:
            self.plotter.update(stime=50)
            time.sleep(0.02)

    def close(self) -> None:
        """Free the window and its actors. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.target.remove()
        for a in self._result_actors:
            self.plotter.renderer.RemoveActor(a)
        self._result_actors = []
        self.target = self._text = None
        if self.plotter.iren is not None:
            self.plotter.iren.remove_observers()
        self.plotter.close()
        self.plotter.deep_clean()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_window_validation(window: ValidationWindow, control, subscriber, layout, *, dwell_s: float = 1.5,
                          seed: Optional[int] = None, rate_hz: Optional[float] = None, display=None,
                          settings=None, correction=None):
    """Show the targets in ``window`` while collecting live gaze; validate; show the result.

    Parameters
    ----------
    window : ValidationWindow
    control : gaze3d.tracker.client.TrackerControl
    subscriber : gaze3d.tracker.client.GazeSubscriber
        Subscribed to ``gaze.2d`` of the same tracker.
    layout : (k, 2) float
        Target positions, tracker coordinates (``gaze3d.calib.targets.target_layout``).
    dwell_s : float
        Seconds per target.
    seed : int, optional
        Presentation order (random).
    rate_hz : float, optional
        Nominal tracker rate (data loss).
    display : DisplayGeometry, optional
    settings : ValidationSettings, optional
    correction : Correction, optional
        Validate the gaze after this correction (a profile's).

    Returns
    -------
    report : ValidationReport
    data : GazeData
        As measured (uncorrected), seconds from the first onset.
    presentations : list of TargetPresentation
    """
    data, pres = run_live_validation(control, subscriber, layout, dwell_s=dwell_s, seed=seed,
                                     show_target=window.show_target, rate_hz=rate_hz)
    used = data if correction is None else GazeData(data.t_s, correction.apply(data.xy), data.valid,
                                                    data.origin_mm, data.rate_hz)
    report = validate(used, pres, display, settings)
    window.show_result(report)
    return report, data, pres
