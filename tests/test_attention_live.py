"""The live accumulator's online, object-space fixation filter on a moving camera."""
import numpy as np

from gaze3d.attention import AttentionAccumulator
from gaze3d.camera import CameraPath
from gaze3d.scan import PointCloud

from attention_helpers import grid_plane


def _replay(acc, path, target, rate=1200.0, duration=1.0, jump_at=None):
    rng = np.random.default_rng(0)
    t = np.arange(int(duration * rate)) / rate
    frame = np.floor(t * 60).astype(int)
    for f in np.unique(frame):
        cam = path.at(f / 60.0)
        ts = t[frame == f]
        xy = cam.pixels_to_normalized(cam.project(target[None])[0])
        xy = np.repeat(xy, len(ts), axis=0) + rng.normal(0, 0.0005, (len(ts), 2))
        if jump_at is not None:
            xy[ts >= jump_at] += 0.3 * np.clip((ts[ts >= jump_at] - jump_at) / 0.03, 0, 1)[:, None]
        acc.add(cam, {"x": xy[:, 0], "y": xy[:, 1], "t_s": ts})
    acc.flush()
    return t


def test_following_a_point_while_the_camera_turns_counts_as_fixation():
    pts = grid_plane(1.0, half=8.0, n=401)
    target = np.array([4.0, -3.0, 1.0])
    path = CameraPath.orbit((0, 0, 0), radius=10.0, elevation_deg=35, duration_s=1.0, turns=0.5,
                            n_keys=120, vfov_deg=60.0)
    acc = AttentionAccumulator(PointCloud(pts), fixations_only=True)
    t = _replay(acc, path, target)
    assert acc.n_used >= 0.95 * len(t)
    v = acc.values
    assert np.linalg.norm(pts[np.argmax(v)] - target) < 0.1
    # lag buffer: before flush, the last lag_s of samples is pending
    acc2 = AttentionAccumulator(PointCloud(pts), fixations_only=True)
    acc2.add(path.at(0.0), {"x": [0.5] * 120, "y": [0.5] * 120, "t_s": np.arange(120) / 1200})
    assert acc2.n_used == 0
    acc2.flush()
    assert acc2.n_used == 120


def test_saccade_samples_are_left_out():
    pts = grid_plane(1.0, half=8.0, n=401)
    target = np.array([1.0, 1.0, 1.0])
    cam_path = CameraPath.orbit((0, 0, 0), radius=10.0, elevation_deg=35, duration_s=1.0, turns=0.0,
                                n_keys=2, vfov_deg=60.0)
    acc = AttentionAccumulator(PointCloud(pts), fixations_only=True)
    t = _replay(acc, cam_path, target, jump_at=0.5)
    unused = len(t) - acc.n_used
    assert 20 <= unused <= 120     # the 30 ms jump (36 samples) plus the velocity window's edges
    everything = AttentionAccumulator(PointCloud(pts), fixations_only=False)
    _replay(everything, cam_path, target, jump_at=0.5)
    assert everything.n_used == len(t)
