"""A fake ``tobii_research`` (Tobii Pro SDK 2.1.0) for tests: the SDK's Python API and behaviour, no hardware.

Put ``tests/fakes`` on ``sys.path`` / ``PYTHONPATH`` and ``import tobii_research``
finds this module instead of the real SDK. Every public name here exists in
the real SDK 2.1.0 with the same signature, kind and (for constants) value;
``tests/test_sources_tobii.py::test_fake_matches_the_real_sdk`` checks that
against the real package wherever a Python with ``tobii_research`` is
available. Behaviour that the ``tobii`` source depends on follows the SDK:

* ``find_all_eyetrackers()`` returns *new* ``EyeTracker`` objects on every
  call (the SDK wraps its device list afresh); ``EyeTracker(address)`` opens
  the tracker at that address (``EyeTrackerConnectionFailedError`` if none,
  ``ValueError`` if ``address`` is not a string). Subscriptions belong to the
  ``EyeTracker`` object they were made on.
* ``subscribe_to(subscription_type, callback, as_dictionary=False)`` keeps
  callbacks in a dict, so a callback is found again by *equality* (a bound
  method accessed twice is two objects that compare equal, and
  ``unsubscribe_from`` removes it); subscribing the same callback to the same
  stream twice raises ``EyeTrackerInvalidOperationError``; a callback that is
  not callable, or an unknown stream, raises ``ValueError``. Callbacks run on
  the SDK's thread while it holds the object's subscription lock, so once
  ``unsubscribe_from`` returns that callback is not called again.
* ``unsubscribe_from(subscription_type, callback=None)``: ``None`` removes
  every callback of that stream; an unknown callback is ignored.
* Gaze data dictionaries (``as_dictionary=True``) carry exactly the SDK 2.1.0
  keys: per eye (``left_``/``right_``) ``gaze_point_on_display_area`` (x, y
  normalised, origin top-left), ``gaze_point_in_user_coordinate_system``
  (mm), ``gaze_point_validity`` (int 1/0), ``pupil_diameter`` (mm),
  ``pupil_validity``, ``gaze_origin_in_user_coordinate_system`` (mm),
  ``gaze_origin_validity``; plus ``device_time_stamp`` and
  ``system_time_stamp`` (int microseconds). Invalid values are NaN tuples.
  Notification dictionaries carry ``notification_type`` and
  ``system_time_stamp``. The object form (``as_dictionary=False``) is not
  implemented (the source does not use it): subscribing with it raises
  ``NotImplementedError`` rather than deliver something unlike the SDK's.
* ``ScreenBasedCalibration(eyetracker)``: ``enter_calibration_mode`` (twice:
  ``EyeTrackerInvalidOperationError``), ``collect_data(x, y)`` ->
  ``CALIBRATION_STATUS_SUCCESS``/``_FAILURE``, ``discard_data(x, y)``,
  ``compute_and_apply()`` -> ``CalibrationResult(status, calibration_points)``
  (an empty tuple on failure), ``leave_calibration_mode``; outside the mode
  they raise ``EyeTrackerInvalidOperationError``.
* ``get_system_time_stamp()``: microseconds of the host's monotonic clock
  (the SDK uses ``CLOCK_MONOTONIC`` on Linux).
* The SDK's errors derive from ``Exception`` and their ``str`` is the
  ``repr`` of the value they were raised with.

The gaze follows a known pattern so tests can check the mapping
(:func:`expected_left`): the left eye looks at
``(0.5 + 0.3 cos(2 pi 0.25 t), 0.5 + 0.2 sin(2 pi 0.25 t))``, the right eye 0.01
further right; the left eye is invalid on every 10th sample, both on every
25th. Samples are delivered from a background thread at the set frequency.

Test controls (not part of the SDK; prefixed ``fake_`` or named so):
environment variables ``FAKE_TOBII_DEVICES`` (number of trackers found,
default 1), ``FAKE_TOBII_FREQUENCY`` (Hz, default 120),
``FAKE_TOBII_DISCONNECT_AFTER_S`` (the device drops out that long after its
gaze stream starts, for subprocess tests); in-process ``fake_set_devices(n)``,
``EyeTracker.fake_disconnect()``, ``EyeTracker.fake_reconnect()``,
``EyeTracker.fake_mute(flag)`` (the device stays connected but sends no
gaze), ``fake_subscriber_count()``; and :func:`expected_left`.
"""
import math
import os
import threading
import time
import weakref

__version__ = "fake-2.1.0"

