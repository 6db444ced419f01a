"""The labeling session's calibration: active profile, live correction, on-demand drift checks.

:class:`SessionCalibration` belongs to a :class:`~gaze3d.viewer.session.LabelingSession`:

* **profile**: the correction of the selected profile (``gaze3d view --profile
  NAME``, key ``p`` cycles through the profiles and "none") is applied to
  every tracker sample before it reaches the attention engine. Changes are
  kept as a :class:`gaze3d.calib.timeline.CorrectionTimeline` on the tracker
  clock, each sample corrected by the entry in force at its own time stamp,
  and the whole timeline goes to the recording's ``calibration`` metadata
  (``TrackerControl.set_meta`` when the tracker records; the local recording
  otherwise), so a replay corrects each sample exactly as it was live.
  Mouse-as-gaze samples are never corrected (a local recording, which only
  holds those, therefore stores identity corrections with the profile names).
* **drift check** (key ``d``): one target is shown at the viewport centre for
  ``dwell_s``; the raw samples collected meanwhile go to
  :class:`gaze3d.calib.drift.DriftMonitor` with the correction in force; an
  offset above the threshold puts ``DRIFT ALERT`` in the status line.
  ``calib.target`` / ``calib.end`` events and a ``drift_check`` event with the
  result go to the recording.

Thread-safety: not thread-safe; driven from the render thread by the session.
"""
from __future__ import annotations

import logging
from typing import List, Optional

import numpy as np

from gaze3d.calib.correction import Correction
from gaze3d.calib.drift import DriftMonitor
from gaze3d.calib.geometry import ScreenSetup
from gaze3d.calib.profiles import META_KEY, ProfileStore
from gaze3d.calib.session import END_EVENT, target_event
from gaze3d.calib.targets import TargetPresentation
from gaze3d.calib.timeline import CorrectionTimeline
from gaze3d.calib.validation import GazeData, InsufficientDataError, ValidationSettings
from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError

log = logging.getLogger(__name__)


