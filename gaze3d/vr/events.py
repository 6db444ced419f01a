"""Fixations from 3D gaze with head motion compensated: world-space adaptive (the default), I-DT and I-VT.

In VR the head moves and turns while the eyes hold a point (vestibulo-ocular
reflex, walking). Eye-in-head gaze then moves although the gaze on the world
does not; classifying in **world space** removes that: the gaze is the
world-space ray (head pose x eye-in-head ray), and where the point of regard
on the scene is known (``points``) the gaze vectors are taken from the
head's position to those points, which also removes the parallax of walking.

``"adaptive"`` (:func:`adaptive_world`, the default)
    The screen signal's default classifier (:mod:`gaze3d._events_adaptive`:
    saccades, PSO, pursuit, gaps with data-driven thresholds) on the world
    rays, each step measured against the point of regard before it
    (:func:`gaze3d.events.classify_rays`). On the simulated sessions of
    ``tests/test_vr_events.py`` its fixation and saccade kappas are the
    highest of the three (docs/vr.md).
``"idt"`` (:func:`idt_world`)
    Llanes-Jurado et al. 2020 (Sensors 20(17):4956): a window of at least
    ``min_duration_s`` (0.25 s) is a fixation while its dispersion, the
    **largest angle between the gaze vectors drawn from the window's mean
    head position** to the points of regard, stays within ``dispersion_deg``
    (1 deg); the window grows sample by sample while it does. Without points
    the dispersion is the largest angle between the world gaze directions.
``"ivt"`` (:func:`ivt_world`)
    Angular velocity of the world gaze vector over a centred window of
    ``window_s`` (0.04 s: at 90 Hz two samples either side, so 0.3 deg RMS
    noise gives about 10 deg/s), fixation below ``velocity_threshold`` (30
    deg/s, Olsen 2012), fixations shorter than ``min_fixation_s`` (60 ms)
    become ``UNCLASSIFIED``. With points, both points are seen from the
    current eye (head translation compensated).

I-DT and I-VT return one :class:`gaze3d.events.EventType` code per sample: ``GAP``
where the sample is invalid (NaN ray or ``valid`` False), ``FIXATION``,
``SACCADE`` (everything else that is valid), and ``UNCLASSIFIED`` for I-VT's
too-short fixations.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import InputError
from ..events import ADAPTIVE_DEFAULTS, EventType, _runs, classify_rays  # _runs: (starts, ends) of True runs
from .frames import unit_rows

_GAP, _FIX, _SAC, _UNC = (int(EventType.GAP), int(EventType.FIXATION), int(EventType.SACCADE),
                          int(EventType.UNCLASSIFIED))

#: Llanes-Jurado et al. 2020: best I-DT parameters for VR (1 deg, 0.25 s).
VR_IDT_DEFAULTS = dict(dispersion_deg=1.0, min_duration_s=0.25)
VR_IVT_DEFAULTS = dict(velocity_threshold=30.0, window_s=0.04, min_fixation_s=0.06)


def _inputs(t_s, origins, directions, points, valid, need_points: bool = True):
    """Checked ``(t, origins, unit directions, points, ok)``; ``ok`` marks the usable samples: a
    finite ray, ``valid`` and, with ``need_points``, a finite point of regard where ``points`` is given."""
    t = np.asarray(t_s, dtype=np.float64).ravel()
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    p = None if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 3)
    n = len(t)
    if len(o) != n or len(d) != n or (p is not None and len(p) != n):
        raise InputError(f"VR events: t_s ({n}), origins ({len(o)}), directions ({len(d)})"
                         + ("" if p is None else f" and points ({len(p)})") + " must have the same length")
    if n > 1 and np.any(np.diff(t) <= 0):
        raise InputError("VR events: t_s must increase strictly")
    ok = np.isfinite(t) & np.isfinite(o).all(1) & np.isfinite(d).all(1) & (np.linalg.norm(d, axis=1) > 0)
    if p is not None and need_points:
        ok &= np.isfinite(p).all(1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool).ravel()
    return t, o, unit_rows(d), p, ok


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between unit vectors, accurate for small angles (atan2 of |a x b| and a.b)."""
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def idt_world(t_s, origins, directions, points=None, valid=None, *, dispersion_deg: float = 1.0,
              min_duration_s: float = 0.25) -> np.ndarray:
    """World-space I-DT (Llanes-Jurado et al. 2020).

    Parameters
    ----------
    t_s : (n,) float64, strictly increasing
    origins, directions : (n, 3) float64
        World gaze rays; the origins are the head (eye) positions.
    points : (n, 3) float64, optional
        Points of regard (the ray's hit on the scene); NaN rows are gaps.
    valid : (n,) bool, optional
    dispersion_deg, min_duration_s : float

    Returns
    -------
    labels : (n,) int8
    """
    if not (dispersion_deg > 0 and min_duration_s > 0):
        raise InputError(f"idt_world: dispersion_deg and min_duration_s must be positive, "
                         f"got {dispersion_deg}, {min_duration_s}")
    t, o, d, p, ok = _inputs(t_s, origins, directions, points, valid)
    labels = np.where(ok, _SAC, _GAP).astype(np.int8)
    cos_max = np.cos(np.radians(dispersion_deg))

    def vectors(i, j):
        if p is None:
            return d[i:j]
        return unit_rows(p[i:j] - o[i:j].mean(axis=0))

    def within(v):
        # the largest pairwise angle <= dispersion  <=>  every pairwise cosine >= cos(dispersion)
        return bool(np.min(v @ v.T) >= cos_max - 1e-12)

    for s, e in zip(*_runs(ok)):              # windows never span a gap
        i = s
        while i < e:
            j = int(np.searchsorted(t, t[i] + min_duration_s - 1e-9, side="left")) + 1   # [i, j) spans min_duration
            if j > e:
                break
            if not within(vectors(i, j)):
                i += 1
                continue
            while j < e and within(vectors(i, j + 1)):
                j += 1
            labels[i:j] = _FIX
            i = j
    return labels


