"""A fake ``tobii_research`` (Tobii Pro SDK) for tests: the SDK's documented Python API, no hardware.

Put ``tests/fakes`` on ``sys.path`` / ``PYTHONPATH`` and ``import tobii_research``
finds this module instead of the real SDK. Implemented (names, signatures and
dictionary keys as in the SDK reference):

* ``find_all_eyetrackers()``, ``EyeTracker(address)`` with ``address``,
  ``model``, ``device_name``, ``serial_number``, ``firmware_version``,
  ``get_gaze_output_frequency()``, ``set_gaze_output_frequency(f)``,
  ``get_all_gaze_output_frequencies()``,
  ``subscribe_to(stream, callback, as_dictionary=False)`` and
  ``unsubscribe_from(stream, callback=None)`` for ``EYETRACKER_GAZE_DATA``,
  ``EYETRACKER_NOTIFICATION_CONNECTION_LOST`` /``_RESTORED``;
* ``get_system_time_stamp()`` (microseconds of the host's monotonic clock,
  like the SDK on Linux);
* ``ScreenBasedCalibration(eyetracker)`` with ``enter_calibration_mode``,
  ``collect_data(x, y)``, ``discard_data``, ``compute_and_apply`` (returns a
  ``CalibrationResult`` with ``status`` and ``calibration_points``),
  ``leave_calibration_mode``; ``CALIBRATION_STATUS_SUCCESS`` / ``_FAILURE``.

Gaze data dictionaries carry, per eye (``left_``/``right_``):
``gaze_point_on_display_area`` (x, y normalised, origin top-left),
``gaze_point_in_user_coordinate_system`` (mm), ``gaze_point_validity`` (1/0),
``pupil_diameter`` (mm), ``pupil_validity``, ``gaze_origin_in_user_coordinate_system``
(mm), ``gaze_origin_in_trackbox_coordinate_system``, ``gaze_origin_validity``;
plus ``device_time_stamp`` and ``system_time_stamp`` (microseconds). Invalid
values are NaN tuples as in the SDK.

The gaze follows a known pattern so tests can check the mapping
(:func:`expected_left`): the left eye looks at
``(0.5 + 0.3 cos(2 pi 0.25 t), 0.5 + 0.2 sin(2 pi 0.25 t))``, the right eye 0.01
further right; the left eye is invalid on every 10th sample, both on every
25th. Samples are delivered from a background thread at the set frequency.

Test controls (not part of the SDK, prefixed ``fake_``): environment variables
``FAKE_TOBII_DEVICES`` (number of trackers found, default 1),
``FAKE_TOBII_FREQUENCY`` (Hz, default 120), ``FAKE_TOBII_DISCONNECT_AFTER_S``
(the device drops out after that long, for subprocess tests); and in-process
``EyeTracker.fake_disconnect()`` / ``fake_set_devices(n)``.
"""
from __future__ import annotations

import math
import os
import threading
import time

__version__ = "fake-2.1.0"

EYETRACKER_GAZE_DATA = "eyetracker_gaze_data"
EYETRACKER_NOTIFICATION_CONNECTION_LOST = "eyetracker_notification_connection_lost"
EYETRACKER_NOTIFICATION_CONNECTION_RESTORED = "eyetracker_notification_connection_restored"
EYETRACKER_STREAM_ERRORS = "eyetracker_stream_errors"
CALIBRATION_STATUS_SUCCESS = "calibration_status_success"
CALIBRATION_STATUS_FAILURE = "calibration_status_failure"
_VALID, _INVALID = 1, 0          # the SDK's dictionaries carry validity as int 1/0

_NAN2 = (float("nan"), float("nan"))
_NAN3 = (float("nan"), float("nan"), float("nan"))
_lock = threading.Lock()
_devices = None          # list of EyeTracker, created on first find


class EyeTrackerConnectionFailedError(RuntimeError):
    """Raised by calls on a tracker whose connection is lost (the SDK's error class of that name)."""


def get_system_time_stamp() -> int:
    """The host clock in microseconds (the SDK uses the monotonic clock on Linux)."""
    return time.monotonic_ns() // 1000