EYETRACKER_GAZE_DATA = "eyetracker_gaze_data"
EYETRACKER_NOTIFICATION_CONNECTION_LOST = "eyetracker_notification_connection_lost"
EYETRACKER_NOTIFICATION_CONNECTION_RESTORED = "eyetracker_notification_connection_restored"
EYETRACKER_STREAM_ERRORS = "eyetracker_stream_errors"
CAPABILITY_HAS_GAZE_DATA = "capability_has_gaze_data"
CAPABILITY_CAN_DO_SCREEN_BASED_CALIBRATION = "capability_can_do_screen_based_calibration"
CALIBRATION_STATUS_FAILURE = "calibration_status_failure"
CALIBRATION_STATUS_SUCCESS = "calibration_status_success"
VALIDITY_INVALID_AND_NOT_USED = "validity_invalid_and_not_used"
VALIDITY_VALID_AND_USED = "validity_valid_and_used"

_NOTIFICATIONS = (EYETRACKER_NOTIFICATION_CONNECTION_LOST, EYETRACKER_NOTIFICATION_CONNECTION_RESTORED)
_STREAMS = (EYETRACKER_GAZE_DATA, EYETRACKER_STREAM_ERRORS)
_VALID, _INVALID = 1, 0          # the SDK's dictionaries carry validity as int 1/0
_NAN2 = (float("nan"), float("nan"))
_NAN3 = (float("nan"), float("nan"), float("nan"))


class EyeTrackerConnectionFailedError(Exception):
    """The connection to an eye tracker is lost or could not be established (SDK class of that name)."""

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return repr(self.value)


class EyeTrackerInvalidOperationError(Exception):
    """The operation is invalid in this context, e.g. subscribing a callback twice (SDK class of that name)."""

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return repr(self.value)


def get_system_time_stamp():
    """The host clock in microseconds (the SDK uses the monotonic clock on Linux)."""
    return time.monotonic_ns() // 1000


def expected_left(t_s: float):
    """Test control: where the fake's left eye looks at device time ``t_s`` (s since the device started)."""
    w = 2 * math.pi * 0.25 * t_s
    return 0.5 + 0.3 * math.cos(w), 0.5 + 0.2 * math.sin(w)


# --------------------------------------------------------------------------- devices
class _Device:
    """One plugged-in fake tracker: its clock, connection and gaze pump, shared by every EyeTracker on it."""

    def __init__(self, address: str, serial: str):
        self.address = address
        self.serial = serial
        self.frequency = float(os.environ.get("FAKE_TOBII_FREQUENCY", "120"))
        self.connected = True
        self.muted = False
        self.t0 = time.monotonic()
        self.device_epoch_us = 987_654_321     # the device clock starts elsewhere
        after = os.environ.get("FAKE_TOBII_DISCONNECT_AFTER_S")
        self.disconnect_after_s = float(after) if after else None
        self.lock = threading.Lock()
        self.listeners = []                    # EyeTracker objects with a gaze subscription
        self.thread = None
        self.stop = threading.Event()

    def attach(self, et) -> None:
        with self.lock:
            if et not in self.listeners:
                self.listeners.append(et)
            if self.connected and (self.thread is None or not self.thread.is_alive() or self.stop.is_set()):
                self.stop = threading.Event()          # each pump has its own: a stopping one just ends
                self.thread = threading.Thread(target=self._pump, args=(self.stop,), name="fake-tobii-pump",
                                               daemon=True)
                self.thread.start()

    def detach(self, et) -> None:
        with self.lock:
            if et in self.listeners:
                self.listeners.remove(et)
            last = not self.listeners
            thread, stop = self.thread, self.stop
        if last and thread is not None:
            stop.set()
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)

    def disconnect(self) -> None:
        with self.lock:
            if not self.connected:
                return
            self.connected = False
            self.stop.set()
        _notify_all(self, EYETRACKER_NOTIFICATION_CONNECTION_LOST)

    def reconnect(self) -> None:
        with self.lock:
            self.connected = True
            self.disconnect_after_s = None
            listeners = list(self.listeners)
        for et in listeners:                   # gaze flows again to those still subscribed
            self.attach(et)
        _notify_all(self, EYETRACKER_NOTIFICATION_CONNECTION_RESTORED)

    def sample(self, k: int, t_dev: float) -> dict:
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
                "gaze_origin_validity": _VALID if ok else _INVALID,
            }

        d = {"device_time_stamp": self.device_epoch_us + int(round(t_dev * 1e6)),
             "system_time_stamp": get_system_time_stamp()}
        for side, ok, x, y, dx in (("left", left_ok, lx, ly, -30.0), ("right", right_ok, rx, ry, 30.0)):
            for key, value in eye(ok, x, y, dx).items():
                d[f"{side}_{key}"] = value
        return d

    def _pump(self, stop: threading.Event):
        period = 1.0 / self.frequency
        k = 0
        start = time.monotonic()
        drop_at = None if self.disconnect_after_s is None else start + self.disconnect_after_s
        while not stop.is_set():
            due = start + k * period
            now = time.monotonic()
            if due > now:
                stop.wait(due - now)
                continue
            if drop_at is not None and now >= drop_at:
                self.disconnect()
                return
            if not self.muted:
                d = self.sample(k, due - self.t0)
                with self.lock:
                    listeners = list(self.listeners)
                for et in listeners:
                    et._deliver(EYETRACKER_GAZE_DATA, d)
            k += 1


