"""VR gaze quality: targets at known 3D world positions, angular error from the eye origin.

In VR the tracker reports a world-space gaze ray per sample (``ray_origin``,
``ray_direction`` on topic ``gaze.3d``). The error on a target is the angle
between the ray and the direction from the ray's origin to the target, so
head movement during the validation is accounted for.

:func:`load_edvam` / :func:`head_relative_gaze_deg` read a real VR session
(EDVAM, Unity + Pupil Labs): there the gaze is a 3D point of regard ``L``,
the camera position ``C`` and forward vector ``F``; the angle between ``F``
and ``L - C`` is the gaze eccentricity relative to the head.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from gaze3d.errors import InputError
from gaze3d.vr.frames import unit_rows

from .validation import measured_mean


def angle_between_deg(a, b) -> np.ndarray:
    """(n,) angle in degrees between (n, 3) direction vectors (not necessarily unit); NaN if degenerate."""
    a = unit_rows(np.asarray(a, dtype=np.float64).reshape(-1, 3))
    b = unit_rows(np.asarray(b, dtype=np.float64).reshape(-1, 3))
    cos = np.clip(np.sum(a * b, axis=1), -1.0, 1.0)
    # atan2 of |a x b| and a.b stays accurate for the tiny angles of precision
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), cos))


def ray_target_error_deg(origins, directions, targets) -> np.ndarray:
    """(n,) angle between each gaze ray and the direction from its origin to its (n, 3) target."""
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    return angle_between_deg(directions, np.asarray(targets, dtype=np.float64).reshape(-1, 3) - o)


@dataclass
class VRTargetResult:
    index: int
    position: tuple
    n_samples: int
    n_valid: int
    data_loss_pct: float
    accuracy_deg: float = float("nan")
    precision_rms_deg: float = float("nan")
    passed: bool = False
    error: Optional[str] = None


@dataclass
class VRReport:
    targets: List[VRTargetResult] = field(default_factory=list)
    accuracy_max_deg: float = 1.0
    precision_rms_max_deg: float = 0.2

    def _mean(self, name):
        return measured_mean(self.targets, name)

    @property
    def accuracy_deg(self) -> float:
        return self._mean("accuracy_deg")

    @property
    def precision_rms_deg(self) -> float:
        return self._mean("precision_rms_deg")

    @property
    def passed(self) -> bool:
        return bool(self.targets) and all(t.passed for t in self.targets)

    def to_dict(self) -> dict:
        return {"accuracy_deg": self.accuracy_deg, "precision_rms_deg": self.precision_rms_deg,
                "passed": self.passed, "targets": [t.__dict__ for t in self.targets]}


def validate_vr(origins, directions, target_index, targets_world, valid=None, min_valid_samples: int = 10,
                accuracy_max_deg: float = 1.0, precision_rms_max_deg: float = 0.2) -> VRReport:
    """Accuracy and precision of world-space gaze rays on 3D targets.

    Parameters
    ----------
    origins, directions : (n, 3) float
        Gaze rays in world coordinates (eye origin, direction).
    target_index : (n,) int
        Row of ``targets_world`` each sample belongs to (already restricted to
        the selection window), -1 for samples to ignore.
    targets_world : (k, 3) float
    valid : (n,) bool, optional
        Default: finite origin and direction.

    Returns
    -------
    VRReport
        Targets with fewer than ``min_valid_samples`` valid samples have ``error`` set.
    """
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    ti = np.asarray(target_index).reshape(-1)
    tw = np.asarray(targets_world, dtype=np.float64).reshape(-1, 3)
    if not (len(o) == len(d) == len(ti)):
        raise InputError(f"vr validation: origins {len(o)}, directions {len(d)} and target_index {len(ti)} "
                         "rows differ")
    if len(ti) and ti.max() >= len(tw):
        raise InputError(f"target_index: {ti.max()} out of range for {len(tw)} targets")
    ok = np.all(np.isfinite(o), axis=1) & np.all(np.isfinite(d), axis=1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool).reshape(-1)
    report = VRReport(accuracy_max_deg=accuracy_max_deg, precision_rms_max_deg=precision_rms_max_deg)
    for k, pos in enumerate(tw):
        mine = np.flatnonzero(ti == k)
        good = mine[ok[mine]]
        r = VRTargetResult(k, tuple(float(v) for v in pos), len(mine), len(good),
                           100.0 * (1 - len(good) / len(mine)) if len(mine) else 100.0)
        if len(good) < min_valid_samples:
            r.error = f"vr target {k} at {np.round(pos, 3).tolist()}: {len(good)} valid samples, " \
                      f"need at least {min_valid_samples}"
            report.targets.append(r)
            continue
        err = ray_target_error_deg(o[good], d[good], np.broadcast_to(pos, (len(good), 3)))
        adjacent = np.diff(good) == 1
        s2s = angle_between_deg(d[good][:-1][adjacent], d[good][1:][adjacent])
        r.accuracy_deg = float(np.mean(err))
        r.precision_rms_deg = float(np.sqrt(np.mean(s2s ** 2))) if len(s2s) else float("nan")
        r.passed = bool(r.accuracy_deg <= accuracy_max_deg and r.precision_rms_deg <= precision_rms_max_deg)
        report.targets.append(r)
    return report


# --- EDVAM (real VR session) ---------------------------------------------------------------------
# one reader for the core importer (``gaze3d record import --format edvam``) and this quality check
from gaze3d.vr.edvam import load_edvam  # noqa: E402,F401


def head_relative_gaze_deg(session: dict) -> np.ndarray:
    """(n,) angle between the camera's forward vector and the direction camera -> gaze point."""
    return angle_between_deg(session["forward"], session["gaze_point"] - session["camera"])


def edvam_quality(session: dict, min_confidence: float = 0.6) -> dict:
    """Data loss (share of samples under ``min_confidence``) and head-relative gaze eccentricity stats."""
    ang = head_relative_gaze_deg(session)
    good = (session["confidence"] >= min_confidence) & np.isfinite(ang)
    q = lambda v: [float(x) for x in np.percentile(v, [25, 50, 75, 95])] if len(v) else [float("nan")] * 4
    dt = np.diff(session["t_s"])
    return {"n_samples": int(len(ang)), "rate_hz": float(1.0 / np.median(dt)) if len(dt) else float("nan"),
            "data_loss_pct": float(100.0 * (1 - good.mean())) if len(ang) else 100.0,
            "eccentricity_deg_p25_p50_p75_p95_confident": q(ang[good]),
            "eccentricity_deg_p25_p50_p75_p95_low_confidence": q(ang[~good & np.isfinite(ang)])}
