"""Eye-movement event classification (fixations, saccades, pursuit, gaps).

The integer codes of :class:`EventType` are shared by the simulator's ground
truth, the classifiers and the recordings.

Classifiers take a 2D gaze signal in degrees with timestamps in seconds and
return one label per sample:

``"adaptive"`` (the default)
    Data-driven thresholds (Nystrom & Holmqvist 2010, with median/MAD
    statistics, per 60 s block), saccades, post-saccadic oscillations
    (``PSO``), REMoDNaV-like pursuit vs fixation between saccades against a
    measured-noise floor (at least 5 deg/s; 2-5 deg/s when the movement is
    sustained: 1 deg or more, one way), and blinks/gaps widened by 20 ms
    plus the fast excursions around a loss of track. Defaults chosen on
    real human-coded recordings (Hooge et al. 2018 adults; infants and GazeCom
    held out): see :mod:`gaze3d._events_adaptive` and ``docs/events.md``.
``"ivt"``
    Velocity threshold (Olsen 2012, the Tobii Pro I-VT filter) with Tobii's
    published defaults: gap fill-in up to 75 ms (linear), velocity over a 20 ms
    window, 30 deg/s threshold, merge adjacent fixations separated by at most
    75 ms and 0.5 deg, and fixations shorter than 60 ms become
    ``UNCLASSIFIED``.
``"idt"``
    Dispersion threshold (Salvucci & Goldberg 2000): a window of at least
    ``min_duration_s`` (100 ms) whose dispersion ``(max x - min x) + (max y -
    min y)`` stays below ``dispersion_deg`` (1.0) is a fixation; the rest are
    saccades.
``"ivdt"``
    Velocity and dispersion threshold (Komogortsev & Karpov 2013), pursuit
    aware: saccades above ``saccade_threshold`` (40 deg/s), then I-DT
    (``dispersion_deg`` 0.5, ``min_duration_s`` 0.1) over the remaining
    stretches separates fixations from smooth pursuit. These defaults were
    chosen on :func:`gaze3d.simulate.simulate_gaze` (seed 1); other seeds
    are reported in ``bench/attention.py``.
``"ivvt"``
    Two velocity thresholds: fixation below ``pursuit_threshold`` (15
    deg/s), saccade above ``saccade_threshold`` (70 deg/s), pursuit between.

**Object-space signals.** In a 3D viewer the camera moves; following a scene
point while the camera turns moves the gaze on the screen but not relative to
the scene. :func:`object_space_trajectory` turns gaze rays plus the scene
point hit by each into a 2D trajectory whose displacements are the gaze's
angular motion *relative to the point looked at before*; any classifier then
works unchanged on it (used by :class:`gaze3d.attention.AttentionAccumulator`).
On the screen, such a fixation of a scene point is smooth pursuit of a moving
target: :func:`carried_pursuit` labels it so where the screen signal alone
cannot (slow carried motion looks like fixational drift).
"""
from __future__ import annotations

from enum import IntEnum
from typing import Dict, Optional

import numpy as np

from . import _events_adaptive
from ._events_adaptive import ADAPTIVE_DEFAULTS, _runs, classify_adaptive
from .errors import InputError


class EventType(IntEnum):
    """Per-sample eye-movement label."""

    GAP = 0        # no valid data: blink, dropout, track loss
    FIXATION = 1
    SACCADE = 2
    PURSUIT = 3
    UNCLASSIFIED = 4   # Tobii's "unclassified": e.g. a fixation too short to keep
    PSO = 5            # post-saccadic oscillation ("glissade"), only from method "adaptive" (on by default)


_GAP, _FIX, _SAC, _PUR, _UNC = (int(EventType.GAP), int(EventType.FIXATION), int(EventType.SACCADE),
                                int(EventType.PURSUIT), int(EventType.UNCLASSIFIED))
_CODES = {e.name: int(e) for e in EventType}

#: Tobii Pro I-VT fixation filter defaults (Olsen 2012, Tobii Pro Lab manual).
TOBII_IVT_DEFAULTS: Dict[str, float] = dict(
    velocity_threshold=30.0, window_s=0.020, gap_fill_max_s=0.075,
    merge_max_gap_s=0.075, merge_max_angle_deg=0.5, min_fixation_s=0.060)
IDT_DEFAULTS: Dict[str, float] = dict(dispersion_deg=1.0, min_duration_s=0.100, gap_fill_max_s=0.075)
IVDT_DEFAULTS: Dict[str, float] = dict(saccade_threshold=40.0, window_s=0.020, dispersion_deg=0.5,
                                       min_duration_s=0.100, gap_fill_max_s=0.075,
                                       min_fixation_s=0.060)