_registry_lock = threading.Lock()
_devices = None          # list of _Device, created on first use
_trackers = weakref.WeakSet()   # EyeTracker objects alive (notifications, fake_subscriber_count)


def _device_list():
    global _devices
    with _registry_lock:
        if _devices is None:
            n = int(os.environ.get("FAKE_TOBII_DEVICES", "1"))
            _devices = [_Device(f"tobii-prp://FAKE-{i:04d}", f"FAKE-{i:04d}") for i in range(n)]
        return _devices


def _notify_all(device: _Device, kind: str) -> None:
    data = {"notification_type": kind, "system_time_stamp": get_system_time_stamp()}
    with _registry_lock:
        trackers = [et for et in _trackers if et._device is device]
    for et in trackers:
        et._deliver(kind, data)


def fake_set_devices(n: int) -> None:
    """Test control: how many trackers are plugged in from now on (0 = none)."""
    global _devices
    with _registry_lock:
        _devices = [_Device(f"tobii-prp://FAKE-{i:04d}", f"FAKE-{i:04d}") for i in range(int(n))]


def fake_subscriber_count(subscription_type=EYETRACKER_GAZE_DATA) -> int:
    """Test control: callbacks subscribed to ``subscription_type`` over every EyeTracker object alive."""
    with _registry_lock:
        trackers = list(_trackers)
    return sum(len(et._subscriptions.get(subscription_type, {})) for et in trackers)


# --------------------------------------------------------------------------- the SDK's classes
class EyeTracker:
    """An eye tracker as the SDK's ``EyeTracker(address)``: properties, frequencies, subscriptions."""

    def __init__(self, address):
        if not isinstance(address, str):
            raise ValueError("An EyeTracker must be initialized with a URI.")
        found = [d for d in _device_list() if d.address == address and d.connected]
        if not found:
            raise EyeTrackerConnectionFailedError("The connection to the eye tracker failed. se_connection_failed")
        self._device = found[0]
        self._subscription_lock = threading.RLock()
        self._subscriptions = {}          # subscription type -> {callback: as_dictionary}
        with _registry_lock:
            _trackers.add(self)

    # ---------------------------------------------------------------- properties
    @property
    def address(self):
        return self._device.address

    @property
    def device_name(self):
        return "fake tracker"

    @property
    def serial_number(self):
        return self._device.serial

    @property
    def model(self):
        return "Fake Spectrum"

    @property
    def firmware_version(self):
        return "0.0.0"

    @property
    def runtime_version(self):
        return "0.0.0"

    @property
    def device_capabilities(self):
        return (CAPABILITY_HAS_GAZE_DATA, CAPABILITY_CAN_DO_SCREEN_BASED_CALIBRATION)

    # ---------------------------------------------------------------- frequencies
    def get_all_gaze_output_frequencies(self):
        self._check_connected()
        return (60.0, 120.0, 250.0, 300.0, 600.0, 1200.0)

    def get_gaze_output_frequency(self):
        self._check_connected()
        return self._device.frequency

    def set_gaze_output_frequency(self, gaze_output_frequency):
        self._check_connected()
        f = float(gaze_output_frequency)
        if f not in self.get_all_gaze_output_frequencies():
            raise ValueError("An invalid parameter has been sent to the API. invalid_parameter")
        self._device.frequency = f

    # ---------------------------------------------------------------- subscriptions
    def subscribe_to(self, subscription_type, callback, as_dictionary=False):
        if not callable(callback):
            raise ValueError("An invalid parameter has been sent to the API. invalid_parameter")
        if subscription_type not in _STREAMS + _NOTIFICATIONS:
            raise ValueError("An invalid parameter has been sent to the API. invalid_parameter")
        if not as_dictionary:
            raise NotImplementedError("fake tobii_research: only as_dictionary=True is implemented")
        if subscription_type == EYETRACKER_GAZE_DATA:
            self._check_connected()
        with self._subscription_lock:
            subs = self._subscriptions.setdefault(subscription_type, {})
            if callback in subs:          # dict lookup: by equality, as the SDK
                raise EyeTrackerInvalidOperationError(
                    "The operation is invalid in this context. invalid_operation")
            subs[callback] = bool(as_dictionary)
        if subscription_type == EYETRACKER_GAZE_DATA:
            self._device.attach(self)

    def unsubscribe_from(self, subscription_type, callback=None):
        if subscription_type not in _STREAMS + _NOTIFICATIONS:
            raise ValueError("An invalid parameter has been sent to the API. invalid_parameter")
        with self._subscription_lock:
            subs = self._subscriptions.get(subscription_type)
            if subs is not None:
                if callback in subs:
                    del subs[callback]
                if callback is None or not subs:
                    del self._subscriptions[subscription_type]
            gaze_left = EYETRACKER_GAZE_DATA in self._subscriptions
        if subscription_type == EYETRACKER_GAZE_DATA and not gaze_left:
            self._device.detach(self)

    # ---------------------------------------------------------------- test controls
    def fake_disconnect(self) -> None:
        """Test control: the device drops out; gaze stops and CONNECTION_LOST subscribers are called."""
        self._device.disconnect()

    def fake_reconnect(self) -> None:
        """Test control: the device comes back; CONNECTION_RESTORED subscribers are called."""
        self._device.reconnect()

    def fake_mute(self, muted: bool = True) -> None:
        """Test control: the device stays connected but sends no gaze while muted."""
        self._device.muted = bool(muted)

    # ---------------------------------------------------------------- internals
    def _check_connected(self):
        if not self._device.connected:
            raise EyeTrackerConnectionFailedError("The connection to the eye tracker failed. se_connection_failed")

    def _deliver(self, subscription_type, data: dict) -> None:
        # under the subscription lock, as the SDK: unsubscribe_from waits for a callback in progress
        with self._subscription_lock:
            for callback in list(self._subscriptions.get(subscription_type, {})):
                callback(dict(data))


