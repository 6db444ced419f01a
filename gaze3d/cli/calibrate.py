"""``gaze3d calibrate``: validation, correction, drift check, profiles, device calibration.

The work is done in ``gaze3d.calib.commands`` (imported inside ``run``), which
takes parsed values; this module parses (shared options from :mod:`._args`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from gaze3d.errors import InputError
from gaze3d.protocol import TOPIC_GAZE_2D

from ._args import add_display, bounded_float, bounded_int, numbers, output_folder, positive_float, size_wxh


def _screen_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("screen")
    add_display(g, screen_px=True)
    g.add_argument("--scale", type=positive_float, default=1.0, help="OS display scaling (device pixel ratio)")
    g.add_argument("--viewer-window", type=numbers(4), metavar="X,Y,W,H",
                   help="viewer render area on the desktop, logical pixels (default: the whole display)")


def _session_args(p: argparse.ArgumentParser, points: bool = True) -> None:
    g = p.add_argument_group("gaze")
    if points:
        g.add_argument("--points", type=int, choices=(5, 9, 13), default=9, help="target layout (default 9)")
    g.add_argument("--headless", action="store_true", help="a simulated annotator instead of a person")
    g.add_argument("--recording", metavar="FILE", help="a recorded session with calib.target events")
    g.add_argument("--sim-offset", type=numbers(2), default=(0.0, 0.0), metavar="DX,DY",
                   help="simulated systematic error, degrees (x right, y down)")
    g.add_argument("--sim-precision", type=float, default=0.05, metavar="P",
                   help="simulated RMS sample-to-sample precision, degrees")
    g.add_argument("--sim-blink-rate", type=float, default=0.2, help="simulated blinks per second")
    g.add_argument("--sim-dropout", type=float, default=0.0, help="simulated share of lost samples")
    g.add_argument("--seed", type=_seed, default=0, help="simulation and target order seed (an integer >= 0)")
    g.add_argument("--dwell", type=_dwell, default=1.5,
                   help=f"seconds each target is shown, up to {MAX_DWELL_S:g} (default 1.5)")
    q = p.add_argument_group("quality")
    q.add_argument("--window-s", type=numbers(2), default=(0.5, 1.5), metavar="A,B",
                   help="sample selection window, seconds after target onset (default 0.5,1.5)")
    q.add_argument("--min-samples", type=int, default=10, help="valid samples a target needs (default 10)")
    q.add_argument("--accuracy-max", type=float, default=1.0, help="pass threshold, degrees (default 1.0)")
    q.add_argument("--precision-max", type=float, default=0.2,
                   help="pass threshold on RMS-S2S precision, degrees (default 0.2)")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "calibrate", help="validate gaze accuracy, fit a correction, check drift, manage profiles",
        description="Gaze data quality on this display: validation (accuracy, precision, data loss), "
                    "robust correction, drift checks, per-annotator profiles and device calibration. "
                    "Exit codes: 0 ok, 1 below thresholds / drift alert, 2 bad input.")
    sub = p.add_subparsers(dest="calib_command", metavar="ACTION")

    v = sub.add_parser("validate", help="show 5/9/13 targets and measure accuracy, precision, data loss")
    _session_args(v)
    _screen_args(v)
    v.add_argument("--profile", type=_profile_name,
                   help="apply this profile's correction first (validates the corrected gaze)")
    v.add_argument("--out", metavar="DIR", help="write validation.json and validation.png here")
    v.add_argument("--tracker", metavar="ADDRESS",
                   help="show the targets in a full-screen window to a person, gaze from this running "
                        "tracker (control address, or 'PUB,CTRL')")
    v.add_argument("--record", metavar="SESSION.gaze3d",
                   help="with --tracker: have the tracker record the session (samples + calib.target events)")
    v.add_argument("--window", type=size_wxh, default="1280x800", metavar="WxH", help=argparse.SUPPRESS)
    v.add_argument("--off-screen", action="store_true", help=argparse.SUPPRESS)
    v.add_argument("--show-file", metavar="FILE",
                   help="with --tracker: also write each shown target as JSON {index, x, y} to FILE "
                        "(atomically), for a simulated annotator or a mirror display")

    c = sub.add_parser("correct", help="fit an affine/poly2 correction; report held-out accuracy before/after")
    _session_args(c)
    _screen_args(c)
    c.add_argument("--kind", choices=("affine", "poly2"), default="affine",
                   help="correction model: affine (6 parameters) or poly2 (second-order polynomial)")
    c.add_argument("--holdout", type=_indices, metavar="I,J,...",
                   help="target indices held out of the fit (default: inner ring of 13 points, "
                        "else leave-one-target-out)")
    c.add_argument("--profile", type=_profile_name, help="save the correction in this profile (created if missing)")
    c.add_argument("--annotator", help="annotator of a new profile")
    c.add_argument("--display-name", help="display of a new profile")
    c.add_argument("--tracker-name", help="tracker of a new profile")
    c.add_argument("--out", metavar="DIR", help="write correction.json and before/after plots here")

    d = sub.add_parser("drift", help="single-target drift check; alert above the threshold")
    _session_args(d, points=False)
    _screen_args(d)
    d.add_argument("--target", type=numbers(2), default=(0.5, 0.5), metavar="X,Y", help="target, tracker coordinates")
    d.add_argument("--threshold", type=float, default=1.0, help="alert above this offset, degrees")
    d.add_argument("--profile", type=_profile_name,
                   help="profile whose correction is applied (default: the selected one)")

    pr = sub.add_parser("profiles", help="list, show, select or delete calibration profiles")
    pr.add_argument("action", choices=("list", "show", "select", "delete"), help="what to do")
    pr.add_argument("name", nargs="?", help="the profile (show, select, delete)")

    dv = sub.add_parser("device", help="the tracker's own calibration (Tobii via the tracker, Pupil Remote)")
    dv.add_argument("--tracker", metavar="CTRL_ADDR", help="control address of the tracker process")
    dv.add_argument("--points", type=int, choices=(5, 9, 13), default=5, help="target layout (default 5)")
    dv.add_argument("--settle", type=float, default=0.7, help="seconds on each point before collecting")
    dv.add_argument("--pupil", action="store_true",
                    help="the tracker runs the pupil source: start/stop Pupil Capture's calibration through it")
    dv.add_argument("--pupil-remote", metavar="ADDR",
                    help="talk to Pupil Remote directly, e.g. tcp://127.0.0.1:50020")
    dv.add_argument("--duration", type=float, default=10.0, help="Pupil calibration length, seconds")

    for parser in (p, v, c, d, pr, dv):
        _strict(parser)
    p.set_defaults(func=run, _calib_parser=p)
    return p


#: the longest a target may be shown (a person cannot hold a fixation much longer; the simulator
#: allocates samples for the whole session, so an absurd value would exhaust memory)
MAX_DWELL_S = 60.0
#: the largest --screen-px side (16K displays are 15360 px wide)
MAX_SCREEN_PX = 65535


def _strict(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` reject arguments it does not know itself.

    argparse hands a subcommand's unknown arguments up to the top-level parser, whose error then
    says ``gaze3d: error:``; refusing them here names the command like every other bad input.
    """
    parse_known = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        namespace, extras = parse_known(args, namespace)
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    parser.parse_known_args = parse_known_args


