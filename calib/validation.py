"""Gaze data quality against known targets: accuracy, precision, data loss, pass/fail.

Definitions (Holmqvist et al. 2012; the Tobii accuracy & precision report):

* **accuracy**: mean angular offset, in degrees, between each valid sample in
  the selection window and the target, seen from the eye;
* **offset** ``(dx, dy)``: the mean signed offset in degrees (x right, y
  down), i.e. the systematic error a correction can remove;
* **precision**, measured on the target's *fixation samples*: the usable
  samples (see below) minus *spikes* (:func:`spike_mask`) that the I-VT filter
  (:func:`gaze3d.events.classify_samples`, Tobii's defaults) labels
  fixation. **RMS-S2S**: root mean square of the angles between
  consecutive fixation samples (a removed sample breaks the pair);
  **SD**: ``sqrt(var_x + var_y)`` of their positions in degrees; **BCEA**:
  the bivariate contour ellipse area holding :data:`BCEA_P` (68 %) of them,
  ``2 k pi sd_x sd_y sqrt(1 - rho^2)`` deg² with ``k = -ln(1 - P)``. The
  RMS-S2S of all usable samples is kept as ``precision_rms_raw_deg``: one
  4° spike among 600 samples doubles it, which is why the field reports the
  filtered value (Holmqvist et al. 2012; Niehorster et al. 2020);
* **data loss**: share of the samples expected in the window (from the
  nominal rate, or the number received) that are missing or invalid.

Samples are selected from ``window_s[0]`` to ``window_s[1]`` seconds after a
target's onset (clipped at its offset), which skips the saccade to it and the
settling after it. Valid samples within ``gap_margin_s`` of an invalid one are
left out of the metrics (the closing lid of a blink drags the pupil estimate
for tens of milliseconds before the tracker reports the loss); they are not
counted as lost.

**Spike filter.** A usable sample is a spike when it is far from the gaze
around it: its distances (degrees) from the per-axis median of the
``SPIKE_HALF_WINDOW`` (5) usable samples before it, from that of the 5 after
it, and from the point between those two medians (interpolated by their mean
lags, where a steadily moving eye would be) all exceed
``max(spike_min_deg, spike_k * s)``; ``s`` is ``1.4826`` times the median over
the target of the smallest of the three distances (a robust noise scale that
a few spikes do not move). A step (a saccade, the eye settling) is close to
one side and a ramp (the eye moving) close to the point between, so neither
is a spike; the window's first and last samples are not judged.
With the defaults (``spike_k`` 5, ``spike_min_deg`` 0.1) no sample of 10
million of white Gaussian noise is flagged, while a 2° spike on 0.05° noise
is far over the bar; runs of up to 3 samples are caught whole. The I-VT
filter then runs on the samples left.

Targets must lie on the display: normalised coordinates in [0, 1]
(:class:`~gaze3d.calib.targets.TargetPresentation` refuses others).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError
from gaze3d.events import EventType, classify_samples

from ._io import atomic_write_bytes, atomic_write_text
from .geometry import TrackerDisplayArea
from .plot import plot_validation
from .targets import TargetPresentation, check_on_display


class InsufficientDataError(InputError):
    """Too few valid samples on a target to measure it."""


#: Share of the fixation samples inside the BCEA ellipse (``k = -ln(1 - BCEA_P)``).
BCEA_P = 0.68
#: Usable neighbours on each side whose median a sample is compared with by the spike filter.
SPIKE_HALF_WINDOW = 5
#: Neighbours a side needs for the sample to be judged (the window's first and last samples are not).
SPIKE_MIN_SIDE = 1
_MAD_TO_SD = 1.4826          # median absolute deviation -> standard deviation for normal data
#: How precision is measured, written into every report (``ValidationReport.to_dict``).
PRECISION_DEFINITION = (
    "precision on each target's fixation samples: usable samples in the selection window minus spikes "
    "(samples farther than max(spike_min_deg, spike_k * 1.4826 * median of that distance) from the median "
    "of the 5 usable samples before them, from that of the 5 after them and from the point between the "
    "two), of which those the I-VT "
    "filter (Tobii defaults) labels fixation. RMS-S2S: root mean square of the angles between consecutive "
    "fixation samples; SD: sqrt(var_x + var_y) in degrees; BCEA: area (deg^2) of the ellipse holding 68 % "
    "of them, 2 k pi sd_x sd_y sqrt(1 - rho^2), k = -ln(1 - 0.68). precision_rms_raw_deg: RMS-S2S of all "
    "usable samples.")


@dataclass
class GazeData:
    """Gaze samples on the tracker's display area.

    Parameters
    ----------
    t_s : (n,) float64
        Sample times, seconds, on the clock of the target onsets (sorted here if needed).
    xy : (n, 2) float64
        Tracker coordinates (normalised, top-left origin); NaN where invalid.
    valid : (n,) bool, optional
        Default: both coordinates finite.
    origin_mm : (n, 3) float64, optional
        3D gaze origin in the tracker frame, when the device reports one.
    rate_hz : float, optional
        Nominal sampling rate; lets data loss count samples that never arrived.
    """

    t_s: np.ndarray
    xy: np.ndarray
    valid: Optional[np.ndarray] = None
    origin_mm: Optional[np.ndarray] = None
    rate_hz: Optional[float] = None

    def __post_init__(self):
        self.t_s = np.asarray(self.t_s, dtype=np.float64).reshape(-1)
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        n = len(self.t_s)
        if len(self.xy) != n:
            raise InputError(f"gaze xy: expected {n} rows to match t_s, got {len(self.xy)}")
        finite = np.all(np.isfinite(self.xy), axis=1)
        if self.valid is None:
            self.valid = finite
        else:
            self.valid = np.asarray(self.valid, dtype=bool).reshape(-1)
            if len(self.valid) != n:
                raise InputError(f"gaze valid: expected {n} values to match t_s, got {len(self.valid)}")
            self.valid = self.valid & finite
        if self.origin_mm is not None:
            self.origin_mm = np.asarray(self.origin_mm, dtype=np.float64).reshape(-1, 3)
            if len(self.origin_mm) != n:
                raise InputError(f"gaze origin_mm: expected {n} rows, got {len(self.origin_mm)}")
        if n > 1 and np.any(np.diff(self.t_s) < 0):       # arrival order is not always time order
            order = np.argsort(self.t_s, kind="stable")
            self.t_s, self.xy, self.valid = self.t_s[order], self.xy[order], self.valid[order]
            if self.origin_mm is not None:
                self.origin_mm = self.origin_mm[order]

    def __len__(self) -> int:
        return len(self.t_s)

    @classmethod
    def from_columns(cls, columns: dict, t0_ns: Optional[int] = None, rate_hz=None) -> "GazeData":
        """From ``Recording.samples()`` style columns (``t_host_ns``, ``x``, ``y``, ``valid``)."""
        for key in ("t_host_ns", "x", "y"):
            if key not in columns:
                raise InputError(f"gaze columns: missing {key!r} (have {sorted(columns)})")
        t_ns = np.asarray(columns["t_host_ns"], dtype=np.int64)
        t0 = int(t_ns[0]) if t0_ns is None and len(t_ns) else int(t0_ns or 0)
        return cls((t_ns - t0) / 1e9, np.c_[columns["x"], columns["y"]],
                   columns.get("valid"), rate_hz=rate_hz)


@dataclass(frozen=True)
class ValidationSettings:
    """Sample selection and pass/fail thresholds (all user-settable)."""

    window_s: tuple = (0.5, 1.5)
    min_valid_samples: int = 10
    gap_margin_s: float = 0.05
    accuracy_max_deg: float = 1.0
    precision_rms_max_deg: float = 0.2
    data_loss_max_pct: float = 30.0
    spike_k: float = 5.0
    spike_min_deg: float = 0.1

    def __post_init__(self):
        a, b = (float(v) for v in self.window_s)
        if not (0 <= a < b):
            raise InputError(f"window_s: expected 0 <= start < end seconds after onset, got {self.window_s}")
        if not (float(self.gap_margin_s) >= 0):
            raise InputError(f"gap_margin_s: expected a duration >= 0, got {self.gap_margin_s!r}")
        if not (float(self.spike_min_deg) >= 0):
            raise InputError(f"spike_min_deg: expected an angle >= 0 degrees, got {self.spike_min_deg!r}")
        if int(self.min_valid_samples) < 2:
            raise InputError(f"min_valid_samples: expected at least 2, got {self.min_valid_samples}")
        for name in ("accuracy_max_deg", "precision_rms_max_deg", "data_loss_max_pct", "spike_k"):
            if not (float(getattr(self, name)) > 0):
                raise InputError(f"{name}: expected a positive threshold, got {getattr(self, name)!r}")


@dataclass
class TargetResult:
    """Quality on one target; NaN metrics and ``error`` set when it had too few valid samples."""

    index: int
    x: float
    y: float
    n_samples: int
    n_valid: int
    data_loss_pct: float
    accuracy_deg: float = float("nan")
    offset_x_deg: float = float("nan")
    offset_y_deg: float = float("nan")
    precision_rms_deg: float = float("nan")
    precision_sd_deg: float = float("nan")
    precision_bcea_deg2: float = float("nan")
    precision_rms_raw_deg: float = float("nan")
    n_fixation: int = 0
    n_spikes: int = 0
    mean_x: float = float("nan")
    mean_y: float = float("nan")
    passed: bool = False
    error: Optional[str] = None


def measured_mean(targets, name: str) -> float:
    """Mean of the attribute ``name`` over the ``targets`` that were measured (``error is None``); NaN if none."""
    vals = [getattr(t, name) for t in targets if t.error is None]
    return float(np.mean(vals)) if vals else float("nan")


@dataclass
class ValidationReport:
    """Per-target and overall quality; ``selected`` holds the samples each target used."""

    targets: List[TargetResult]
    settings: ValidationSettings
    display: DisplayGeometry
    selected: dict = field(default_factory=dict, repr=False)   # index -> (k, 2) xy of valid samples

    # overall values are means over the measured targets
    def _mean(self, name: str) -> float:
        return measured_mean(self.targets, name)

    @property
    def accuracy_deg(self) -> float:
        return self._mean("accuracy_deg")

    @property
    def offset_deg(self) -> tuple:
        return self._mean("offset_x_deg"), self._mean("offset_y_deg")

    @property
    def precision_rms_deg(self) -> float:
        return self._mean("precision_rms_deg")

    @property
    def precision_sd_deg(self) -> float:
        return self._mean("precision_sd_deg")

    @property
    def precision_bcea_deg2(self) -> float:
        return self._mean("precision_bcea_deg2")

    @property
    def precision_rms_raw_deg(self) -> float:
        return self._mean("precision_rms_raw_deg")

    @property
    def n_spikes(self) -> int:
        return int(sum(t.n_spikes for t in self.targets))

    @property
    def data_loss_pct(self) -> float:
        return float(np.mean([t.data_loss_pct for t in self.targets])) if self.targets else float("nan")

    @property
    def failed_targets(self) -> List[TargetResult]:
        return [t for t in self.targets if t.error is not None]

    @property
    def passed(self) -> bool:
        s = self.settings
        return (not self.failed_targets and self.accuracy_deg <= s.accuracy_max_deg
                and self.precision_rms_deg <= s.precision_rms_max_deg
                and self.data_loss_pct <= s.data_loss_max_pct)

    def raise_for_insufficient(self) -> None:
        """Raise :class:`InsufficientDataError` naming the first target with too few valid samples."""
        if self.failed_targets:
            t = self.failed_targets[0]
            more = f" (and {len(self.failed_targets) - 1} more)" if len(self.failed_targets) > 1 else ""
            raise InsufficientDataError(t.error + more)

    def summary(self) -> dict:
        ox, oy = self.offset_deg
        return {"passed": self.passed, "accuracy_deg": self.accuracy_deg, "offset_x_deg": ox,
                "offset_y_deg": oy, "precision_rms_deg": self.precision_rms_deg,
                "precision_sd_deg": self.precision_sd_deg, "precision_bcea_deg2": self.precision_bcea_deg2,
                "precision_rms_raw_deg": self.precision_rms_raw_deg, "n_spikes": self.n_spikes,
                "data_loss_pct": self.data_loss_pct,
                "n_targets": len(self.targets), "n_failed_targets": len(self.failed_targets)}

    def to_dict(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and not np.isfinite(v) else v
        return {"summary": {k: clean(v) for k, v in self.summary().items()},
                "precision_definition": PRECISION_DEFINITION,
                "settings": {**asdict(self.settings), "window_s": list(self.settings.window_s)},
                "display": asdict(self.display) | {"eye_xy": list(self.display.eye_xy)},
                "targets": [{k: clean(v) for k, v in asdict(t).items()} for t in self.targets]}

    def save_json(self, path) -> Path:
        """Write the report as JSON (atomically)."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def plot(self, path, title: str = "Validation: targets vs gaze") -> Path:
        """Write a PNG of the targets, the selected gaze samples and their means (matplotlib Agg)."""
        png = plot_validation(self, title=title)
        path = Path(path)
        atomic_write_bytes(path, png)
        return path


