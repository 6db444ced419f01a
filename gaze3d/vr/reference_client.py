"""Reference VR app client: streams ``gaze.3d`` to a tracker the way a Unity or Unreal app would.

Every frame (``--rate``, 90 Hz) it pushes one msgpack map on a ZeroMQ PUSH
socket connected to the tracker's :class:`gaze3d.vr.app_source.AppSource`:
``t_device`` (its own clock, s), the world gaze ray, the head position and
rotation (``head_position`` + ``head_rotation`` x, y, z, w), ``valid``, and
``t_host_ns`` (``CLOCK_MONOTONIC``: the app is on the tracker's host). The
gaze comes from :func:`gaze3d.vr.simulate.simulate_vr_session` looking at a
ring of targets; with ``--convention unity`` everything is sent in Unity's
left-handed axes (Z mirrored), as ``Camera.main.transform`` would give it.
The C# equivalent is in ``docs/protocol.md`` (VR apps).

Usage::

    python -m gaze3d.vr.reference_client --connect tcp://127.0.0.1:5599 --duration 5 --convention unity
"""
from __future__ import annotations

import argparse
import sys
import time

import msgpack
import numpy as np
import zmq


def ring_targets(n: int = 12, radius: float = 4.0, height: float = 1.6) -> np.ndarray:
    """(n, 3) targets on a ring around the origin, +Y up, right-handed."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[radius * np.sin(a), np.full(n, height) + 0.5 * np.cos(3 * a), -radius * np.cos(a)]


def frames(duration_s: float, rate_hz: float, seed: int = 0, convention: str = "openxr"):
    """The messages the app sends, one per frame (list of dicts), and the session they come from."""
    from .frames import MIRROR_Z
    from .simulate import simulate_vr_session
    from .xdf import _matrix_to_quat

    s = simulate_vr_session(ring_targets(), duration_s, rate_hz, seed=seed, waypoints=[[0, 1.6, 0], [0.5, 1.6, 0.5]],
                            walk_speed=0.2, up=(0.0, 1.0, 0.0), noise_deg=0.1)
    R = s.head_pose[:, :3, :3]
    pos = s.head_pose[:, :3, 3]
    o, d = s.origin, s.direction
    if convention == "unity":        # what a Unity app reads from its transforms: Z mirrored
        R = MIRROR_Z @ R @ MIRROR_Z
        pos, o, d = pos * [1, 1, -1], o * [1, 1, -1], d * [1, 1, -1]
    q = _matrix_to_quat(R)
    out = []
    for i in range(len(s)):
        m = {"t_device": float(s.t_s[i]), "valid": bool(s.valid[i]), "head_position": pos[i].tolist(),
             "head_rotation": q[i].tolist()}
        if s.valid[i]:
            m["ray_origin"], m["ray_direction"] = o[i].tolist(), d[i].tolist()
        out.append(m)
    return out, s


def stream(connect: str, duration_s: float, rate_hz: float = 90.0, seed: int = 0, convention: str = "openxr",
           realtime: bool = True) -> int:
    """Push the frames to ``connect``; returns how many were sent."""
    msgs, _ = frames(duration_s, rate_hz, seed, convention)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 2000)           # let queued frames leave before the app quits
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.connect(connect)
    t0 = time.monotonic()
    try:
        for m in msgs:
            if realtime:
                wait = t0 + m["t_device"] - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            m["t_host_ns"] = time.monotonic_ns()   # same host: the capture time on the tracker's clock
            sock.send(msgpack.packb(m, use_bin_type=True))
    finally:
        sock.close()
        ctx.term()
    return len(msgs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m gaze3d.vr.reference_client", description=__doc__.splitlines()[0])
    p.add_argument("--connect", default="tcp://127.0.0.1:5599")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=90.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--convention", choices=("openxr", "unity"), default="openxr")
    p.add_argument("--fast", action="store_true", help="send as fast as possible, not in real time")
    a = p.parse_args(argv)
    if a.duration <= 0 or a.rate <= 0:
        print("reference_client: --duration and --rate must be positive", file=sys.stderr)
        return 2
    n = stream(a.connect, a.duration, a.rate, a.seed, a.convention, realtime=not a.fast)
    print(f"sent {n} gaze.3d frames to {a.connect}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