# numpy's generators take non-negative integers only
_seed = bounded_int(0)
_dwell = bounded_float(0.0, MAX_DWELL_S, low_open=True, what="seconds")


def _profile_name(text: str) -> str:
    # an empty name would silently mean "no profile" (or the selected one for drift)
    from gaze3d.calib.profiles import check_name

    try:
        return check_name(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("profile name: ", "")) from None


def _check_screen_px(args) -> None:
    """``--screen-px``: whole pixels (the shared parser accepts any positive numbers)."""
    w, h = args.screen_px
    if not all(v == int(v) and 1 <= v <= MAX_SCREEN_PX for v in (w, h)):
        raise InputError(f"--screen-px {w:g},{h:g}: expected two whole numbers of pixels in "
                         f"1..{MAX_SCREEN_PX}, such as 1920,1080")


def _check_out_dir(out) -> None:
    """``--out DIR``: a folder name whose path is not blocked by a file, checked before any work."""
    if out is not None:
        output_folder(out, "--out")


def _indices(text: str):
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated target indices such as 4,5,6, got {text!r}") \
            from None


def _screen(args):
    from gaze3d.calib.commands import screen_setup

    _check_screen_px(args)
    return screen_setup(args.screen_mm, args.screen_px, args.scale, args.distance_mm, args.viewer_window)


def _settings(args):
    from gaze3d.calib.validation import ValidationSettings

    return ValidationSettings(window_s=tuple(args.window_s), min_valid_samples=int(args.min_samples),
                              accuracy_max_deg=float(args.accuracy_max),
                              precision_rms_max_deg=float(args.precision_max))


