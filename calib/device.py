"""The eye tracker's own calibration, run from gaze3d.

* **Tobii screen-based calibration** goes through the tracker process's
  control socket (``TrackerControl.calibrate(action, **kw)``), whose source
  drives ``tobii_research.ScreenBasedCalibration``: ``start`` (enter
  calibration mode), ``point`` per target (collect data while the annotator
  looks at it), ``compute`` (compute and apply), ``stop`` (leave
  calibration mode, always, also after an error).
* **Pupil Core calibration** is started and stopped through Pupil Remote, the
  REQ/REP socket of Pupil Capture (default ``tcp://127.0.0.1:50020``): ``C``
  starts the calibration choreography shown by Pupil Capture, ``c`` stops it.

The viewer shows each target (``on_target`` callback) and the annotator
looks at it for ``settle_s`` before the device collects.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Optional

import numpy as np
import zmq

from gaze3d.errors import Gaze3DError, InputError
from gaze3d.tracker.client import TrackerControl


_TCP = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$")


def check_address(address, option: str) -> str:
    """``address`` if it is an endpoint a client can connect to: ``tcp://HOST:PORT`` or ``ipc://PATH``.

    Checked before connecting: ZMQ's own answer to a malformed one is a bare ``Invalid argument``.
    """
    text = str(address).strip()
    m = _TCP.match(text)
    if (m and 1 <= int(m.group(2)) <= 65535) or (text.startswith("ipc://") and len(text) > len("ipc://")):
        return text
    raise InputError(f"{option} {address!r}: expected an address such as tcp://127.0.0.1:5556 "
                     f"(port 1-65535) or ipc:///path/to/socket")


class DeviceCalibrationError(Gaze3DError):
    """The device refused a calibration step or the calibration failed."""


def _result(reply: dict, action: str) -> dict:
    """The source's answer inside the control reply; raises if it says not ok."""
    res = reply.get("result", reply) if isinstance(reply, dict) else None
    if not isinstance(res, dict):
        raise DeviceCalibrationError(f"device calibration {action}: unexpected reply {reply!r}")
    if not res.get("ok", False):
        raise DeviceCalibrationError(f"device calibration {action}: {res.get('error') or res.get('status') or res}")
    return res


def run_screen_calibration(control, points, on_target: Optional[Callable[[int, float, float], None]] = None,
                           settle_s: float = 0.7, retries: int = 1) -> dict:
    """Screen-based device calibration through a tracker control client.

    Parameters
    ----------
    control : gaze3d.tracker.client.TrackerControl
        Connected to the tracker process whose source calibrates (tobii).
    points : (k, 2) float
        Calibration targets, tracker coordinates in [0, 1].
    on_target : callable(i, x, y), optional
        Shows target ``i`` (the viewer); called before the settle time.
    settle_s : float
        Time for the eye to land on the target before collecting.
    retries : int
        Extra collection attempts per point when the device reports failure.

    Returns
    -------
    dict
        ``ok``, ``points`` (per point: x, y, collected), and the device's
        ``compute`` result (status, per-point data when the SDK gives it).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 1 or not np.all((pts >= 0) & (pts <= 1)):
        raise InputError("calibration points: expected at least one (x, y) in [0, 1]")
    _result(control.calibrate("start"), "start")
    per_point = []
    try:
        for i, (x, y) in enumerate(pts):
            if on_target is not None:
                on_target(i, float(x), float(y))
            time.sleep(settle_s)
            last = None
            for _ in range(retries + 1):
                try:
                    last = _result(control.calibrate("point", x=float(x), y=float(y)), f"point {i}")
                    break
                except DeviceCalibrationError as exc:
                    last = {"ok": False, "error": str(exc)}
            per_point.append({"x": float(x), "y": float(y), "collected": bool(last.get("ok"))})
        computed = control.calibrate("compute")
        res = computed.get("result", computed)
    finally:
        try:
            control.calibrate("stop")
        except Exception:         # leaving must not hide the real error; the source resets on close
            pass
    return {"ok": bool(res.get("ok")), "points": per_point, "compute": res}


def tracker_calibration(ctrl_address: str, points, settle_s: float = 0.7, **kw) -> dict:
    """:func:`run_screen_calibration` on a fresh control connection to ``ctrl_address``."""
    with TrackerControl(ctrl_address) as control:
        return run_screen_calibration(control, points, settle_s=settle_s, **kw)


class PupilRemote:
    """Minimal Pupil Remote client (ZMQ REQ) for calibration control.

    Thread-safety: not thread-safe (one REQ socket); use from one thread.
    """

    def __init__(self, address: str = "tcp://127.0.0.1:50020", timeout_s: float = 2.0):
        self.address = address
        self.timeout_s = float(timeout_s)
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.REQ)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(address)

    def command(self, text: str) -> str:
        """Send one Pupil Remote command string and return its reply."""
        self._sock.send_string(text)
        if not self._sock.poll(int(self.timeout_s * 1000), zmq.POLLIN):
            self.close()
            raise DeviceCalibrationError(f"Pupil Remote at {self.address} did not answer {text!r} "
                                         f"within {self.timeout_s:g} s (is Pupil Capture running?)")
        return self._sock.recv_string()

    def start_calibration(self) -> str:
        return self.command("C")

    def stop_calibration(self) -> str:
        return self.command("c")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pupil_calibration(address: str = "tcp://127.0.0.1:50020", duration_s: float = 10.0,
                      wait: Callable[[float], None] = time.sleep) -> dict:
    """Start Pupil Capture's calibration, let it run ``duration_s``, stop it; returns both replies."""
    with PupilRemote(address) as remote:
        started = remote.start_calibration()
        try:
            wait(duration_s)
        finally:
            stopped = remote.stop_calibration()
    return {"ok": True, "start_reply": started, "stop_reply": stopped}


def tracker_pupil_calibration(ctrl_address: str, duration_s: float = 10.0,
                              wait: Callable[[float], None] = time.sleep) -> dict:
    """Pupil Core calibration through a tracker process running the ``pupil`` source.

    The source forwards ``start``/``stop`` to Pupil Remote as ``C``/``c``.
    """
    with TrackerControl(ctrl_address) as control:
        started = _result(control.calibrate("start"), "start")
        try:
            wait(duration_s)
        finally:
            stopped = _result(control.calibrate("stop"), "stop")
    return {"ok": True, "start_reply": started.get("reply"), "stop_reply": stopped.get("reply")}