IVVT_DEFAULTS: Dict[str, float] = dict(saccade_threshold=70.0, pursuit_threshold=15.0, window_s=0.020,
                                       gap_fill_max_s=0.075, merge_max_gap_s=0.075,
                                       merge_max_angle_deg=0.5, min_fixation_s=0.060)
#: ``small_saccade_peak_frac`` that turns on the adaptive method's small-saccade tier (off by default;
#: docs/events.md, stage 9)
SMALL_SACCADE_PEAK_FRAC = _events_adaptive.SMALL_SACCADE_PEAK_FRAC
_DEFAULTS = {"adaptive": ADAPTIVE_DEFAULTS, "ivt": TOBII_IVT_DEFAULTS, "idt": IDT_DEFAULTS,
             "ivdt": IVDT_DEFAULTS, "ivvt": IVVT_DEFAULTS}
METHODS = tuple(_DEFAULTS)
#: bounds of :func:`classify_samples`' parameters beyond ">= 0 and finite": parameters in seconds (names
#: ending ``_s``) at most a minute, the adaptive threshold's window at most an hour, divisors above 0
_MAX_DURATION_S = 60.0
_MAX_ADAPT_WINDOW_S = 3600.0
_POSITIVE = frozenset({"peak_sd"})


# ----------------------------------------------------------------- helpers
def _check_signal(t_s, x_deg, y_deg, valid):
    t = np.asarray(t_s, dtype=np.float64).ravel()
    x = np.asarray(x_deg, dtype=np.float64).ravel()
    y = np.asarray(y_deg, dtype=np.float64).ravel()
    if not (len(t) == len(x) == len(y)):
        raise InputError(f"classify_samples: t_s, x_deg and y_deg must have the same length, "
                         f"got {len(t)}, {len(x)}, {len(y)}")
    if len(t) and not np.all(np.isfinite(t)):
        raise InputError("classify_samples t_s: expected finite timestamps in seconds")
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        i = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise InputError(f"classify_samples t_s: expected strictly increasing timestamps, "
                         f"sample {i + 1} ({t[i + 1]!r} s) is not after sample {i} ({t[i]!r} s)")
    ok = np.isfinite(x) & np.isfinite(y)
    if valid is not None:
        v = np.asarray(valid, dtype=bool).ravel()
        if len(v) != len(t):
            raise InputError(f"classify_samples valid: expected {len(t)} values, got {len(v)}")
        ok &= v
    return t, x, y, ok


def fill_gaps(t: np.ndarray, x: np.ndarray, y: np.ndarray, ok: np.ndarray, max_gap_s: float):
    """Linearly interpolate invalid runs lasting at most ``max_gap_s`` between two valid samples.

    Returns
    -------
    x, y : (n,) float64 (copies), ok : (n,) bool (True where now valid)
    """
    x, y, ok = x.copy(), y.copy(), ok.copy()
    starts, ends = _runs(~ok)
    for s, e in zip(starts, ends):
        if s == 0 or e == len(t):
            continue
        if t[e] - t[s - 1] > max_gap_s + 1e-12:
            continue
        a = (t[s:e] - t[s - 1]) / (t[e] - t[s - 1])
        x[s:e] = x[s - 1] + a * (x[e] - x[s - 1])
        y[s:e] = y[s - 1] + a * (y[e] - y[s - 1])
        ok[s:e] = True
    return x, y, ok


def angular_velocity(t_s, x_deg, y_deg, window_s: float = 0.020, valid=None) -> np.ndarray:
    """Gaze speed per sample over a centred time window (Tobii's velocity calculator).

    The speed at sample ``i`` is the distance in degrees between the first and
    last valid samples within ``window_s`` centred on ``i``, divided by their
    time difference (the nearest neighbours are used when the window holds one
    sample).

    Returns
    -------
    velocity : (n,) float64 deg/s, NaN for invalid samples.
    """
    t, x, y, ok = _check_signal(t_s, x_deg, y_deg, valid)
    return _velocity(t, x, y, ok, window_s)


