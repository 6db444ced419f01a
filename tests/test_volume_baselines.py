"""Classical gaze-seeded volume segmentation (SimpleITK ConfidenceConnected, scikit-image random
walker) and the simulated slice-reading annotator of the volume bench."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("SimpleITK")
pytest.importorskip("skimage")

from gaze3d.errors import InputError  # noqa: E402
from gaze3d.scan import Volume  # noqa: E402
from gaze3d.volume_regions import attended_core, confidence_connected, random_walk, within_reach  # noqa: E402

SHAPE = (40, 36, 24)


def _phantom(seed=0):
    """Two touching blocks (intensities 100 and 160) in a background of 20, with noise."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(SHAPE, dtype=np.int32)
    truth[6:20, 8:28, 4:20] = 1            # block A
    truth[20:34, 8:28, 4:20] = 2           # block B, touching A along i = 20
    arr = np.choose(truth, [20.0, 100.0, 160.0]) + rng.normal(0, 6, SHAPE)
    return Volume(arr.astype(np.float32), np.diag([2.0, 2.0, 3.0, 1.0]), labels=truth), truth


def _blob(centre, sigma=2.0):
    g = np.indices(SHAPE).astype(float)
    d2 = sum((g[a] - centre[a]) ** 2 for a in range(3))
    return np.exp(-0.5 * d2 / sigma ** 2)


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("method", ["confidence", "random_walk"])
def test_baseline_segments_the_looked_at_block_not_its_neighbour(method):
    vol, truth = _phantom()
    att = _blob((13, 18, 12))
    if method == "confidence":
        mask = confidence_connected(vol.array, att, spacing=vol.spacing, reach_mm=60.0)
    else:
        mask = random_walk(vol.array, att, spacing=vol.spacing, margin_mm=30.0)
    assert _dice(mask, truth == 1) > 0.9
    assert np.count_nonzero(mask & (truth == 2)) < 0.02 * np.count_nonzero(truth == 2)


def test_negative_fixation_removes_a_wrongly_included_neighbour():
    vol, truth = _phantom()
    # the neighbour has the same intensity: intensity cannot split them, a negative fixation can
    arr = vol.array.copy()
    arr[truth == 2] = arr[truth == 1].mean()
    att, neg = _blob((12, 18, 12)), _blob((26, 18, 12))
    alone = random_walk(arr, att, spacing=vol.spacing, margin_mm=40.0)
    with_neg = random_walk(arr, att, neg, spacing=vol.spacing, margin_mm=40.0)
    b = truth == 2
    assert np.count_nonzero(alone & b) > 0.5 * np.count_nonzero(b)        # the neighbour wrongly included
    assert np.count_nonzero(with_neg & b) < 0.1 * np.count_nonzero(b)     # and removed by the negative
    assert np.count_nonzero(with_neg & (truth == 1)) > 0.5 * np.count_nonzero(truth == 1)
    assert not (with_neg & (truth == 0)).any()
    cc_alone = confidence_connected(arr, att, spacing=vol.spacing, reach_mm=80.0)
    cc = confidence_connected(arr, att, neg, spacing=vol.spacing, reach_mm=80.0)
    assert cc_alone[26, 18, 12] and cc[12, 18, 12] and not cc[26, 18, 12]


def test_within_reach_and_core():
    att = _blob((20, 18, 12), sigma=1.0)
    core = attended_core(att, 0.5)
    assert core[20, 18, 12] and core.sum() < 30
    near = within_reach(att, (2.0, 2.0, 3.0), 10.0)
    assert near[20, 18, 12] and near[20 + 6, 18, 12] and not near[0, 0, 0]
    assert not attended_core(np.zeros(SHAPE)).any()
    assert not confidence_connected(np.zeros(SHAPE, np.float32), np.zeros(SHAPE)).any()
    assert not random_walk(np.zeros(SHAPE, np.float32), np.zeros(SHAPE)).any()


def test_bad_attention_is_refused():
    with pytest.raises(InputError, match="attention: expected shape"):
        random_walk(np.zeros(SHAPE, np.float32), np.zeros((3, 3, 3)))
    with pytest.raises(InputError, match="non-negative"):
        confidence_connected(np.zeros(SHAPE, np.float32), -np.ones(SHAPE))
    with pytest.raises(InputError, match="rel"):
        attended_core(np.ones(SHAPE), 0.0)


