"""The ``pupil`` source: Pupil Labs Pupil Core (Pupil Capture / Service) through its network API.

Protocol (Pupil Core network API): a REQ socket to *Pupil Remote* (port
50020) asks ``SUB_PORT`` (the IPC backbone's publisher port) and ``t`` (the
current Pupil time); a SUB socket on that port subscribes to ``gaze.``; each
message is multipart ``[topic, msgpack payload, *extra frames]``. A gaze datum
has ``norm_pos`` (normalised, origin **bottom-left** -- flipped here to our
top-left convention), ``confidence`` in [0, 1] and ``timestamp`` (Pupil time,
seconds). The shapes Pupil Capture publishes, all decoded here:

=================  ======================================================
topic              extra fields
=================  ======================================================
``gaze.2d.0.``     monocular 2D (eye 0 = right eye, ``gaze.2d.1.`` left)
``gaze.2d.01.``    binocular 2D
``gaze.3d.0.``     monocular 3D: ``gaze_point_3d``, ``eye_center_3d``,
                   ``gaze_normal_3d`` (mm, scene camera frame)
``gaze.3d.01.``    binocular 3D: ``gaze_point_3d``, ``eye_centers_3d`` and
                   ``gaze_normals_3d`` as maps with **integer keys** 0 and 1
=================  ======================================================

Pupil's msgpack has integer map keys, so its payloads are decoded with
``strict_map_key=False`` (only here: gaze3d's own protocol keeps string keys).
The eye of a monocular datum is the ``id`` of its ``base_data`` pupil datum.
A message that cannot be decoded or converted is counted
(``decode_errors``/``convert_errors`` in ``counters()``, hence in the
tracker's ``status`` as ``source_counters``) and logged, never dropped
silently.

Fields: ``gaze`` = (x, 1 - y), ``valid`` = confidence >= ``confidence``
option, ``t_device`` = Pupil timestamp, ``t_capture_ns`` = that instant on
this host's ``time.monotonic_ns``, ``confidence``; 3D datums add
``gaze_point_3d_mm`` and per-eye ``origin_mm``/``direction``.

Clock: the offset of Pupil time to this host's monotonic clock is estimated
like NTP from ``clock_rounds`` (default 8) ``t`` round trips to Pupil Remote,
keeping the one with the smallest round-trip time (its error is at most half
that RTT), at open and again every ``clock_every_s`` (default 10 s).

Options: ``host`` (default 127.0.0.1), ``port`` (Pupil Remote, default
50020), ``confidence`` (validity threshold, default 0.6), ``topic`` (default
``gaze.``), ``probe_s`` (how often, without data, Pupil Remote is pinged to
detect a dead connection, default 1.0), ``timeout_s`` (for Pupil Remote
replies, default 2.0), ``clock_rounds`` and ``clock_every_s`` (above).

Disconnect: when Pupil Remote stops answering, ``read`` raises
:class:`SourceError`; ``open`` again reconnects.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import List, Optional, Tuple

import msgpack
import zmq

from ...protocol import TOPIC_GAZE_2D
from ._options import Options
from .base import SourceError, ThreadReleasedSource

log = logging.getLogger("gaze3d.tracker.pupil")

# Pupil numbers its eye cameras 0 (the right eye) and 1 (the left eye).
EYE_SIDE = {0: "right", 1: "left"}


def decode_pupil(payload: bytes) -> dict:
    """Decode one Pupil msgpack payload (integer map keys allowed); raises ValueError if it is not a map."""
    datum = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    if not isinstance(datum, dict):
        raise ValueError(f"payload is a {type(datum).__name__}, expected a map")
    return datum


def _vec3(value, what: str) -> List[float]:
    out = [float(v) for v in value]
    if len(out) != 3:
        raise ValueError(f"{what}: expected 3 numbers, got {len(out)}")
    return out


def _eye_key(mapping: dict, eye: int):
    """``mapping[eye]`` with Pupil's integer key, or the string key some relays write; None if absent."""
    if eye in mapping:
        return mapping[eye]
    return mapping.get(str(eye))


def _monocular_eye(datum: dict) -> Optional[int]:
    base = datum.get("base_data")
    if isinstance(base, list) and len(base) == 1 and isinstance(base[0], dict) and base[0].get("id") in (0, 1):
        return int(base[0]["id"])
    topic = datum.get("topic")
    if isinstance(topic, str) and topic.rstrip(".").rsplit(".", 1)[-1] in ("0", "1"):
        return int(topic.rstrip(".").rsplit(".", 1)[-1])
    return None