def _velocity(t, x, y, ok, window_s):
    """:func:`angular_velocity` of a checked signal (float64 arrays, ``ok`` the valid samples)."""
    v = np.full(len(t), np.nan)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return v
    tv, xv, yv = t[idx], x[idx], y[idx]
    lo = np.searchsorted(tv, tv - window_s / 2.0 - 1e-12, side="left")
    hi = np.searchsorted(tv, tv + window_s / 2.0 + 1e-12, side="right") - 1
    same = hi <= lo
    lo = np.where(same, np.maximum(np.arange(len(tv)) - 1, 0), lo)
    hi = np.where(same, np.minimum(np.arange(len(tv)) + 1, len(tv) - 1), hi)
    dist = np.hypot(xv[hi] - xv[lo], yv[hi] - yv[lo])
    v[idx] = dist / (tv[hi] - tv[lo])
    return v


def _merge_fixations(labels, t, x, y, max_gap_s, max_angle_deg):
    """Join fixations separated by at most ``max_gap_s`` whose mean positions differ by <= ``max_angle_deg``."""
    starts, ends = _runs(labels == _FIX)
    if len(starts) < 2:
        return labels
    ok = np.isfinite(x) & np.isfinite(y)
    cx = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    cy = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    cn = np.concatenate([[0], np.cumsum(ok)])
    sx, sy, sn = cx[ends] - cx[starts], cy[ends] - cy[starts], cn[ends] - cn[starts]
    e0, ax, ay, an = ends[0], sx[0], sy[0], sn[0]
    for k in range(1, len(starts)):
        s = starts[k]
        gap = t[s] - t[e0 - 1]
        if (gap <= max_gap_s + 1e-12 and an > 0 and sn[k] > 0
                and np.hypot(ax / an - sx[k] / sn[k], ay / an - sy[k] / sn[k]) <= max_angle_deg):
            labels[e0:s] = _FIX
            ax, ay, an = ax + sx[k], ay + sy[k], an + sn[k]
        else:
            ax, ay, an = sx[k], sy[k], sn[k]
        e0 = ends[k]
    return labels


def _drop_short(labels, t, code, min_s, to):
    starts, ends = _runs(labels == code)
    for s, e in zip(starts, ends):
        if t[e - 1] - t[s] < min_s - 1e-12:
            labels[s:e] = to
    return labels


class _RangeMinMax:
    """O(1) range min/max via sparse tables (for the dispersion of any window)."""

    def __init__(self, a: np.ndarray):
        self.mins, self.maxs = [a], [a]
        k = 1
        while 2 * k <= len(a):
            p, q = self.mins[-1], self.maxs[-1]
            self.mins.append(np.minimum(p[:-k], p[k:]))
            self.maxs.append(np.maximum(q[:-k], q[k:]))
            k *= 2

    def span(self, i: int, j: int) -> float:
        """max - min of a[i:j+1]."""
        lev = (j - i + 1).bit_length() - 1
        k = 1 << lev
        return (max(self.maxs[lev][i], self.maxs[lev][j - k + 1])
                - min(self.mins[lev][i], self.mins[lev][j - k + 1]))


def _idt_segment(t, x, y, dispersion, min_dur):
    """I-DT over one stretch of valid samples: (n,) bool fixation mask."""
    n = len(t)
    fix = np.zeros(n, dtype=bool)
    if n == 0:
        return fix
    rx, ry = _RangeMinMax(x), _RangeMinMax(y)
    ends_at = np.searchsorted(t, t + min_dur - 1e-12, side="left")
    i = 0
    while i < n:
        j = int(ends_at[i])
        if j >= n:
            break
        if rx.span(i, j) + ry.span(i, j) <= dispersion:
            lo, hi = j, n - 1          # grow: largest j with dispersion below threshold
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if rx.span(i, mid) + ry.span(i, mid) <= dispersion:
                    lo = mid
                else:
                    hi = mid - 1
            fix[i:lo + 1] = True
            i = lo + 1
        else:
            i += 1
    return fix


