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
    query = acc.engine.index.cone_ranges        # every octree walk (cone_candidates calls it too)
    acc.engine.index.cone_ranges = lambda *a, **k: calls.append(1) or query(*a, **k)
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


def _replay_records(pts, journal: bool, mark_at=None):
    """Like _replay with the online filter; ``journal`` False forces the whole-array snapshot records
    (the path before issue 15); ``mark_at``: frame at which the last fixation is marked negative."""
    path = CameraPath.orbit((0, 0, 0), radius=8.0, elevation_deg=40.0, duration_s=2.0, turns=0.05,
                            n_keys=20, vfov_deg=30.0)
    rng = np.random.default_rng(4)
    acc = AttentionAccumulator(PointCloud(pts))
    assert acc._journal                                   # point clouds keep a journal
    acc._journal = journal
    centre = np.array([0.5, 0.5])
    for f in range(90):
        if f % 30 == 0:
            centre = rng.uniform(0.35, 0.65, 2)
        xy = centre + rng.normal(0.0, 0.002, (20, 2))
        t = (f * 20 + np.arange(20)) / 1200.0
        acc.add(path.at(f / 60.0), {"x": xy[:, 0], "y": xy[:, 1], "t_s": t})
        if f == mark_at and acc.fixations():
            acc.set_polarity(-1, False)                  # ends the open fixation mid-run
    open_rec = acc.fixations()
    acc.flush()
    return acc, open_rec


@pytest.mark.parametrize("mark_at", [None, 45])
def test_fixation_records_from_the_journal_equal_whole_array_snapshots(mark_at):
    pts = _scene()
    ref, ref_open = _replay_records(pts, journal=False, mark_at=mark_at)
    new, new_open = _replay_records(pts, journal=True, mark_at=mark_at)
    assert np.array_equal(ref.values, new.values)
    for a, b in ((ref.fixations(), new.fixations()), (ref_open, new_open)):
        assert len(a) == len(b) >= 2
        for ra, rb in zip(a, b):
            assert (ra.t_start_s, ra.t_end_s, ra.n_samples, ra.positive) == \
                (rb.t_start_s, rb.t_end_s, rb.n_samples, rb.positive)
            assert ra.index.dtype == rb.index.dtype == np.int64
            assert np.array_equal(ra.index, rb.index) and len(ra.index) > 100
            assert ra.attention.dtype == rb.attention.dtype == np.float32
            assert np.array_equal(ra.attention, rb.attention)
    for a, b in zip(ref.signed_values(), new.signed_values()):
        assert np.array_equal(a, b)
    # the journal forgets what it touched: nothing marked between fixations
    assert new.engine._jtouched is None and np.isnan(new.engine._jbase).all()


def test_footprint_level_lookup_covers_every_half_width():
    from gaze3d.attention.pointcloud import _HALF_LEVEL_OF, _HALF_LEVELS, MAX_OCCLUDER_HALF

    # every half-width the footprint can take rounds up to a level, as searchsorted does
    half = np.arange(MAX_OCCLUDER_HALF + 1)
    assert np.array_equal(_HALF_LEVEL_OF, _HALF_LEVELS[np.searchsorted(_HALF_LEVELS, half)])
    assert np.all(_HALF_LEVEL_OF >= half) and _HALF_LEVEL_OF[-1] == MAX_OCCLUDER_HALF


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_footprint_depth_in_one_buffer_equals_a_buffer_per_size(seed):
    """The cascade of size steps gives the per-size buffers' depths: inside the window exactly, and in
    its outer h pixels through the band lookup (where the per-size buffers drop a size near the edge)."""
    from gaze3d.attention.pointcloud import _band_depth, _footprint_depth, _footprint_depth_per_size

    rng = np.random.default_rng(seed)
    h, wu, wv, m = 6, 90, 70, 3000
    half = rng.choice([0, 1, 2, 3, 4, 6], m, p=[0.05, 0.1, 0.5, 0.15, 0.12, 0.08]).astype(np.int32)
    half[0] = h
    # points at least h from the edge, many right at it (the band's worst case)
    row = np.where(rng.random(m) < 0.3, rng.choice([h, wv - 1 - h], m), rng.integers(h, wv - h, m))
    col = np.where(rng.random(m) < 0.3, rng.choice([h, wu - 1 - h], m), rng.integers(h, wu - h, m))
    flat = row * wu + col
    depth = rng.uniform(5, 9, m).astype(np.float32)
    bufs = {}

    def scratch(shape, slot, dtype=np.float32):
        bufs[slot] = np.empty(shape, dtype)
        return bufs[slot]

    ref = _footprint_depth_per_size(flat, half, depth, wu, wv)
    zs, band = _footprint_depth(flat, half, depth, wu, wv, np.flatnonzero(np.bincount(half)), scratch)
    inner = (slice(h, wv - h), slice(h, wu - h))
    assert np.array_equal(zs[inner], ref[inner]) and np.isfinite(ref[inner]).mean() > 0.9
    iv, iu = (a.ravel() for a in np.mgrid[0:wv, 0:wu])
    got = zs[iv, iu].astype(np.float64)
    _band_depth(band, zs.shape, h, iv, iu, np.ones(len(iv), bool), got)
    assert np.array_equal(got, ref[iv, iu].astype(np.float64))
    # the band lookup mattered: the one-buffer depths differ from the old ones somewhere at the edge
    assert not np.array_equal(zs, ref)