def test_error_target_is_deepest_in_the_largest_error():
    from gaze3d.models.volume_eval import error_target

    truth = np.zeros(SHAPE, bool)
    truth[5:25, 5:25, 5:15] = True
    pred = np.zeros(SHAPE, bool)
    voxel, positive = error_target(pred, truth, (1.0, 1.0, 1.0))
    assert positive and truth[tuple(voxel)]
    # deepest: 5 voxels from the nearest face (the slab is 10 thick along k)
    assert voxel[2] in (9, 10) and all(9 <= v <= 20 for v in voxel[:2])
    pred = truth.copy()
    pred[26:36, 5:25, 5:15] = True            # a wrong extra slab, larger error than none missed
    voxel, positive = error_target(pred, truth, (1.0, 1.0, 1.0))
    assert not positive and pred[tuple(voxel)] and not truth[tuple(voxel)]
    assert error_target(truth, truth, (1.0, 1.0, 1.0)) is None


def test_slice_annotator_fixation_lands_near_its_target():
    from gaze3d.models.volume_eval import SliceAnnotator, SliceGazeModel

    vol, _ = _phantom()
    ann = SliceAnnotator(vol, SliceGazeModel(offset_deg=0.5, precision_deg=0.1), seed=3)
    target = np.array([13, 18, 12])
    att = ann.fixation(target)
    assert att.sum() > 0
    assert np.count_nonzero(att[:, :, 12]) == np.count_nonzero(att)     # on the target's axial slice
    peak = np.array(np.unravel_index(np.argmax(att), att.shape))
    cam = ann.camera(12)
    dist = np.linalg.norm(cam.position - vol.index_to_world(target[None].astype(float))[0])
    off_mm = np.linalg.norm((peak - target) * vol.spacing)
    assert off_mm <= dist * np.tan(np.radians(0.5 + 0.3)) + vol.spacing.max()
    # the same seed gives the same session
    again = SliceAnnotator(vol, SliceGazeModel(), seed=3).fixation(target)
    np.testing.assert_array_equal(att, again)


def test_interactive_loop_on_the_phantom():
    from gaze3d.models.volume_eval import BASELINES, run_structure

    vol, truth = _phantom()
    r = run_structure(vol, truth == 1, {"random_walk": BASELINES["random_walk"], "flood": BASELINES["flood"]},
                      label=1, name="A", max_fixations=4)
    assert len(r.dice["random_walk"]) == 4 and r.empty["random_walk"] == 0
    assert max(r.dice["random_walk"]) > 0.8
    assert 1 <= r.nof("random_walk", 0.8, 4) <= 4
    assert len(r.seconds["flood"]) == 4


def test_synth_image_is_deterministic_and_piecewise():
    from gaze3d.models.volume_eval import synth_image

    _, truth = _phantom()
    a, b = synth_image(truth, seed=5), synth_image(truth, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, synth_image(truth, seed=6))
    means = [float(np.median(a[truth == i])) for i in range(3)]
    assert len(set(np.round(means, 2))) == 3
    with pytest.raises(InputError, match="non-negative"):
        synth_image(-np.ones((2, 2, 2), int))


def test_abdomen_phantom_has_separate_organs_of_the_stated_sizes():
    from scipy import ndimage

    from gaze3d.models.volume_eval import PHANTOM_ORGANS, load_phantom

    vol, labels, names = load_phantom()
    assert vol.array.shape == labels.shape == (128, 110, 40) and vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.spacing, 3.0)
    assert [names[i] for i in sorted(names)] == [o[0] for o in PHANTOM_ORGANS]
    cm3 = {names[i]: np.count_nonzero(labels == i) * 27 / 1000 for i in names}
    assert 600 < cm3["liver"] < 700 and 40 < cm3["aorta"] < 55           # 4/3 pi abc, the aorta cut by the grid
    for i in names:                                                       # each one piece, touching no other organ
        organ = labels == i
        assert ndimage.label(organ)[1] == 1
        assert not (ndimage.binary_dilation(organ) & (labels > 0) & ~organ).any()
    # the body is in the image, not in the labels: it differs from the empty space round it
    assert abs(float(np.median(vol.array[60:68, 50:60, 18:22][labels[60:68, 50:60, 18:22] == 0]))
               - float(np.median(vol.array[:4, :4, :4]))) > 1e-3
    np.testing.assert_array_equal(vol.array, load_phantom()[0].array)