# -------------------------------------------------------------- classifiers
def classify_samples(t_s, x_deg, y_deg, method: str = "adaptive", *, valid=None, **params) -> np.ndarray:
    """Label each gaze sample as fixation, saccade, pursuit, PSO, gap or unclassified.

    Parameters
    ----------
    t_s : (n,) float64
        Timestamps in seconds, strictly increasing.
    x_deg, y_deg : (n,) float64
        Gaze position in degrees (NaN where invalid).
    method : {"adaptive", "ivt", "idt", "ivdt", "ivvt"}
        See the module docstring; ``ivt`` uses Tobii's defaults.
    valid : (n,) bool, optional
        Extra validity mask (combined with finiteness of x and y).
    **params
        Overrides of the method's defaults (``ADAPTIVE_DEFAULTS``,
        ``TOBII_IVT_DEFAULTS``, ``IDT_DEFAULTS``, ``IVDT_DEFAULTS``,
        ``IVVT_DEFAULTS``).

    Returns
    -------
    labels : (n,) int8
        :class:`EventType` codes.
    """
    if method not in _DEFAULTS:
        raise InputError(f"classify_samples method: expected one of {', '.join(METHODS)}, got {method!r}")
    unknown = set(params) - set(_DEFAULTS[method])
    if unknown:
        raise InputError(f"classify_samples: unknown parameter(s) {sorted(unknown)} for method {method!r}; "
                         f"expected some of {sorted(_DEFAULTS[method])}")
    p = dict(_DEFAULTS[method], **params)
    for k, v in p.items():
        if not (np.isfinite(v) and v >= 0):
            raise InputError(f"classify_samples {k}: expected a number >= 0, got {v}")
        # durations become sample counts and window arrays: bounded so that a typo is an error, not an
        # overflow or a many-GB allocation (the adaptive threshold's window is minutes long by design)
        longest = _MAX_ADAPT_WINDOW_S if k == "adapt_window_s" else _MAX_DURATION_S
        if k.endswith("_s") and v > longest:
            raise InputError(f"classify_samples {k}: expected at most {longest:g} s, got {v}")
        if k in _POSITIVE and not v > 0:
            raise InputError(f"classify_samples {k}: expected a number > 0, got {v}")
    if "threshold_min" in p and p["threshold_min"] > p["threshold_max"]:
        raise InputError(f"classify_samples threshold_min: expected at most threshold_max "
                         f"({p['threshold_max']}), got {p['threshold_min']}")
    t, x, y, ok = _check_signal(t_s, x_deg, y_deg, valid)
    labels = np.full(len(t), _GAP, dtype=np.int8)
    if len(t) == 0:
        return labels
    measured = ok
    x, y, ok = fill_gaps(t, x, y, ok, p["gap_fill_max_s"])
    if method == "adaptive":
        return classify_adaptive(t, x, y, ok, p, _CODES, measured)
    if method == "idt":
        starts, ends = _runs(ok)
        for s, e in zip(starts, ends):
            fix = _idt_segment(t[s:e], x[s:e], y[s:e], p["dispersion_deg"], p["min_duration_s"])
            labels[s:e] = np.where(fix, _FIX, _SAC)
        return labels
    v = _velocity(t, x, y, ok, p["window_s"])   # after fill_gaps, ok samples are finite
    if method == "ivt":
        labels[ok] = np.where(v[ok] > p["velocity_threshold"], _SAC, _FIX)
    elif method == "ivvt":
        labels[ok] = np.where(v[ok] > p["saccade_threshold"], _SAC,
                              np.where(v[ok] > p["pursuit_threshold"], _PUR, _FIX))
    else:  # ivdt
        slow = ok & ~(v > p["saccade_threshold"])
        labels[ok & ~slow] = _SAC
        starts, ends = _runs(slow)
        for s, e in zip(starts, ends):
            fix = _idt_segment(t[s:e], x[s:e], y[s:e], p["dispersion_deg"], p["min_duration_s"])
            labels[s:e] = np.where(fix, _FIX, _PUR)
    if "merge_max_gap_s" in p:
        labels = _merge_fixations(labels, t, np.where(ok, x, np.nan), np.where(ok, y, np.nan),
                                  p["merge_max_gap_s"], p["merge_max_angle_deg"])
    labels = _drop_short(labels, t, _FIX, p["min_fixation_s"], _UNC)
    return labels


# ------------------------------------------------------------ object space
def _basis(directions: np.ndarray):
    """Right/up unit vectors perpendicular to each direction (z-up world, y if vertical)."""
    up = np.where(np.abs(directions[:, 2:3]) > 0.999, [[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]])
    right = np.cross(directions, up)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    return right, np.cross(right, directions)


