"""Headless validation sessions: targets shown to the gaze simulator instead of a person.

:func:`simulate_validation` runs ``gaze3d.simulate.simulate_gaze`` on a
target script (a 5/9/13-point layout in random order) and returns the gaze
in tracker coordinates together with when each target was on screen, ready
for :func:`gaze3d.calib.validation.validate`.

:func:`presentations_from_samples` rebuilds the target schedule of samples
that carry their target (the ``sim`` source's ``truth``), used when the same
session goes through a real tracker process.
"""
from __future__ import annotations

import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError
from gaze3d.simulate import simulate_gaze

from .targets import (TargetPresentation, check_on_display, presentation_order, schedule, simulator_script,
                      target_layout)
from .validation import GazeData


def _onsets_from_target_track(target_deg: np.ndarray, t_s: np.ndarray, n: int) -> np.ndarray:
    """Times where the simulator's target switches (it switches when the saccade to it starts)."""
    change = np.flatnonzero(np.any(np.abs(np.diff(target_deg, axis=0)) > 1e-9, axis=1)) + 1
    onsets = np.r_[t_s[0], t_s[change]]
    if len(onsets) != n:
        raise InputError(f"simulated session: expected {n} target changes, found {len(onsets)}")
    return onsets


def simulate_validation(n_points: int = 9, *, display: Optional[DisplayGeometry] = None,
                        offset_deg=(0.0, 0.0), precision_rms_deg: float = 0.05, dwell_s: float = 1.5,
                        seed: int = 0, rate_hz: float = 600.0, blink_rate_hz: float = 0.2,
                        dropout_rate: float = 0.0, margin: float = 0.1,
                        layout: Optional[np.ndarray] = None,
                        order: Optional[Sequence[int]] = None) -> Tuple[GazeData, List[TargetPresentation]]:
    """Simulate a person looking at a validation layout.

    Parameters
    ----------
    n_points : {5, 9, 13}
    display : DisplayGeometry, optional
    offset_deg : (2,) float
        Systematic error (dx, dy) in degrees, x right and y down.
    precision_rms_deg : float
        RMS sample-to-sample precision of the simulated tracker.
    dwell_s : float
        How long each target stays on screen after the eye lands on it.
    seed : int
        Seeds both the presentation order and the simulated eye.
    layout : (k, 2) float, optional
        Explicit target positions instead of ``target_layout(n_points, margin)``.
    order : sequence of int, optional
        Presentation order; default random.

    Returns
    -------
    data : GazeData
        Tracker coordinates over the whole session.
    presentations : list of TargetPresentation
        Targets in the order shown, with their on-screen intervals.
    """
    display = display or DisplayGeometry()
    layout = target_layout(n_points, margin) if layout is None else np.asarray(layout, dtype=np.float64)
    order = presentation_order(len(layout), seed) if order is None else np.asarray(order, dtype=int)
    planned = schedule(layout, order, dwell_s)
    script = simulator_script(planned, display)
    sig = simulate_gaze(None, rate_hz, seed=seed, accuracy_offset_deg=tuple(offset_deg),
                        precision_rms_deg=precision_rms_deg, blink_rate_hz=blink_rate_hz,
                        dropout_rate=dropout_rate, targets=script)
    track = np.c_[sig.target_x_deg, sig.target_y_deg]
    onsets = _onsets_from_target_track(track, sig.t_s, len(planned))
    ends = np.r_[onsets[1:], sig.t_s[-1] + 1.0 / rate_hz]
    presentations = [TargetPresentation(p.index, p.x, p.y, float(a), float(b))
                     for p, a, b in zip(planned, onsets, ends)]
    xy = display.deg_to_norm(np.c_[sig.x_deg, sig.y_deg])
    return GazeData(sig.t_s, xy, sig.valid, rate_hz=rate_hz), presentations


