"""What ``gaze3d calibrate ...`` does; the argument parser is in ``gaze3d/cli/calibrate.py``.

These functions take parsed values (tuples of numbers, a :class:`ScreenSetup`,
:class:`ValidationSettings`, a :class:`GazeInput`), never an argparse
namespace: the command line is one caller, tests and scripts are others.

Exit codes: 0 success; 1 validation below its thresholds or drift alert;
2 bad input (one-line error, raised as :class:`~gaze3d.errors.Gaze3DError`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError
from gaze3d.protocol import TOPIC_GAZE_2D
from gaze3d.recording import Recording

from ._io import atomic_write_text
from .correction import Correction, fit_from_report, holdout_accuracy
from .device import check_address, pupil_calibration, tracker_calibration, tracker_pupil_calibration
from .drift import check_drift
from .geometry import Monitor, ScreenSetup, ViewerWindow
from .profiles import Profile, ProfileNotFoundError, ProfileStore
from .session import presentations_from_events, simulate_validation
from .targets import TargetPresentation, inner_ring, target_layout
from .validation import GazeData, ValidationSettings, validate


def screen_setup(screen_mm: Sequence[float], screen_px: Sequence[float], scale: float = 1.0,
                 distance_mm: float = 650.0, viewer_window: Optional[Sequence[float]] = None) -> ScreenSetup:
    """One monitor ``screen_mm (2,)`` mm and ``screen_px (2,)`` pixels, OS ``scale``, eye distance, viewer window.

    ``viewer_window (4,)``: the viewer's render area ``x, y, w, h`` on the desktop, logical pixels.
    """
    w_mm, h_mm = screen_mm
    w_px, h_px = screen_px
    mon = Monitor("primary", 0.0, 0.0, int(w_px), int(h_px), float(w_mm), float(h_mm), float(scale))
    return ScreenSetup([mon], "primary", ViewerWindow(*viewer_window) if viewer_window else None, float(distance_mm))


@dataclass(frozen=True)
class GazeInput:
    """Where a calibration command's gaze comes from: the simulator (``headless``) or a recording.

    ``sim_offset (2,)``: simulated systematic error in degrees (x right, y down);
    the other ``sim_*`` fields as in :func:`.session.simulate_validation`.
    """

    headless: bool = False
    recording: Optional[str] = None
    sim_offset: Tuple[float, float] = (0.0, 0.0)
    sim_precision: float = 0.05
    sim_blink_rate: float = 0.2
    sim_dropout: float = 0.0
    dwell: float = 1.5
    seed: int = 0


def session_data(source: GazeInput, display: DisplayGeometry, n_points: int,
                 layout: Optional[np.ndarray] = None) -> Tuple[GazeData, List[TargetPresentation]]:
    """Gaze and target schedule from the simulator (``headless``) or a recording."""
    if source.headless:
        _check_sim_offset(source.sim_offset, display, target_layout(n_points) if layout is None else layout)
        return simulate_validation(n_points, display=display, offset_deg=tuple(source.sim_offset),
                                   precision_rms_deg=float(source.sim_precision), dwell_s=float(source.dwell),
                                   seed=int(source.seed), blink_rate_hz=float(source.sim_blink_rate),
                                   dropout_rate=float(source.sim_dropout), layout=layout)
    if source.recording:
        with Recording(source.recording) as rec:
            cols = rec.samples()
            if len(cols["t_host_ns"]) == 0:
                raise InputError(f"{source.recording}: no {TOPIC_GAZE_2D} samples")
            t0 = int(cols["t_host_ns"][0])
            data = GazeData.from_columns(cols, t0)
            return data, presentations_from_events(rec.events(), t0)
    raise InputError("no gaze: pass --headless (simulated annotator), --recording FILE "
                     "(a session with calib.target events) or, for validate, --tracker ADDRESS "
                     "(targets on screen, gaze from a running tracker)")


#: the largest angle from straight ahead a simulated gaze sample may reach: the simulator projects
#: degrees onto the screen with tan(), which grows without bound towards 90 deg and wraps beyond
MAX_SIM_GAZE_DEG = 80.0


def _check_sim_offset(offset, display: DisplayGeometry, layout) -> None:
    """``--sim-offset``: every target plus the offset must stay within ``MAX_SIM_GAZE_DEG`` of straight ahead."""
    dx, dy = (float(v) for v in offset)
    reach = np.abs(display.norm_to_deg(np.asarray(layout, dtype=np.float64).reshape(-1, 2))).max(axis=0)
    limit = np.maximum(MAX_SIM_GAZE_DEG - reach, 0.0)
    if not (np.isfinite([dx, dy]).all() and abs(dx) <= limit[0] and abs(dy) <= limit[1]):
        raise InputError(f"--sim-offset {dx:g},{dy:g}: expected at most {limit[0]:.1f},{limit[1]:.1f} deg in "
                         f"absolute value on this display (targets up to {reach[0]:.1f},{reach[1]:.1f} deg off "
                         f"centre; the simulated gaze must stay within {MAX_SIM_GAZE_DEG:g} deg)")


def _apply(data: GazeData, corr: Correction) -> GazeData:
    return GazeData(data.t_s, corr.apply(data.xy), data.valid, data.origin_mm, data.rate_hz)


def print_targets(report) -> None:
    """One line per measured target (``validate``, also on screen)."""
    for t in report.targets:
        if t.error is None:
            print(f"  target {t.index:2d} ({t.x:.2f}, {t.y:.2f}): accuracy {t.accuracy_deg:.3f} deg, "
                  f"RMS-S2S {t.precision_rms_deg:.4f} deg, loss {t.data_loss_pct:.1f}%"
                  f"{f', {t.n_spikes} spike(s) removed' if t.n_spikes else ''}{'' if t.passed else '  FAIL'}")


def print_report(report, prefix: str = "") -> None:
    s = report.summary()
    print(f"{prefix}accuracy {s['accuracy_deg']:.3f} deg, offset ({s['offset_x_deg']:+.3f}, "
          f"{s['offset_y_deg']:+.3f}) deg, precision RMS-S2S {s['precision_rms_deg']:.4f} deg, "
          f"SD {s['precision_sd_deg']:.4f} deg, BCEA {s['precision_bcea_deg2']:.4f} deg^2 "
          f"(fixation samples, {s['n_spikes']} spike(s) removed; all samples: RMS-S2S "
          f"{s['precision_rms_raw_deg']:.4f} deg), data loss {s['data_loss_pct']:.1f}%: "
          f"{'PASS' if report.passed else 'FAIL'}")


def write_outputs(report, out: Optional[str], stem: str, title: str) -> None:
    if not out:
        return
    out = Path(out)
    report.save_json(out / f"{stem}.json")
    report.plot(out / f"{stem}.png", title=title)
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")


def cmd_validate(source: GazeInput, screen: ScreenSetup, settings: ValidationSettings, *, points: int = 9,
                 profile: Optional[str] = None, out: Optional[str] = None) -> int:
    """Validate ``points`` targets; 0 pass, 1 below the thresholds (the report is printed and written to ``out``)."""
    display = screen.display()
    store = ProfileStore()
    profile = store.load(profile) if profile else None
    data, pres = session_data(source, display, int(points))
    if profile is not None:
        data = _apply(data, profile.get_correction())
    report = validate(data, pres, display, settings)
    print_targets(report)
    print_report(report, f"validation ({len(pres)} targets{', profile ' + profile.name if profile else ''}): ")
    write_outputs(report, out, "validation", "Validation")
    report.raise_for_insufficient()
    return 0 if report.passed else 1


def cmd_correct(source: GazeInput, screen: ScreenSetup, settings: ValidationSettings, *, points: int = 9,
                kind: str = "affine", holdout: Optional[Sequence[int]] = None, profile: Optional[str] = None,
                annotator: Optional[str] = None, display_name: Optional[str] = None,
                tracker_name: Optional[str] = None, out: Optional[str] = None) -> int:
    """Fit a ``kind`` correction; print held-out accuracy before/after; save it in ``profile`` and ``out``."""
    display = screen.display()
    n = int(points)
    data, pres = session_data(source, display, n)
    report = validate(data, pres, display, settings)
    report.raise_for_insufficient()
    holdout = list(holdout) if holdout else (inner_ring(n) or None)
    ev = holdout_accuracy(report, kind, holdout)
    how = f"targets {holdout}" if holdout else "leave-one-target-out"
    print(f"held-out accuracy ({how}, {kind}): before {ev['before_deg']:.3f} deg, "
          f"after {ev['after_deg']:.3f} deg")
    corr = fit_from_report(report, kind)
    after = validate(_apply(data, corr), pres, display, settings)
    print_report(report, "before correction: ")
    print_report(after, "after correction (all targets, in-sample): ")
    if out:
        out = Path(out)
        atomic_write_text(out / "correction.json", json.dumps(
            {"correction": corr.to_dict(), "holdout": ev, "before": report.summary(),
             "after": after.summary()}, indent=2) + "\n")
        write_outputs(report, out, "validation_before", "Before correction")
        write_outputs(after, out, "validation_after", "After correction")
    if profile:
        store = ProfileStore()
        name = profile
        try:
            profile = store.load(name)
        except ProfileNotFoundError:
            profile = Profile(name, annotator=annotator or "", display=display_name or "",
                              tracker=tracker_name or "")
        for field_name, value in (("annotator", annotator), ("display", display_name),
                                  ("tracker", tracker_name)):
            if value:
                setattr(profile, field_name, value)
        profile.screen = screen.to_dict()
        profile.correction = corr.to_dict()
        profile.validation = {"before": report.summary(), "holdout": {k: ev[k] for k in
                                                                        ("kind", "before_deg", "after_deg")}}
        path = store.save(profile)
        print(f"saved correction in profile {profile.name!r} ({path})")
    return 0


def cmd_drift(source: GazeInput, screen: ScreenSetup, settings: ValidationSettings, *,
              target: Sequence[float] = (0.5, 0.5), threshold: float = 1.0, profile: Optional[str] = None) -> int:
    """Single-target drift check at ``target (2,)`` (tracker coordinates); 1 when above ``threshold`` degrees."""
    display = screen.display()
    if not (0 <= target[0] <= 1 and 0 <= target[1] <= 1):
        raise InputError(f"--target: expected tracker coordinates in [0, 1], got {tuple(target)}")
    store = ProfileStore()
    profile = store.resolve(profile)
    data, pres = session_data(source, display, 1, layout=np.array([target], dtype=float))
    corr = profile.get_correction() if profile is not None else None
    r = check_drift(data, pres[0], display, float(threshold), settings, corr)
    print(r.message + (f" (profile {profile.name!r})" if profile else ""))
    return 1 if r.alert else 0


def cmd_profiles(action: str, name: Optional[str] = None) -> int:
    """``list``, ``show NAME``, ``select NAME`` or ``delete NAME``."""
    store = ProfileStore()
    if action == "list":
        sel = store.selected_name()
        names = store.names()
        if not names:
            print(f"no profiles in {store.root}")
        for name in names:
            p = store.load(name)
            print(f"{'*' if name == sel else ' '} {name}  annotator={p.annotator!r} display={p.display!r} "
                  f"tracker={p.tracker!r} correction={p.correction.get('kind')}")
        return 0
    if not name:
        raise InputError(f"profiles {action}: expected a profile NAME")
    if action == "show":
        print(json.dumps(store.load(name).to_dict(), indent=2))
    elif action == "select":
        store.select(name)
        print(f"selected profile {name!r}")
    elif action == "delete":
        store.delete(name)
        print(f"deleted profile {name!r}")
    return 0


def cmd_device(*, tracker: Optional[str] = None, pupil_remote: Optional[str] = None, pupil: bool = False,
               points: int = 5, settle: float = 0.7, duration: float = 10.0) -> int:
    """The device's own calibration: Tobii through the tracker, Pupil Capture through it or Pupil Remote."""
    if pupil_remote is not None:
        r = pupil_calibration(check_address(pupil_remote, "--pupil-remote"), duration_s=float(duration))
        print(json.dumps(r))
        return 0
    if not tracker:
        raise InputError("device: pass --tracker CTRL_ADDR (tracker control socket) or --pupil-remote ADDR")
    tracker = check_address(tracker, "--tracker")
    if pupil:
        print(json.dumps(tracker_pupil_calibration(tracker, duration_s=float(duration))))
        return 0
    layout = target_layout(int(points))
    result = tracker_calibration(tracker, layout, settle_s=float(settle))
    print(json.dumps(result))
    return 0 if result.get("ok") else 1
