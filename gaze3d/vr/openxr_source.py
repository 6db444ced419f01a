"""The OpenXR gaze source: ``XR_EXT_eye_gaze_interaction`` through ``pyopenxr`` (import name ``xr``).

A headless OpenXR session (``XR_MND_headless``: no rendering, the VR app or
the runtime's home shows the scene) with one pose action bound to
``/user/eyes_ext/input/gaze_ext/pose`` of the interaction profile
``/interaction_profiles/ext/eye_gaze_interaction``. Every frame
(``xrWaitFrame`` paces it at the display rate) the gaze pose and the ``VIEW``
space (the head) are located in the ``LOCAL`` or ``STAGE`` space and turned
into a ``gaze.3d`` sample with :func:`gaze3d.vr.frames.from_openxr` (the gaze
is the pose's -Z axis). Run it as a plugin source::

    gaze3d tracker --source module:gaze3d.vr.openxr_source:OpenXRSource --opt space=stage

Options: ``space`` (``local``, default, or ``stage``), ``world_from_tracking``
(16 comma-separated numbers, row-major: where tracking space sits in the
scan, default identity).

Times: ``t_device`` is the frame's predicted display time (``XrTime``, s);
``t_host_ns`` the host time when the pose was located (the eye-gaze sample
time, ``XrEyeGazeSampleTimeEXT``, and ``XR_KHR_convert_timespec_time`` are
not used yet). A gaze pose that is not active or whose orientation is not
valid (eyes closed, not calibrated) gives an invalid sample with the head
pose still set.

Tested only against a fake runtime module with pyopenxr's API
(``tests/fakes/xr``): no OpenXR runtime exists on the development machines
(``docs/vr.md``).
"""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from ..errors import InputError, OptionalDependencyError
from ..protocol import TOPIC_GAZE_3D
from ..tracker.sources._options import Options
from ..tracker.sources.base import SourceError, ThreadReleasedSource
from .frames import from_openxr

EYE_GAZE_PROFILE = "/interaction_profiles/ext/eye_gaze_interaction"
EYE_GAZE_POSE = "/user/eyes_ext/input/gaze_ext/pose"


def _import_xr():
    try:
        import xr  # noqa: F401  (pyopenxr)
    except ImportError as exc:
        raise OptionalDependencyError(f"pyopenxr (import name 'xr') is needed for the OpenXR source ({exc}); "
                                      "install it with: pip install pyopenxr") from exc
    return xr