def expected_left(t_s: float):
    """Where the fake's left eye looks at device time ``t_s`` (s since the device started)."""
    w = 2 * math.pi * 0.25 * t_s
    return 0.5 + 0.3 * math.cos(w), 0.5 + 0.2 * math.sin(w)


class CalibrationPoint:
    def __init__(self, position_on_display_area, left, right):
        self.position_on_display_area = position_on_display_area
        self.left_eye = left
        self.right_eye = right


class CalibrationResult:
    def __init__(self, status, calibration_points):
        self.status = status
        self.calibration_points = tuple(calibration_points)


class ScreenBasedCalibration:
    """Screen-based calibration as in the SDK; collected points are accepted when the device is connected."""

    def __init__(self, eyetracker):
        self._et = eyetracker
        self._in_mode = False
        self._points = []

    def enter_calibration_mode(self):
        if self._in_mode:
            raise RuntimeError("calibration mode already entered")
        self._et._check_connected()
        self._in_mode = True

    def leave_calibration_mode(self):
        self._in_mode = False
        self._points = []

    def collect_data(self, x, y):
        if not self._in_mode:
            raise RuntimeError("not in calibration mode")
        if not self._et._connected:
            return CALIBRATION_STATUS_FAILURE
        self._points.append((float(x), float(y)))
        return CALIBRATION_STATUS_SUCCESS

    def discard_data(self, x, y):
        self._points = [p for p in self._points if p != (float(x), float(y))]

    def compute_and_apply(self):
        if not self._in_mode:
            raise RuntimeError("not in calibration mode")
        ok = len(self._points) >= 2 and self._et._connected
        points = [CalibrationPoint(p, None, None) for p in self._points]
        return CalibrationResult(CALIBRATION_STATUS_SUCCESS if ok else CALIBRATION_STATUS_FAILURE, points)


