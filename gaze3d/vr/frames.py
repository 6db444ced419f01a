"""World, head and eye frames for VR gaze, and converters from headset conventions.

The frame model (one source of truth; ``docs/vr.md`` explains it with figures in words)
-------------------------------------------------------------------------------------

*gaze3d world*
    The scan's own coordinates (right-handed, the scan's units; the scan may
    be +Z up like airborne LiDAR or +Y up like a game scene). Every
    ``gaze.3d`` sample's ``ray_origin`` / ``ray_direction`` / ``head_pose``
    is in this frame.
*tracking space*
    The headset runtime's room frame: OpenXR ``LOCAL`` or ``STAGE`` space,
    right-handed, +Y up, metres. Unity's world is the same room with Z
    mirrored (left-handed, +Z forward). ``world_from_tracking`` (4 x 4,
    default identity) places tracking space in the scan (for example
    :data:`Y_UP_TO_Z_UP` followed by a translation for a LiDAR tile).
*head frame*
    OpenXR's view convention: right-handed, +X right, +Y up, the user looks
    along **-Z**; origin between the eyes. ``head_pose`` is world-from-head.
*eye rays*
    A gaze ray (origin, unit direction) in the head frame or in tracking
    space, combined (cyclopean) or per eye; :func:`combine_eyes` averages two.

The converters below take what each SDK gives, in its units and handedness,
and return :class:`WorldRays` in the gaze3d world:

============  ==========================================================  ==================
convention    what the SDK gives                                          converter
============  ==========================================================  ==================
OpenXR        ``XR_EXT_eye_gaze_interaction``: one combined gaze pose     :func:`from_openxr`
              (position + quaternion x, y, z, w) located in LOCAL/STAGE;
              the gaze is the pose's -Z axis
Unity         world-space rays / transforms, left-handed, +Z forward      :func:`from_unity`
Varjo         combined or per-eye rays relative to the head (native SDK   :func:`from_varjo`
              ``varjo_Gaze``: +X right, +Y up, +Z forward, metres)
SRanipal      per-eye ``gaze_origin_mm`` and ``gaze_direction_normalized``  :func:`from_sranipal`
              in a right-handed head frame with +X **left**, +Y up,
              +Z forward (SRanipal's Unity plugin negates X)
Pico          head-space gaze vector (Unity convention) x head pose       :func:`from_pico`
              (Unity world)
============  ==========================================================  ==================

Quaternions are ``(x, y, z, w)`` throughout (OpenXR's and Unity's member order).
Only numpy is used: the tracker process imports this module.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import InputError

#: (4, 4) +Y-up tracking space -> +Z-up world (x, y, z) -> (x, -z, y): forward (-Z) becomes +Y (north).
Y_UP_TO_Z_UP = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])

#: Mirror of Z: Unity (left-handed, +Z forward) <-> right-handed +Y-up (OpenXR-like, -Z forward).
MIRROR_Z = np.diag([1.0, 1.0, -1.0])

#: SRanipal head frame (+X left, +Y up, +Z forward, right-handed) -> gaze3d head frame (+X right, -Z forward).
SRANIPAL_TO_HEAD = np.diag([-1.0, 1.0, -1.0])

#: The gaze direction, in the head frame, of a user looking straight ahead.
HEAD_FORWARD = np.array([0.0, 0.0, -1.0])


class WorldRays(NamedTuple):
    """Gaze rays in the gaze3d world.

    origin, direction : (n, 3) float64 (direction unit; NaN rows are invalid)
    head_pose : (n, 4, 4) float64 world-from-head (NaN where unknown)
    """

    origin: np.ndarray
    direction: np.ndarray
    head_pose: np.ndarray


# --- small helpers ---------------------------------------------------------------------------------
def _vec3(a, name: str) -> np.ndarray:
    v = np.asarray(a, dtype=np.float64)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputError(f"{name}: expected (n, 3) or (3,), got shape {np.shape(a)}")
    return v


def unit_rows(v: np.ndarray) -> np.ndarray:
    """``v`` (..., 3) scaled to unit length along the last axis; NaN rows where the length is ~0."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1e-12, v / n, np.nan)


