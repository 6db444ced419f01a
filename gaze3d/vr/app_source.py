"""Gaze from a VR app (Unity, Unreal, a native OpenXR app) pushed to the tracker over ZeroMQ.

The app is the device: it owns the headset runtime and, every frame, pushes
its gaze ray and head pose as a msgpack map on a ZeroMQ **PUSH** socket
connected to this source's **PULL** socket. The tracker stamps, records and
publishes them as ``gaze.3d`` like any other source, so viewers, the
recorder and ``gaze3d attention`` work unchanged. Run it as a plugin source::

    gaze3d tracker --source module:gaze3d.vr.app_source:AppSource \\
        --opt bind=tcp://127.0.0.1:5599 --opt convention=unity --record session.gaze3d

Message (one frame: one map, or an array of maps for a batch); fields as in
``docs/protocol.md`` (``gaze.3d`` sample fields):

``t_device`` (float s, required: the app's or eye tracker's capture time),
``ray_origin``, ``ray_direction`` ([x, y, z], world / tracking space),
``head_pose`` (16 floats row-major world-from-head, **or** ``head_position``
[x, y, z] + ``head_rotation`` [x, y, z, w]), ``valid`` (bool, default true),
``confidence``, ``left``/``right`` maps with ``origin``/``direction``/``valid``,
and ``t_host_ns`` (int, optional: the capture time on this host's
``CLOCK_MONOTONIC`` when the app runs on the same host; otherwise the
arrival time is used).

Options: ``bind`` (default ``tcp://127.0.0.1:5599``), ``convention``
(``openxr``: right-handed +Y up, head looks along -Z, the default; ``unity``:
left-handed +Z forward, mirrored in Z on arrival, see
:mod:`gaze3d.vr.frames`), ``rcvhwm`` (messages queued, default 100000).

A message that is not msgpack, not a map, or has fields of the wrong shape
is dropped and counted (``counters()["malformed"]``, with the last reason);
the source never stops on bad input. pyzmq + msgpack + numpy only.
"""
from __future__ import annotations

import math
import time
from typing import List, Optional

import msgpack
import numpy as np
import zmq

from ..protocol import MAX_VALUE_ITEMS, TOPIC_GAZE_3D
from ..tracker.sources._options import Options
from ..tracker.sources.base import SourceError, ThreadReleasedSource
from .frames import MIRROR_Z, pose_matrix, quat_to_matrix

MAX_MESSAGE_BYTES = 1 << 20       # one frame (a batch of samples) at most 1 MiB
_MAX_FUTURE_NS = 1_000_000_000    # an app's t_host_ns later than arrival + 1 s is not this host's clock


def _vec(v, n: int, name: str) -> Optional[list]:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise ValueError(f"{name} must be {n} numbers")
    out = [float(x) for x in v]
    return out