class EyeTracker:
    """One fake screen-based eye tracker."""

    def __init__(self, address: str, serial: str = "FAKE-0001"):
        self.address = address
        self.model = "Fake Spectrum"
        self.device_name = "fake tracker"
        self.serial_number = serial
        self.firmware_version = "0.0.0"
        self._frequency = float(os.environ.get("FAKE_TOBII_FREQUENCY", "120"))
        self._subs = {}              # stream -> list of (callback, as_dictionary)
        self._thread = None
        self._stop = threading.Event()
        self._connected = True
        self._t0 = time.monotonic()
        self._device_epoch_us = 987_654_321     # the device clock starts elsewhere
        after = os.environ.get("FAKE_TOBII_DISCONNECT_AFTER_S")
        self._disconnect_at = None if not after else self._t0 + float(after)

    # ---------------------------------------------------------------- SDK API
    def get_gaze_output_frequency(self) -> float:
        self._check_connected()
        return self._frequency

    def set_gaze_output_frequency(self, frequency) -> None:
        self._check_connected()
        if float(frequency) not in self.get_all_gaze_output_frequencies():
            raise ValueError(f"unsupported gaze output frequency {frequency}")
        self._frequency = float(frequency)

    def get_all_gaze_output_frequencies(self):
        return (60.0, 120.0, 250.0, 300.0, 600.0, 1200.0)

    def subscribe_to(self, subscription_type, callback, as_dictionary=False):
        if subscription_type == EYETRACKER_GAZE_DATA:
            self._check_connected()
        with _lock:
            self._subs.setdefault(subscription_type, []).append((callback, bool(as_dictionary)))
        if subscription_type == EYETRACKER_GAZE_DATA and (self._thread is None or not self._thread.is_alive()):
            self._stop.clear()
            self._thread = threading.Thread(target=self._pump, name="fake-tobii-pump", daemon=True)
            self._thread.start()

    def unsubscribe_from(self, subscription_type, callback=None):
        with _lock:
            subs = self._subs.get(subscription_type, [])
            self._subs[subscription_type] = [s for s in subs if callback is not None and s[0] is not callback]
            gaze_left = bool(self._subs.get(EYETRACKER_GAZE_DATA))
        if not gaze_left:
            self._stop.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=2.0)

    # ---------------------------------------------------------------- test controls
    def fake_disconnect(self) -> None:
        """The device drops out: gaze stops and CONNECTION_LOST subscribers are called."""
        if not self._connected:
            return
        self._connected = False
        self._stop.set()
        self._notify(EYETRACKER_NOTIFICATION_CONNECTION_LOST)

    def fake_reconnect(self) -> None:
        self._connected = True
        self._disconnect_at = None
        self._notify(EYETRACKER_NOTIFICATION_CONNECTION_RESTORED)

    # ---------------------------------------------------------------- internals
    def _check_connected(self):
        if not self._connected:
            raise EyeTrackerConnectionFailedError(f"connection to {self.address} lost")

    def _notify(self, kind):
        data = {"system_time_stamp": get_system_time_stamp()}
        with _lock:
            subs = list(self._subs.get(kind, []))
        for cb, _ in subs:
            cb(data)

    def _sample(self, k: int, t_dev: float) -> dict:
        lx, ly = expected_left(t_dev)
        rx, ry = lx + 0.01, ly
        left_ok = k % 10 != 0 and k % 25 != 0
        right_ok = k % 25 != 0

        def eye(ok, x, y, dx):
            origin = (dx, 5.0, 600.0)
            point = ((x - 0.5) * 520.0, 300.0 - (y - 0.5) * 290.0, 50.0)
            return {
                "gaze_point_on_display_area": (x, y) if ok else _NAN2,
                "gaze_point_in_user_coordinate_system": point if ok else _NAN3,
                "gaze_point_validity": _VALID if ok else _INVALID,
                "pupil_diameter": 3.5 + 0.1 * dx / 30.0 if ok else float("nan"),
                "pupil_validity": _VALID if ok else _INVALID,
                "gaze_origin_in_user_coordinate_system": origin if ok else _NAN3,
                "gaze_origin_in_trackbox_coordinate_system": (0.5, 0.5, 0.5) if ok else _NAN3,
                "gaze_origin_validity": _VALID if ok else _INVALID,
            }

        d = {"device_time_stamp": self._device_epoch_us + int(round(t_dev * 1e6)),
             "system_time_stamp": get_system_time_stamp()}
        for side, ok, x, y, dx in (("left", left_ok, lx, ly, -30.0), ("right", right_ok, rx, ry, 30.0)):
            for key, value in eye(ok, x, y, dx).items():
                d[f"{side}_{key}"] = value
        return d

    def _pump(self):
        period = 1.0 / self._frequency
        k = 0
        start = time.monotonic()
        while not self._stop.is_set():
            due = start + k * period
            now = time.monotonic()
            if due > now:
                self._stop.wait(due - now)
                continue
            if self._disconnect_at is not None and now >= self._disconnect_at:
                self.fake_disconnect()
                return
            d = self._sample(k, due - self._t0)
            with _lock:
                subs = list(self._subs.get(EYETRACKER_GAZE_DATA, []))
            for cb, as_dict in subs:
                cb(dict(d) if as_dict else _GazeData(d))
            k += 1


class _GazeData:
    """Minimal object form (``as_dictionary=False``): attribute access to the same values."""

    def __init__(self, d):
        self._d = d

    def __getattr__(self, name):
        try:
            return self._d[name]
        except KeyError:
            raise AttributeError(name) from None


def fake_set_devices(n: int) -> None:
    """How many trackers ``find_all_eyetrackers`` finds from now on (0 = none plugged in)."""
    global _devices
    with _lock:
        _devices = [EyeTracker(f"tobii-prp://FAKE-{i:04d}", serial=f"FAKE-{i:04d}") for i in range(int(n))]


def find_all_eyetrackers():
    """All (fake) trackers; a disconnected one is replaced by a fresh one, as re-plugging would."""
    global _devices
    if _devices is None:
        fake_set_devices(int(os.environ.get("FAKE_TOBII_DEVICES", "1")))
    with _lock:
        _devices = [d if d._connected else EyeTracker(d.address, d.serial_number) for d in _devices]
        return tuple(_devices)