class SessionCalibration:
    """Profile, correction timeline and drift checks of one labeling session.

    Parameters
    ----------
    session : LabelingSession
        Gives the clock (``now_ns``), the tracker link, the sink (``sink``),
        ``record_event`` and ``say`` (the status line).
    profile : Profile or str, optional
        Initial profile (or its name); None: no correction.
    store : ProfileStore, optional
        Where profiles are listed and loaded (default: the user config folder).
    display : DisplayGeometry, optional
        Degrees for the drift check (default: the profile's screen, else the core default).
    drift_threshold_deg : float
        Alert above this offset.
    drift_dwell_s : float
        How long the drift target stays on screen.
    """

    def __init__(self, session, profile=None, store=None, display=None, drift_threshold_deg: float = 1.0,
                 drift_dwell_s: float = 1.5):
        if not (float(drift_dwell_s) > 0.3):
            raise InputError(f"drift_dwell_s: expected more than 0.3 s, got {drift_dwell_s!r}")
        self.session = session
        self.store = store if store is not None else ProfileStore()
        self._display = display
        self.timeline = CorrectionTimeline()       # what live tracker samples get
        self._stored = CorrectionTimeline()        # what the recording says they got
        self.profile = None
        self.drift_dwell_s = float(drift_dwell_s)
        self.monitor = DriftMonitor(drift_threshold_deg, on_alert=self._on_alert)
        self.drift: Optional[dict] = None          # the check in progress
        self.last_drift = None                     # DriftResult of the last finished check
        self.select(profile)

    # ------------------------------------------------------------- profiles
    def profile_names(self) -> List[str]:
        return self.store.names()

    @property
    def display(self):
        if self._display is not None:
            return self._display
        screen = getattr(self.profile, "screen", None)
        if screen and "monitors" in screen:
            try:
                return ScreenSetup.from_dict(screen).display()
            except InputError as exc:
                log.warning("profile %s: screen setup unusable (%s); using the default display",
                            self.profile.name, exc)
        return DisplayGeometry()

    def select(self, profile) -> None:
        """Make ``profile`` (a Profile, a name, or None for no correction) the active one, from now on."""
        if isinstance(profile, str):
            profile = self.store.load(profile)
        s = self.session
        t = s.now_ns()
        self.timeline.set(t, profile)
        self._stored.set(t, profile, None if s.tracker is not None else Correction())
        self.profile = profile
        self.monitor.correction = self.timeline.current
        self._store_meta()
        if profile is not None:
            s.say(f"profile {profile.name} ({self.timeline.current.kind})")

    def cycle(self) -> Optional[str]:
        """Select the next profile of the store (after the last: none). Returns its name."""
        names: List[Optional[str]] = [None] + self.profile_names()
        cur = self.profile.name if self.profile is not None else None
        nxt = names[(names.index(cur) + 1) % len(names)] if cur in names else names[min(1, len(names) - 1)]
        self.select(nxt)
        if nxt is None:
            self.session.say("no profile (gaze not corrected)")
        return nxt

    def _store_meta(self) -> None:
        s = self.session
        meta = self._stored.to_meta()
        s.sink.meta(META_KEY, meta if s.sink.from_tracker else
                    {**meta, "note": "mouse as gaze: samples not corrected"})

    def correct(self, t_ns: np.ndarray, xy: np.ndarray, from_tracker: np.ndarray) -> np.ndarray:
        """(n, 2) corrected display coordinates: tracker samples by the timeline, mouse samples as they are."""
        out = np.array(xy, dtype=np.float64, copy=True)
        if from_tracker.any() and len(self.timeline):
            out[from_tracker] = self.timeline.apply(t_ns[from_tracker], out[from_tracker])
        return out

    # --------------------------------------------------------------- drift
    def default_target(self) -> tuple:
        vp = self.session.viewport
        return float(vp[0] + vp[2] / 2), float(vp[1] + vp[3] / 2)

    def start_drift_check(self, x: Optional[float] = None, y: Optional[float] = None) -> dict:
        """Show one target (display coordinates; default the viewport centre) and start collecting."""
        if x is None or y is None:
            x, y = self.default_target()
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise InputError(f"drift target: expected display coordinates in [0, 1], got ({x}, {y})")
        s = self.session
        t_on = s.now_ns()
        self.drift = {"x": float(x), "y": float(y), "t_on": t_on,
                      "t_end": t_on + int(self.drift_dwell_s * 1e9), "rows": []}
        s.record_event(target_event(TargetPresentation(0, float(x), float(y), 0.0, 0.0)), t_on)
        s.say("drift check: look at the target")
        return self.drift

    @property
    def drift_active(self) -> bool:
        return self.drift is not None

    def on_drift_target(self, t_ns: np.ndarray) -> np.ndarray:
        """(n,) bool: samples taken while the drift target was on screen."""
        d = self.drift
        if d is None:
            return np.zeros(len(t_ns), dtype=bool)
        return np.asarray(t_ns) >= d["t_on"]

    def collect(self, t_ns: np.ndarray, xy: np.ndarray, valid: np.ndarray) -> None:
        """Keep the raw (uncorrected) samples of the drift check in progress."""
        d = self.drift
        if d is None:
            return
        sel = t_ns >= d["t_on"]
        if sel.any():
            d["rows"].append((t_ns[sel], xy[sel], valid[sel]))

    def poll(self, tail_s: float = 0.1):
        """Finish the drift check once its dwell (plus ``tail_s`` for samples in flight) is over.

        Returns the :class:`~gaze3d.calib.drift.DriftResult` when it finished now, else None.
        """
        d = self.drift
        s = self.session
        if d is None or s.now_ns() < d["t_end"] + int(tail_s * 1e9):
            return None
        self.drift = None
        s.record_event({"type": END_EVENT}, d["t_end"])
        if d["rows"]:
            t = np.concatenate([r[0] for r in d["rows"]])
            xy = np.concatenate([r[1] for r in d["rows"]])
            valid = np.concatenate([r[2] for r in d["rows"]])
        else:
            t, xy, valid = np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0, bool)
        dwell = (d["t_end"] - d["t_on"]) / 1e9
        data = GazeData((t - d["t_on"]) / 1e9, xy, valid)
        pres = TargetPresentation(0, d["x"], d["y"], 0.0, dwell)
        self.monitor.display = self.display
        self.monitor.settings = ValidationSettings(window_s=(min(0.5, 0.4 * dwell), dwell))
        self.monitor.correction = self.timeline.current
        try:
            r = self.monitor.check(data, pres)
        except InsufficientDataError as exc:
            s.say(f"drift check failed: {exc}")
            s.record_event({"type": "drift_check", "error": str(exc)})
            return None
        self.last_drift = r
        s.record_event({"type": "drift_check", **r.to_dict(), "profile": self.timeline.profile_name})
        if not r.alert:
            s.say(r.message)
        return r

    def _on_alert(self, result) -> None:
        self.session.say(result.message)

    # -------------------------------------------------------------- status
    def status_text(self) -> str:
        """``profile NAME (kind)`` or ``no profile``, plus a standing drift alert."""
        if self.profile is None:
            text = "no profile"
        else:
            text = f"profile {self.profile.name} ({self.timeline.current.kind})"
            if self.session.tracker is None:
                text += ", mouse not corrected"
        r = self.last_drift
        if r is not None and r.alert:
            text += f" | DRIFT {r.accuracy_deg:.2f} deg"
        return text
