"""Headset conventions -> gaze3d world: a ray aimed at a known target must hit it after conversion.

The native values below are written the way each SDK would report them (by
hand, in the SDK's own axes and units), not by inverting the converter.
"""
import numpy as np
import pytest

from gaze3d.errors import InputError
from gaze3d.vr import frames as F


def _hits(rays, targets, tol_deg=1e-6):
    to = np.asarray(targets, float).reshape(-1, 3) - rays.origin
    # atan2(|d x t|, d.t): accurate for tiny angles where arccos is not
    ang = np.degrees(np.arctan2(np.linalg.norm(np.cross(rays.direction, to), axis=1), np.sum(rays.direction * to, 1)))
    assert np.all(ang < tol_deg), ang
    np.testing.assert_allclose(np.linalg.norm(rays.direction, axis=1), 1.0)


def _quat_axis_angle(axis, deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    h = np.radians(deg) / 2
    return np.r_[axis * np.sin(h), np.cos(h)]


def test_quat_to_matrix_known_rotation_and_proper():
    R = F.quat_to_matrix(_quat_axis_angle([0, 1, 0], 90))[0]   # +90 deg about +Y (right-handed)
    np.testing.assert_allclose(R @ [0, 0, -1], [-1, 0, 0], atol=1e-12)  # forward turns left
    assert np.isclose(np.linalg.det(R), 1.0)
    with pytest.raises(InputError, match="quaternion"):
        F.quat_to_matrix([1, 2, 3])


def test_openxr_gaze_pose_in_stage_space_hits_target():
    # the user stands at (0, 1.6, 0) in STAGE and looks 90 deg to the left (+Y rotation), at a point 2 m away
    q = _quat_axis_angle([0, 1, 0], 90)
    rays = F.from_openxr([[0, 1.6, 0]], [q], head_position=[[0, 1.6, 0]], head_orientation=[q])
    _hits(rays, [[-2, 1.6, 0]])
    np.testing.assert_allclose(rays.head_pose[0, :3, 3], [0, 1.6, 0])
    # placed in a Z-up scan 100 m east: the target is placed the same way
    W = F.Y_UP_TO_Z_UP.copy()
    W[:3, 3] = [100, 0, 0]
    rays = F.from_openxr([[0, 1.6, 0]], [q], world_from_tracking=W)
    _hits(rays, [[98, 0, 1.6]])             # (-2, 1.6, 0) -> (x, -z, y) + 100 east


def test_unity_world_rays_and_pose():
    # Unity: camera at (1, 2, 3) looking along +Z at (1, 2, 8); right-handed: z mirrored
    rays = F.from_unity([[1, 2, 3]], [[0, 0, 1]], head_position=[[1, 2, 3]], head_rotation=[[0, 0, 0, 1]])
    _hits(rays, [[1, 2, -8]])
    pose = rays.head_pose[0]
    np.testing.assert_allclose(pose[:3, :3] @ F.HEAD_FORWARD, [0, 0, -1], atol=1e-12)
    # Unity yaw +90 deg (clockwise seen from above in Unity: forward +Z -> +X)
    q = _quat_axis_angle([0, 1, 0], 90)
    pose = F.unity_pose([[0, 0, 0]], [q])[0]
    np.testing.assert_allclose(pose[:3, :3] @ F.HEAD_FORWARD, [1, 0, 0], atol=1e-12)  # still +X after mirroring
    assert np.isclose(np.linalg.det(pose[:3, :3]), 1.0)


def test_varjo_head_relative_rays():
    # head at (0, 1.5, 0) turned 90 deg right (looking along +X in tracking space)
    head = F.look_pose([[0, 1.5, 0]], [[1, 0, 0]])
    # Varjo: gaze 45 deg up-forward in HMD space (+Z forward, +Y up), eye origin 3 cm to the right
    rays = F.from_varjo([[0.03, 0, 0]], [[0, np.sqrt(0.5), np.sqrt(0.5)]], head)
    # the eye sits 0.03 m along the head's right, which is +Z for a head looking along +X with +Y up
    right = head[0, :3, 0]
    eye = np.array([0, 1.5, 0]) + 0.03 * right
    _hits(rays, [eye + [2, 2, 0]])           # 2 m forward (+X), 2 m up
    np.testing.assert_allclose(right, [0, 0, 1], atol=1e-12)  # looking +X with +Y up, the right hand is +Z


def test_sranipal_per_eye_mm_left_handed_x():
    head = F.look_pose([[0, 1.7, 0]], [[0, 0, -1]])       # OpenXR default: looking along -Z
    # SRanipal: left eye 32 mm to the user's left is +X in SRanipal; gaze straight ahead is +Z
    left = F.from_sranipal([[32, 0, 0]], [[0, 0, 1]], head)
    _hits(left, [[-0.032, 1.7, -5]])
    np.testing.assert_allclose(left.origin[0], [-0.032, 1.7, 0], atol=1e-12)
    # gaze to the user's left: +X in SRanipal, -X in the world here
    turned = F.from_sranipal([[0, 0, 0]], [[1, 0, 1]], head)
    _hits(turned, [[-3, 1.7, -3]])
    # both eyes converging on a point 1 m ahead -> cyclopean ray hits it too
    target = np.array([0, 1.7, -1.0])
    lo, ro = np.array([-0.032, 1.7, 0]), np.array([0.032, 1.7, 0])
    dl, dr = target - lo, target - ro
    l = F.from_sranipal([[32, 0, 0]], [[-dl[0], dl[1], -dl[2]]], head)   # world (x, y, z) -> SRanipal (-x, y, -z)
    r = F.from_sranipal([[-32, 0, 0]], [[-dr[0], dr[1], -dr[2]]], head)
    _hits(l, [target]); _hits(r, [target])
    o, d = F.combine_eyes(l.origin, l.direction, r.origin, r.direction)
    _hits(F.WorldRays(o, d, l.head_pose), [target])
    o, d = F.combine_eyes(l.origin, l.direction, r.origin, r.direction, valid_right=[False])
    np.testing.assert_allclose(o, l.origin)


def test_pico_head_space_gaze_times_unity_head_pose():
    # Unity head at (2, 1.6, 0) yawed +90 deg (Unity forward +Z -> +X); head-space gaze straight ahead (+Z)
    q = _quat_axis_angle([0, 1, 0], 90)
    rays = F.from_pico([[0, 0, 1]], [[2, 1.6, 0]], [q])
    _hits(rays, [[7, 1.6, 0]])                 # Unity (7, 1.6, 0) has z = 0: unchanged by the mirror
    # head-space gaze down 45 deg (Unity -Y) with the same head
    rays = F.from_pico([[0, -1, 1]], [[2, 1.6, 0]], [q])
    _hits(rays, [[3, 0.6, 0]])


def test_random_poses_round_trip_all_head_relative_converters():
    rng = np.random.default_rng(3)
    n = 50
    q = rng.normal(size=(n, 4))
    pos = rng.normal(size=(n, 3))
    head = F.pose_matrix(pos, F.quat_to_matrix(q))
    targets = rng.normal(size=(n, 3)) * 5
    # the target in the gaze3d head frame, then written in each SDK's axes
    Rt = np.transpose(head[:, :3, :3], (0, 2, 1))
    t_head = np.einsum("nij,nj->ni", Rt, targets - pos)
    varjo = F.from_varjo(np.zeros((n, 3)), t_head * [1, 1, -1], head)
    srani = F.from_sranipal(np.zeros((n, 3)), t_head * [-1, 1, -1], head)
    _hits(varjo, targets, 1e-6)
    _hits(srani, targets, 1e-6)


def test_bad_shapes_are_one_line_input_errors():
    with pytest.raises(InputError, match="gaze_position"):
        F.from_openxr([[0, 0]], [[0, 0, 0, 1]])
    with pytest.raises(InputError, match="world_from_tracking"):
        F.from_unity([[0, 0, 0]], [[0, 0, 1]], world_from_tracking=np.eye(3))