def object_space_steps(origins, directions, hit_points, prev_direction=None, prev_hit=None,
                       rights=None, ups=None) -> np.ndarray:
    """Angular gaze steps relative to the scene point looked at by the previous sample.

    Step ``i`` is the gaze direction ``d_i`` minus the direction from the eye
    ``o_i`` to the previous sample's hit point ``X_{i-1}`` (or minus
    ``d_{i-1}`` where there was no hit), expressed in degrees along the
    image's right and down axes. Following a scene point gives steps of ~0
    however the camera moves; with a still camera the steps equal the
    screen-space ones.

    Parameters
    ----------
    origins, directions : (n, 3) float64
        Eye positions and unit gaze directions, world frame, valid samples only.
    hit_points : (n, 3) float64
        Scene point hit by each ray (NaN where none).
    prev_direction, prev_hit : (3,) float64, optional
        The sample before the first one (its step is 0 when not given).
    rights, ups : (n, 3) or (3,) float64, optional
        Image axes at each sample (the camera's; (3,) when one camera holds
        for all samples); perpendicular axes built from a z-up world otherwise.

    Returns
    -------
    steps : (n, 2) float64 degrees (x right, y down)
    """
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    X = np.asarray(hit_points, dtype=np.float64).reshape(-1, 3)
    n = len(d)
    if n == 0:
        return np.zeros((0, 2))
    pd = np.empty((n, 3))
    px = np.empty((n, 3))
    pd[1:], px[1:] = d[:-1], X[:-1]
    pd[0] = d[0] if prev_direction is None else prev_direction
    px[0] = np.nan if prev_hit is None else prev_hit
    e = px - o
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = e / norm
    use = np.isfinite(e).all(axis=1) & (norm[:, 0] > 0)
    e = np.where(use[:, None], e, pd)
    delta = d - e
    if rights is not None and ups is not None and np.ndim(rights) == 1 and np.ndim(ups) == 1:
        # one camera for all samples: one (n, 3) x (3, 2) product
        steps = np.degrees(delta @ np.stack([np.asarray(rights, dtype=np.float64),
                                             -np.asarray(ups, dtype=np.float64)], axis=1))
    else:
        if rights is None or ups is None:
            rights, ups = _basis(d)
        steps = np.degrees(np.stack([np.einsum("ij,ij->i", delta, rights),
                                     -np.einsum("ij,ij->i", delta, ups)], axis=1))
    if prev_direction is None:
        steps[0] = 0.0
    return steps


def object_space_trajectory(origins, directions, hit_points, rights=None, ups=None) -> np.ndarray:
    """(n, 2) degrees: cumulative :func:`object_space_steps`, a 2D signal for :func:`classify_samples`."""
    return np.cumsum(object_space_steps(origins, directions, hit_points, rights=rights, ups=ups), axis=0)


def classify_rays(t_s, origins, directions, hit_points=None, method: str = "adaptive", **params) -> np.ndarray:
    """Classify 3D gaze rays in object space.

    Parameters
    ----------
    t_s : (n,) float64
    origins, directions : (n, 3) float64
        World gaze rays (rows with NaN are gaps).
    hit_points : (n, 3) float64, optional
        The scene point each ray looks at, as measured (the measured ray
        against the surface); without it, velocity is relative to the world
        directions (points at infinity). Exact, noise-free target points
        would turn white tracker noise into a random walk (each step is
        measured against the previous true point), which the adaptive
        method's pursuit test reads as slow drift.
    method : str
        As in :func:`classify_samples` (default ``"adaptive"``).

    Returns
    -------
    labels : (n,) int8
    """
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    X = np.full_like(d, np.nan) if hit_points is None else np.asarray(hit_points, dtype=np.float64).reshape(-1, 3)
    if not (len(o) == len(d) == len(X) == len(np.ravel(t_s))):
        raise InputError("classify_rays: t_s, origins, directions and hit_points must have the same length")
    ok = np.isfinite(d).all(axis=1) & np.isfinite(o).all(axis=1)
    xy = np.full((len(d), 2), np.nan)
    if ok.any():
        dn = d[ok] / np.linalg.norm(d[ok], axis=1, keepdims=True)
        xy[ok] = object_space_trajectory(o[ok], dn, X[ok])
    return classify_samples(t_s, xy[:, 0], xy[:, 1], method=method, **params)


#: net speed (deg/s) at which the camera carries a fixated scene point across the screen, over a run the
#: screen signal calls fixation, for :func:`carried_pursuit` to call that run pursuit: the adaptive
#: classifier's slowest pursuit (``pursuit_slow_velocity``)
CARRIED_PURSUIT_DEG_S = ADAPTIVE_DEFAULTS["pursuit_slow_velocity"]