def _near_gap(data: GazeData, margin_s: float, min_gap_s: float = 0.05) -> np.ndarray:
    """(n,) bool: valid samples within ``margin_s`` of a blink-like gap (invalid run >= ``min_gap_s``).

    Short dropouts of a few samples get no margin: the eye is not closing.
    """
    n = len(data)
    out = np.zeros(n, dtype=bool)
    if margin_s <= 0 or n == 0 or data.valid.all():
        return out
    bad = ~data.valid
    edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    long_ = (data.t_s[ends] - data.t_s[starts]) >= min_gap_s
    for a, b in zip(data.t_s[starts[long_]], data.t_s[ends[long_]]):
        i0, i1 = np.searchsorted(data.t_s, [a - margin_s, b + margin_s], side="left")
        out[i0:i1 + 1] = True
    return out & data.valid


def _consecutive_pairs(valid_idx: np.ndarray, data: GazeData) -> tuple:
    """Index pairs (i, i+1) of valid samples adjacent in the stream (and in time, given the rate)."""
    adjacent = np.diff(valid_idx) == 1
    if data.rate_hz:                       # a lost sample that never arrived still breaks the pair
        adjacent &= np.diff(data.t_s[valid_idx]) <= 1.5 / data.rate_hz
    return valid_idx[:-1][adjacent], valid_idx[1:][adjacent]