def test_random_walk_roi_matches_the_full_walker_within_its_voxel_budget():
    from gaze3d.volume_regions import _block_reduce, _upsample_linear, random_walk_roi

    # a finer copy of the phantom (2x per axis): the full walk box is ~8x the budget, so the ROI walker
    # works on block averages and interpolates back
    vol, truth = _phantom()
    fine = np.repeat(np.repeat(np.repeat(vol.array, 2, 0), 2, 1), 2, 2)
    tf = np.repeat(np.repeat(np.repeat(truth, 2, 0), 2, 1), 2, 2)
    spacing = vol.spacing / 2
    g = np.indices(fine.shape).astype(float)
    att = np.exp(-0.5 * ((g[0] - 26) ** 2 + (g[1] - 36) ** 2 + (g[2] - 24) ** 2) / 4.0 ** 2)
    full = random_walk(fine, att, spacing=spacing, margin_mm=30.0)
    roi = random_walk_roi(fine, att, spacing=spacing, margin_mm=30.0, max_voxels=16 ** 3)
    # the coarse walk (blocks of about 4 mm against a 28 x 40 x 48 mm block) loses some boundary
    assert _dice(full, tf == 1) > 0.95 and _dice(roi, tf == 1) > 0.85
    assert _dice(roi, full) > 0.85 and not (roi & (tf == 2)).sum() > 0.05 * (tf == 2).sum()
    prob = random_walk_roi(fine, att, spacing=spacing, margin_mm=30.0, max_voxels=16 ** 3, probability=True)
    assert prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    np.testing.assert_array_equal(prob >= 0.5, roi)
    # a one-voxel-thin slice of attention survives the block maximum; block means are exact means
    a = np.zeros((9, 8, 7))
    a[4, 3, 2] = 1.0
    assert _block_reduce(a, (3, 2, 2), "max")[1, 1, 1] == 1.0
    np.testing.assert_allclose(_block_reduce(np.ones((9, 8, 7)), (3, 2, 2), "mean"), 1.0)
    # linear upsampling of a constant is the constant, of a ramp a ramp between block centres
    up = _upsample_linear(np.arange(4, dtype=float)[:, None, None] * np.ones((4, 2, 2)), (2, 1, 1), (8, 2, 2))
    np.testing.assert_allclose(up[:, 0, 0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    assert not random_walk_roi(fine, np.zeros(fine.shape), spacing=spacing).any()
    with pytest.raises(InputError, match="attention: expected shape"):
        random_walk_roi(fine, np.zeros((3, 3, 3)), spacing=spacing)
    bad = att.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        random_walk_roi(fine, bad, spacing=spacing)


def test_render_and_mip_readers_put_attention_where_the_ray_sees():
    from gaze3d.models.volume_eval import RenderAnnotator, make_annotator

    # an opaque bright slab in front (large j, the camera's side) of the looked-at block: on the
    # rendering the gaze stops in the slab; on the MIP it lands at the brightest voxel along the ray
    vol, truth = _phantom()
    arr = vol.array.copy()
    arr[:, 30:33, :] = 400.0
    from gaze3d.scan import Volume

    v2 = Volume(arr, vol.affine)
    target = np.array([13, 18, 12])
    a_share = {}
    for mode in ("render", "mip"):
        ann = make_annotator(v2, mode, seed=0)
        assert isinstance(ann, RenderAnnotator)
        att = ann.fixation(target)
        assert att.sum() > 0
        front = att[:, 30:, :].sum() / att.sum()
        # MIP: all of it in the slab (the brightest on every ray); rendering: the slab (alpha 0.05 per
        # step, 6 mm) takes a large share by compositing
        assert front > (0.9 if mode == "mip" else 0.3), (mode, front)
        a_share[mode] = att[truth == 1].sum() / att.sum()
        plain = make_annotator(vol, mode, seed=0).fixation(target)
        assert a_share[mode] < plain[truth == 1].sum() / plain.sum()      # the slab took it from A
    # without the slab the MIP goes to the brightest tissue on the ray: block B (160) is not on it,
    # block A (100) is, so attention lands in A
    att = make_annotator(vol, "mip", seed=0).fixation(target)
    assert att[truth == 1].sum() > 0.8 * att.sum()
    with pytest.raises(InputError, match="view"):
        make_annotator(vol, "xray")
