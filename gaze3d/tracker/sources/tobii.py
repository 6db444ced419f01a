"""The ``tobii`` source: screen-based Tobii Pro trackers through the Tobii Pro SDK (``tobii_research``).

The SDK ships wheels for Python 3.10 only, so the tracker usually runs in its
own lean environment (see ``docs/sources.md``). ``tobii_research`` is imported
on ``open()``.

Mapping of the SDK's gaze data dictionary (``subscribe_to(EYETRACKER_GAZE_DATA,
cb, as_dictionary=True)``) to sample fields:

* ``left/right_gaze_point_on_display_area`` (normalised, origin top-left, as
  ours) -> ``left/right.gaze``; validity ``*_gaze_point_validity == 1``;
* the combined ``gaze`` is the mean of the valid eyes (``valid`` if any eye is);
* ``*_pupil_diameter`` (mm, if ``*_pupil_validity``) -> ``pupil_mm``;
* ``*_gaze_origin_in_user_coordinate_system`` (mm) -> ``origin_mm``, and the unit
  vector towards ``*_gaze_point_in_user_coordinate_system`` -> ``direction``
  (Tobii's user coordinate system: origin at the tracker, x right, y up, z
  towards the user);
* ``device_time_stamp`` (us) -> ``t_device`` (s); ``system_time_stamp`` (us,
  the host clock the SDK keeps synchronised) -> ``t_system`` (s) and
  ``t_capture_ns`` (the same instant on ``time.monotonic_ns``).

Options: ``address`` (tracker address; default the first found),
``frequency`` (Hz; sets the gaze output frequency), ``max_queue`` (samples
buffered between the SDK thread and ``read``, default 100000; older ones are
dropped and counted), ``wait_s`` (how long ``open`` keeps answering "not yet"
while no eye tracker has ever been found, default 10 s) and
``wait_for_device`` (wait for one indefinitely; ``gaze3d tracker
--wait-for-device``).

No eye tracker yet: ``open`` raises :class:`SourceError` (the tracker server
retries it) until ``wait_s`` has passed since the first ``open``, then
:class:`NoEyeTrackerError`, an ``InputError``: the server stops and
``gaze3d tracker`` prints that one line and exits 2. Once a tracker has been
connected, losing it is a disconnection, retried for as long as it takes: a
lost connection (the SDK's ``EYETRACKER_NOTIFICATION_CONNECTION_LOST``)
makes ``read`` raise :class:`SourceError`; ``open`` again reconnects.

The SDK keeps subscriptions in a dict keyed by the callback (found again by
equality); the source subscribes and unsubscribes the very same bound-method
objects, made once, so ``close`` releases them under any SDK and a re-opened
source receives each sample once.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from typing import List

from ..._optional import optional_import
from ...errors import InputError
from ...protocol import TOPIC_GAZE_2D
from ._options import Options
from .base import GazeSource, SourceError

#: Seconds ``open`` waits for a first eye tracker before giving up (option ``wait_s``).
DEFAULT_WAIT_S = 10.0


class NoEyeTrackerError(InputError):
    """No eye tracker was ever found within the bounded wait: the tracker process stops (exit 2)."""


def _finite(seq) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in seq)
    except (TypeError, ValueError):
        return False


def _eye(d: dict, side: str) -> dict:
    """Per-eye sample fields from the SDK dictionary."""
    point = d.get(f"{side}_gaze_point_on_display_area")
    valid = d.get(f"{side}_gaze_point_validity") == 1 and point is not None and _finite(point)
    eye = {"gaze": [float(point[0]), float(point[1])] if valid else [math.nan, math.nan], "valid": bool(valid)}
    pupil = d.get(f"{side}_pupil_diameter")
    if d.get(f"{side}_pupil_validity") == 1 and pupil is not None and math.isfinite(pupil):
        eye["pupil_mm"] = float(pupil)
    origin = d.get(f"{side}_gaze_origin_in_user_coordinate_system")
    if d.get(f"{side}_gaze_origin_validity") == 1 and origin is not None and _finite(origin):
        eye["origin_mm"] = [float(v) for v in origin]
        target = d.get(f"{side}_gaze_point_in_user_coordinate_system")
        if valid and target is not None and _finite(target):
            v = [float(t) - float(o) for t, o in zip(target, origin)]
            n = math.sqrt(sum(c * c for c in v))
            if n > 0:
                eye["direction"] = [c / n for c in v]
    return eye


def convert_gaze_data(d: dict, system_offset_us: int = 0) -> dict:
    """One SDK gaze data dictionary -> one ``gaze.2d`` sample dict.

    Parameters
    ----------
    d : dict
        As delivered with ``as_dictionary=True``.
    system_offset_us : int
        ``get_system_time_stamp() - time.monotonic_ns() // 1000`` measured at open.
    """
    left, right = _eye(d, "left"), _eye(d, "right")
    good = [e["gaze"] for e in (left, right) if e["valid"]]
    gaze = [sum(g[0] for g in good) / len(good), sum(g[1] for g in good) / len(good)] if good \
        else [math.nan, math.nan]
    sample = {"topic": TOPIC_GAZE_2D, "t_device": d["device_time_stamp"] / 1e6, "t_host_ns": time.monotonic_ns(),
              "gaze": gaze, "valid": bool(good), "left": left, "right": right}
    sts = d.get("system_time_stamp")
    if sts is not None:
        sample["t_system"] = sts / 1e6
        sample["t_capture_ns"] = (int(sts) - int(system_offset_us)) * 1000
    return sample


class TobiiSource(GazeSource):
    """A Tobii Pro screen-based tracker.

    Thread-safety: the SDK calls back on its own thread, which only appends to
    a lock-protected queue; ``read`` runs on the tracker's acquisition thread;
    ``close`` may come from any thread and wakes a waiting ``read``.
    """

    name = "tobii"

    def __init__(self, **options):
        o = Options("tobii", options)
        self.address = o.str("address")
        self.frequency = o.float("frequency", None, 0.0, 10000.0, low_open=True)
        self.max_queue = o.int("max_queue", 100_000, low=1)
        self.wait_s = o.float("wait_s", DEFAULT_WAIT_S, 0.0, None)
        self.wait_for_device = o.bool("wait_for_device", False)
        o.check_unused()
        self._first_open = None          # time.monotonic() of the first open()
        self._seen = False               # an eye tracker was connected once: losing it is a disconnection
        # the callbacks, made once: subscribe and unsubscribe pass these very objects
        self._gaze_cb = self._on_gaze
        self._lost_cb = self._on_lost
        self._cond = threading.Condition()
        self._queue = collections.deque()
        self._lost = False
        self._closed = False
        self.dropped = 0
        self._tr = None
        self._et = None
        self._calibration = None
        self._info = {}
        self._offset_us = 0

    # ---------------------------------------------------------------- callbacks (SDK thread)
    def _on_gaze(self, d: dict) -> None:
        sample = convert_gaze_data(d, self._offset_us)
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(sample)
            self._cond.notify()

    def _on_lost(self, data=None) -> None:
        with self._cond:
            self._lost = True
            self._cond.notify_all()

    # ---------------------------------------------------------------- interface
    def _no_tracker(self) -> Exception:
        """The error for "no eye tracker found": retry (SourceError) or give up (NoEyeTrackerError)."""
        where = f" at {self.address}" if self.address else ""
        if self._seen or self.wait_for_device:
            return SourceError(f"tobii: no eye tracker found{where}")
        if time.monotonic() - self._first_open >= self.wait_s:
            return NoEyeTrackerError(
                f"tobii: no eye tracker found{where} within {self.wait_s:g} s; is it plugged in and "
                f"powered on? (--wait-for-device, or option wait_for_device=true, waits for one)")
        # the same text on every retry: the server logs a repeated failure once
        return SourceError(f"tobii: no eye tracker found{where} yet; waiting up to {self.wait_s:g} s "
                           f"(--opt wait_s=SECONDS to change, --wait-for-device to wait indefinitely)")

    def open(self) -> None:
        tr = self._tr = optional_import("tobii_research")
        self.close()
        if self._first_open is None:
            self._first_open = time.monotonic()
        try:
            trackers = list(tr.find_all_eyetrackers())
        except Exception as exc:          # the SDK raises its own error classes
            raise SourceError(f"tobii: searching for eye trackers failed: {exc}") from exc
        if self.address is not None:
            trackers = [t for t in trackers if t.address == self.address]
        if not trackers:
            raise self._no_tracker()
        et = trackers[0]
        try:
            if self.frequency is not None:
                et.set_gaze_output_frequency(self.frequency)
            rate = float(et.get_gaze_output_frequency())
            self._offset_us = int(tr.get_system_time_stamp()) - time.monotonic_ns() // 1000
            with self._cond:
                self._queue.clear()
                self._lost = False
                self._closed = False
            self._et = et                 # from here on, close() unsubscribes whatever got subscribed
            et.subscribe_to(tr.EYETRACKER_NOTIFICATION_CONNECTION_LOST, self._lost_cb, as_dictionary=True)
            et.subscribe_to(tr.EYETRACKER_GAZE_DATA, self._gaze_cb, as_dictionary=True)
        except Exception as exc:
            self.close()
            raise SourceError(f"tobii: connecting to {et.address} failed: {exc}") from exc
        self._seen = True
        self._info = {"source": self.name, "model": et.model, "serial": et.serial_number,
                      "address": et.address, "rate_hz": rate,
                      "sdk": getattr(tr, "__version__", "unknown")}

    def read(self, timeout_s: float) -> List[dict]:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while not self._queue and not self._lost and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._queue:
                out = list(self._queue)
                self._queue.clear()
                return out
            if self._lost:
                raise SourceError(f"tobii: connection to {self._info.get('address', 'the tracker')} lost")
            if self._et is None and not self._closed:
                raise SourceError("tobii: read before open")
            return []

    def close(self) -> None:
        et, self._et = self._et, None
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if et is not None and self._tr is not None:
            for stream, cb in ((self._tr.EYETRACKER_GAZE_DATA, self._gaze_cb),
                               (self._tr.EYETRACKER_NOTIFICATION_CONNECTION_LOST, self._lost_cb)):
                try:
                    et.unsubscribe_from(stream, cb)
                except Exception:     # the device may be gone already
                    pass

    def info(self) -> dict:
        return dict(self._info) if self._info else {"source": self.name, "address": self.address}

    def calibrate(self, action: str, **params) -> dict:
        """Screen-based calibration: ``start``, ``point`` (x, y), ``compute``, ``stop``."""
        if self._et is None:
            return {"ok": False, "error": "tobii: not connected"}
        tr = self._tr
        try:
            if action == "start":
                self._calibration = tr.ScreenBasedCalibration(self._et)
                self._calibration.enter_calibration_mode()
                return {"ok": True}
            if self._calibration is None:
                return {"ok": False, "error": "tobii: calibration not started"}
            if action == "point":
                status = self._calibration.collect_data(float(params["x"]), float(params["y"]))
                return {"ok": status == tr.CALIBRATION_STATUS_SUCCESS, "status": str(status)}
            if action == "compute":
                result = self._calibration.compute_and_apply()
                return {"ok": result.status == tr.CALIBRATION_STATUS_SUCCESS, "status": str(result.status),
                        "points": len(result.calibration_points)}
            if action == "stop":
                self._calibration.leave_calibration_mode()
                self._calibration = None
                return {"ok": True}
        except KeyError as exc:
            return {"ok": False, "error": f"tobii calibrate {action}: missing parameter {exc.args[0]!r}"}
        except Exception as exc:
            return {"ok": False, "error": f"tobii calibrate {action}: {exc}"}
        return {"ok": False, "error": f"tobii calibrate: unknown action {action!r} (start, point, compute, stop)"}