def quat_to_matrix(q) -> np.ndarray:
    """(n, 4) or (4,) quaternions ``(x, y, z, w)`` -> (n, 3, 3) rotation matrices (normalised first).

    The rotation is the usual right-handed one of the numbers; in a
    left-handed engine (Unity) the same numbers rotate the same coordinate
    columns, so conversions between handedness act on the matrices
    (:func:`mirror_rotation`).
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2 or q.shape[1] != 4:
        raise InputError(f"quaternion: expected (n, 4) (x, y, z, w), got shape {np.shape(q)}")
    q = unit_rows(q)
    x, y, z, w = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], 1)


def pose_matrix(position, rotation) -> np.ndarray:
    """(n, 3) positions and (n, 3, 3) rotations -> (n, 4, 4) rigid transforms."""
    p = _vec3(position, "position")
    r = np.asarray(rotation, dtype=np.float64).reshape(-1, 3, 3)
    if len(r) == 1 and len(p) > 1:
        r = np.broadcast_to(r, (len(p), 3, 3))
    if len(p) == 1 and len(r) > 1:
        p = np.broadcast_to(p, (len(r), 3))
    out = np.zeros((len(p), 4, 4))
    out[:, :3, :3] = r
    out[:, :3, 3] = p
    out[:, 3, 3] = 1.0
    return out


def mirror_rotation(r: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotation seen through a (3, 3) diagonal mirror ``M``: ``M R M`` (a proper rotation again)."""
    return mirror @ np.asarray(r, dtype=np.float64) @ mirror


def apply_pose(pose, points=None, directions=None):
    """Apply (n, 4, 4) or (4, 4) transforms to (n, 3) points and/or directions -> tuple of (n, 3)."""
    T = np.asarray(pose, dtype=np.float64)
    if T.ndim == 2:
        T = T[None]
    out = []
    if points is not None:
        p = _vec3(points, "points")
        out.append(np.einsum("nij,nj->ni", T[:, :3, :3], p) + T[:, :3, 3] if len(T) > 1
                   else p @ T[0, :3, :3].T + T[0, :3, 3])
    if directions is not None:
        d = _vec3(directions, "directions")
        out.append(np.einsum("nij,nj->ni", T[:, :3, :3], d) if len(T) > 1 else d @ T[0, :3, :3].T)
    return tuple(out)


def _world(rays_origin, rays_dir, head_pose, world_from_tracking) -> WorldRays:
    """Place tracking-space rays and poses in the world (``world_from_tracking`` (4, 4), None = identity)."""
    n = len(rays_origin)
    pose = np.full((n, 4, 4), np.nan) if head_pose is None else np.broadcast_to(head_pose, (n, 4, 4)).copy()
    if world_from_tracking is not None:
        W = np.asarray(world_from_tracking, dtype=np.float64)
        if W.shape != (4, 4):
            raise InputError(f"world_from_tracking: expected a (4, 4) matrix, got shape {W.shape}")
        rays_origin, rays_dir = apply_pose(W, rays_origin, rays_dir)
        pose = W @ pose
    return WorldRays(rays_origin, unit_rows(rays_dir), pose)


def head_rays_to_world(origin_head, direction_head, world_from_head, world_from_tracking=None) -> WorldRays:
    """Rays in the gaze3d head frame and (n, 4, 4) tracking-from-head poses -> :class:`WorldRays`.

    ``world_from_head`` is in tracking space (the runtime's room) when
    ``world_from_tracking`` is given, else already in the world.
    """
    T = np.asarray(world_from_head, dtype=np.float64)
    T = T[None] if T.ndim == 2 else T
    d = _vec3(direction_head, "direction")
    o = np.zeros_like(d) if origin_head is None else _vec3(origin_head, "origin")
    if len(T) not in (1, len(d)) or len(o) != len(d):
        raise InputError(f"head rays: {len(o)} origins, {len(d)} directions and {len(T)} poses do not match")
    T = np.broadcast_to(T, (len(d), 4, 4))
    o_w, d_w = apply_pose(T, o, d)
    return _world(o_w, d_w, T, world_from_tracking)


