"""A fake OpenXR runtime behind ``pyopenxr``'s API (import name ``xr``), for tests: no headset, no runtime.

Put ``tests/fakes`` on ``sys.path`` and ``import xr`` finds this module. It
implements the part of pyopenxr (1.1.x) that ``gaze3d.vr.openxr_source``
uses, with pyopenxr's names and call signatures: ``create_instance``,
``get_system``, ``create_session``, action sets/actions/bindings,
``create_action_space``, ``create_reference_space``, ``poll_event`` (an
``EventDataBuffer`` ctypes structure that ``ctypes.cast`` turns into an
``EventDataSessionStateChanged``, as with the real loader; ``EventUnavailable``
when empty), ``begin_session``/``end_session``, ``wait_frame`` (paced at
``FAKE_XR_RATE`` Hz, default 90, returning ``predicted_display_time`` in
ns), ``begin_frame``/``end_frame``, ``sync_actions``,
``get_action_state_pose``, ``locate_space`` and the ``destroy_*`` calls.
Calls on a destroyed handle raise ``HandleInvalidError``.

The simulated user (all in STAGE space, +Y up, -Z forward): the head at
``(0.2 t, 1.6, 0)`` (m, t in s since the session began) turning left at
``FAKE_XR_YAW_DEG_S`` (default 30) deg/s about +Y, while the eyes hold the
world point :data:`TARGET` (vestibulo-ocular reflex); the gaze pose's
position is the head's and its -Z axis points at the target. Every 30th
frame the eyes are closed: the gaze location has no valid orientation.
``LOCAL`` space is STAGE moved down by 1.6 m (a seated origin at eye height).
:func:`fake_exit` makes the runtime end the session (STOPPING, then EXITING).
"""
from __future__ import annotations

import ctypes
import enum
import math
import os
import threading
import time
from collections import deque
from types import SimpleNamespace

EXT_EYE_GAZE_INTERACTION_EXTENSION_NAME = "XR_EXT_eye_gaze_interaction"
MND_HEADLESS_EXTENSION_NAME = "XR_MND_headless"
NULL_PATH = 0
SPACE_LOCATION_ORIENTATION_VALID_BIT = 0x1
SPACE_LOCATION_POSITION_VALID_BIT = 0x2
SPACE_LOCATION_ORIENTATION_TRACKED_BIT = 0x4
SPACE_LOCATION_POSITION_TRACKED_BIT = 0x8

TARGET = (1.0, 1.5, -3.0)
_LOCAL_DROP = 1.6


class XrException(Exception):
    pass


class EventUnavailable(XrException):
    pass


class HandleInvalidError(XrException):
    pass


class ExtensionNotPresentError(XrException):
    pass


class FormFactor(enum.IntEnum):
    HEAD_MOUNTED_DISPLAY = 1
    HANDHELD_DISPLAY = 2


class ActionType(enum.IntEnum):
    BOOLEAN_INPUT = 1
    FLOAT_INPUT = 2
    VECTOR2F_INPUT = 3
    POSE_INPUT = 4
    VIBRATION_OUTPUT = 100


class ReferenceSpaceType(enum.IntEnum):
    VIEW = 1
    LOCAL = 2
    STAGE = 3


class ViewConfigurationType(enum.IntEnum):
    PRIMARY_MONO = 1
    PRIMARY_STEREO = 2


class EnvironmentBlendMode(enum.IntEnum):
    OPAQUE = 1


class StructureType(enum.IntEnum):
    EVENT_DATA_BUFFER = 16
    EVENT_DATA_SESSION_STATE_CHANGED = 18


class SessionState(enum.IntEnum):
    UNKNOWN = 0
    IDLE = 1
    READY = 2
    SYNCHRONIZED = 3
    VISIBLE = 4
    FOCUSED = 5
    STOPPING = 6
    LOSS_PENDING = 7
    EXITING = 8


class EventDataBuffer(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("next", ctypes.c_void_p), ("varying", ctypes.c_uint8 * 4000)]


class EventDataSessionStateChanged(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("next", ctypes.c_void_p), ("session", ctypes.c_void_p),
                ("state", ctypes.c_int), ("time", ctypes.c_int64)]


def _info(**defaults):
    def make(**kw):
        return SimpleNamespace(**{**defaults, **kw})
    return make


