"""``gaze3d record``: inspect recordings, export them to BIDS-style TSV + JSON, import such files."""
from __future__ import annotations

import argparse


def _screen(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--screen {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1920x1080")
    return w, h


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("record", help="inspect, export (BIDS TSV+JSON) and import gaze recordings",
                              description="Work with gaze recordings (.sqlite files written by the tracker).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="summary of a recording: topics, samples, rate, gaps, cameras, events")
    info.add_argument("recording")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    exp = sub.add_parser("export", help="write <prefix>_eyetrack.tsv.gz + .json (+ events, cameras)")
    exp.add_argument("recording")
    exp.add_argument("out_dir")
    exp.add_argument("--prefix", default=None, help="file-name prefix, e.g. sub-01_task-label (default: stem)")
    exp.add_argument("--topic", default="gaze.2d")
    exp.add_argument("--screen", type=_screen, default=None, help="write pixels for this WIDTHxHEIGHT screen")
    exp.add_argument("--style", choices=("eyetrack", "physio"), default="eyetrack",
                     help="file naming: <prefix>_eyetrack.tsv.gz or <prefix>_recording-eye1_physio.tsv.gz")
    imp = sub.add_parser("import", help="make a recording from a BIDS-style _eyetrack.tsv.gz (+ .json)")
    imp.add_argument("tsv")
    imp.add_argument("out", help="the new recording file (.sqlite)")
    imp.add_argument("--screen", type=_screen, default=None, help="screen size for pixel coordinates")
    p.set_defaults(func=run)
    return p


def summary(path) -> dict:
    """What ``gaze3d record info`` prints."""
    import numpy as np

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


def run(args) -> int:
    import json

    if args.action == "info":
        info = summary(args.recording)
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
    if args.action == "export":
        from ..bids import export_bids

        paths = export_bids(args.recording, args.out_dir, args.prefix, topic=args.topic, screen_size_px=args.screen,
                            style=args.style)
        for kind, path in paths.items():
            print(f"{kind}: {path}")
        return 0
    from ..bids import import_bids

    print(import_bids(args.tsv, args.out, screen_size_px=args.screen))
    return 0