def presentations_from_samples(t_s: np.ndarray, target_xy: np.ndarray, layout: Optional[np.ndarray] = None,
                               min_duration_s: float = 0.0, tol: float = 1e-6) -> List[TargetPresentation]:
    """Rebuild the schedule from per-sample target positions (NaN rows ignored).

    Parameters
    ----------
    t_s : (n,) float
    target_xy : (n, 2) float
        Tracker coordinates of the target each sample belongs to (e.g. the
        ``sim`` source's ``truth.target``).
    layout : (k, 2) float, optional
        Name each target by its index in this layout; default: the order of
        appearance.
    min_duration_s : float
        Leave out targets shown for less than this (the short fixations and
        the moving targets of a random viewing script).
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    tx = np.asarray(target_xy, dtype=np.float64).reshape(-1, 2)
    ok = np.all(np.isfinite(tx), axis=1)
    t_s, tx = t_s[ok], tx[ok]
    if len(t_s) == 0:
        raise InputError("samples: no sample carries its target position")
    change = np.flatnonzero(np.any(np.abs(np.diff(tx, axis=0)) > tol, axis=1)) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, len(t_s)]
    out = []
    for i0, i1 in zip(starts, ends):
        end = t_s[i1] if i1 < len(t_s) else t_s[-1] + 1e-9
        if end - t_s[i0] < min_duration_s:
            continue
        if layout is None:
            k, (x, y) = len(out), tx[i0]
        else:
            d = np.linalg.norm(np.asarray(layout) - tx[i0], axis=1)
            k = int(np.argmin(d))
            if d[k] > 1e-3:
                raise InputError(f"samples: target at {tx[i0].round(3).tolist()} is not in the layout")
            x, y = layout[k]
        out.append(TargetPresentation(k, float(x), float(y), float(t_s[i0]), float(end)))
    return out


# --- target events in recordings --------------------------------------------------------------
TARGET_EVENT = "calib.target"
END_EVENT = "calib.end"


def target_event(p: TargetPresentation) -> dict:
    """The event a viewer sends (``TrackerControl.send_event``) when it shows target ``p``."""
    return {"type": TARGET_EVENT, "index": int(p.index), "x": float(p.x), "y": float(p.y)}


def presentations_from_events(events: Sequence[dict], t0_ns: int) -> List[TargetPresentation]:
    """Rebuild the schedule from recorded ``calib.target`` / ``calib.end`` events.

    Each target lasts until the next target or end event. ``t0_ns`` is the
    time origin (tracker clock) of the sample times used with it.
    """
    out: List[TargetPresentation] = []
    pending = None
    for ev in events:
        kind = ev.get("type")
        if kind not in (TARGET_EVENT, END_EVENT):
            continue
        t = (int(ev["t_host_ns"]) - int(t0_ns)) / 1e9
        if pending is not None:
            out.append(TargetPresentation(pending[0], pending[1], pending[2], pending[3], t))
            pending = None
        if kind == TARGET_EVENT:
            try:
                pending = (int(ev["index"]), float(ev["x"]), float(ev["y"]), t)
            except (KeyError, TypeError, ValueError):
                raise InputError(f"calibration event: expected index, x, y in {ev!r}") from None
            check_on_display(pending[1], pending[2], f"{TARGET_EVENT} event: target {pending[0]}")
    if pending is not None:
        raise InputError(f"calibration events: target {pending[0]} has no following target or "
                         f"{END_EVENT!r} event")
    if not out:
        raise InputError(f"recording: no {TARGET_EVENT!r} events (was a validation shown?)")
    return out


# --- live validation (a viewer showing targets to a person) ----------------------------------
def run_live_validation(control, subscriber, layout: np.ndarray, order: Optional[Sequence[int]] = None,
                        dwell_s: float = 1.5, show_target=None, seed: Optional[int] = None,
                        rate_hz: Optional[float] = None, settle_tail_s: float = 0.1
                        ) -> Tuple[GazeData, List[TargetPresentation]]:
    """Show targets one after the other while collecting live gaze from a tracker.

    For each target, ``show_target(index, x, y)`` draws it (the viewer), a
    ``calib.target`` event is sent with the tracker-clock time it appeared
    (so the recording, if one is running, can be validated again later), and
    ``gaze.2d`` samples are collected for ``dwell_s``; a ``calib.end`` event
    closes the sequence.

    Parameters
    ----------
    control : gaze3d.tracker.client.TrackerControl
    subscriber : gaze3d.tracker.client.GazeSubscriber
        Subscribed to ``gaze.2d`` of the same tracker (raw, not corrected).
    layout : (k, 2) float
        Target positions, tracker coordinates.
    order : sequence of int, optional
        Presentation order; default random (``seed``).
    show_target : callable(index, x, y), optional
    rate_hz : float, optional
        Nominal rate, for data loss.

    Returns
    -------
    data : GazeData
        Samples on the tracker clock, seconds from the first target's onset.
    presentations : list of TargetPresentation

    Thread-safety: uses ``control`` and ``subscriber`` from the calling thread only.
    """
    layout = np.asarray(layout, dtype=np.float64).reshape(-1, 2)
    order = [int(i) for i in (presentation_order(len(layout), seed) if order is None else order)]
    if not (dwell_s > 0):
        raise InputError(f"dwell_s: expected a positive duration, got {dwell_s!r}")
    if getattr(control, "clock", None) is None:
        control.sync_clock()
    subscriber.drain()                                   # only gaze from the first target on
    rows: list = []

    def collect(until: float) -> None:
        while True:
            left = until - time.monotonic()
            item = subscriber.recv(max(0.0, min(left, 0.05))) if left > 0 else None
            if item is not None:
                msg = item[1]
                g = msg.get("gaze")
                ok = bool(msg.get("valid", g is not None)) and g is not None
                rows.append((int(msg["t_host_ns"]), g if ok else (np.nan, np.nan), ok))
            elif left <= 0:
                return

    onsets = []
    for i in order:
        x, y = (float(v) for v in layout[i])
        if show_target is not None:
            show_target(i, x, y)
        t_on = control.tracker_time_ns()
        onsets.append(t_on)
        control.send_event(target_event(TargetPresentation(i, x, y, 0.0, 0.0)), t_host_ns=t_on)
        collect(time.monotonic() + dwell_s)
    t_end = control.tracker_time_ns()
    control.send_event({"type": END_EVENT}, t_host_ns=t_end)
    collect(time.monotonic() + settle_tail_s)           # samples already in flight
    t0 = onsets[0]
    bounds = onsets + [t_end]
    pres = [TargetPresentation(i, float(layout[i, 0]), float(layout[i, 1]), (a - t0) / 1e9, (b - t0) / 1e9)
            for i, a, b in zip(order, bounds[:-1], bounds[1:])]
    if not rows:
        raise InputError("live validation: no gaze samples arrived from the tracker")
    rows.sort(key=lambda r: r[0])
    t = (np.array([r[0] for r in rows], dtype=np.int64) - t0) / 1e9
    xy = np.array([r[1] for r in rows], dtype=np.float64)
    valid = np.array([r[2] for r in rows], dtype=bool)
    return GazeData(t, xy, valid, rate_hz=rate_hz), pres
