"""What ``gaze3d calibrate ...`` does; the argument parser is in ``gaze3d/cli/calibrate.py``.

Exit codes: 0 success; 1 validation below its thresholds or drift alert;
2 bad input (one-line error, raised as :class:`~gaze3d.errors.Gaze3DError`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError

from .correction import Correction, fit_from_report, holdout_accuracy
from .geometry import Monitor, ScreenSetup, ViewerWindow
from .profiles import Profile, ProfileNotFoundError, ProfileStore
from .targets import TargetPresentation, inner_ring, target_layout
from .validation import GazeData, ValidationSettings, validate


def parse_floats(text: Optional[str], n: int, name: str) -> Optional[Tuple[float, ...]]:
    """``"1,2"`` -> (1.0, 2.0), with a one-line error naming the option."""
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        vals = ()
    if len(vals) != n or not all(np.isfinite(vals)):
        raise InputError(f"{name}: expected {n} comma-separated numbers, got {text!r}")
    return vals


def screen_from_args(args) -> ScreenSetup:
    """The screen setup of ``--screen-mm/--screen-px/--scale/--distance-mm/--viewer-window``."""
    w_mm, h_mm = parse_floats(args.screen_mm, 2, "--screen-mm")
    w_px, h_px = parse_floats(args.screen_px, 2, "--screen-px")
    mon = Monitor("primary", 0.0, 0.0, int(w_px), int(h_px), w_mm, h_mm, float(args.scale))
    win = parse_floats(args.viewer_window, 4, "--viewer-window")
    return ScreenSetup([mon], "primary", ViewerWindow(*win) if win else None, float(args.distance_mm))


def settings_from_args(args) -> ValidationSettings:
    return ValidationSettings(window_s=parse_floats(args.window_s, 2, "--window-s"),
                              min_valid_samples=int(args.min_samples),
                              accuracy_max_deg=float(args.accuracy_max),
                              precision_rms_max_deg=float(args.precision_max))


def session_data(args, display: DisplayGeometry, n_points: int,
                 layout: Optional[np.ndarray] = None) -> Tuple[GazeData, List[TargetPresentation]]:
    """Gaze and target schedule from the simulator (``--headless``) or a recording."""
    if args.headless:
        from .session import simulate_validation
        offset = parse_floats(args.sim_offset, 2, "--sim-offset")
        return simulate_validation(n_points, display=display, offset_deg=offset,
                                   precision_rms_deg=float(args.sim_precision), dwell_s=float(args.dwell),
                                   seed=int(args.seed), blink_rate_hz=float(args.sim_blink_rate),
                                   dropout_rate=float(args.sim_dropout), layout=layout)
    if args.recording:
        from gaze3d.recording import Recording
        from .session import presentations_from_events
        with Recording(args.recording) as rec:
            cols = rec.samples()
            if len(cols["t_host_ns"]) == 0:
                raise InputError(f"{args.recording}: no gaze.2d samples")
            t0 = int(cols["t_host_ns"][0])
            data = GazeData.from_columns(cols, t0)
            return data, presentations_from_events(rec.events(), t0)
    raise InputError("no gaze: pass --headless (simulated annotator), --recording FILE "
                     "(a session with calib.target events) or, for validate, --tracker ADDRESS "
                     "(targets on screen, gaze from a running tracker)")


def _apply(data: GazeData, corr: Correction) -> GazeData:
    return GazeData(data.t_s, corr.apply(data.xy), data.valid, data.origin_mm, data.rate_hz)


def print_targets(report) -> None:
    """One line per measured target (``validate``, also on screen)."""
    for t in report.targets:
        if t.error is None:
            print(f"  target {t.index:2d} ({t.x:.2f}, {t.y:.2f}): accuracy {t.accuracy_deg:.3f} deg, "
                  f"RMS-S2S {t.precision_rms_deg:.4f} deg, loss {t.data_loss_pct:.1f}%"
                  f"{f', {t.n_spikes} spike(s) removed' if t.n_spikes else ''}{'' if t.passed else '  FAIL'}")


def _print_report(report, prefix: str = "") -> None:
    s = report.summary()
    print(f"{prefix}accuracy {s['accuracy_deg']:.3f} deg, offset ({s['offset_x_deg']:+.3f}, "
          f"{s['offset_y_deg']:+.3f}) deg, precision RMS-S2S {s['precision_rms_deg']:.4f} deg, "
          f"SD {s['precision_sd_deg']:.4f} deg, BCEA {s['precision_bcea_deg2']:.4f} deg^2 "
          f"(fixation samples, {s['n_spikes']} spike(s) removed; all samples: RMS-S2S "
          f"{s['precision_rms_raw_deg']:.4f} deg), data loss {s['data_loss_pct']:.1f}%: "
          f"{'PASS' if report.passed else 'FAIL'}")


def _write_outputs(report, out: Optional[str], stem: str, title: str) -> None:
    if not out:
        return
    out = Path(out)
    report.save_json(out / f"{stem}.json")
    report.plot(out / f"{stem}.png", title=title)
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")


def cmd_validate(args) -> int:
    screen = screen_from_args(args)
    display = screen.display()
    store = ProfileStore()
    profile = store.load(args.profile) if args.profile else None
    data, pres = session_data(args, display, int(args.points))
    if profile is not None:
        data = _apply(data, profile.get_correction())
    report = validate(data, pres, display, settings_from_args(args))
    print_targets(report)
    _print_report(report, f"validation ({len(pres)} targets{', profile ' + profile.name if profile else ''}): ")
    _write_outputs(report, args.out, "validation", "Validation")
    report.raise_for_insufficient()
    return 0 if report.passed else 1


def cmd_correct(args) -> int:
    screen = screen_from_args(args)
    display = screen.display()
    n = int(args.points)
    data, pres = session_data(args, display, n)
    report = validate(data, pres, display, settings_from_args(args))
    report.raise_for_insufficient()
    holdout = [int(v) for v in args.holdout.split(",")] if args.holdout else (inner_ring(n) or None)
    ev = holdout_accuracy(report, args.kind, holdout)
    how = f"targets {holdout}" if holdout else "leave-one-target-out"
    print(f"held-out accuracy ({how}, {args.kind}): before {ev['before_deg']:.3f} deg, "
          f"after {ev['after_deg']:.3f} deg")
    corr = fit_from_report(report, args.kind)
    after = validate(_apply(data, corr), pres, display, settings_from_args(args))
    _print_report(report, "before correction: ")
    _print_report(after, "after correction (all targets, in-sample): ")
    if args.out:
        out = Path(args.out)
        from ._io import atomic_write_text
        atomic_write_text(out / "correction.json", json.dumps(
            {"correction": corr.to_dict(), "holdout": ev, "before": report.summary(),
             "after": after.summary()}, indent=2) + "\n")
        _write_outputs(report, out, "validation_before", "Before correction")
        _write_outputs(after, out, "validation_after", "After correction")
    if args.profile:
        store = ProfileStore()
        try:
            profile = store.load(args.profile)
        except ProfileNotFoundError:
            profile = Profile(args.profile, annotator=args.annotator or "", display=args.display_name or "",
                              tracker=args.tracker_name or "")
        for field_name, value in (("annotator", args.annotator), ("display", args.display_name),
                                  ("tracker", args.tracker_name)):
            if value:
                setattr(profile, field_name, value)
        profile.screen = screen.to_dict()
        profile.correction = corr.to_dict()
        profile.validation = {"before": report.summary(), "holdout": {k: ev[k] for k in
                                                                        ("kind", "before_deg", "after_deg")}}
        path = store.save(profile)
        print(f"saved correction in profile {profile.name!r} ({path})")
    return 0


def cmd_drift(args) -> int:
    from .drift import check_drift
    screen = screen_from_args(args)
    display = screen.display()
    target = parse_floats(args.target, 2, "--target")
    if not (0 <= target[0] <= 1 and 0 <= target[1] <= 1):
        raise InputError(f"--target: expected tracker coordinates in [0, 1], got {args.target!r}")
    store = ProfileStore()
    profile = store.resolve(args.profile)
    data, pres = session_data(args, display, 1, layout=np.array([target]))
    corr = profile.get_correction() if profile is not None else None
    r = check_drift(data, pres[0], display, float(args.threshold), settings_from_args(args), corr)
    print(r.message + (f" (profile {profile.name!r})" if profile else ""))
    return 1 if r.alert else 0


def cmd_profiles(args) -> int:
    store = ProfileStore()
    if args.action == "list":
        sel = store.selected_name()
        names = store.names()
        if not names:
            print(f"no profiles in {store.root}")
        for name in names:
            p = store.load(name)
            print(f"{'*' if name == sel else ' '} {name}  annotator={p.annotator!r} display={p.display!r} "
                  f"tracker={p.tracker!r} correction={p.correction.get('kind')}")
        return 0
    if not args.name:
        raise InputError(f"profiles {args.action}: expected a profile NAME")
    if args.action == "show":
        print(json.dumps(store.load(args.name).to_dict(), indent=2))
    elif args.action == "select":
        store.select(args.name)
        print(f"selected profile {args.name!r}")
    elif args.action == "delete":
        store.delete(args.name)
        print(f"deleted profile {args.name!r}")
    return 0


def cmd_device(args) -> int:
    from .device import pupil_calibration, tracker_calibration, tracker_pupil_calibration
    if args.pupil_remote:
        r = pupil_calibration(args.pupil_remote, duration_s=float(args.duration))
        print(json.dumps(r))
        return 0
    if not args.tracker:
        raise InputError("device: pass --tracker CTRL_ADDR (tracker control socket) or --pupil-remote ADDR")
    if args.pupil:
        print(json.dumps(tracker_pupil_calibration(args.tracker, duration_s=float(args.duration))))
        return 0
    layout = target_layout(int(args.points))
    result = tracker_calibration(args.tracker, layout, settle_s=float(args.settle))
    print(json.dumps(result))
    return 0 if result.get("ok") else 1