InstanceCreateInfo = _info(enabled_extension_names=())
SystemGetInfo = _info(form_factor=FormFactor.HEAD_MOUNTED_DISPLAY)
SessionCreateInfo = _info(system_id=None, next=None)
ActionSetCreateInfo = _info(action_set_name="", localized_action_set_name="", priority=0)
ActionCreateInfo = _info(action_type=ActionType.BOOLEAN_INPUT, action_name="", localized_action_name="")
ActionSuggestedBinding = _info(action=None, binding=0)
InteractionProfileSuggestedBinding = _info(interaction_profile=0, suggested_bindings=())
SessionActionSetsAttachInfo = _info(action_sets=())
ActionSpaceCreateInfo = _info(action=None, subaction_path=0, pose_in_action_space=None)
ReferenceSpaceCreateInfo = _info(reference_space_type=ReferenceSpaceType.LOCAL, pose_in_reference_space=None)
SessionBeginInfo = _info(primary_view_configuration_type=ViewConfigurationType.PRIMARY_STEREO)
ActiveActionSet = _info(action_set=None, subaction_path=0)
ActionsSyncInfo = _info(active_action_sets=())
ActionStateGetInfo = _info(action=None, subaction_path=0)
FrameEndInfo = _info(display_time=0, environment_blend_mode=EnvironmentBlendMode.OPAQUE, layers=())


def Vector3f(x=0.0, y=0.0, z=0.0):
    return SimpleNamespace(x=x, y=y, z=z)


def Quaternionf(x=0.0, y=0.0, z=0.0, w=1.0):
    return SimpleNamespace(x=x, y=y, z=z, w=w)


def Posef(orientation=None, position=None):
    return SimpleNamespace(orientation=orientation or Quaternionf(), position=position or Vector3f())


# --- the runtime ------------------------------------------------------------------------------------
_lock = threading.Lock()
_handles = {}
_paths = {}
_runtime = {"events": deque(), "session": None, "t0": None, "frame": 0, "exit": False, "next_frame_ns": 0}


def _new(kind, **data):
    h = SimpleNamespace(kind=kind, alive=True, **data)
    _handles[id(h)] = h
    return h


def _check(h, kind):
    if h is None or getattr(h, "kind", None) != kind or not h.alive:
        raise HandleInvalidError(f"XR_ERROR_HANDLE_INVALID ({kind})")
    return h


def _event(state):
    _runtime["events"].append(int(state))


def create_instance(create_info):
    for ext in create_info.enabled_extension_names:
        if ext not in (EXT_EYE_GAZE_INTERACTION_EXTENSION_NAME, MND_HEADLESS_EXTENSION_NAME):
            raise ExtensionNotPresentError(f"XR_ERROR_EXTENSION_NOT_PRESENT: {ext}")
    return _new("instance", extensions=list(create_info.enabled_extension_names))


def get_system(instance, get_info):
    _check(instance, "instance")
    if get_info.form_factor != FormFactor.HEAD_MOUNTED_DISPLAY:
        raise XrException("XR_ERROR_FORM_FACTOR_UNSUPPORTED")
    return 1


def create_session(instance, create_info):
    _check(instance, "instance")
    if MND_HEADLESS_EXTENSION_NAME not in instance.extensions and create_info.next is None:
        raise XrException("XR_ERROR_GRAPHICS_DEVICE_INVALID: no graphics binding and XR_MND_headless not enabled")
    s = _new("session", instance=instance, running=False, attached=[], bindings={})
    with _lock:
        _runtime.update(session=s, t0=None, frame=0, exit=False, events=deque())
        _event(SessionState.IDLE)
        _event(SessionState.READY)
    return s


def create_action_set(instance, create_info):
    _check(instance, "instance")
    return _new("action_set", name=create_info.action_set_name, actions=[])


def create_action(action_set, create_info):
    _check(action_set, "action_set")
    a = _new("action", type=create_info.action_type, name=create_info.action_name)
    action_set.actions.append(a)
    return a


def string_to_path(instance, path_string):
    _check(instance, "instance")
    return _paths.setdefault(path_string, len(_paths) + 1)


def _path_string(p):
    return next((k for k, v in _paths.items() if v == p), None)


def suggest_interaction_profile_bindings(instance, suggested_bindings):
    _check(instance, "instance")
    profile = _path_string(suggested_bindings.interaction_profile)
    for b in suggested_bindings.suggested_bindings:
        instance.__dict__.setdefault("bindings", []).append((profile, _path_string(b.binding), b.action))


def attach_session_action_sets(session, attach_info):
    _check(session, "session")
    session.attached = list(attach_info.action_sets)


def create_action_space(session, create_info):
    _check(session, "session")
    _check(create_info.action, "action")
    return _new("space", what="action", action=create_info.action, session=session)


def create_reference_space(session, create_info):
    _check(session, "session")
    return _new("space", what=ReferenceSpaceType(create_info.reference_space_type), session=session)


def poll_event(instance):
    _check(instance, "instance")
    with _lock:
        if not _runtime["events"]:
            raise EventUnavailable("XR_EVENT_UNAVAILABLE")
        state = _runtime["events"].popleft()
    buf = EventDataBuffer()
    ev = EventDataSessionStateChanged.from_buffer(buf)
    ev.type = int(StructureType.EVENT_DATA_SESSION_STATE_CHANGED)
    ev.state = state
    ev.time = time.monotonic_ns()
    return buf