def spike_mask(deg: np.ndarray, k: float = 5.0, min_deg: float = 0.1,
               half_window: int = SPIKE_HALF_WINDOW) -> np.ndarray:
    """Flag spikes: runs of up to ``(half_window + 1) // 2`` samples away from the gaze on both sides.

    Parameters
    ----------
    deg : (n, 2) float64
        Consecutive usable samples of one target, degrees (finite).
    k : float
        Threshold in units of the robust noise scale (see the module docstring).
    min_deg : float
        The threshold never goes below this angle (noise-free or quantised data).
    half_window : int
        Neighbours compared on each side.

    Returns
    -------
    (n,) bool
        True for spikes. A sample is compared with the per-axis median of the
        ``half_window`` samples before it, with that of the ones after it and
        with the point between the two where a steady movement would be; it
        must be far from all three: a step (a saccade, the eye settling) is
        close to one side and a ramp (a moving eye) close to the point
        between, and neither is a spike. The first and last samples are not
        judged.
    """
    deg = np.asarray(deg, dtype=np.float64).reshape(-1, 2)
    n = len(deg)
    if n < 2 * SPIKE_MIN_SIDE + 1:
        return np.zeros(n, dtype=bool)
    pad = np.full((half_window, 2), np.nan)
    padded = np.vstack([pad, deg, pad])

    def side_median(offsets):
        """(n, 2) per-axis median of the neighbours at ``offsets`` (NaN where too few), (n,) their count."""
        neigh = np.stack([padded[half_window + o:half_window + o + n] for o in offsets], axis=1)  # (n, h, 2)
        count = np.count_nonzero(np.isfinite(neigh[:, :, 0]), axis=1)
        med = np.full((n, 2), np.nan)
        enough = count >= SPIKE_MIN_SIDE
        med[enough] = np.nanmedian(neigh[enough], axis=1)
        return med, count

    before, n_before = side_median(range(-half_window, 0))
    after, n_after = side_median(range(1, half_window + 1))
    # where a steady movement would put the sample: between the two medians, by their mean lags
    lag_b, lag_a = (n_before + 1) / 2.0, (n_after + 1) / 2.0
    between = before + (after - before) * (lag_b / np.maximum(lag_b + lag_a, 1e-12))[:, None]
    # a spike is far from both sides (not a step) and off the path between them (not a ramp)
    dist = np.fmin(np.fmin(np.hypot(*(deg - before).T), np.hypot(*(deg - after).T)),
                   np.hypot(*(deg - between).T))
    dist[np.isnan(before[:, 0]) | np.isnan(after[:, 0])] = np.nan          # an edge: not judged
    judged = np.isfinite(dist)
    if not judged.any():
        return np.zeros(n, dtype=bool)
    scale = _MAD_TO_SD * float(np.median(dist[judged]))
    return judged & (np.nan_to_num(dist) > max(float(min_deg), float(k) * scale))


