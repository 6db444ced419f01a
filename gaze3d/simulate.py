"""Realistic synthetic eye-tracking data with per-sample ground truth (pure numpy).

Two entry points:

* :func:`simulate_gaze` -- gaze in degrees of visual angle on a screen, driven
  by a random viewing script or by a list of fixation targets;
* :func:`simulate_scene_gaze` -- gaze on a 3D scene seen through a moving
  :class:`~gaze3d.camera.CameraPath`: the eye visits world points and fixates
  them *in object space* (it follows the point's projection while the camera
  moves), reported in normalised display coordinates.

The oculomotor model
--------------------
* **Fixations** on the target plus slow **drift** (an Ornstein-Uhlenbeck walk,
  0.05 deg stationary spread, ~0.3 deg/s) and **tremor** (70-100 Hz, about
  0.002 deg).
* **Saccades** with the main-sequence duration ``D = 2.2 ms/deg * A + 21 ms``
  and a smooth, asymmetric (beta-shaped, peak before mid-saccade, more skewed
  for larger saccades) velocity profile; the resulting peak velocity
  (:func:`saccade_peak_velocity`) saturates with amplitude, within 8 % of
  ``Vpeak = 675 * (1 - exp(-A / 9.25))`` deg/s for 0.5-30 deg (about 410
  deg/s at 10 deg). The duration law and the often quoted
  ``500 * (1 - exp(-A / 15))`` cannot both hold for a smooth profile (the
  peak must exceed the mean velocity ``A / D`` by ~1.7x), so the duration
  law is kept exact and the peak follows from the profile.
* **Smooth pursuit** of a target moving at 5-30 deg/s (``pursuit_speed_deg_s``;
  gain 1 after a 100 ms velocity ramp).
* **Blinks** (Poisson, 100-300 ms of invalid data, optionally preceded by the
  typical 40 ms downward artefact of the closing lid) and **dropouts**
  (bursts of lost samples).
* The **measurement**: a constant accuracy offset plus white Gaussian noise
  whose level is set so that the RMS sample-to-sample precision measured over
  fixation samples equals ``precision_rms_deg`` (the physiological part is
  accounted for).

Ground truth per sample uses :class:`gaze3d.events.EventType`: ``GAP`` for
blinks (including the pre-blink artefact, whose samples are still valid) and
dropouts, otherwise ``FIXATION``/``SACCADE``/``PURSUIT``. Everything is
deterministic given ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

from .camera import CameraPath
from .display import DisplayGeometry
from .errors import InputError
from .events import EventType

_FIX, _SAC, _PUR, _GAP = (int(EventType.FIXATION), int(EventType.SACCADE),
                          int(EventType.PURSUIT), int(EventType.GAP))

# --------------------------------------------------------------- main sequence
_PROFILE_GRID = np.linspace(0.0, 1.0, 1025)


def saccade_duration_s(amplitude_deg):
    """Main-sequence saccade duration in seconds: ``(2.2 * A + 21) / 1000``."""
    return (2.2 * np.asarray(amplitude_deg, dtype=np.float64) + 21.0) / 1000.0


def _profile_params(amplitude_deg: float):
    """Beta-shape parameters of the velocity profile: larger saccades peak earlier."""
    a = 2.5
    b = 2.5 + 0.045 * min(float(amplitude_deg), 40.0)
    return a, b


def _profile(amplitude_deg: float):
    """(cdf on _PROFILE_GRID, peak velocity / mean velocity) of the velocity profile."""
    a, b = _profile_params(amplitude_deg)
    g = _PROFILE_GRID
    pdf = g ** (a - 1.0) * (1.0 - g) ** (b - 1.0)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(g))])
    area = cdf[-1]
    return cdf / area, float(pdf.max() / area)


def saccade_peak_velocity(amplitude_deg):
    """Peak angular velocity in deg/s of a simulated saccade of ``amplitude_deg`` degrees.

    ``A / D(A)`` times the peak-to-mean ratio of the profile (about 1.7-1.8).
    """
    amps = np.atleast_1d(np.asarray(amplitude_deg, dtype=np.float64))
    out = np.array([a / saccade_duration_s(a) * _profile(a)[1] for a in amps])
    return out if np.ndim(amplitude_deg) else float(out[0])


def saccade_position_fraction(tau, amplitude_deg: float):
    """Fraction of the amplitude covered at normalised time ``tau`` in [0, 1]."""
    cdf, _ = _profile(amplitude_deg)
    return np.interp(np.asarray(tau, dtype=np.float64), _PROFILE_GRID, cdf)


# --------------------------------------------------------------- results
@dataclass
class GazeSignal:
    """Simulated screen gaze.

    Attributes
    ----------
    t_s : (n,) float64
        Sample times in seconds from the start, ``arange(n) / rate_hz``.
    x_deg, y_deg : (n,) float64
        Measured gaze in degrees (x right, y down, see :mod:`gaze3d.display`);
        NaN where invalid.
    valid : (n,) bool
    truth : (n,) int8
        :class:`~gaze3d.events.EventType` codes.
    target_x_deg, target_y_deg : (n,) float64
        Where the stimulus target is (the destination during a saccade).
    blink : (n,) bool
        True during blinks and their pre-blink artefact (dropouts are GAP but not blinks).
    saccades : (m, 5) float64
        One row per saccade: start time s, duration s, amplitude deg, planned
        peak velocity deg/s, start sample index.
    rate_hz : float
    noise_sigma_deg : float
        Per-axis standard deviation of the white measurement noise that was added.
    eye_x_deg, eye_y_deg : (n,) float64
        Where the eye really pointed (target path + saccades + drift + tremor),
        before the pre-blink artefact, offset and measurement noise.
    """

    t_s: np.ndarray
    x_deg: np.ndarray
    y_deg: np.ndarray
    valid: np.ndarray
    truth: np.ndarray
    target_x_deg: np.ndarray
    target_y_deg: np.ndarray
    blink: Optional[np.ndarray] = None
    saccades: Optional[np.ndarray] = None
    rate_hz: float = 0.0
    noise_sigma_deg: float = 0.0
    eye_x_deg: Optional[np.ndarray] = None
    eye_y_deg: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.t_s)


@dataclass
class SceneGaze:
    """Simulated gaze on a 3D scene seen through a camera path.

    Attributes
    ----------
    t_s : (n,) float64
        Sample times in seconds from the start of the camera path.
    xy : (n, 2) float64
        Measured gaze, normalised display coordinates (origin top-left; the
        viewport fills the display); NaN where invalid.
    valid : (n,) bool
    truth : (n,) int8
        :class:`~gaze3d.events.EventType` codes (object-space fixations are FIXATION).
    target_index : (n,) int64
        Row of ``targets_world`` being fixated; -1 during saccades and gaps.
    x_deg, y_deg : (n,) float64
        The measured gaze in degrees (see :class:`~gaze3d.display.DisplayGeometry`).
    target_xy : (n, 2) float64
        True normalised position of the current target's projection (NaN when none).
    skipped : (m,) int64
        Targets that were due but off-screen or behind the camera (in order; may repeat).
    blink : (n,) bool
    saccades : (m, 5) float64
        As in :class:`GazeSignal`.
    """

    t_s: np.ndarray
    xy: np.ndarray
    valid: np.ndarray
    truth: np.ndarray
    target_index: np.ndarray
    x_deg: np.ndarray
    y_deg: np.ndarray
    target_xy: np.ndarray
    skipped: np.ndarray
    blink: np.ndarray
    saccades: np.ndarray
    rate_hz: float = 0.0
    noise_sigma_deg: float = 0.0

    def __len__(self) -> int:
        return len(self.t_s)


# --------------------------------------------------------------- timeline
TargetFn = Callable[[np.ndarray], np.ndarray]   # (k,) times -> (k, 2) deg, NaN if not visible


def _static(p) -> TargetFn:
    p = np.asarray(p, dtype=np.float64).reshape(2)
    return lambda t: np.broadcast_to(p, (len(t), 2)).copy()


class _Timeline:
    """Fills per-sample eye position, target and truth arrays segment after segment."""

    def __init__(self, n: int, rate_hz: float):
        self.n, self.rate = n, rate_hz
        self.t = np.arange(n, dtype=np.float64) / rate_hz
        self.eye = np.full((n, 2), np.nan)
        self.target = np.full((n, 2), np.nan)
        self.truth = np.full(n, _FIX, dtype=np.int8)
        self.index = np.full(n, -1, dtype=np.int64)
        self.saccades: List[list] = []
        self.i = 0
        self.pursuit_samples = 0

    @property
    def done(self) -> bool:
        return self.i >= self.n

    def _span(self, duration_s: float) -> slice:
        k = max(1, int(round(duration_s * self.rate)))
        return slice(self.i, min(self.n, self.i + k))

    def last_eye(self) -> np.ndarray:
        return self.eye[self.i - 1].copy()

    def fixation(self, fn: TargetFn, dwell_s: float, index: int = -1) -> bool:
        """Fixate the target for ``dwell_s`` (ends early when it stops being visible)."""
        s = self._span(dwell_s)
        p = fn(self.t[s])
        bad = ~np.isfinite(p).all(axis=1)
        if bad.any():
            s = slice(s.start, s.start + int(np.argmax(bad)))
            p = p[: s.stop - s.start]
        if s.stop <= s.start:
            return False
        self.eye[s] = p
        self.target[s] = p
        self.truth[s] = _FIX
        self.index[s] = index
        self.i = s.stop
        return True

    def saccade(self, start, fn: TargetFn, index: int = -1) -> bool:
        """Saccade from ``start`` to the target (landing where it is at the saccade's end)."""
        start = np.asarray(start, dtype=np.float64)
        t0 = self.i / self.rate
        land = fn(np.array([t0]))[0]
        if not np.isfinite(land).all():
            return False
        dur = float(saccade_duration_s(np.linalg.norm(land - start)))
        land = fn(np.array([t0 + dur]))[0]          # the target may move during the saccade
        if not np.isfinite(land).all():
            return False
        amp = float(np.linalg.norm(land - start))
        if amp < 0.01:                              # already there: no saccade, the fixation goes on
            return True
        dur = float(saccade_duration_s(amp))
        k = max(1, int(round(dur * self.rate)))
        s = slice(self.i, min(self.n, self.i + k))
        tau = (np.arange(s.stop - s.start) + 0.5) / k
        tgt = fn(self.t[s])
        tgt = np.where(np.isfinite(tgt), tgt, land)
        frac = saccade_position_fraction(tau, amp)[:, None]
        self.eye[s] = start + (tgt - start) * frac
        self.target[s] = tgt
        self.truth[s] = _SAC
        self.index[s] = index
        self.saccades.append([t0, k / self.rate, amp, saccade_peak_velocity(amp), float(self.i)])
        self.i = s.stop
        return True

    def pursuit(self, start, direction, speed_deg_s: float, duration_s: float, ramp_s: float = 0.1):
        """Follow a target moving from ``start`` along ``direction`` at ``speed_deg_s``."""
        s = self._span(duration_s)
        tau = (np.arange(s.stop - s.start) + 1.0) / self.rate
        dist = np.where(tau < ramp_s, speed_deg_s * tau ** 2 / (2 * ramp_s), speed_deg_s * (tau - ramp_s / 2))
        p = np.asarray(start, dtype=np.float64) + dist[:, None] * np.asarray(direction)[None, :]
        self.eye[s] = p
        self.target[s] = p
        self.truth[s] = _PUR
        self.index[s] = -1
        self.pursuit_samples += s.stop - s.start
        self.i = s.stop


# --------------------------------------------------------------- noise parts
def _drift(n: int, rate_hz: float, rng: np.random.Generator, spread_deg=0.05, tau_s=2.0,
           knot_hz=50.0) -> np.ndarray:
    """(n, 2) slow fixational drift: an OU walk at ``knot_hz`` knots, linearly interpolated."""
    duration = n / rate_hz
    m = int(np.ceil(duration * knot_hz)) + 2
    a = np.exp(-1.0 / (knot_hz * tau_s))
    shocks = rng.normal(0.0, spread_deg * np.sqrt(1 - a * a), size=(m, 2))
    knots = np.empty((m, 2))
    knots[0] = rng.normal(0.0, spread_deg, size=2)
    for k in range(1, m):                    # m is small (50 per second)
        knots[k] = a * knots[k - 1] + shocks[k]
    tk = np.arange(m) / knot_hz
    t = np.arange(n) / rate_hz
    return np.stack([np.interp(t, tk, knots[:, 0]), np.interp(t, tk, knots[:, 1])], axis=1)


def _tremor(n: int, rate_hz: float, rng: np.random.Generator, amp_deg=0.0012) -> np.ndarray:
    """(n, 2) ocular tremor: a few 70-100 Hz sinusoids per axis with random phases."""
    t = np.arange(n) / rate_hz
    out = np.zeros((n, 2))
    for axis in range(2):
        for f, ph in zip(rng.uniform(70, 100, 3), rng.uniform(0, 2 * np.pi, 3)):
            out[:, axis] += amp_deg * np.sin(2 * np.pi * f * t + ph)
    return out


def _mean_sq_s2s(xy: np.ndarray, pair_mask: np.ndarray) -> float:
    d = np.diff(xy, axis=0)[pair_mask]
    return float(np.mean(np.sum(d * d, axis=1))) if len(d) else 0.0


def _fixation_pairs(truth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    ok = (truth == _FIX) & valid
    return ok[1:] & ok[:-1]


def _gaps(n: int, rate_hz: float, rng: np.random.Generator, blink_rate_hz: float,
          dropout_rate: float, blink_artefact: bool):
    """Masks (gap, invalid, blink) and the (n, 2) pre-blink artefact displacement."""
    gap = np.zeros(n, bool)
    invalid = np.zeros(n, bool)
    blink = np.zeros(n, bool)
    artefact = np.zeros((n, 2))
    duration = n / rate_hz
    n_blinks = rng.poisson(blink_rate_hz * duration) if blink_rate_hz > 0 else 0
    for onset, length, depth in zip(rng.uniform(0, duration, n_blinks), rng.uniform(0.1, 0.3, n_blinks),
                                    rng.uniform(2.0, 6.0, n_blinks)):
        i0, i1 = int(onset * rate_hz), min(n, int((onset + length) * rate_hz) + 1)
        invalid[i0:i1] = True
        blink[i0:i1] = True
        if blink_artefact:                 # the closing lid drags the pupil estimate down
            a0 = max(0, i0 - int(0.04 * rate_hz))
            ramp = np.linspace(0.0, 1.0, i0 - a0 + 1)[1:]
            artefact[a0:i0, 1] += depth * ramp ** 2
            blink[a0:i0] = True
    gap |= blink
    if dropout_rate > 0:
        mean_len = 4.0
        n_bursts = rng.poisson(dropout_rate * n / mean_len)
        for i0, length in zip(rng.integers(0, n, n_bursts), rng.geometric(1.0 / mean_len, n_bursts)):
            invalid[i0:i0 + length] = True
            gap[i0:i0 + length] = True
    return gap, invalid, blink, artefact


def _measure(tl: _Timeline, rng: np.random.Generator, offset, precision_rms_deg: float,
             blink_rate_hz: float, dropout_rate: float, blink_artefact: bool):
    """Add physiology, gaps, offset and calibrated noise.

    Returns (xy_deg, valid, truth, blink, sigma, eye_deg): ``eye_deg`` is the
    true eye direction (timeline + drift + tremor).
    """
    n, rate = tl.n, tl.rate
    physio = _drift(n, rate, rng) + _tremor(n, rate, rng)
    gap, invalid, blink, artefact = _gaps(n, rate, rng, blink_rate_hz, dropout_rate, blink_artefact)
    truth = tl.truth.copy()
    truth[gap] = _GAP
    valid = ~invalid
    pairs = _fixation_pairs(truth, valid)
    # noise level so that E[RMS-S2S over fixations] == precision: white noise adds 4 sigma^2
    physio_ms = _mean_sq_s2s(physio, pairs)
    sigma = float(np.sqrt(max(0.0, precision_rms_deg ** 2 - physio_ms) / 4.0))
    eye = tl.eye + physio
    xy = eye + artefact + np.asarray(offset, dtype=np.float64) + rng.normal(0.0, sigma, (n, 2))
    xy[~valid] = np.nan
    return xy, valid, truth, blink, sigma, eye


def _check(name: str, value, low=None, high=None, low_open=False):
    v = float(value)
    if not np.isfinite(v) or (low is not None and (v <= low if low_open else v < low)) or \
            (high is not None and v > high):
        rng = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"
        raise InputError(f"simulate {name}: expected a number in {rng}, got {value!r}")
    return v


def _pair(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (2,) or not np.isfinite(arr).all():
        raise InputError(f"simulate {name}: expected two finite numbers (dx, dy), got {value!r}")
    return arr


def _fixation_dwell(rng: np.random.Generator, median_s: float = 0.25) -> float:
    """Log-normal fixation duration, clipped to [80, 1200] ms."""
    return float(np.clip(rng.lognormal(np.log(median_s), 0.45), 0.08, 1.2))


def _next_target(rng: np.random.Generator, pos: np.ndarray, field_deg: np.ndarray) -> np.ndarray:
    """A new target at a gamma-distributed amplitude (mode ~4 deg) inside the field."""
    for _ in range(20):
        amp = min(0.5 + rng.gamma(2.0, 3.5), 30.0)
        ang = rng.uniform(0, 2 * np.pi)
        p = pos + amp * np.array([np.cos(ang), np.sin(ang)])
        if np.all(np.abs(p) <= field_deg):
            return p
    return rng.uniform(-field_deg, field_deg)


# --------------------------------------------------------------- public API
def simulate_gaze(duration_s: Optional[float], rate_hz: float = 1200.0, *, seed=0,
                  accuracy_offset_deg=(0.0, 0.0), precision_rms_deg: float = 0.05,
                  blink_rate_hz: float = 0.2, dropout_rate: float = 0.0, pursuit_fraction: float = 0.2,
                  targets: Optional[Sequence[Sequence[float]]] = None, field_deg=(15.0, 10.0),
                  start_deg=(0.0, 0.0), blink_artefact: bool = True,
                  pursuit_speed_deg_s=(5.0, 30.0)) -> GazeSignal:
    """Simulate screen gaze in degrees with ground-truth labels.

    Parameters
    ----------
    duration_s : float or None
        Length of the signal. None is allowed with ``targets`` (the script's length).
    rate_hz : float
        Sampling rate, in (0, 2000].
    seed : int or numpy SeedSequence
        Everything is deterministic given the seed.
    accuracy_offset_deg : (2,) float
        Constant systematic error (dx, dy) added to every sample.
    precision_rms_deg : float
        RMS sample-to-sample precision over fixation samples, in degrees.
    blink_rate_hz : float
        Mean blink rate (Poisson); each blink is 100-300 ms of invalid data.
    dropout_rate : float
        Fraction of samples lost in short bursts (mean 4 samples), in [0, 0.5].
    pursuit_fraction : float
        Fraction of time in smooth pursuit (random script only), in [0, 0.9].
    targets : sequence of (x_deg, y_deg, dwell_s), optional
        A fixation script: the eye starts on the first target and saccades to
        each next one after its dwell; it stays on the last one until the end.
        When given, there is no pursuit.
    field_deg : (2,) float
        Half-extent of the area the random script looks at.
    start_deg : (2,) float
        Where the random script starts.
    blink_artefact : bool
        Add the downward excursion of the last 40 ms before each blink.
    pursuit_speed_deg_s : (2,) float
        Range (low, high) of the pursuit target's speed, drawn uniformly per
        pursuit; 0 < low <= high.

    Returns
    -------
    GazeSignal
    """
    rate_hz = _check("rate_hz", rate_hz, 0.0, 2000.0, low_open=True)
    speed_lo, speed_hi = _pair("pursuit_speed_deg_s", pursuit_speed_deg_s)
    if not 0 < speed_lo <= speed_hi:
        raise InputError(f"simulate pursuit_speed_deg_s: expected 0 < low <= high, got {pursuit_speed_deg_s!r}")
    precision_rms_deg = _check("precision_rms_deg", precision_rms_deg, 0.0, 10.0)
    blink_rate_hz = _check("blink_rate_hz", blink_rate_hz, 0.0, 5.0)
    dropout_rate = _check("dropout_rate", dropout_rate, 0.0, 0.5)
    pursuit_fraction = _check("pursuit_fraction", pursuit_fraction, 0.0, 0.9)
    offset = _pair("accuracy_offset_deg", accuracy_offset_deg)
    field = np.abs(_pair("field_deg", field_deg))
    script = None
    if targets is not None:
        script = np.asarray(targets, dtype=np.float64)
        if script.ndim != 2 or script.shape[1] != 3 or len(script) == 0 or not np.isfinite(script).all():
            raise InputError(f"simulate targets: expected a non-empty sequence of (x_deg, y_deg, dwell_s), "
                             f"got shape {script.shape}")
        if np.any(script[:, 2] <= 0):
            raise InputError("simulate targets: dwell_s must be > 0")
        if duration_s is None:
            amps = np.linalg.norm(np.diff(script[:, :2], axis=0), axis=1)
            duration_s = float(script[:, 2].sum() + saccade_duration_s(amps).sum())
    if duration_s is None:
        raise InputError("simulate duration_s: expected a positive number (None only with targets)")
    duration_s = _check("duration_s", duration_s, 0.0, None, low_open=True)
    rng = np.random.default_rng(seed)
    n = max(1, int(round(duration_s * rate_hz)))
    tl = _Timeline(n, rate_hz)
    if script is not None:
        tl.fixation(_static(script[0, :2]), script[0, 2])
        pos = script[0, :2]
        for x, y, dwell in script[1:]:
            if tl.done:
                break
            tl.saccade(pos, _static((x, y)))
            pos = np.array([x, y])
            if not tl.done:
                tl.fixation(_static(pos), dwell)
        if not tl.done:
            tl.fixation(_static(pos), (n - tl.i) / rate_hz)
    else:
        pos = _pair("start_deg", start_deg)
        tl.fixation(_static(pos), _fixation_dwell(rng))
        while not tl.done:
            nxt = _next_target(rng, pos, field)
            tl.saccade(pos, _static(nxt))
            pos = nxt
            if tl.done:
                break
            if pursuit_fraction > 0 and tl.pursuit_samples < pursuit_fraction * tl.i:
                tl.fixation(_static(pos), rng.uniform(0.1, 0.2))
                speed, dur = rng.uniform(speed_lo, speed_hi), rng.uniform(0.4, 1.2)
                for _ in range(20):     # a direction that stays inside the field
                    ang = rng.uniform(0, 2 * np.pi)
                    d = np.array([np.cos(ang), np.sin(ang)])
                    if np.all(np.abs(pos + d * speed * dur) <= field):
                        break
                else:
                    d = -pos / max(np.linalg.norm(pos), 1e-9)
                    dur = min(dur, np.linalg.norm(pos) / speed)
                if not tl.done:
                    tl.pursuit(pos, d, speed, dur)
                    pos = tl.last_eye()
            if not tl.done:
                tl.fixation(_static(pos), _fixation_dwell(rng))
    xy, valid, truth, blink, sigma, eye = _measure(tl, rng, offset, precision_rms_deg, blink_rate_hz,
                                                   dropout_rate, blink_artefact)
    return GazeSignal(t_s=tl.t, x_deg=xy[:, 0].copy(), y_deg=xy[:, 1].copy(), valid=valid, truth=truth,
                      target_x_deg=tl.target[:, 0].copy(), target_y_deg=tl.target[:, 1].copy(),
                      blink=blink, saccades=np.asarray(tl.saccades, dtype=np.float64).reshape(-1, 5),
                      rate_hz=rate_hz, noise_sigma_deg=sigma, eye_x_deg=eye[:, 0].copy(),
                      eye_y_deg=eye[:, 1].copy())


# --------------------------------------------------------------- scenes
def _camera_frames(path: CameraPath, t: np.ndarray):
    """Vectorised :meth:`CameraPath.at`: positions, right, up, forward, each (k, 3)."""
    times = path.times
    pos = np.stack([c.position for c in path.cameras])
    foc = np.stack([c.focal_point for c in path.cameras])
    upk = np.stack([c.up for c in path.cameras])

    def interp(a):
        return np.stack([np.interp(t, times, a[:, j]) for j in range(3)], axis=1)

    p, f, u = interp(pos), interp(foc), interp(upk)
    fwd = f - p
    fwd /= np.linalg.norm(fwd, axis=1, keepdims=True)
    right = np.cross(fwd, u)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    up = np.cross(right, fwd)
    return p, right, up, fwd


def project_on_path(path: CameraPath, point, t) -> np.ndarray:
    """Project one world point through the camera path at times ``t``.

    Parameters
    ----------
    path : CameraPath
    point : (3,) float
    t : (k,) float
        Seconds, clamped to the path like :meth:`CameraPath.at`.

    Returns
    -------
    (k, 2) float64
        Normalised viewport coordinates (top-left origin); NaN where the point
        is behind the near plane or outside the viewport.
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    cam = path.cameras[0]
    p, right, up, fwd = _camera_frames(path, t)
    d = np.asarray(point, dtype=np.float64).reshape(1, 3) - p
    cx, cy, cz = (d * right).sum(1), (d * up).sum(1), (d * fwd).sum(1)
    if cam.parallel_scale is not None:
        scale = np.full(len(t), 0.5 * cam.height / cam.parallel_scale)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(cz > cam.near, cam.focal_px / cz, np.nan)
    scale = np.where((cz > cam.near) & (cz < cam.far), scale, np.nan)
    xy = np.stack([(cam.width / 2.0 + cx * scale) / cam.width, (cam.height / 2.0 - cy * scale) / cam.height], 1)
    xy[~((xy >= 0) & (xy <= 1)).all(axis=1)] = np.nan
    return xy


def simulate_scene_gaze(targets_world, camera_path: CameraPath, duration_s: Optional[float] = None,
                        rate_hz: float = 1200.0, *, display: Optional[DisplayGeometry] = None, seed=0,
                        accuracy_offset_deg=(0.0, 0.0), precision_rms_deg: float = 0.05,
                        blink_rate_hz: float = 0.2, dropout_rate: float = 0.0, dwell_median_s: float = 0.3,
                        order: str = "sequential", blink_artefact: bool = True) -> SceneGaze:
    """Simulate gaze that visits world points while the camera moves.

    The eye saccades to each target's current projection and fixates it in
    object space (following the projection as the camera moves) for a
    log-normal dwell, ending early if the target leaves the viewport. Targets
    that are due while off-screen or behind the camera are recorded in
    ``skipped``; when none in a whole round is visible, the eye holds its
    position for 200 ms (``target_index`` -1) and tries again. Occlusion by
    other geometry is not modelled.

    Parameters
    ----------
    targets_world : (k, 3) float
        World points to look at (for example points of the buildings in a scan).
    camera_path : CameraPath
        The viewer camera over time; its viewport fills ``display``.
    duration_s : float, optional
        Defaults to the camera path's duration (at least 1 s).
    rate_hz : float
        Sampling rate, in (0, 2000].
    display : DisplayGeometry, optional
        Converts degrees <-> normalised coordinates (default: a 24" monitor at 65 cm).
    seed, accuracy_offset_deg, precision_rms_deg, blink_rate_hz, dropout_rate, blink_artefact
        As in :func:`simulate_gaze`.
    dwell_median_s : float
        Median fixation duration.
    order : {"sequential", "random"}
        Visit the targets in the given order (cycling) or in a fresh random
        permutation each round.

    Returns
    -------
    SceneGaze
    """
    pts = np.asarray(targets_world, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0 or not np.isfinite(pts).all():
        raise InputError(f"simulate_scene_gaze targets_world: expected a non-empty finite (k, 3) array, "
                         f"got shape {pts.shape}")
    if not isinstance(camera_path, CameraPath):
        raise InputError(f"simulate_scene_gaze camera_path: expected a CameraPath, got {type(camera_path).__name__}")
    if order not in ("sequential", "random"):
        raise InputError(f"simulate_scene_gaze order: expected 'sequential' or 'random', got {order!r}")
    display = display or DisplayGeometry()
    if duration_s is None:
        duration_s = max(camera_path.duration, 1.0)
    duration_s = _check("duration_s", duration_s, 0.0, None, low_open=True)
    rate_hz = _check("rate_hz", rate_hz, 0.0, 2000.0, low_open=True)
    precision_rms_deg = _check("precision_rms_deg", precision_rms_deg, 0.0, 10.0)
    blink_rate_hz = _check("blink_rate_hz", blink_rate_hz, 0.0, 5.0)
    dropout_rate = _check("dropout_rate", dropout_rate, 0.0, 0.5)
    dwell_median_s = _check("dwell_median_s", dwell_median_s, 0.0, 10.0, low_open=True)
    offset = _pair("accuracy_offset_deg", accuracy_offset_deg)
    rng = np.random.default_rng(seed)
    t0 = float(camera_path.times[0])
    n = max(1, int(round(duration_s * rate_hz)))
    tl = _Timeline(n, rate_hz)

    def track(j: int) -> TargetFn:
        def fn(t):
            return display.norm_to_deg(project_on_path(camera_path, pts[j], t + t0))
        return fn

    pos = display.norm_to_deg([[0.5, 0.5]])[0]
    tl.fixation(_static(pos), 0.2)
    skipped: List[int] = []
    k = len(pts)
    queue: List[int] = []
    misses = 0
    while not tl.done:
        if not queue:
            queue = list(rng.permutation(k)) if order == "random" else list(range(k))
        j = queue.pop(0)
        fn = track(j)
        if not tl.saccade(pos, fn, index=-1):
            skipped.append(j)
            misses += 1
            if misses >= k:             # nothing visible: hold still, then try again
                tl.fixation(_static(pos), 0.2)
                misses = 0
            continue
        misses = 0
        pos = tl.last_eye()
        if not tl.done and tl.fixation(fn, _fixation_dwell(rng, dwell_median_s), index=j):
            pos = tl.last_eye()
    xy_deg, valid, truth, blink, sigma, _ = _measure(tl, rng, offset, precision_rms_deg, blink_rate_hz,
                                                     dropout_rate, blink_artefact)
    xy = display.deg_to_norm(np.nan_to_num(xy_deg))
    xy[~valid] = np.nan
    index = tl.index.copy()
    index[truth == _GAP] = -1
    target_xy = np.full((n, 2), np.nan)
    has_t = np.isfinite(tl.target).all(axis=1)
    target_xy[has_t] = display.deg_to_norm(tl.target[has_t])
    return SceneGaze(t_s=tl.t + t0, xy=xy, valid=valid, truth=truth, target_index=index,
                     x_deg=xy_deg[:, 0].copy(), y_deg=xy_deg[:, 1].copy(), target_xy=target_xy,
                     skipped=np.asarray(skipped, dtype=np.int64), blink=blink,
                     saccades=np.asarray(tl.saccades, dtype=np.float64).reshape(-1, 5),
                     rate_hz=rate_hz, noise_sigma_deg=sigma)


@dataclass
class OrbitSession:
    """:func:`orbit_session`'s scene, gaze and recording."""

    xyz: np.ndarray        #: (grid^2, 3) float64 points of the plane z = 0 (a PointCloud's xyz)
    targets: np.ndarray    #: (12, 3) float64 the points fixated
    path: CameraPath
    gaze: SceneGaze
    recording: dict        #: what the viewer records: 2D samples and one camera per sample


def orbit_session(duration_s: float = 10.0, seed: int = 3, *, rate_hz: float = 1200.0, grid: int = 401,
                  n_keys: int = 400) -> OrbitSession:
    """A viewer fixating points of a plane while the camera orbits it at 60 deg/s.

    The plane is 16 x 16 units (``grid`` x ``grid`` points) with 12 targets
    drawn in its middle 8 x 8; the camera orbits at radius 15, 40 deg up, with a
    45 deg vertical field of view (``n_keys`` keyframes). In object space the
    eye holds each target (:func:`simulate_scene_gaze`, ``seed``), which moves
    at 3-11 deg/s (median 7) on the screen: smooth pursuit there. The
    benchmarks and tests of the event classifiers and of object-space attention
    share it.

    Returns
    -------
    OrbitSession
        ``recording`` is a recording dict (``samples`` with ``t_host_ns``,
        ``x``, ``y``, ``valid``; ``camera_t_host_ns`` and ``cameras``, one per
        sample: the simulator moves the camera continuously).
    """
    _check("duration_s", duration_s, 0.0, low_open=True)
    _check("grid", grid, 2)
    g = np.linspace(-8.0, 8.0, int(grid))
    xyz = np.c_[np.stack(np.meshgrid(g, g), -1).reshape(-1, 2), np.zeros(int(grid) ** 2)]
    rng = np.random.default_rng(0)
    targets = np.c_[rng.uniform(-4, 4, (12, 2)), np.zeros(12)]
    path = CameraPath.orbit((0, 0, 0), radius=15, elevation_deg=40, duration_s=duration_s,
                            turns=60.0 * duration_s / 360.0, n_keys=n_keys, vfov_deg=45)
    sg = simulate_scene_gaze(targets, path, duration_s, rate_hz, seed=seed)
    t_ns = np.round(sg.t_s * 1e9).astype(np.int64)
    rec = {"samples": {"t_host_ns": t_ns, "x": sg.xy[:, 0], "y": sg.xy[:, 1], "valid": sg.valid},
           "camera_t_host_ns": t_ns, "cameras": [path.at(t) for t in sg.t_s]}
    return OrbitSession(xyz, targets, path, sg, rec)
