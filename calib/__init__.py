"""gaze3d.calib: calibration and gaze data quality.

* :mod:`.geometry`: viewer window on the screen (multi-monitor, OS scaling),
  tracker display area, tracker coordinates <-> viewport pixels <-> degrees;
* :mod:`.targets`: 5/9/13-point layouts, randomised order, schedules;
* :mod:`.validation`: accuracy, precision (RMS-S2S, SD, BCEA on fixation samples), data loss, pass/fail,
  JSON report and PNG plot;
* :mod:`.correction`: robust affine / poly2 correction, held-out evaluation,
  applied to live samples and replayed recordings;
* :mod:`.drift`: single-target drift check with alert;
* :mod:`.device`: Tobii screen-based calibration through the tracker process,
  Pupil Core calibration through Pupil Remote;
* :mod:`.vr`: 3D targets, angular error from the eye origin; EDVAM reader;
* :mod:`.profiles`: per annotator + display + tracker profiles in the user
  config folder, and the calibration a recording was made with;
* :mod:`.timeline`: which correction was in force when (live and replay alike);
* :mod:`.session`: headless sessions driven by the gaze simulator, target events.

See ``docs/calibration.md``.
"""
from .correction import Correction, fit_correction, fit_from_report, holdout_accuracy
from .geometry import Monitor, ScreenSetup, TrackerDisplayArea, ViewerWindow
from .profiles import Profile, ProfileStore
from .targets import TargetPresentation, target_layout
from .validation import GazeData, ValidationReport, ValidationSettings, validate

__all__ = ["Correction", "fit_correction", "fit_from_report", "holdout_accuracy", "Monitor", "ScreenSetup",
           "TrackerDisplayArea", "ViewerWindow", "Profile", "ProfileStore", "TargetPresentation",
           "target_layout", "GazeData", "ValidationReport", "ValidationSettings", "validate"]
