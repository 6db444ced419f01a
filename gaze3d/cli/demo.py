"""``gaze3d demo``: simulated gaze on the bundled LiDAR tile, end to end."""
from __future__ import annotations

import argparse
import sys

from ..errors import InputError


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo", help="run the end-to-end demo on the bundled IGN LiDAR tile",
        description="Start a simulated eye tracker in its own process, stream its gaze over ZMQ, "
                    "accumulate occlusion-aware attention on the bundled IGN LiDAR HD tile while a camera "
                    "orbits it, and write attention.ply, a screenshot and a summary. No display or "
                    "tracker needed.")
    p.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    p.add_argument("--duration", type=float, default=None, help="session length in seconds (default: 20, VR 30)")
    p.add_argument("--rate", type=float, default=None, help="simulated tracker rate in Hz (default: 1200, VR 90)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default: %(default)s)")
    p.add_argument("--scan", default=None, help="a classified LAS/LAZ to use instead of the bundled tile")
    p.add_argument("--no-render", action="store_true", help="skip the offscreen screenshot")
    p.add_argument("--vr", action="store_true",
                   help="VR: the tracker streams a simulated headset session (gaze.3d rays, a head walking "
                        "through the tile at eye height, VOR) at 90 Hz for 30 s unless --rate/--duration say "
                        "otherwise (docs/vr.md)")
    p.set_defaults(func=run)
    return p


def _render(cloud, attention, camera, png):
    from ..viewer.render import render_scan

    render_scan(cloud, scalars=attention, camera=camera, out=str(png), window_size=(1024, 768),
                title="gaze3d demo: attention from simulated gaze")


def _render_vr(cloud, attention, camera, png, origins, directions, lengths):
    from ..viewer.render import render_scan

    render_scan(cloud, scalars=attention, camera=camera, out=str(png), window_size=(1024, 768),
                title="gaze3d demo --vr (blue: head path, green: gaze rays)",
                head_path=origins, gaze_rays=(origins, directions, lengths))


def run(args) -> int:
    from ..demo import VR_RATE_HZ, run_demo, run_vr_demo

    duration = args.duration if args.duration is not None else (30.0 if args.vr else 20.0)
    rate = args.rate if args.rate is not None else (VR_RATE_HZ if args.vr else 1200.0)
    if duration <= 0 or rate <= 0:
        raise InputError("--duration and --rate: expected positive numbers")
    if args.vr:
        summary = run_vr_demo(args.out, duration_s=duration, rate_hz=rate, seed=args.seed, scan_path=args.scan,
                              render=None if args.no_render else _render_vr, progress=sys.stderr.isatty())
        print(summary.format())
        return 0
    summary = run_demo(args.out, duration_s=duration, rate_hz=rate, seed=args.seed,
                       scan_path=args.scan, render=None if args.no_render else _render,
                       progress=sys.stderr.isatty())
    print(summary.format())
    return 0