class AppSource(ThreadReleasedSource):
    """ZeroMQ PULL source for VR apps; see the module docstring.

    Thread-safety: the socket belongs to the reading thread; ``close`` from
    another thread sets a flag, the waiting ``read`` returns within 50 ms and
    the socket is closed by the thread that used it.
    """

    name = "vr-app"

    def __init__(self, **options):
        o = Options("vr-app", options)
        self.bind = o.str("bind", "tcp://127.0.0.1:5599")
        self.convention = o.str("convention", "openxr", choices=("openxr", "unity"))
        self.rcvhwm = o.int("rcvhwm", 100_000, low=1)
        o.check_unused()
        self._ctx: Optional[zmq.Context] = None
        self._sock = None
        self._counts = {"messages": 0, "samples": 0, "malformed": 0, "last_error": None}
        self.endpoint: Optional[str] = None

    def open(self) -> None:
        self._release()
        self._closed = False
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(self.bind)
        except zmq.ZMQError as exc:
            sock.close()
            raise SourceError(f"vr-app: cannot bind {self.bind}: {exc}") from exc
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sock = sock

    def _bad(self, reason: str) -> None:
        self._counts["malformed"] += 1
        self._counts["last_error"] = reason[:200]

    def _sample(self, m, t_arrival_ns: int) -> Optional[dict]:
        if not isinstance(m, dict):
            self._bad("a sample must be a map")
            return None
        try:
            t_dev = m.get("t_device")
            if t_dev is None or isinstance(t_dev, bool) or not math.isfinite(float(t_dev)):
                raise ValueError("t_device (s) is required and must be a finite number")
            o = _vec(m.get("ray_origin"), 3, "ray_origin")
            d = _vec(m.get("ray_direction"), 3, "ray_direction")
            pose = _vec(m.get("head_pose"), 16, "head_pose")
            hp, hr = _vec(m.get("head_position"), 3, "head_position"), _vec(m.get("head_rotation"), 4, "head_rotation")
            valid = m.get("valid", True)
            if not isinstance(valid, bool):
                raise ValueError("valid must be a bool")
            t_host = m.get("t_host_ns")
            if t_host is not None and (not isinstance(t_host, int) or isinstance(t_host, bool)):
                raise ValueError("t_host_ns must be an int")
        except (TypeError, ValueError) as exc:
            self._bad(str(exc))
            return None
        if self.convention == "unity":       # Unity's left-handed world -> right-handed (Z mirrored)
            o = None if o is None else [o[0], o[1], -o[2]]
            d = None if d is None else [d[0], d[1], -d[2]]
        if pose is None and hp is not None and hr is not None:
            if self.convention == "unity":
                hp, hr = [hp[0], hp[1], -hp[2]], [-hr[0], -hr[1], hr[2], hr[3]]
            pose = pose_matrix([hp], quat_to_matrix(hr))[0].ravel().tolist()
        elif pose is not None and self.convention == "unity":
            T = np.asarray(pose).reshape(4, 4)
            T[:3, :3] = MIRROR_Z @ T[:3, :3] @ MIRROR_Z
            T[:3, 3] = MIRROR_Z @ T[:3, 3]
            pose = T.ravel().tolist()
        if d is not None:
            n = math.sqrt(sum(v * v for v in d))
            d = [v / n for v in d] if n > 0 and math.isfinite(n) else None
        ok = valid and o is not None and d is not None and all(math.isfinite(v) for v in o)
        s = {"topic": TOPIC_GAZE_3D, "t_device": float(t_dev), "valid": bool(ok), "t_arrival_ns": t_arrival_ns}
        s["t_host_ns"] = t_host if t_host is not None and 0 <= t_host <= t_arrival_ns + _MAX_FUTURE_NS \
            else t_arrival_ns
        if o is not None:
            s["ray_origin"] = o
        if d is not None:
            s["ray_direction"] = d
        if pose is not None:
            s["head_pose"] = pose
        for key in ("confidence",):
            if isinstance(m.get(key), (int, float)) and not isinstance(m.get(key), bool):
                s[key] = float(m[key])
        return s

    def _read(self, timeout_s: float) -> List[dict]:
        if self._sock is None:
            if self._closed:
                return []
            raise SourceError("vr-app: read before open")
        deadline = time.monotonic() + max(0.0, timeout_s)
        out: List[dict] = []
        while not self._closed:
            wait_ms = int(max(0.0, min(deadline - time.monotonic(), 0.05)) * 1000)
            try:
                if not self._sock.poll(wait_ms):
                    if out or time.monotonic() >= deadline:
                        return out
                    continue
                while len(out) < 10_000:
                    frames = self._sock.recv_multipart(zmq.NOBLOCK)
                    t_arrival = time.monotonic_ns()
                    self._counts["messages"] += 1
                    if len(frames) != 1:
                        self._bad(f"expected one frame, got {len(frames)}")
                        continue
                    try:
                        msg = msgpack.unpackb(frames[0], raw=False, strict_map_key=True,
                                              max_array_len=MAX_VALUE_ITEMS, max_map_len=MAX_VALUE_ITEMS,
                                              max_ext_len=0)
                    except Exception as exc:         # any bytes at all may arrive: never let them stop us
                        self._bad(f"not msgpack ({type(exc).__name__})")
                        continue
                    for m in (msg if isinstance(msg, list) else [msg]):
                        s = self._sample(m, t_arrival)
                        if s is not None:
                            out.append(s)
                            self._counts["samples"] += 1
            except zmq.Again:
                return out
            except zmq.ZMQError as exc:
                if self._closed:
                    return out
                raise SourceError(f"vr-app: socket error: {exc}") from exc
            if out:
                return out
        return out

    def _release(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close(linger=0)
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.term()

    def counters(self) -> dict:
        return dict(self._counts)

    def info(self) -> dict:
        return {"source": self.name, "model": "VR app over ZeroMQ PUSH", "bind": self.endpoint or self.bind,
                "convention": self.convention}
