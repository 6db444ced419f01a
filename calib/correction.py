"""Robust affine / second-order polynomial correction of gaze, fitted on validation data.

A :class:`Correction` maps measured tracker coordinates to corrected ones,
``xy' = phi(xy) @ coef`` with ``phi`` = ``[1, x, y]`` (affine) or
``[1, x, y, x², xy, y²]`` (poly2), in coordinates centred on the display
(``x - 0.5``) for conditioning. It is fitted by iteratively reweighted least
squares with Huber weights on the 2D residual (scale from the median
absolute residual), so samples where the annotator looked away from the target
do not pull the fit; each target counts equally however many samples it has.

The same ``Correction`` is applied to live samples (:func:`correct_sample`,
:class:`CorrectingSubscriber`) and to replayed recordings
(:func:`correct_columns`), and it round-trips through JSON (``to_dict``) so
a recording can store the one it used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError
from gaze3d.protocol import TOPIC_GAZE_2D

from .targets import check_on_display

KINDS = ("identity", "affine", "poly2")
_N_TERMS = {"affine": 3, "poly2": 6}


def _features(xy: np.ndarray, kind: str) -> np.ndarray:
    x, y = xy[:, 0] - 0.5, xy[:, 1] - 0.5
    one = np.ones_like(x)
    if kind == "affine":
        return np.c_[one, x, y]
    return np.c_[one, x, y, x * x, x * y, y * y]


@dataclass(frozen=True)
class Correction:
    """A fitted mapping of tracker coordinates.

    Parameters
    ----------
    kind : {"identity", "affine", "poly2"}
    coef : (k, 2) float64
        Coefficients of the features (k = 3 affine, 6 poly2), giving the
        corrected position minus 0.5; unused for identity.
    """

    kind: str = "identity"
    coef: Optional[tuple] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"correction kind: expected one of {KINDS}, got {self.kind!r}")
        if self.kind != "identity":
            try:
                c = np.asarray(self.coef, dtype=np.float64)
            except (TypeError, ValueError):         # strings, ragged rows, a dict... (from a profile file)
                raise InputError(f"correction coef: expected {_N_TERMS[self.kind]} x 2 finite numbers "
                                 f"for {self.kind}, got {self.coef!r}"[:300]) from None
            if c.shape != (_N_TERMS[self.kind], 2) or not np.all(np.isfinite(c)):
                raise InputError(f"correction coef: expected {_N_TERMS[self.kind]} x 2 finite numbers "
                                 f"for {self.kind}, got shape {c.shape}")
            object.__setattr__(self, "coef", tuple(map(tuple, c.tolist())))

    def apply(self, xy) -> np.ndarray:
        """(n, 2) measured tracker coordinates -> (n, 2) corrected; NaN rows stay NaN."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if self.kind == "identity":
            return xy.copy()
        feats, coef = _features(xy, self.kind), np.asarray(self.coef)
        # term by term rather than a matmul: every row gets the very same arithmetic whatever
        # the batch size, so a live sample and its replay are corrected bit for bit alike
        out = np.full((len(xy), 2), 0.5)
        for k in range(coef.shape[0]):
            out += feats[:, k:k + 1] * coef[k]
        return out

    def to_dict(self) -> dict:
        return {"kind": self.kind, "coef": [list(r) for r in self.coef] if self.coef else None}

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "Correction":
        if not d:
            return cls()
        if not isinstance(d, dict) or "kind" not in d:
            raise InputError(f"correction: expected a dict with 'kind' and 'coef', got {d!r}")
        return cls(d["kind"], d.get("coef"))


