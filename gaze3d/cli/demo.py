"""``gaze3d demo``: simulated gaze on the bundled LiDAR tile, end to end."""
from __future__ import annotations

import argparse
import sys


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo", help="run the end-to-end demo on the bundled IGN LiDAR tile",
        description="Start a simulated eye tracker in its own process, stream its gaze over ZMQ, "
                    "accumulate occlusion-aware attention on the bundled IGN LiDAR HD tile while a camera "
                    "orbits it, and write attention.ply, a screenshot and a summary. No display or "
                    "tracker needed.")
    p.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    p.add_argument("--duration", type=float, default=20.0, help="session length in seconds (default: %(default)s)")
    p.add_argument("--rate", type=float, default=1200.0, help="simulated tracker rate in Hz (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default: %(default)s)")
    p.add_argument("--scan", default=None, help="a classified LAS/LAZ to use instead of the bundled tile")
    p.add_argument("--no-render", action="store_true", help="skip the offscreen screenshot")
    p.set_defaults(func=run)
    return p


def _render(cloud, attention, camera, png):
    from ..viewer.render import render_scan

    render_scan(cloud, scalars=attention, camera=camera, out=str(png), window_size=(1024, 768),
                title="gaze3d demo: attention from simulated gaze")


def run(args) -> int:
    from ..demo import run_demo
    from ..errors import InputError

    if args.duration <= 0 or args.rate <= 0:
        raise InputError("--duration and --rate: expected positive numbers")
    summary = run_demo(args.out, duration_s=args.duration, rate_hz=args.rate, seed=args.seed,
                       scan_path=args.scan, render=None if args.no_render else _render,
                       progress=sys.stderr.isatty())
    print(summary.format())
    return 0
