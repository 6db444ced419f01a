"""``gaze3d fixations RECORDING -o events.tsv``: eye-movement events of a recording."""
from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from ._args import add_display, add_viewport, display_from_args
from ..errors import InputError
from ..protocol import GAZE_TOPICS, TOPIC_GAZE_2D, TOPIC_GAZE_3D

COLUMNS = ("onset", "duration", "trial_type", "x_deg", "y_deg", "n_samples", "t_host_ns")
#: gaze.3d recordings: the mean point of regard (world, scene units) instead of screen degrees
COLUMNS_3D = ("onset", "duration", "trial_type", "x", "y", "z", "n_samples", "t_host_ns")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fixations", help="classify a recording's gaze into fixations, saccades, pursuit and gaps",
        description="Write a BIDS-style events TSV (onset and duration in seconds from the first sample, "
                    "trial_type = fixation/saccade/pursuit/pso/gap/unclassified, mean position in screen "
                    "degrees). With --scan, velocity is computed in object space (relative to the scene "
                    "point looked at), so following a point while the camera moves is a fixation.")
    p.add_argument("recording", help="gaze3d recording (SESSION.gaze3d)")
    p.add_argument("-o", "--output", required=True, help="events .tsv to write")
    p.add_argument("--method", default=None,
                   help="2D: adaptive (the default: fixation, saccade, pursuit, PSO, gap with data-driven "
                        "thresholds, docs/events.md), ivt (Tobii I-VT defaults), idt, ivdt, ivvt; gaze.3d: adaptive "
                        "(the default), idt (world-space I-DT, 1 deg / 0.25 s) or ivt (world-space I-VT), head "
                        "motion compensated")
    p.add_argument("--topic", default="auto", choices=("auto",) + GAZE_TOPICS,
                   help=f"auto = {TOPIC_GAZE_2D} if the recording has any, else the VR {TOPIC_GAZE_3D} rays "
                        "(docs/vr.md)")
    p.add_argument("--scan", help="classify in object space against this scan (needs camera frames)")
    p.add_argument("--frame", choices=("object", "screen"), default=None,
                   help="with --scan: object (the default: velocity relative to the scene point looked at, so "
                        "following a point while the camera moves is a fixation) or screen (what the eye did on "
                        "the screen, knowing the camera: a fixation the camera carried across it is pursuit)")
    add_display(p)
    add_viewport(p, help="where the 3D view sat on the display, normalised (object space only; default 0,0,1,1)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="classifier parameter override, e.g. velocity_threshold=40 (repeatable)")
    p.set_defaults(func=run)
    return p


def _params(items):
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--param: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"--param {key}: expected a number, got {value!r}") from None
    return out


def _check_output(path: str):
    """The events file must be a ``.tsv`` in a writable folder: checked before the recording is read."""

    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.suffix.lower() != ".tsv":
        raise InputError(f"-o {path}: expected a .tsv file (tab-separated events)")
    if target.is_dir():
        raise InputError(f"-o {path}: is a folder, expected a .tsv file name")
    if not folder.is_dir():
        raise InputError(f"-o {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"-o {path}: folder {folder} is not writable")
    return target


def _write_tsv(path: str, rows, columns=COLUMNS) -> None:
    from ..io._common import atomic_path

    lines = ["\t".join(columns)]
    for r in rows:
        lines.append("\t".join("n/a" if isinstance(r[c], float) and r[c] != r[c] else
                               (f"{r[c]:.6f}" if isinstance(r[c], float) else str(r[c])) for c in columns))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(args) -> int:
    _check_output(args.output)
    from ..recording import Recording
    from ..vr.analysis import choose_topic

    with Recording(args.recording) as rec:                 # opened once: opening verifies every checksum
        topic = choose_topic(rec, args.topic)              # no usable samples: one line, exit 2, nothing written
        return _fixations(args, rec, topic)


def _fixations(args, rec, topic: str) -> int:
    from ..attention.batch import fixation_labels, label_runs
    if topic == TOPIC_GAZE_3D:
        from ..vr.analysis import fixation_events

        if args.scan:
            raise InputError("--scan: gaze.3d rays are already in the world; classified in world space without it")
        rows, n, _ = fixation_events(rec, args.method or "adaptive", **_params(args.param))
        _write_tsv(args.output, rows, COLUMNS_3D)
        counts = Counter(r["trial_type"] for r in rows)
        print(f"{n} gaze.3d samples -> {len(rows)} events "
              f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) -> {args.output}")
        return 0
    if args.frame and not args.scan:
        raise InputError("--frame: needs --scan (the camera's motion over the scene is what it adds)")
    display = display_from_args(args)
    scan = None
    if args.scan:
        from ..io import load_scan
        scan = load_scan(args.scan)
    t, labels, deg = fixation_labels(rec, args.method or "adaptive", display=display, viewport=args.viewport,
                                     scan=scan, frame=args.frame, **_params(args.param))
    rows = label_runs(t, labels, deg)
    _write_tsv(args.output, rows)
    counts = Counter(r["trial_type"] for r in rows)
    print(f"{len(t)} samples -> {len(rows)} events "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) -> {args.output}")
    return 0