def ivt_world(t_s, origins, directions, points=None, valid=None, *, velocity_threshold: float = 30.0,
              window_s: float = 0.04, min_fixation_s: float = 0.06) -> np.ndarray:
    """World-space I-VT: angular velocity of the world gaze over a centred window.

    Parameters as in :func:`idt_world`; ``velocity_threshold`` in deg/s.

    Returns
    -------
    labels : (n,) int8
    """
    if not (velocity_threshold > 0 and window_s > 0 and min_fixation_s >= 0):
        raise InputError(f"ivt_world: velocity_threshold and window_s must be positive, min_fixation_s >= 0, "
                         f"got {velocity_threshold}, {window_s}, {min_fixation_s}")
    t, o, d, p, ok = _inputs(t_s, origins, directions, points, valid)
    labels = np.where(ok, _SAC, _GAP).astype(np.int8)
    n = len(t)
    if n < 2:
        return labels
    dt_med = float(np.median(np.diff(t)))
    h = max(1, int(round(window_s / dt_med / 2)))
    run_id = np.cumsum(np.r_[True, ok[1:] != ok[:-1]])     # samples of one valid stretch share an id
    idx = np.arange(n)
    a = np.clip(idx - h, 0, n - 1)
    b = np.clip(idx + h, 0, n - 1)
    # shrink the window at the edges of a valid stretch (never across a gap)
    for _ in range(h):
        a = np.where(run_id[a] != run_id, a + 1, a)
        b = np.where(run_id[b] != run_id, b - 1, b)
    if p is None:
        va, vb = d[a], d[b]
    else:                                     # both points seen from the eye at the window's centre
        va, vb = unit_rows(p[a] - o), unit_rows(p[b] - o)
    span = t[b] - t[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        vel = np.where(span > 0, _angle_deg(va, vb) / span, np.nan)
    fix = ok & np.isfinite(vel) & (vel < velocity_threshold)
    labels[fix] = _FIX
    for s, e in zip(*_runs(fix)):
        if t[e - 1] - t[s] + dt_med < min_fixation_s:
            labels[s:e] = _UNC
    return labels


def adaptive_world(t_s, origins, directions, points=None, valid=None, **params) -> np.ndarray:
    """The screen classifiers' default (``"adaptive"``: saccades, PSO, pursuit, gaps with data-driven
    thresholds) on the world rays: :func:`gaze3d.events.classify_rays`, each step measured against the
    point of regard of the sample before where ``points`` has one (head translation and rotation
    compensated), against the world gaze direction where not. ``params`` as ``ADAPTIVE_DEFAULTS``."""
    # a ray without a point of regard is still a sample (its step is measured against the direction)
    t, o, d, p, ok = _inputs(t_s, origins, directions, points, valid, need_points=False)
    o = np.where(ok[:, None], o, np.nan)
    d = np.where(ok[:, None], d, np.nan)
    return classify_rays(t, o, d, p, "adaptive", **params)


def classify_world(t_s, origins, directions, points=None, valid=None, method: str = "adaptive",
                   **params) -> np.ndarray:
    """:func:`idt_world` (``"idt"``), :func:`ivt_world` (``"ivt"``) or :func:`adaptive_world`
    (``"adaptive"``) by name; unknown parameters are refused."""
    funcs = {"idt": (idt_world, VR_IDT_DEFAULTS), "ivt": (ivt_world, VR_IVT_DEFAULTS),
             "adaptive": (adaptive_world, ADAPTIVE_DEFAULTS)}
    if method not in funcs:
        raise InputError(f"VR events: method must be 'idt', 'ivt' or 'adaptive' (world space), got {method!r}")
    func, defaults = funcs[method]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InputError(f"VR events {method}: unknown parameter(s) {', '.join(unknown)}; "
                         f"expected {', '.join(defaults)}")
    return func(t_s, origins, directions, points, valid, **params)


def fixation_stats(t_s, labels, rate_hz: Optional[float] = None) -> dict:
    """Count and duration quartiles (s) of the fixation runs; a run lasts ``t_end - t_start + 1/rate``."""
    t = np.asarray(t_s, dtype=np.float64).ravel()
    fix = np.asarray(labels).ravel() == _FIX
    s, e = _runs(fix)
    dt = (1.0 / rate_hz) if rate_hz else (float(np.median(np.diff(t))) if len(t) > 1 else 0.0)
    dur = t[e - 1] - t[s] + dt if len(s) else np.zeros(0)
    q = [float(v) for v in np.percentile(dur, [25, 50, 75])] if len(dur) else [float("nan")] * 3
    return {"count": int(len(s)), "duration_p25_p50_p75_s": q,
            "mean_duration_s": float(dur.mean()) if len(dur) else float("nan"),
            "fixation_time_share": float(dur.sum() / (t[-1] - t[0] + dt)) if len(t) > 1 else 0.0}
