"""Drift check during a session: one target on demand, alert when the offset exceeds a threshold."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, List, Optional

from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError

from .correction import Correction
from .targets import TargetPresentation
from .validation import GazeData, ValidationSettings, validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftResult:
    """Offset on the drift target: accuracy (deg), signed offset (deg, x right / y down), alert."""

    x: float
    y: float
    accuracy_deg: float
    offset_x_deg: float
    offset_y_deg: float
    precision_rms_deg: float
    n_valid: int
    threshold_deg: float
    alert: bool

    @property
    def message(self) -> str:
        state = "DRIFT ALERT" if self.alert else "drift ok"
        return (f"{state}: offset {self.accuracy_deg:.2f}° (x {self.offset_x_deg:+.2f}°, y "
                f"{self.offset_y_deg:+.2f}°) at target ({self.x:.2f}, {self.y:.2f}), threshold "
                f"{self.threshold_deg:.2f}°")

    def to_dict(self) -> dict:
        return {**self.__dict__, "message": self.message}


def check_drift(data: GazeData, presentation: TargetPresentation, display: Optional[DisplayGeometry] = None,
                threshold_deg: float = 1.0, settings: Optional[ValidationSettings] = None,
                correction: Optional[Correction] = None) -> DriftResult:
    """Measure the offset on one drift target.

    Parameters
    ----------
    data : GazeData
        Samples around the drift target's presentation (raw tracker coordinates).
    presentation : TargetPresentation
    display : DisplayGeometry, optional
    threshold_deg : float
        Alert when the mean angular offset exceeds this.
    settings : ValidationSettings, optional
        Sample selection window and minimum sample count.
    correction : Correction, optional
        The session's current correction, applied first: the check then
        measures the drift left after it.

    Raises
    ------
    InsufficientDataError
        Too few valid samples on the target.
    """
    if not (threshold_deg > 0):
        raise InputError(f"threshold_deg: expected a positive angle, got {threshold_deg!r}")
    if correction is not None:
        data = GazeData(data.t_s, correction.apply(data.xy), data.valid, data.origin_mm, data.rate_hz)
    report = validate(data, [presentation], display, settings)
    report.raise_for_insufficient()
    t = report.targets[0]
    return DriftResult(t.x, t.y, t.accuracy_deg, t.offset_x_deg, t.offset_y_deg, t.precision_rms_deg,
                       t.n_valid, float(threshold_deg), bool(t.accuracy_deg > threshold_deg))


class DriftMonitor:
    """Keeps the drift checks of a session and calls ``on_alert`` when one exceeds the threshold.

    Thread-safety: not thread-safe; call from the viewer's thread.
    """

    def __init__(self, threshold_deg: float = 1.0, on_alert: Optional[Callable[[DriftResult], None]] = None,
                 display: Optional[DisplayGeometry] = None, correction: Optional[Correction] = None,
                 settings: Optional[ValidationSettings] = None):
        if not (float(threshold_deg) > 0):
            raise InputError(f"threshold_deg: expected a positive angle, got {threshold_deg!r}")
        self.threshold_deg = float(threshold_deg)
        self.settings = settings
        self.on_alert = on_alert
        self.display = display
        self.correction = correction
        self.history: List[DriftResult] = []

    def check(self, data: GazeData, presentation: TargetPresentation) -> DriftResult:
        r = check_drift(data, presentation, self.display, self.threshold_deg, self.settings, self.correction)
        self.history.append(r)
        if r.alert:
            log.warning(r.message)
            if self.on_alert is not None:
                self.on_alert(r)
        return r