def _fixation_samples(t_s: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """(n,) bool: which of a target's usable samples (time order) the I-VT filter labels fixation."""
    keep = np.r_[True, np.diff(t_s) > 0]          # the classifier wants strictly increasing times
    labels = np.full(len(t_s), int(EventType.FIXATION), dtype=np.int8)
    labels[keep] = classify_samples(t_s[keep], deg[keep, 0], deg[keep, 1], method="ivt")   # Tobii's filter
    labels[~keep] = labels[np.maximum.accumulate(np.where(keep, np.arange(len(keep)), 0))][~keep]
    return labels == int(EventType.FIXATION)


def bcea_deg2(deg: np.ndarray, p: float = BCEA_P) -> float:
    """Bivariate contour ellipse area (deg²) holding the share ``p`` of (n, 2) positions in degrees."""
    deg = np.asarray(deg, dtype=np.float64).reshape(-1, 2)
    if len(deg) < 3:
        return float("nan")
    sx, sy = deg.std(axis=0, ddof=1)
    if sx == 0 or sy == 0:
        return 0.0
    rho = float(np.corrcoef(deg[:, 0], deg[:, 1])[0, 1])
    return float(2.0 * -np.log(1.0 - p) * np.pi * sx * sy * np.sqrt(max(0.0, 1.0 - rho * rho)))


def _rms_s2s(data: GazeData, idx: np.ndarray, display: DisplayGeometry,
             area: Optional[TrackerDisplayArea]) -> float:
    """RMS of the angles (deg) between the samples ``idx`` that are adjacent in the stream; NaN if none are."""
    i0, i1 = _consecutive_pairs(idx, data)
    if len(i0) == 0:
        return float("nan")
    if area is not None:
        ang = area.angle_from_origin_deg(data.origin_mm[i0], data.xy[i0], data.xy[i1])
    else:
        ang = display.angle_between_deg(data.xy[i0], data.xy[i1])
    return float(np.sqrt(np.mean(ang ** 2)))


def validate(data: GazeData, presentations: Sequence[TargetPresentation],
             display: Optional[DisplayGeometry] = None,
             settings: Optional[ValidationSettings] = None,
             area: Optional[TrackerDisplayArea] = None) -> ValidationReport:
    """Measure accuracy, precision and data loss on each presented target.

    Parameters
    ----------
    data : GazeData
    presentations : sequence of TargetPresentation
        Targets in the order shown, with onset/offset on the clock of ``data.t_s``.
    display : DisplayGeometry, optional
        Converts tracker coordinates to degrees (fixed eye distance).
    settings : ValidationSettings, optional
    area : TrackerDisplayArea, optional
        With ``data.origin_mm``, angles are measured from each sample's own
        3D gaze origin instead of the fixed eye of ``display``.

    Returns
    -------
    ValidationReport
        Targets with too few valid samples have ``error`` set (see
        :meth:`ValidationReport.raise_for_insufficient`); this function does
        not raise for them so the report can still be written.
    """
    display = display or DisplayGeometry()
    settings = settings or ValidationSettings()
    if not presentations:
        raise InputError("presentations: expected at least one target")
    for p in presentations:          # also catches duck-typed presentations that skipped the dataclass check
        check_on_display(p.x, p.y, f"target {p.index}")
    use_origin = area is not None and data.origin_mm is not None
    near_gap = _near_gap(data, settings.gap_margin_s)
    results, selected = [], {}
    for p in presentations:
        a = p.onset_s + settings.window_s[0]
        b = min(p.onset_s + settings.window_s[1], p.offset_s)
        in_win = np.flatnonzero((data.t_s >= a) & (data.t_s < b))
        n_valid = int(np.count_nonzero(data.valid[in_win]))
        expected = max(len(in_win), int(round((b - a) * data.rate_hz)) if data.rate_hz else 0)
        loss = 100.0 * (1.0 - n_valid / expected) if expected else 100.0
        ok = in_win[data.valid[in_win] & ~near_gap[in_win]]
        r = TargetResult(p.index, p.x, p.y, int(len(in_win)), len(ok), float(loss))
        if b <= a:
            r.error = (f"target {p.index} at ({p.x:.2f}, {p.y:.2f}): shown for "
                       f"{p.offset_s - p.onset_s:.2f} s, shorter than the selection window start "
                       f"{settings.window_s[0]} s")
        elif len(ok) < settings.min_valid_samples:
            r.error = (f"target {p.index} at ({p.x:.2f}, {p.y:.2f}): {len(ok)} usable valid samples "
                       f"({n_valid} valid, {len(in_win)} received) in the selection window "
                       f"{settings.window_s[0]}-{settings.window_s[1]} s after onset, "
                       f"need at least {settings.min_valid_samples}")
        if r.error is not None:
            results.append(r)
            continue
        xy = data.xy[ok]
        target = np.broadcast_to(p.xy, xy.shape)
        if use_origin:
            ang = area.angle_from_origin_deg(data.origin_mm[ok], xy, target)
        else:
            ang = display.angle_between_deg(xy, target)
        deg = display.norm_to_deg(xy)
        off = deg - display.norm_to_deg(p.xy)
        spikes = spike_mask(deg, settings.spike_k, settings.spike_min_deg)
        fix = np.zeros(len(ok), dtype=bool)            # I-VT on the spike-free samples: a spike is no saccade
        fix[~spikes] = _fixation_samples(data.t_s[ok][~spikes], deg[~spikes])
        s2s = _rms_s2s(data, ok[fix], display, area if use_origin else None)
        r.accuracy_deg = float(np.mean(ang))
        r.offset_x_deg, r.offset_y_deg = (float(v) for v in off.mean(axis=0))
        r.precision_rms_deg = s2s
        r.precision_rms_raw_deg = _rms_s2s(data, ok, display, area if use_origin else None)
        r.precision_sd_deg = float(np.sqrt(np.sum(deg[fix].var(axis=0)))) if fix.any() else float("nan")
        r.precision_bcea_deg2 = bcea_deg2(deg[fix])
        r.n_fixation, r.n_spikes = int(np.count_nonzero(fix)), int(np.count_nonzero(spikes))
        r.mean_x, r.mean_y = (float(v) for v in xy.mean(axis=0))
        r.passed = bool(r.accuracy_deg <= settings.accuracy_max_deg
                        and s2s <= settings.precision_rms_max_deg
                        and r.data_loss_pct <= settings.data_loss_max_pct)
        results.append(r)
        prev = selected.get(p.index)
        selected[p.index] = xy if prev is None else np.vstack([prev, xy])   # a target shown twice
    return ValidationReport(results, settings, display, selected)