class OpenXRSource(ThreadReleasedSource):
    """OpenXR eye gaze + head pose; see the module docstring.

    Thread-safety: the OpenXR handles belong to the reading thread; ``close``
    from another thread sets a flag and the handles are destroyed by that thread.
    """

    name = "openxr"

    def __init__(self, **options):
        o = Options("openxr", options)
        self.space = o.str("space", "local", choices=("local", "stage"))
        w = o.floats("world_from_tracking", 16)
        o.check_unused()
        self.world_from_tracking = None if w is None else np.asarray(w, dtype=np.float64).reshape(4, 4)
        if self.world_from_tracking is not None and not np.isfinite(self.world_from_tracking).all():
            raise InputError("openxr option 'world_from_tracking': expected 16 finite numbers")
        self._xr = None
        self._h: dict = {}
        self._state = None
        self._running = False
        self._counts = {"frames": 0, "gaze_inactive": 0, "gaze_untracked": 0, "head_untracked": 0}

    # ------------------------------------------------------------------ setup
    def open(self) -> None:
        self._release()
        self._closed = False
        xr = self._xr = _import_xr()
        h = self._h
        try:
            h["instance"] = xr.create_instance(xr.InstanceCreateInfo(enabled_extension_names=[
                xr.EXT_EYE_GAZE_INTERACTION_EXTENSION_NAME, xr.MND_HEADLESS_EXTENSION_NAME]))
            system = xr.get_system(h["instance"], xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY))
            h["session"] = xr.create_session(h["instance"], xr.SessionCreateInfo(system_id=system, next=None))
            h["action_set"] = xr.create_action_set(h["instance"], xr.ActionSetCreateInfo(
                action_set_name="gaze3d", localized_action_set_name="gaze3d eye gaze", priority=0))
            h["action"] = xr.create_action(h["action_set"], xr.ActionCreateInfo(
                action_type=xr.ActionType.POSE_INPUT, action_name="eye_gaze", localized_action_name="Eye gaze"))
            xr.suggest_interaction_profile_bindings(h["instance"], xr.InteractionProfileSuggestedBinding(
                interaction_profile=xr.string_to_path(h["instance"], EYE_GAZE_PROFILE),
                suggested_bindings=[xr.ActionSuggestedBinding(
                    action=h["action"], binding=xr.string_to_path(h["instance"], EYE_GAZE_POSE))]))
            xr.attach_session_action_sets(h["session"], xr.SessionActionSetsAttachInfo(action_sets=[h["action_set"]]))
            h["gaze_space"] = xr.create_action_space(h["session"], xr.ActionSpaceCreateInfo(
                action=h["action"], pose_in_action_space=xr.Posef()))
            kind = xr.ReferenceSpaceType.STAGE if self.space == "stage" else xr.ReferenceSpaceType.LOCAL
            h["base"] = xr.create_reference_space(h["session"], xr.ReferenceSpaceCreateInfo(
                reference_space_type=kind, pose_in_reference_space=xr.Posef()))
            h["view"] = xr.create_reference_space(h["session"], xr.ReferenceSpaceCreateInfo(
                reference_space_type=xr.ReferenceSpaceType.VIEW, pose_in_reference_space=xr.Posef()))
        except Exception as exc:   # no runtime, no HMD, extension missing: the server retries with backoff
            self._release()
            raise SourceError(f"openxr: {type(exc).__name__}: {exc}") from exc
        self._state = xr.SessionState.UNKNOWN
        self._running = False

    # ------------------------------------------------------------------ events
    def _poll_events(self) -> None:
        import ctypes

        xr = self._xr
        while True:
            try:
                buf = xr.poll_event(self._h["instance"])
            except xr.EventUnavailable:
                return
            if xr.StructureType(buf.type) != xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
                continue
            ev = ctypes.cast(ctypes.byref(buf), ctypes.POINTER(xr.EventDataSessionStateChanged)).contents
            self._state = xr.SessionState(ev.state)
            if self._state == xr.SessionState.READY:
                xr.begin_session(self._h["session"], xr.SessionBeginInfo(
                    primary_view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO))
                self._running = True
            elif self._state == xr.SessionState.STOPPING:
                xr.end_session(self._h["session"])
                self._running = False
            elif self._state in (xr.SessionState.EXITING, xr.SessionState.LOSS_PENDING):
                raise SourceError(f"openxr: session {self._state.name.lower()} (runtime or headset gone)")

    # ------------------------------------------------------------------ frames
    def _frame(self) -> Optional[dict]:
        xr, h = self._xr, self._h
        frame = xr.wait_frame(h["session"])
        xr.begin_frame(h["session"])
        t = frame.predicted_display_time
        try:
            if self._state != xr.SessionState.FOCUSED:     # actions are only synced while focused
                return None
            xr.sync_actions(h["session"], xr.ActionsSyncInfo(active_action_sets=[
                xr.ActiveActionSet(action_set=h["action_set"], subaction_path=xr.NULL_PATH)]))
            active = xr.get_action_state_pose(h["session"], xr.ActionStateGetInfo(action=h["action"])).is_active
            gaze = xr.locate_space(h["gaze_space"], h["base"], t)
            head = xr.locate_space(h["view"], h["base"], t)
        finally:
            xr.end_frame(h["session"], xr.FrameEndInfo(display_time=t,
                                                       environment_blend_mode=xr.EnvironmentBlendMode.OPAQUE,
                                                       layers=[]))
        t_host = time.monotonic_ns()
        self._counts["frames"] += 1
        need = xr.SPACE_LOCATION_ORIENTATION_VALID_BIT | xr.SPACE_LOCATION_POSITION_VALID_BIT
        gaze_ok = bool(active) and (int(gaze.location_flags) & need) == need
        head_ok = (int(head.location_flags) & need) == need
        if not active:
            self._counts["gaze_inactive"] += 1
        elif not gaze_ok:
            self._counts["gaze_untracked"] += 1
        if not head_ok:
            self._counts["head_untracked"] += 1

        def pq(loc):
            p, q = loc.pose.position, loc.pose.orientation
            return [p.x, p.y, p.z], [q.x, q.y, q.z, q.w]

        gp, gq = pq(gaze)
        hp, hq = pq(head)
        rays = from_openxr([gp], [gq], [hp] if head_ok else None, [hq] if head_ok else None,
                           world_from_tracking=self.world_from_tracking)
        s = {"topic": TOPIC_GAZE_3D, "t_device": int(t) * 1e-9, "t_host_ns": t_host, "valid": gaze_ok}
        if gaze_ok:
            s["ray_origin"] = rays.origin[0].tolist()
            s["ray_direction"] = rays.direction[0].tolist()
        if head_ok:
            s["head_pose"] = rays.head_pose[0].ravel().tolist()
        return s

    def _read(self, timeout_s: float) -> List[dict]:
        if self._xr is None or "session" not in self._h:
            if self._closed:
                return []
            raise SourceError("openxr: read before open")
        deadline = time.monotonic() + max(0.0, timeout_s)
        out: List[dict] = []
        while not self._closed:
            try:
                self._poll_events()
                if self._running:
                    s = self._frame()          # xrWaitFrame blocks until the next frame: the display's pace
                    if s is not None:
                        out.append(s)
                else:
                    time.sleep(0.01)
            except SourceError:
                raise
            except Exception as exc:           # an OpenXR call failed: session lost, runtime gone
                raise SourceError(f"openxr: {type(exc).__name__}: {exc}") from exc
            if len(out) >= 64 or time.monotonic() >= deadline:
                return out
        return out

    def _release(self) -> None:
        xr, h = self._xr, self._h
        self._h = {}
        self._running = False
        if xr is None:
            return
        for key, fn in (("gaze_space", "destroy_space"), ("base", "destroy_space"), ("view", "destroy_space"),
                        ("action_set", "destroy_action_set"), ("session", "destroy_session"),
                        ("instance", "destroy_instance")):
            if key in h:
                try:
                    getattr(xr, fn)(h[key])
                except Exception:   # already gone with the runtime: nothing left to release
                    pass

    def counters(self) -> dict:
        return dict(self._counts)

    def info(self) -> dict:
        return {"source": self.name, "model": "OpenXR XR_EXT_eye_gaze_interaction (pyopenxr)",
                "space": self.space, "time_base": "t_device = predicted display time; t_host_ns = located at"}