def combine_eyes(origin_left, dir_left, origin_right, dir_right, valid_left=None, valid_right=None):
    """Cyclopean ray from two eyes: mean origin, normalised mean direction; one eye where the other is invalid.

    Returns ``(origin (n, 3), direction (n, 3))``; NaN where neither eye is valid.
    """
    ol, dl, orr, dr = (_vec3(a, n) for a, n in ((origin_left, "origin_left"), (dir_left, "dir_left"),
                                                 (origin_right, "origin_right"), (dir_right, "dir_right")))
    n = len(dl)
    vl = np.ones(n, bool) if valid_left is None else np.asarray(valid_left, bool).ravel()
    vr = np.ones(n, bool) if valid_right is None else np.asarray(valid_right, bool).ravel()
    vl &= np.isfinite(ol).all(1) & np.isfinite(dl).all(1)
    vr &= np.isfinite(orr).all(1) & np.isfinite(dr).all(1)
    wl, wr = vl[:, None].astype(float), vr[:, None].astype(float)
    w = wl + wr
    with np.errstate(invalid="ignore", divide="ignore"):
        o = (np.nan_to_num(ol) * wl + np.nan_to_num(orr) * wr) / w
        d = unit_rows(np.nan_to_num(unit_rows(dl)) * wl + np.nan_to_num(unit_rows(dr)) * wr)
    o[w[:, 0] == 0] = np.nan
    d[w[:, 0] == 0] = np.nan
    return o, d


# --- converters -------------------------------------------------------------------------------------
def from_openxr(gaze_position, gaze_orientation, head_position=None, head_orientation=None,
                world_from_tracking=None) -> WorldRays:
    """OpenXR ``XR_EXT_eye_gaze_interaction``: gaze poses located in LOCAL/STAGE space -> world rays.

    Parameters
    ----------
    gaze_position : (n, 3) metres, tracking space
    gaze_orientation : (n, 4) quaternion (x, y, z, w); the gaze is the pose's -Z axis
    head_position, head_orientation : (n, 3), (n, 4), optional
        The ``VIEW`` space pose in the same space (the head pose).
    world_from_tracking : (4, 4), optional
    """
    p = _vec3(gaze_position, "gaze_position")
    R = quat_to_matrix(gaze_orientation)
    if len(R) != len(p):
        raise InputError(f"openxr: {len(p)} gaze positions but {len(R)} orientations")
    d = R @ HEAD_FORWARD
    head = None
    if head_position is not None and head_orientation is not None:
        head = pose_matrix(head_position, quat_to_matrix(head_orientation))
    return _world(p, d, head, world_from_tracking)


def unity_pose(position, rotation) -> np.ndarray:
    """Unity world-from-camera (position (n, 3), quaternion (n, 4) x, y, z, w) -> (n, 4, 4) right-handed
    tracking-from-head in the gaze3d head frame (+X right, +Y up, -Z forward).

    With ``M`` the Z mirror, the Unity camera's forward ``R (0, 0, 1)`` becomes
    ``M R (0, 0, 1) = (M R M) (0, 0, -1)``: the mirrored rotation maps the
    gaze3d head's -Z to the camera's forward.
    """
    return pose_matrix(_vec3(position, "position") @ MIRROR_Z, mirror_rotation(quat_to_matrix(rotation), MIRROR_Z))


def from_unity(origin, direction, head_position=None, head_rotation=None, world_from_tracking=None) -> WorldRays:
    """Unity world-space gaze rays (left-handed, +Y up, +Z forward) -> world rays.

    The Unity world becomes a right-handed +Y-up space by mirroring Z (the
    same room, OpenXR-like); ``world_from_tracking`` then places it in the
    scan. A scan kept in Unity's own left-handed coordinates lines up after
    the same mirror of its points (negate z).
    """
    o = _vec3(origin, "origin") @ MIRROR_Z
    d = _vec3(direction, "direction") @ MIRROR_Z
    head = None
    if head_position is not None and head_rotation is not None:
        head = unity_pose(head_position, head_rotation)
    return _world(o, d, head, world_from_tracking)