def fit_correction(measured, true, kind: str = "affine", groups=None, huber_k: float = 1.345,
                   max_iter: int = 50) -> Correction:
    """Fit a robust correction from measured to true tracker coordinates.

    Parameters
    ----------
    measured, true : (n, 2) float
        Sample positions and the positions of the targets they belong to;
        rows with NaN are dropped. Targets must lie on the display ([0, 1]).
    kind : {"affine", "poly2", "identity"}
    groups : (n,) int, optional
        Target of each row; each target then weighs the same in the fit.
    huber_k : float
        Huber threshold in units of the robust residual scale.

    Raises
    ------
    InputError
        Too few distinct targets (3 non-collinear for affine, 6 for poly2), or
        a target outside the display.
    """
    if kind == "identity":
        return Correction()
    if kind not in _N_TERMS:
        raise InputError(f"correction kind: expected one of {KINDS}, got {kind!r}")
    m = np.asarray(measured, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(true, dtype=np.float64).reshape(-1, 2)
    if m.shape != t.shape:
        raise InputError(f"correction fit: measured {m.shape} and true {t.shape} positions differ in shape")
    g = np.zeros(len(m), dtype=np.int64) if groups is None else np.asarray(groups).reshape(-1)
    keep = np.all(np.isfinite(m), axis=1) & np.all(np.isfinite(t), axis=1)
    m, t, g = m[keep], t[keep], g[keep]
    off = np.flatnonzero(np.any((t < 0.0) | (t > 1.0), axis=1))
    if len(off):
        row = int(np.flatnonzero(keep)[off[0]])
        check_on_display(*t[off[0]], what=f"correction fit: true position of row {row}")
    n_targets = len(np.unique(t, axis=0)) if len(t) else 0
    need = _N_TERMS[kind]
    X = _features(m, kind)
    if n_targets < need or len(m) < need or np.linalg.matrix_rank(_features(np.unique(t, axis=0), kind)) < need:
        raise InputError(f"correction {kind}: needs at least {need} targets in general position with "
                         f"valid samples, got {n_targets}")
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    base_w = 1.0 / counts[inv]
    Y = t - 0.5
    w = base_w.copy()
    coef = None
    for _ in range(max_iter):
        sw = np.sqrt(w)[:, None]
        new, *_ = np.linalg.lstsq(X * sw, Y * sw, rcond=None)
        r = np.linalg.norm(X @ new - Y, axis=1)
        scale = max(1.4826 * np.median(r), 1e-9)
        hub = np.minimum(1.0, huber_k * scale / np.maximum(r, 1e-300))
        w = base_w * hub
        if coef is not None and np.max(np.abs(new - coef)) < 1e-10:
            coef = new
            break
        coef = new
    return Correction(kind, coef)


def fit_from_report(report, kind: str = "affine", exclude: Iterable[int] = ()) -> Correction:
    """Fit on the samples a :class:`~gaze3d.calib.validation.ValidationReport` selected.

    ``exclude`` lists target indices to leave out (held-out targets).
    """
    exclude = set(int(i) for i in exclude)
    meas, true, groups = [], [], []
    for t in report.targets:
        pts = report.selected.get(t.index)
        if t.index in exclude or pts is None or len(pts) == 0:
            continue
        meas.append(pts)
        true.append(np.broadcast_to([t.x, t.y], pts.shape))
        groups.append(np.full(len(pts), t.index))
    if not meas:
        raise InputError("correction fit: no target with valid samples to fit on")
    return fit_correction(np.vstack(meas), np.vstack(true), kind, np.concatenate(groups))


def _accuracy(display: DisplayGeometry, pts: np.ndarray, target) -> float:
    return float(np.mean(display.angle_between_deg(pts, np.broadcast_to(target, pts.shape))))


def holdout_accuracy(report, kind: str = "affine", holdout: Optional[Sequence[int]] = None) -> dict:
    """Accuracy before and after correction on targets left out of the fit.

    Parameters
    ----------
    report : ValidationReport
    kind : str
    holdout : sequence of int, optional
        Target indices fitted without and measured on. Default: every
        target in turn (leave-one-out), each with a fit on all the others.

    Returns
    -------
    dict
        ``before_deg``, ``after_deg`` (mean over held-out targets) and
        ``targets``: per held-out target ``{"index", "before_deg", "after_deg"}``.
    """
    measured = [t for t in report.targets if t.index in report.selected]
    if holdout is None:
        folds = [[t.index] for t in measured]
    else:
        folds = [list(holdout)]
        missing = set(holdout) - {t.index for t in measured}
        if missing:
            raise InputError(f"holdout: targets {sorted(missing)} have no valid samples in this validation")
    rows = []
    for fold in folds:
        corr = fit_from_report(report, kind, exclude=fold)
        for t in measured:
            if t.index in fold:
                pts = report.selected[t.index]
                rows.append({"index": t.index,
                             "before_deg": _accuracy(report.display, pts, [t.x, t.y]),
                             "after_deg": _accuracy(report.display, corr.apply(pts), [t.x, t.y])})
    return {"kind": kind, "before_deg": float(np.mean([r["before_deg"] for r in rows])),
            "after_deg": float(np.mean([r["after_deg"] for r in rows])), "targets": rows}


# --- applying a correction to live and replayed data -------------------------------------------
def correct_sample(sample: dict, correction: Correction) -> dict:
    """A copy of a tracker sample dict with ``gaze`` (and per-eye ``gaze``) corrected."""
    out = dict(sample)
    if out.get("gaze") is not None:
        out["gaze"] = correction.apply(out["gaze"])[0].tolist()
    for eye in ("left", "right"):
        d = out.get(eye)
        if isinstance(d, dict) and d.get("gaze") is not None:
            out[eye] = {**d, "gaze": correction.apply(d["gaze"])[0].tolist()}
    return out


def correct_columns(columns: dict, correction: Correction) -> dict:
    """A copy of ``Recording.samples()`` style columns with ``x``/``y`` corrected."""
    for key in ("x", "y"):
        if key not in columns:
            raise InputError(f"gaze columns: missing {key!r} (have {sorted(columns)})")
    xy = correction.apply(np.c_[columns["x"], columns["y"]])
    out = dict(columns)
    out["x"], out["y"] = xy[:, 0], xy[:, 1]
    return out


class CorrectingSubscriber:
    """Wraps a ``GazeSubscriber`` so that ``recv``/``drain`` return corrected samples.

    Thread-safety: as the wrapped subscriber (one thread at a time).
    """

    def __init__(self, subscriber, correction: Correction):
        self.subscriber = subscriber
        self.correction = correction

    def _fix(self, item):
        if item is None:
            return None
        topic, msg = item
        t = topic.decode() if isinstance(topic, bytes) else topic
        return (topic, correct_sample(msg, self.correction)) if t.startswith(TOPIC_GAZE_2D) else item

    def recv(self, timeout_s: float = 1.0):
        return self._fix(self.subscriber.recv(timeout_s))

    def drain(self, max_n: int = 10000) -> list:
        return [self._fix(it) for it in self.subscriber.drain(max_n)]

    def __getattr__(self, name):          # stats, close... of the wrapped subscriber
        return getattr(self.subscriber, name)
