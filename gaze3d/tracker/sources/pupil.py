"""The ``pupil`` source: Pupil Labs Pupil Core (Pupil Capture / Service) through its network API.

Protocol (Pupil Core network API): a REQ socket to *Pupil Remote* (port
50020) asks ``SUB_PORT`` (the IPC backbone's publisher port) and ``t`` (the
current Pupil time); a SUB socket on that port subscribes to ``gaze.``; each
message is multipart ``[topic, msgpack payload, *extra frames]``. A gaze datum
has ``norm_pos`` (normalised, origin **bottom-left** -- flipped here to our
top-left convention), ``confidence`` in [0, 1] and ``timestamp`` (Pupil time,
seconds); binocular 3D datums also carry ``gaze_point_3d``,
``eye_center(s)_3d`` and ``gaze_normal(s)_3d`` (mm, scene camera frame).

Fields: ``gaze`` = (x, 1 - y), ``valid`` = confidence >= ``confidence``
option, ``t_device`` = Pupil timestamp, ``t_capture_ns`` = that instant on
this host's ``time.monotonic_ns`` (Pupil time minus the offset measured with
``t`` at open, corrected for half the round trip), ``confidence``.

Options: ``host`` (default 127.0.0.1), ``port`` (Pupil Remote, default
50020), ``confidence`` (validity threshold, default 0.6), ``topic`` (default
``gaze.``), ``probe_s`` (how often, without data, Pupil Remote is pinged to
detect a dead connection, default 1.0), ``timeout_s`` (for Pupil Remote
replies, default 2.0).

Disconnect: when Pupil Remote stops answering, ``read`` raises
:class:`SourceError`; ``open`` again reconnects.
"""
from __future__ import annotations

import math
import threading
import time
from typing import List

import msgpack
import zmq

from ._options import Options
from .base import SourceError, ThreadReleasedSource


def convert_gaze_datum(datum: dict, threshold: float, offset_s: float) -> dict:
    """One Pupil gaze datum -> one ``gaze.2d`` sample dict.

    Parameters
    ----------
    datum : dict
        The msgpack-decoded payload.
    threshold : float
        Minimum confidence of a valid sample.
    offset_s : float
        Pupil time minus host monotonic time, seconds.
    """
    pos = datum.get("norm_pos")
    conf = float(datum.get("confidence", 0.0))
    ok = pos is not None and conf >= threshold and all(math.isfinite(float(v)) for v in pos)
    gaze = [float(pos[0]), 1.0 - float(pos[1])] if ok else [math.nan, math.nan]
    ts = datum.get("timestamp")
    sample = {"topic": "gaze.2d", "t_device": None if ts is None else float(ts), "t_host_ns": time.monotonic_ns(),
              "gaze": gaze, "valid": bool(ok), "confidence": conf}
    if ts is not None:
        sample["t_capture_ns"] = int(round((float(ts) - offset_s) * 1e9))
    if datum.get("gaze_point_3d") is not None:
        sample["gaze_point_3d_mm"] = [float(v) for v in datum["gaze_point_3d"]]
    centers = datum.get("eye_centers_3d")
    normals = datum.get("gaze_normals_3d")
    if isinstance(centers, dict):             # binocular: keys "0" (right eye) and "1" (left eye)
        for key, side in (("0", "right"), ("1", "left")):
            c = centers.get(key, centers.get(int(key)))
            nrm = normals.get(key, normals.get(int(key))) if isinstance(normals, dict) else None
            if c is not None:
                sample[side] = {"gaze": gaze, "valid": bool(ok), "origin_mm": [float(v) for v in c]}
                if nrm is not None:
                    sample[side]["direction"] = [float(v) for v in nrm]
    elif datum.get("eye_center_3d") is not None:
        eye_id = None
        if datum.get("base_data"):
            eye_id = datum["base_data"][0].get("id") if isinstance(datum["base_data"][0], dict) else None
        side = "left" if eye_id == 1 else "right"
        sample[side] = {"gaze": gaze, "valid": bool(ok), "origin_mm": [float(v) for v in datum["eye_center_3d"]]}
        if datum.get("gaze_normal_3d") is not None:
            sample[side]["direction"] = [float(v) for v in datum["gaze_normal_3d"]]
    return sample


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
        o.check_unused()
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
        t0 = time.monotonic()
        pupil_t = float(self._request("t"))
        t1 = time.monotonic()
        self._offset_s = pupil_t - 0.5 * (t0 + t1)

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
        self._info = {"source": self.name, "model": "Pupil Core", "remote": self.remote_address,
                      "sub_port": int(sub_port), "version": version, "confidence_threshold": self.threshold}

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
                    if len(frames) < 2:
                        continue
                    try:
                        datum = msgpack.unpackb(frames[1], raw=False)
                    except Exception:        # a malformed message: skip it, keep the stream
                        continue
                    if isinstance(datum, dict):
                        out.append(convert_gaze_datum(datum, self.threshold, self._offset_s))
                    if len(out) >= 10_000:
                        break
            except zmq.ZMQError as exc:
                if self._closed:
                    return out
                raise SourceError(f"pupil: subscription failed: {exc}") from exc
            now = time.monotonic()
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