def from_varjo(gaze_origin, gaze_forward, tracking_from_head, world_from_tracking=None) -> WorldRays:
    """Varjo native SDK rays relative to the head (combined, or one eye's ``leftEye``/``rightEye``) -> world.

    Varjo's gaze frame: +X right, +Y up, +Z forward (``forward = (0, 0, 1)``
    looking straight ahead), metres. Mirroring Z gives the gaze3d head frame.
    ``tracking_from_head`` (n, 4, 4) is the head pose in the gaze3d head
    frame (from OpenXR's VIEW space, or :func:`unity_pose` in a Unity app).
    """
    o = _vec3(gaze_origin, "gaze_origin") @ MIRROR_Z
    d = _vec3(gaze_forward, "gaze_forward") @ MIRROR_Z
    return head_rays_to_world(o, d, tracking_from_head, world_from_tracking)


def from_sranipal(gaze_origin_mm, gaze_direction, tracking_from_head, world_from_tracking=None) -> WorldRays:
    """HTC SRanipal per-eye (or combined) ``gaze_origin_mm``, ``gaze_direction_normalized`` -> world rays.

    SRanipal's eye frame is right-handed with +X to the user's **left**, +Y
    up, +Z forward, origins in millimetres; :data:`SRANIPAL_TO_HEAD` turns it
    into the gaze3d head frame, origins become metres.
    """
    o = _vec3(gaze_origin_mm, "gaze_origin_mm") @ SRANIPAL_TO_HEAD * 1e-3
    d = _vec3(gaze_direction, "gaze_direction") @ SRANIPAL_TO_HEAD
    return head_rays_to_world(o, d, tracking_from_head, world_from_tracking)


def from_pico(gaze_direction_head, head_position, head_rotation, gaze_origin_head=None,
              world_from_tracking=None) -> WorldRays:
    """Pico (PXR_EyeTracking): a head-space gaze vector in Unity's convention x the Unity head pose.

    Parameters
    ----------
    gaze_direction_head : (n, 3) Unity head space (+Z forward)
    head_position, head_rotation : (n, 3), (n, 4) Unity world pose of the head (x, y, z, w)
    gaze_origin_head : (n, 3), optional, Unity head space (default: the head origin)
    """
    d = _vec3(gaze_direction_head, "gaze_direction_head") @ MIRROR_Z
    o = None if gaze_origin_head is None else _vec3(gaze_origin_head, "gaze_origin_head") @ MIRROR_Z
    return head_rays_to_world(o, d, unity_pose(head_position, head_rotation), world_from_tracking)


def look_pose(position, forward, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """(n, 4, 4) world-from-head of heads at (n, 3) ``position`` looking along (n, 3) ``forward``.

    The head's +Y is ``up`` made orthogonal to ``forward`` (a forward along
    ``up`` falls back to the world +X or +Z); the result is a proper rotation
    in the gaze3d head frame (-Z = forward).
    """
    p = _vec3(position, "position")
    f = unit_rows(_vec3(forward, "forward"))
    u = np.broadcast_to(np.asarray(up, dtype=np.float64), f.shape)
    right = np.cross(f, u)
    weak = np.linalg.norm(right, axis=1) < 1e-6
    if weak.any():  # looking straight up or down: any right vector orthogonal to forward will do
        alt = np.where(np.abs(f[weak, 0:1]) < 0.9, [[1.0, 0, 0]], [[0, 0, 1.0]])
        right[weak] = np.cross(f[weak], np.cross(alt, f[weak]))
    right = unit_rows(right)
    up_ = np.cross(right, f)
    R = np.stack([right, up_, -f], axis=2)       # columns: head +X, +Y, +Z in the world
    return pose_matrix(p, R)