def convert_gaze_datum(datum: dict, threshold: float, offset_s: float) -> dict:
    """One decoded Pupil gaze datum (any of the four shapes) -> one ``gaze.2d`` sample dict.

    Parameters
    ----------
    datum : dict
        The payload as :func:`decode_pupil` returns it.
    threshold : float
        Minimum confidence of a valid sample.
    offset_s : float
        Pupil time minus host monotonic time, seconds.

    Raises
    ------
    ValueError, TypeError, KeyError
        A datum whose fields do not have Pupil's types (counted by the source).
    """
    pos = datum.get("norm_pos")
    conf = float(datum.get("confidence", 0.0))
    if pos is not None and len(pos) != 2:
        raise ValueError(f"norm_pos: expected 2 numbers, got {len(pos)}")
    ok = pos is not None and conf >= threshold and all(math.isfinite(float(v)) for v in pos)
    gaze = [float(pos[0]), 1.0 - float(pos[1])] if ok else [math.nan, math.nan]
    ts = datum.get("timestamp")
    sample = {"topic": TOPIC_GAZE_2D, "t_device": None if ts is None else float(ts), "t_host_ns": time.monotonic_ns(),
              "gaze": gaze, "valid": bool(ok), "confidence": conf}
    if ts is not None:
        sample["t_capture_ns"] = int(round((float(ts) - offset_s) * 1e9))
    if datum.get("gaze_point_3d") is not None:
        sample["gaze_point_3d_mm"] = _vec3(datum["gaze_point_3d"], "gaze_point_3d")
    centers = datum.get("eye_centers_3d")
    normals = datum.get("gaze_normals_3d")
    if isinstance(centers, dict):             # binocular 3D: keys 0 (right eye) and 1 (left eye)
        for eye, side in EYE_SIDE.items():
            c = _eye_key(centers, eye)
            nrm = _eye_key(normals, eye) if isinstance(normals, dict) else None
            if c is not None:
                sample[side] = {"gaze": gaze, "valid": bool(ok), "origin_mm": _vec3(c, f"eye_centers_3d[{eye}]")}
                if nrm is not None:
                    sample[side]["direction"] = _vec3(nrm, f"gaze_normals_3d[{eye}]")
    elif datum.get("eye_center_3d") is not None:   # monocular 3D
        side = EYE_SIDE.get(_monocular_eye(datum), "right")
        sample[side] = {"gaze": gaze, "valid": bool(ok), "origin_mm": _vec3(datum["eye_center_3d"], "eye_center_3d")}
        if datum.get("gaze_normal_3d") is not None:
            sample[side]["direction"] = _vec3(datum["gaze_normal_3d"], "gaze_normal_3d")
    else:                                           # 2D: which eyes it came from
        eye = _monocular_eye(datum)
        if eye is not None:
            sample[EYE_SIDE[eye]] = {"gaze": gaze, "valid": bool(ok)}
    return sample


def best_offset(exchanges: List[Tuple[float, float, float]]) -> Tuple[float, float]:
    """``(offset_s, rtt_s)`` from ``(t_send, pupil_t, t_recv)`` round trips: the one with the smallest RTT.

    ``offset = pupil_t - (t_send + t_recv) / 2``; its error is at most ``rtt / 2``.
    """
    t0, pupil_t, t1 = min(exchanges, key=lambda e: e[2] - e[0])
    return pupil_t - 0.5 * (t0 + t1), t1 - t0


