"""``gaze3d record``: inspect, check and salvage recordings, export them to BIDS, import BIDS eye-tracking files."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings

import numpy as np

from ._args import add_display, bounded_float, display_from_args, size_wxh
from ..errors import InputError
from ..protocol import GAZE_TOPICS, TOPIC_GAZE_2D


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("record", help="inspect, check/salvage, export (BIDS) and import gaze recordings",
                              description="Work with gaze recordings (SESSION.gaze3d files written by the tracker "
                                          "and the viewer).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="summary of a recording: topics, samples, rate, gaps, cameras, events")
    info.add_argument("recording", metavar="SESSION.gaze3d", help="the recording")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    chk = sub.add_parser("check", help="integrity check (SQLite + checksums); --salvage OUT writes one "
                                       "self-contained file with every readable row",
                         description="Check a recording: SQLite's integrity_check and the per-block checksums "
                                     "written with the rows. Exit 0 if intact, 1 if damage was found. With "
                                     "--salvage OUT, copy every readable sample, camera frame, event and meta entry "
                                     "into the new single file OUT (no -wal/-shm sidecars) and say how much was "
                                     "lost: the way to move a crashed or damaged recording.")
    chk.add_argument("recording", metavar="SESSION.gaze3d", help="the recording")
    chk.add_argument("--salvage", metavar="OUT.gaze3d", default=None,
                     help="write every readable row to this new recording file")
    chk.add_argument("--quick", action="store_true", help="PRAGMA quick_check instead of integrity_check (faster)")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    exp = sub.add_parser("export", help="write a BIDS eye-tracking dataset (physio + events)")
    exp.add_argument("recording", metavar="SESSION.gaze3d", help="the recording")
    exp.add_argument("out_dir", help="BIDS dataset root (created if missing)")
    exp.add_argument("--sub", default=None, help="subject label (default: 01)")
    exp.add_argument("--ses", default=None, help="session label (optional)")
    exp.add_argument("--task", default=None, help="task label (default: gaze3d)")
    exp.add_argument("--run", type=_run_index, default=None, help="run index, an integer >= 0 (optional)")
    exp.add_argument("--topic", default=TOPIC_GAZE_2D, choices=GAZE_TOPICS,
                     help=f"which gaze samples to export (default {TOPIC_GAZE_2D})")
    exp.add_argument("--screen", type=size_wxh, default=None, metavar="WxH",
                     help="screen resolution in pixels (default 1920x1080)")
    add_display(exp, optional=True)
    imp = sub.add_parser("import", help="make a recording from a BIDS _physio.tsv.gz or _eyetrack.tsv.gz (+ .json), "
                                        "an EDVAM VR CSV or an XDF file (gaze.3d rays, docs/vr.md)")
    imp.add_argument("tsv", metavar="FILE", help="BIDS eye-tracking TSV, EDVAM CSV (--format edvam) or XDF "
                                               "(--format xdf)")
    imp.add_argument("out", metavar="OUT.gaze3d", help="the new recording file")
    imp.add_argument("--format", choices=("bids", "edvam", "xdf"), default="bids",
                     help="bids (default), edvam (Unity + Pupil Labs VR CSV -> gaze.3d rays) or xdf (LabRecorder "
                          "file: 3D gaze stream + optional head-pose stream, needs pyxdf; docs/vr.md)")
    imp.add_argument("--xdf-gaze", metavar="NAME", help="xdf: the gaze stream (default: the first with ox..dz)")
    imp.add_argument("--xdf-head", metavar="NAME", help="xdf: the head-pose stream (default: the first with px..qw)")
    imp.add_argument("--gaze-frame", choices=("world", "head"), default="world",
                     help="xdf: the rays are in the tracking space (world) or relative to the head")
    imp.add_argument("--convention", choices=("openxr", "unity"), default="openxr",
                     help="xdf: axes of the streams (unity: left-handed, Z mirrored on import)")
    imp.add_argument("--screen", type=size_wxh, default=None, metavar="WxH",
                     help="bids: screen resolution of pixel coordinates (default: from the sidecar JSON)")
    imp.add_argument("--min-confidence", type=_unit_interval, default=None,
                     help="edvam: samples under this pupil confidence (0 to 1) are invalid (0.6)")
    p.set_defaults(func=run)
    return p


def _run_index(text: str) -> str:
    # BIDS run-<index>: a non-negative integer
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a run index (an integer >= 0 such as 1), got {text!r}")
    return text


_unit_interval = bounded_float(0.0, 1.0, what="a confidence")


def _check_salvage_target(out) -> None:
    """``--salvage OUT``: a new recording file, named like every recording (checked before the long check)."""
    if out is None:
        return
    if not out.strip():
        raise InputError("--salvage: expected a new OUT.gaze3d file name, got ''")
    if not out.endswith(".gaze3d"):
        raise InputError(f"--salvage {out}: expected a new recording file name ending in .gaze3d")


def summary(path) -> dict:
    """What ``gaze3d record info`` prints."""
    from ..recording import Recording

    with Recording(path) as rec:
        out = {"path": str(rec.path), "topics": {}, "meta": rec.meta}
        for topic, count in rec.topics().items():
            s = rec.samples(topic)
            t = s["t_host_ns"]
            seq = s["seq"][s["seq"] >= 0]
            duration = float((t[-1] - t[0]) / 1e9) if count > 1 else 0.0
            out["topics"][topic] = {
                "samples": int(count), "duration_s": round(duration, 3),
                "rate_hz": round(float(1e9 / np.median(np.diff(t))), 2) if count > 1 else None,
                "valid_fraction": round(float(s["valid"].mean()), 4) if count else None,
                "seq_missing": int(np.sum(np.clip(np.diff(seq) - 1, 0, None))) if len(seq) > 1 else 0,
                "max_time_gap_s": round(float(np.diff(t).max() / 1e9), 4) if count > 1 else None}
        t_cam, _ = rec.camera_frames()
        out["camera_frames"] = int(len(t_cam))
        out["events"] = len(rec.events())
    return out


def _print_warnings(caught, sidecar_paths) -> None:
    for w in caught:
        print(f"gaze3d record: warning: {w.message}", file=sys.stderr)
    if sidecar_paths:
        names = ", ".join(p.name for p in sidecar_paths)
        print(f"gaze3d record: warning: {names} next to the recording: it is being written or was not closed "
              "cleanly (crash); its newest rows are in these files: copy them together, or make one file with "
              "`gaze3d record check SESSION --salvage OUT`", file=sys.stderr)


def run(args) -> int:
    from ..recording import RecordingIntegrityWarning, sidecars, wal_pending

    if args.action == "info":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RecordingIntegrityWarning)
            info = summary(args.recording)
        _print_warnings([w for w in caught if issubclass(w.category, RecordingIntegrityWarning)],
                        sidecars(args.recording) if wal_pending(args.recording) else [])
        if args.json:
            print(json.dumps(info, indent=2, default=str))
            return 0
        print(f"{info['path']}")
        print(f"  source: {info['meta'].get('source', '?')}  session: {info['meta'].get('session', '?')}")
        for topic, t in info["topics"].items():
            print(f"  {topic}: {t['samples']} samples, {t['duration_s']} s, {t['rate_hz']} Hz, "
                  f"valid {t['valid_fraction']}, missing seq {t['seq_missing']}, max gap {t['max_time_gap_s']} s")
        print(f"  camera frames: {info['camera_frames']}  events: {info['events']}")
        return 0
    if args.action == "check":
        from ..recording import check_recording, salvage

        _check_salvage_target(args.salvage)
        report = check_recording(args.recording, quick=args.quick)
        if args.salvage:
            report["salvage"] = salvage(args.recording, args.salvage)
        if args.json:
            print(json.dumps(report, indent=2, default=str))
            return 0 if report["ok"] else 1
        print(f"{report['path']}: {'intact' if report['ok'] else 'DAMAGED'}")
        print(f"  sqlite: {'ok' if not report['sqlite'] else '; '.join(report['sqlite'][:5])}"
              + (f" (+{len(report['sqlite']) - 5} more)" if len(report["sqlite"]) > 5 else ""))
        print(f"  checksums: {report['checksums']}")
        if report["sidecars"]:
            print(f"  sidecars: {', '.join(report['sidecars'])} (being written, or not closed cleanly)")
        if args.salvage:
            s = report["salvage"]
            print(f"salvaged into {s['out']}:")
            for table in ("samples", "cameras", "events", "meta"):
                t = s[table]
                print(f"  {table}: {t['recovered']} of {t['expected']} rows copied, {t['lost']} lost"
                      + (f", {t['changed']} in blocks whose checksum fails (kept as read)" if t["changed"] else ""))
        return 0 if report["ok"] else 1
    if args.action == "export":
        from ..bids import export_bids

        if not args.out_dir.strip():
            raise InputError("out_dir: expected the BIDS dataset folder name, got ''")
        given = {"--screen": args.screen, "--screen-mm": args.screen_mm, "--distance-mm": args.distance_mm}
        display = display_from_args(args)
        if args.screen is not None:
            display = dataclasses.replace(display, width_px=args.screen[0], height_px=args.screen[1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RecordingIntegrityWarning)
            paths = export_bids(args.recording, args.out_dir, subject=args.sub, session=args.ses,
                                task=args.task, run=args.run, topic=args.topic, display=display)
        # one "gaze3d record: warning:" line each, as `record info` prints them (not Python's two-line format)
        _print_warnings([w for w in caught if issubclass(w.category, RecordingIntegrityWarning)], [])
        for w in caught:        # any other warning as Python would have shown it
            if not issubclass(w.category, RecordingIntegrityWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        missing = [k for k, v in given.items() if v is None]
        if missing:
            print(f"gaze3d record: note: {', '.join(missing)} not given; StimulusPresentation says "
                  f"{display.width_px}x{display.height_px} px, {display.width_mm:g}x{display.height_mm:g} mm "
                  f"at {display.distance_mm:g} mm", file=sys.stderr)
        for kind, path in paths.items():
            print(f"{kind}: {path}")
        return 0
    if args.format == "edvam":
        from ..vr.edvam import EDVAM_MIN_CONFIDENCE, import_edvam

        conf = EDVAM_MIN_CONFIDENCE if args.min_confidence is None else args.min_confidence
        r = import_edvam(args.tsv, args.out, min_confidence=conf)
        print(f"{r['out']}: {r['samples']} gaze.3d samples, {r['valid']} valid (confidence >= {conf:g}), "
              f"{r['duration_s']:.1f} s")
        return 0
    if args.format == "xdf":
        from ..vr.xdf import import_xdf

        r = import_xdf(args.tsv, args.out, gaze_stream=args.xdf_gaze, head_stream=args.xdf_head,
                       gaze_frame=args.gaze_frame, convention=args.convention)
        print(f"{r['out']}: {r['samples']} gaze.3d samples from stream {r['gaze_stream']!r}, {r['valid']} valid; "
              f"head pose: {r['head_stream'] or 'none'} ({r['joined']} joined)")
        return 0
    from ..bids import import_bids

    print(import_bids(args.tsv, args.out, screen_size_px=args.screen))
    return 0
