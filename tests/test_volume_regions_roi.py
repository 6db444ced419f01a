"""``random_walk_roi`` (the viewer's volume label keys): seeds per fixation, the intensity gate, one beta
for any intensity scale, the two-level walk, the clean-up, and the shared box helper."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")

from gaze3d.volume_regions import (_box, _gate, _local_core, _slices, attended_core,  # noqa: E402
                                   random_walk_roi)

SHAPE = (40, 36, 24)
SPACING = np.array([2.0, 2.0, 3.0])


def _blob(centre, sigma=2.0, shape=SHAPE):
    g = np.indices(shape).astype(float)
    return np.exp(-0.5 * sum((g[a] - centre[a]) ** 2 for a in range(3)) / sigma ** 2)


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _blocks(seed=0, shape=SHAPE, k=1):
    """Two touching blocks (100 and 160) in a background of 20, noise sd 6; ``k``x finer copies."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, dtype=np.int32)
    truth[6 * k:20 * k, 8 * k:28 * k, 4 * k:20 * k] = 1
    truth[20 * k:34 * k, 8 * k:28 * k, 4 * k:20 * k] = 2
    arr = np.choose(truth, [20.0, 100.0, 160.0]) + rng.normal(0, 6, shape)
    return arr.astype(np.float32), truth


def test_box_helper_is_the_bounding_box_grown_and_clipped():
    m = np.zeros((10, 12, 8), bool)
    m[3:5, 2, 6:8] = True
    assert _box(m, np.array([1, 3, 2])) == (slice(2, 6), slice(0, 6), slice(4, 8))
    hits = [m.any(axis=(1, 2)), m.any(axis=(0, 2)), m.any(axis=(0, 1))]
    assert _slices(hits, np.array([1, 3, 2]), m.shape) == _box(m, np.array([1, 3, 2]))


def test_every_fixation_of_a_sum_keeps_its_own_core():
    # three looks at one place and one look elsewhere: the global half-peak core loses the single look
    att = 3 * _blob((10, 10, 8)) + _blob((30, 26, 16))
    assert not attended_core(att, 0.5)[30, 26, 16]
    core = _local_core(att, SPACING, 0.5, 20.0)
    assert core[10, 10, 8] and core[30, 26, 16]
    assert core.sum() < 2.5 * attended_core(_blob((10, 10, 8)), 0.5).sum()
    np.testing.assert_array_equal(_local_core(att, SPACING, 0.5, 0.0), attended_core(att, 0.5))


def test_gate_drops_core_voxels_of_another_tissue():
    arr, truth = _blocks()
    att = _blob((18, 18, 12), sigma=3.0)         # centred in block A, two voxels from block B
    core = attended_core(att, 0.5)
    assert (core & (truth == 2)).any()
    kept, ref = _gate(core, arr, att, scale=30.0, gate=1.0)
    assert kept[19, 18, 12] and not (kept & (truth == 2)).any()
    assert abs(float(ref[0]) - 100) < 15
    assert _gate(core, arr, att, 30.0, 0.0)[0] is core


def test_one_beta_for_any_intensity_scale_and_offset():
    arr, truth = _blocks()
    att = _blob((13, 18, 12))
    mask = random_walk_roi(arr, att, spacing=SPACING)
    assert _dice(mask, truth == 1) > 0.9
    assert np.count_nonzero(mask & (truth == 2)) < 0.02 * np.count_nonzero(truth == 2)
    # HU-like (x 10, offset) and unit-range copies give the same mask
    for a in (arr * 10.0 - 1000.0, (arr - arr.min()) / np.ptp(arr)):
        np.testing.assert_array_equal(random_walk_roi(a, att, spacing=SPACING), mask)


def test_two_level_walk_refines_the_coarse_boundary():
    # 2x finer blocks: the box holds ~6x the coarse budget of 16^3; the band near the coarse boundary is
    # walked again at native resolution
    k = 2
    arr, truth = _blocks(shape=tuple(n * k for n in SHAPE), k=k)
    sp = SPACING / k
    att = _blob((26, 36, 24), sigma=4.0, shape=arr.shape)
    coarse = random_walk_roi(arr, att, spacing=sp, max_voxels=16 ** 3, refine_voxels=0)
    refined = random_walk_roi(arr, att, spacing=sp, max_voxels=16 ** 3)
    a = truth == 1
    assert _dice(refined, a) > 0.98 and _dice(coarse, a) < 0.95
    assert not (refined & (truth != 1)).any()
    prob = random_walk_roi(arr, att, spacing=sp, max_voxels=16 ** 3, probability=True)
    assert prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    np.testing.assert_array_equal(prob >= 0.5, refined)


def test_clean_keeps_the_seeded_component_and_fills_its_holes():
    arr, truth = _blocks()
    arr[truth == 2] = 20.0                       # block B is background now
    arr[12:14, 17:19, 11:13] = 20.0              # a hole in block A
    arr[2:5, 30:34, 18:22] = 100.0               # an island like block A, within the margin, unconnected
    att = _blob((10, 14, 8))
    raw = random_walk_roi(arr, att, spacing=SPACING, clean=False, gate=0.0)
    cleaned = random_walk_roi(arr, att, spacing=SPACING, gate=0.0)
    assert cleaned[12:14, 17:19, 11:13].all() and not cleaned[2:5, 30:34, 18:22].any()
    assert raw.sum() != cleaned.sum()
    assert _dice(cleaned, truth == 1) > 0.95


def test_negative_fixation_and_empty_attention():
    arr, truth = _blocks()
    arr[truth == 2] = float(arr[truth == 1].mean())      # same intensity: only the negative splits them
    att, neg = _blob((12, 18, 12)), _blob((26, 18, 12))
    alone = random_walk_roi(arr, att, spacing=SPACING, margin_mm=40.0)
    with_neg = random_walk_roi(arr, att, neg, spacing=SPACING, margin_mm=40.0)
    b = truth == 2
    assert np.count_nonzero(alone & b) > 0.5 * np.count_nonzero(b)
    assert np.count_nonzero(with_neg & b) < 0.1 * np.count_nonzero(b)
    assert np.count_nonzero(with_neg & (truth == 1)) > 0.5 * np.count_nonzero(truth == 1)
    assert not random_walk_roi(arr, np.zeros(SHAPE), spacing=SPACING).any()
    assert not random_walk_roi(arr, att, np.zeros(SHAPE), spacing=SPACING).sum() == 0


def test_reach_lets_a_homogeneous_structure_pass_the_margin():
    # a long bar like the looked-at tissue: the 30 mm margin cuts it, reach_mm 90 lets it run on
    shape = (80, 20, 12)
    rng = np.random.default_rng(1)
    arr = np.full(shape, 20.0) + rng.normal(0, 4, shape)
    # (over a quarter of the box, so the box's interquartile spread is the bar's contrast, not the noise)
    arr[5:75, 4:16, 2:10] += 80.0
    att = _blob((10, 10, 6), sigma=1.5, shape=shape)
    sp = np.array([2.0, 2.0, 2.0])
    cut = random_walk_roi(arr, att, spacing=sp)
    far = random_walk_roi(arr, att, spacing=sp, reach_mm=150.0)
    assert cut[10, 10, 6] and not cut[40, 10, 6]
    # the walk still fades along the bar (its edges are weak against the leak over its whole surface)
    assert far[5:50, 10, 6].all() and far[:, 10, 6].sum() > 3 * cut[:, 10, 6].sum()
    assert not far[:, :3].any()