class PupilSource(ThreadReleasedSource):
    """Pupil Core gaze over the network API.

    Thread-safety: one reading thread owns the ZMQ sockets; ``close`` from
    another thread only sets a flag, and the waiting ``read`` returns within
    50 ms and closes them.
    """

    name = "pupil"

    def __init__(self, **options):
        o = Options("pupil", options)
        self.host = o.str("host", "127.0.0.1")
        self.port = o.int("port", 50020, low=1)
        self.threshold = o.float("confidence", 0.6, 0.0, 1.0)
        self.topic = o.str("topic", "gaze.")
        self.probe_s = o.float("probe_s", 1.0, 0.0, None, low_open=True)
        self.timeout_s = o.float("timeout_s", 2.0, 0.0, None, low_open=True)
        self.clock_rounds = o.int("clock_rounds", 8, low=1)
        self.clock_every_s = o.float("clock_every_s", 10.0, 0.0, None, low_open=True)
        o.check_unused()
        self._counts = {"messages": 0, "samples": 0, "decode_errors": 0, "convert_errors": 0, "clock_updates": 0}
        self._last_error: Optional[str] = None
        self._last_error_log = 0.0
        self._rtt_s = math.nan
        self._next_clock = 0.0
        self._ctx = None
        self._req = None
        self._sub = None
        self._offset_s = 0.0
        self._last_alive = 0.0
        self._socket_lock = threading.Lock()
        self._info = {}

    @property
    def remote_address(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def _request(self, text: str) -> str:
        """Ask Pupil Remote; raises SourceError when it does not answer in time (the REQ socket is then reset)."""
        try:
            self._req.send_string(text)
            if not self._req.poll(int(self.timeout_s * 1000), zmq.POLLIN):
                raise SourceError(f"pupil: Pupil Remote at {self.remote_address} did not answer {text!r} "
                                  f"within {self.timeout_s:g} s")
            return self._req.recv_string()
        except zmq.ZMQError as exc:
            raise SourceError(f"pupil: Pupil Remote at {self.remote_address}: {exc}") from exc

    def _measure_offset(self) -> None:
        """Re-estimate the Pupil clock offset from ``clock_rounds`` round trips (min RTT wins)."""
        exchanges = []
        for _ in range(self.clock_rounds):
            t0 = time.monotonic()
            reply = self._request("t")
            t1 = time.monotonic()
            try:
                exchanges.append((t0, float(reply), t1))
            except ValueError:
                raise SourceError(f"pupil: Pupil Remote answered 't' with {reply[:40]!r}, expected a time") from None
        self._offset_s, self._rtt_s = best_offset(exchanges)
        self._counts["clock_updates"] += 1
        self._next_clock = time.monotonic() + self.clock_every_s

    def _count_error(self, kind: str, exc: BaseException, frames) -> None:
        """Count a message that could not be used, log it (at most once a second), keep the stream."""
        self._counts[kind] += 1
        topic = bytes(frames[0][:40]).decode("ascii", "replace") if frames else "?"
        self._last_error = f"{kind[:-1].replace('_', ' ')} on {topic!r}: {type(exc).__name__}: {exc}"[:300]
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            self._last_error_log = now
            log.warning("pupil: %s (%d decode errors, %d convert errors so far)", self._last_error,
                        self._counts["decode_errors"], self._counts["convert_errors"])

    def counters(self) -> dict:
        return {**self._counts, "last_error": self._last_error, "clock_offset_s": self._offset_s,
                "clock_rtt_s": self._rtt_s}

    def open(self) -> None:
        self.close()
        self._closed = False
        self._ctx = zmq.Context.instance()
        self._req = self._ctx.socket(zmq.REQ)
        self._req.setsockopt(zmq.LINGER, 0)
        self._req.connect(self.remote_address)
        try:
            sub_port = self._request("SUB_PORT").strip()
            if not sub_port.isdigit():
                raise SourceError(f"pupil: Pupil Remote at {self.remote_address} answered SUB_PORT with "
                                  f"{sub_port!r}, expected a port number")
            self._measure_offset()
            version = self._request("v")
        except SourceError:
            self.close()
            raise
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, 100_000)
        self._sub.connect(f"tcp://{self.host}:{sub_port}")
        self._sub.setsockopt_string(zmq.SUBSCRIBE, self.topic)
        self._last_alive = time.monotonic()
        self._info = {"source": self.name, "model": "Pupil Core", "manufacturer": "Pupil Labs",
                      "remote": self.remote_address, "sub_port": int(sub_port), "version": version,
                      "confidence_threshold": self.threshold}

    def _read(self, timeout_s: float) -> List[dict]:
        if self._sub is None:
            if self._closed:
                return []
            raise SourceError("pupil: read before open")
        out: List[dict] = []
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not self._closed:
            left = deadline - time.monotonic()
            try:
                ready = self._sub.poll(int(max(0.0, min(left, 0.05)) * 1000), zmq.POLLIN)
                while ready or self._sub.poll(0, zmq.POLLIN):
                    ready = 0
                    frames = self._sub.recv_multipart(zmq.NOBLOCK)
                    self._counts["messages"] += 1
                    try:
                        if len(frames) < 2:
                            raise ValueError(f"{len(frames)} frame(s), expected [topic, payload, ...]")
                        datum = decode_pupil(frames[1])
                    except Exception as exc:   # msgpack raises several types: counted and logged
                        self._count_error("decode_errors", exc, frames)
                        continue
                    try:
                        out.append(convert_gaze_datum(datum, self.threshold, self._offset_s))
                    except Exception as exc:   # fields of unexpected types
                        self._count_error("convert_errors", exc, frames)
                        continue
                    self._counts["samples"] += 1
                    if len(out) >= 10_000:
                        break
            except zmq.ZMQError as exc:
                if self._closed:
                    return out
                raise SourceError(f"pupil: subscription failed: {exc}") from exc
            now = time.monotonic()
            if now >= self._next_clock:
                self._measure_offset()         # also proves Pupil Remote alive; raises SourceError if gone
                self._last_alive = now
            if out:
                self._last_alive = now
                return out
            if now - self._last_alive >= self.probe_s:
                self._request("t")             # raises SourceError if Pupil Remote is gone
                self._last_alive = time.monotonic()
            if time.monotonic() >= deadline:
                return out
        return out

    def _release(self) -> None:
        with self._socket_lock:
            for name in ("_sub", "_req"):
                s = getattr(self, name)
                setattr(self, name, None)
                if s is not None:
                    try:
                        s.close(linger=0)
                    except zmq.ZMQError:
                        pass

    def info(self) -> dict:
        return dict(self._info) if self._info else {"source": self.name, "remote": self.remote_address}

    def calibrate(self, action: str, **params) -> dict:
        """``start`` sends Pupil Remote ``C``, ``stop`` sends ``c``."""
        cmd = {"start": "C", "stop": "c"}.get(action)
        if cmd is None:
            return {"ok": False, "error": f"pupil calibrate: unknown action {action!r} (start, stop)"}
        if self._req is None:
            return {"ok": False, "error": "pupil: not connected"}
        try:
            return {"ok": True, "reply": self._request(cmd)}
        except SourceError as exc:
            return {"ok": False, "error": str(exc)}