def carried_pursuit(t_s, screen_labels, screen_xy, object_xy, object_labels,
                    min_speed: float = CARRIED_PURSUIT_DEG_S) -> np.ndarray:
    """Screen labels with the fixations that the camera carried across the screen called pursuit.

    When the eye holds a scene point while the camera moves, the gaze moves on
    the screen at the point's screen speed: smooth pursuit of a moving target.
    Below ~5 deg/s the screen signal alone cannot tell it from the drift within
    a fixation that human coders call fixation, so a slow, short stretch of it
    is labelled fixation. Object space can: there the same stretch is a
    fixation, and the screen trajectory minus the object-space one is the
    motion the camera gave the gaze (measurement noise, common to both, cancels).
    A run that ``screen_labels`` call fixation becomes ``PURSUIT`` when
    ``object_labels`` call most of its samples fixation and that carried motion
    amounts to at least ``min_speed`` deg/s, net, over the run. With a still
    camera the two trajectories move together and nothing changes.

    Parameters
    ----------
    t_s : (n,) float64
        Seconds, increasing.
    screen_labels, object_labels : (n,) int
        :class:`EventType` codes of the screen signal and of the object-space
        one (:func:`classify_samples` on each, same method).
    screen_xy, object_xy : (n, 2) float64
        The screen gaze and the object-space trajectory
        (:func:`object_space_trajectory`), both in visual degrees along the
        same image axes; NaN where invalid.
    min_speed : float
        Net carried speed (deg/s) that makes a fixation pursuit.

    Returns
    -------
    labels : (n,) int8
    """
    t = np.asarray(t_s, dtype=np.float64).ravel()
    lab = np.asarray(screen_labels).astype(np.int8).ravel()
    olab = np.asarray(object_labels).ravel()
    carried = np.asarray(screen_xy, dtype=np.float64).reshape(-1, 2) - \
        np.asarray(object_xy, dtype=np.float64).reshape(-1, 2)
    if not (len(t) == len(lab) == len(olab) == len(carried)):
        raise InputError("carried_pursuit: t_s, the labels and the trajectories must have the same length")
    if not min_speed > 0:
        raise InputError(f"min_speed: expected > 0 deg/s, got {min_speed}")
    out = lab.copy()
    ok = np.isfinite(carried).all(axis=1)
    for s, e in zip(*_runs(lab == _FIX)):
        use = np.flatnonzero(ok[s:e]) + s
        if len(use) < 2 or np.mean(olab[s:e] == _FIX) < 0.5:
            continue
        dur = t[use[-1]] - t[use[0]]
        if dur > 0 and np.hypot(*(carried[use[-1]] - carried[use[0]])) >= min_speed * dur:
            out[s:e] = _PUR
    return out


def match_events(reference, test):
    """Event-level agreement of two per-sample event masks (Hooge et al. 2018's matching).

    Walking the reference events in order, each one that overlaps a not yet
    used test event is a hit and uses up the first such test event
    (``computeHitMissFA.m`` of Hooge et al.'s humanFixationClassification);
    unmatched reference events are misses and unmatched test events false
    alarms. Event F1 is ``2 hits / (2 hits + misses + false alarms)``.

    Parameters
    ----------
    reference, test : (n,) bool
        Per-sample "inside an event of this class"; runs of True are events.

    Returns
    -------
    hits, misses, false_alarms : int
    """
    ref = np.asarray(reference, dtype=bool).ravel()
    tst = np.asarray(test, dtype=bool).ravel()
    if len(ref) != len(tst):
        raise InputError(f"match_events: reference and test must have the same length, got {len(ref)}, {len(tst)}")
    rs, re_ = _runs(ref)
    ts, te = _runs(tst)
    if len(rs) == 0 or len(ts) == 0:
        return 0, len(rs), len(ts)
    first = np.searchsorted(te, rs, side="right")     # first test event ending after each reference start
    used = np.zeros(len(ts), dtype=bool)
    hits = 0
    for k in range(len(rs)):
        j = first[k]
        while j < len(ts) and ts[j] < re_[k]:
            if not used[j]:
                used[j] = True
                hits += 1
                break
            j += 1
    return hits, len(rs) - hits, int(len(ts) - used.sum())


def cohen_kappa(truth, labels, code: Optional[int] = None) -> float:
    """Cohen's kappa between two label arrays; with ``code``, of the binary 'is code' labelling."""
    a = np.asarray(truth).ravel()
    b = np.asarray(labels).ravel()
    if code is not None:
        a, b = a == code, b == code
    cats = np.union1d(a, b)
    po = np.mean(a == b)
    pe = sum(np.mean(a == c) * np.mean(b == c) for c in cats)
    return float((po - pe) / (1 - pe)) if pe < 1 else 1.0
