"""The point-cloud engine's shortcuts give exactly what the plain computation gives."""
import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator
from gaze3d.camera import CameraPath
from gaze3d.errors import InputError
from gaze3d.scan import PointCloud

from attention_helpers import fibonacci_sphere, grid_plane


def _scene():
    return np.r_[grid_plane(0.0, half=3.0, n=241), fibonacci_sphere(30_000, 0.6, (0.4, -0.3, 0.8)),
                 fibonacci_sphere(20_000, 0.4, (-0.8, 0.6, 0.5))]


def _replay(pts, fixations_only, **opts):
    """An orbiting camera (a new one every frame), 20 gaze samples per frame near a drifting point."""
    path = CameraPath.orbit((0, 0, 0), radius=8.0, elevation_deg=40.0, duration_s=2.0, turns=0.05,
                            n_keys=20, vfov_deg=30.0)
    rng = np.random.default_rng(4)
    acc = AttentionAccumulator(PointCloud(pts), fixations_only=fixations_only, **opts)
    calls = []
    query = acc.engine.index.cone_candidates
    acc.engine.index.cone_candidates = lambda *a, **k: calls.append(1) or query(*a, **k)
    centre = np.array([0.5, 0.5])
    for f in range(90):
        if f % 30 == 0:                                   # a saccade every half second
            centre = rng.uniform(0.35, 0.65, 2)
        xy = centre + rng.normal(0.0, 0.002, (20, 2))
        t = (f * 20 + np.arange(20)) / 1200.0
        acc.add(path.at(f / 60.0), {"x": xy[:, 0], "y": xy[:, 1], "t_s": t})
    acc.flush()
    return acc.values, len(calls), sum(len(c) for c in acc.engine._frames.values())


@pytest.mark.parametrize("fixations_only", [False, True])
def test_cone_store_gives_bit_identical_attention(fixations_only):
    pts = _scene()
    plain, plain_queries, _ = _replay(pts, fixations_only, store_widen_deg=0.0)
    kept, kept_queries, cones = _replay(pts, fixations_only)
    assert plain.max() > 0 and np.count_nonzero(plain) > 1000
    assert np.array_equal(plain, kept)
    # the store did answer most frames (a new camera every frame: each needs a cone)
    assert plain_queries >= 90 and kept_queries < plain_queries / 3


def test_deposit_with_a_mask_equals_depositing_the_subset():
    pts = _scene()
    path = CameraPath.orbit((0, 0, 0), radius=8.0, elevation_deg=40.0, duration_s=1.0, turns=0.02,
                            n_keys=10, vfov_deg=30.0)
    cam = path.at(0.3)
    rng = np.random.default_rng(1)
    xy = 0.5 + rng.normal(0.0, 0.004, (24, 2))
    _, dirs = cam.unproject(cam.normalized_to_pixels(xy))
    w = np.full(len(dirs), 1 / 1200.0)
    use = rng.random(len(dirs)) < 0.6
    a = AttentionAccumulator(PointCloud(pts), fixations_only=False).engine
    b = AttentionAccumulator(PointCloud(pts), fixations_only=False).engine
    fa = a.frame(cam, dirs)
    a.deposit(fa, dirs, w, use=use)
    fb = b.frame(cam, dirs[use])
    b.deposit(fb, dirs[use], w[use])
    va, vb = a.values(), b.values()
    assert np.count_nonzero(va) > 100
    assert np.array_equal(va != 0, vb != 0)
    # the subset's cone has another axis: float32 chords about it round differently
    np.testing.assert_allclose(va, vb, rtol=1e-5, atol=0)


@pytest.mark.parametrize("kw", [{"store_widen_deg": -1.0}, {"store_pullback": float("nan")}])
def test_bad_store_options_name_themselves(kw):
    with pytest.raises(InputError, match=next(iter(kw))):
        AttentionAccumulator(PointCloud(grid_plane(0.0, n=5)), **kw)