def begin_session(session, begin_info):
    _check(session, "session")
    session.running = True
    with _lock:
        _runtime["t0"] = time.monotonic_ns()
        _runtime["next_frame_ns"] = _runtime["t0"]
        _event(SessionState.SYNCHRONIZED)
        _event(SessionState.VISIBLE)
        _event(SessionState.FOCUSED)


def end_session(session):
    _check(session, "session")
    session.running = False


def fake_exit():
    """The runtime ends the session (the user quit, the headset was unplugged)."""
    with _lock:
        _event(SessionState.STOPPING)
        _event(SessionState.EXITING)


def _rate():
    return float(os.environ.get("FAKE_XR_RATE", "90"))


def wait_frame(session, frame_wait_info=None):
    _check(session, "session")
    if not session.running:
        raise XrException("XR_ERROR_SESSION_NOT_RUNNING")
    period = int(1e9 / _rate())
    with _lock:
        due = _runtime["next_frame_ns"]
        _runtime["next_frame_ns"] = due + period
    now = time.monotonic_ns()
    if due > now:
        time.sleep((due - now) / 1e9)
    return SimpleNamespace(predicted_display_time=due + period, predicted_display_period=period, should_render=True)


def begin_frame(session, frame_begin_info=None):
    _check(session, "session")


def end_frame(session, frame_end_info):
    _check(session, "session")
    with _lock:
        _runtime["frame"] += 1


def sync_actions(session, sync_info):
    _check(session, "session")
    for a in sync_info.active_action_sets:
        if a.action_set not in session.attached:
            raise XrException("XR_ERROR_ACTIONSET_NOT_ATTACHED")


def _bound(action):
    inst = _runtime["session"].instance
    return any(p == "/interaction_profiles/ext/eye_gaze_interaction" and b == "/user/eyes_ext/input/gaze_ext/pose"
               and a is action for p, b, a in inst.__dict__.get("bindings", []))


def get_action_state_pose(session, get_info):
    _check(session, "session")
    return SimpleNamespace(is_active=_bound(get_info.action)
                           and EXT_EYE_GAZE_INTERACTION_EXTENSION_NAME in session.instance.extensions)


def truth(t_ns):
    """``(head position (3,), head quaternion (x, y, z, w), target (3,))`` in STAGE space at XrTime ``t_ns``."""
    t = (t_ns - _runtime["t0"]) * 1e-9
    yaw = math.radians(float(os.environ.get("FAKE_XR_YAW_DEG_S", "30")) * t)
    return (0.2 * t, 1.6, 0.0), (0.0, math.sin(yaw / 2), 0.0, math.cos(yaw / 2)), TARGET


def _look_quat(pos, target):
    """Quaternion (x, y, z, w) whose -Z axis points from ``pos`` to ``target`` (+Y kept up)."""
    dx, dy, dz = (target[i] - pos[i] for i in range(3))
    yaw = math.atan2(-dx, -dz)
    pitch = math.atan2(dy, math.hypot(dx, dz))
    cy, sy, cp, sp = math.cos(yaw / 2), math.sin(yaw / 2), math.cos(pitch / 2), math.sin(pitch / 2)
    # q = q_yaw(about +Y) * q_pitch(about +X)
    return (cy * sp, sy * cp, -sy * sp, cy * cp)


def locate_space(space, base_space, time):
    _check(space, "space")
    _check(base_space, "space")
    if base_space.what not in (ReferenceSpaceType.STAGE, ReferenceSpaceType.LOCAL):
        raise XrException("fake runtime: only STAGE and LOCAL base spaces")
    head_p, head_q, target = truth(int(time))
    drop = _LOCAL_DROP if base_space.what == ReferenceSpaceType.LOCAL else 0.0
    flags = (SPACE_LOCATION_ORIENTATION_VALID_BIT | SPACE_LOCATION_POSITION_VALID_BIT
             | SPACE_LOCATION_ORIENTATION_TRACKED_BIT | SPACE_LOCATION_POSITION_TRACKED_BIT)
    if space.what == ReferenceSpaceType.VIEW:
        p, q = head_p, head_q
    elif space.what == "action":
        p, q = head_p, _look_quat(head_p, target)
        if _runtime["frame"] % 30 == 29:                   # eyes closed on every 30th frame
            flags = SPACE_LOCATION_POSITION_VALID_BIT
    else:
        p, q = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
    pose = Posef(Quaternionf(*q), Vector3f(p[0], p[1] - drop, p[2]))
    return SimpleNamespace(location_flags=flags, pose=pose)


def _destroy(kind):
    def destroy(handle):
        _check(handle, kind)
        handle.alive = False
    return destroy


destroy_space = _destroy("space")
destroy_action_set = _destroy("action_set")
destroy_session = _destroy("session")
destroy_instance = _destroy("instance")