def _gaze(args):
    from gaze3d.calib.commands import GazeInput

    return GazeInput(headless=args.headless, recording=args.recording, sim_offset=tuple(args.sim_offset),
                     sim_precision=args.sim_precision, sim_blink_rate=args.sim_blink_rate,
                     sim_dropout=args.sim_dropout, dwell=args.dwell, seed=args.seed)


def _validate_on_screen(args) -> int:
    """``validate --tracker ADDR``: targets in the viewer's window, gaze from the tracker process."""
    from gaze3d.calib import commands
    from gaze3d.calib.profiles import ProfileStore
    from gaze3d.calib.targets import target_layout
    from gaze3d.tracker.client import GazeSubscriber, TrackerControl
    from gaze3d.viewer.targets import ValidationWindow, run_window_validation
    from gaze3d.calib.device import check_address
    from gaze3d.viewer.tracker_link import parse_tracker_address

    _check_out_dir(args.out)
    size = args.window
    display = _screen(args).display()
    settings = _settings(args)
    profile = ProfileStore().load(args.profile) if args.profile else None
    pub, ctrl = parse_tracker_address(args.tracker)
    pub = check_address(pub, "--tracker") if pub else None
    ctrl = check_address(ctrl, "--tracker")
    with TrackerControl(ctrl, timeout_s=5.0) as control:
        status = control.status()
        pub = pub or control.pub_address(status)
        if pub is None:
            raise InputError(f"--tracker: the tracker at {ctrl} did not report its PUB address; "
                             f"pass 'PUB_ADDRESS,CTRL_ADDRESS'")
        info = status.get("source_info") if isinstance(status.get("source_info"), dict) else {}
        rate = info.get("rate_hz")
        if args.record:
            control.start_recording(str(Path(args.record).resolve()))
        try:
            with GazeSubscriber(pub, topics=(TOPIC_GAZE_2D,)) as sub:
                if sub.recv(5.0) is None:
                    raise InputError(f"--tracker: no gaze from {pub} within 5 s (is the tracker running?)")
                on_shown = None
                if args.show_file:
                    from gaze3d.calib._io import atomic_write_text

                    def on_shown(index, x, y, path=Path(args.show_file)):
                        atomic_write_text(path, json.dumps({"index": int(index), "x": x, "y": y}))
                with ValidationWindow(off_screen=args.off_screen, window_size=size, on_shown=on_shown) as window:
                    report, _, pres = run_window_validation(
                        window, control, sub, target_layout(int(args.points)), dwell_s=float(args.dwell),
                        seed=int(args.seed), rate_hz=float(rate) if rate else None, display=display,
                        settings=settings, correction=profile.get_correction() if profile else None)
                    window.wait_closed()
        finally:
            if args.record:
                control.stop_recording()
    commands.print_targets(report)
    commands.print_report(report, f"validation ({len(pres)} targets on screen"
                                   f"{', profile ' + profile.name if profile else ''}): ")
    commands.write_outputs(report, args.out, "validation", "Validation")
    report.raise_for_insufficient()
    return 0 if report.passed else 1


def run(args) -> int:
    from gaze3d.calib import commands

    action = getattr(args, "calib_command", None)
    if action is None:
        args._calib_parser.print_help()
        return 2
    if action == "validate" and getattr(args, "tracker", None) and not (args.headless or args.recording):
        return _validate_on_screen(args)
    if action == "profiles":
        return commands.cmd_profiles(args.action, args.name)
    if action == "device":
        return commands.cmd_device(tracker=args.tracker, pupil_remote=args.pupil_remote, pupil=args.pupil,
                                   points=args.points, settle=args.settle, duration=args.duration)
    _check_out_dir(getattr(args, "out", None))
    source, screen, settings = _gaze(args), _screen(args), _settings(args)
    if action == "validate":
        return commands.cmd_validate(source, screen, settings, points=args.points, profile=args.profile,
                                     out=args.out)
    if action == "correct":
        return commands.cmd_correct(source, screen, settings, points=args.points, kind=args.kind,
                                    holdout=args.holdout, profile=args.profile, annotator=args.annotator,
                                    display_name=args.display_name, tracker_name=args.tracker_name, out=args.out)
    return commands.cmd_drift(source, screen, settings, target=args.target, threshold=args.threshold,
                              profile=args.profile)