def find_all_eyetrackers():
    """New EyeTracker objects for the trackers plugged in; a disconnected device is re-plugged as a fresh one."""
    global _devices
    devices = _device_list()
    with _registry_lock:
        _devices = [d if d.connected else _Device(d.address, d.serial) for d in devices]
        addresses = [d.address for d in _devices]
    return tuple(EyeTracker(a) for a in addresses)


class CalibrationEyeData:
    def __init__(self, position_on_display_area, validity):
        self._position = position_on_display_area
        self._validity = {-1: VALIDITY_INVALID_AND_NOT_USED, 1: VALIDITY_VALID_AND_USED}[validity]

    @property
    def position_on_display_area(self):
        return self._position

    @property
    def validity(self):
        return self._validity


class CalibrationSample:
    def __init__(self, left_eye, right_eye):
        self._left, self._right = left_eye, right_eye

    @property
    def left_eye(self):
        return self._left

    @property
    def right_eye(self):
        return self._right


class CalibrationPoint:
    def __init__(self, position_on_display_area, calibration_samples):
        self._position = position_on_display_area
        self._samples = calibration_samples

    @property
    def position_on_display_area(self):
        return self._position

    @property
    def calibration_samples(self):
        return self._samples


class CalibrationResult:
    def __init__(self, status, calibration_points):
        self._status = status
        self._points = calibration_points

    @property
    def status(self):
        return self._status

    @property
    def calibration_points(self):
        return self._points


class ScreenBasedCalibration:
    """Screen-based calibration; collected points succeed while the device is connected."""

    def __init__(self, eyetracker):
        if not isinstance(eyetracker, EyeTracker):
            raise ValueError("A ScreenBasedCalibration object must be initialized with an EyeTracker.")
        self._et = eyetracker
        self._in_mode = False
        self._points = []

    def _check_mode(self):
        self._et._check_connected()
        if not self._in_mode:
            raise EyeTrackerInvalidOperationError("Calibration has not been started. se_calibration_not_started")

    def enter_calibration_mode(self):
        self._et._check_connected()
        if self._in_mode:
            raise EyeTrackerInvalidOperationError(
                "The calibration has already been started. se_calibration_already_started")
        self._in_mode = True

    def leave_calibration_mode(self):
        self._check_mode()
        self._in_mode = False
        self._points = []

    def collect_data(self, x, y):
        x, y = float(x), float(y)
        self._check_mode()
        self._points.append((x, y))
        return CALIBRATION_STATUS_SUCCESS

    def discard_data(self, x, y):
        x, y = float(x), float(y)
        self._check_mode()
        self._points = [p for p in self._points if p != (x, y)]

    def compute_and_apply(self):
        self._check_mode()
        if len(set(self._points)) < 2:
            return CalibrationResult(CALIBRATION_STATUS_FAILURE, ())
        points = []
        for p in dict.fromkeys(self._points):            # distinct points, in collection order
            eye = CalibrationEyeData(p, 1)
            points.append(CalibrationPoint(p, (CalibrationSample(eye, eye),)))
        return CalibrationResult(CALIBRATION_STATUS_SUCCESS, tuple(points))
