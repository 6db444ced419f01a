"""Procedural abdomens for training the volume model, and SynthSeg images with tissue classes.

The torso here is drawn on a coarse grid (6 mm voxels) so a test costs a fraction of a second;
the generator works in millimetres, so the anatomy is the training grid's.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from gaze3d.models.procedural_volumes import BONE, FAT, SOFT, procedural_abdomen
from gaze3d.models.volume_data import (LABEL_VOLUMES, N_ORGANS_TORSOS, TISSUE_OFFSET_SD, load_label_volume,
                                       load_training_volumes, structures, synthseg_image)

COARSE = dict(shape=(60, 50, 66), spacing_mm=6.0)


@pytest.fixture(scope="module")
def torso():
    return procedural_abdomen(3, **COARSE)


def test_a_torso_is_a_function_of_its_seed(torso):
    labels, names, tissue = torso
    again, _, _ = procedural_abdomen(3, **COARSE)
    other, _, _ = procedural_abdomen(4, **COARSE)
    np.testing.assert_array_equal(labels, again)
    assert not np.array_equal(labels, other)
    assert labels.dtype == np.int32 and labels.shape == COARSE["shape"]


def test_every_label_is_named_and_has_a_tissue_class(torso):
    labels, names, tissue = torso
    present = set(np.unique(labels).tolist())
    assert present - {0} <= set(names) and present <= set(tissue)
    assert tissue[0] == 0 and tissue[1] == FAT
    vertebrae = [k for k, v in names.items() if v.startswith("vertebra")]
    assert len(vertebrae) >= 8 and all(tissue[k] == BONE for k in vertebrae)
    # a vertebra is one body with its posterior elements, never the halves of two split by a disc
    assert all(ndimage.label(labels == k)[1] == 1 for k in vertebrae)


def test_organs_touch_their_neighbours_and_are_one_body_each(torso):
    """The hard case of abdominal CT: organs sharing a face, not each floating in fat."""
    labels, names, tissue = torso
    organs = [k for k, v in names.items() if v.startswith("organ") and (labels == k).any()]
    assert len(organs) >= 8
    touching = set()
    for k in organs:
        m = labels == k
        assert ndimage.label(m)[1] == 1, names[k]
        ring = ndimage.binary_dilation(m) & ~m
        touching |= {(k, int(j)) for j in np.unique(labels[ring]) if j in organs}
    assert len(touching) >= 4, touching
    # about half of the organs share the soft-tissue class (one intensity in a SynthSeg image)
    assert 0 < sum(tissue[k] == SOFT for k in organs) < len(organs)


def test_tissue_classes_give_structures_of_one_class_nearly_one_intensity():
    labels = np.zeros((24, 24, 24), np.int32)
    labels[:8], labels[8:16], labels[16:] = 1, 2, 3
    tissue = {0: 0, 1: 7, 2: 7, 3: 8}                  # 1 and 2: one tissue; 3: another
    spreads, apart = [], []
    for seed in range(20):
        img = synthseg_image(labels, np.random.default_rng(seed), tissue=tissue)
        med = [float(np.median(img[labels == k])) for k in (1, 2, 3)]
        spreads.append(abs(med[0] - med[1]))
        apart.append(abs(med[0] - med[2]))
    assert np.median(spreads) < 3 * TISSUE_OFFSET_SD
    assert np.median(apart) > np.median(spreads) * 2


def test_without_tissue_classes_the_image_is_the_one_it_always_was():
    """Frog and channels draw no tissue classes: their images (so the shipped training run) are unchanged."""
    labels = np.zeros((16, 16, 16), np.int32)
    labels[4:12, 4:12, 4:12] = 2
    a = synthseg_image(labels, np.random.default_rng(5))
    b = synthseg_image(labels, np.random.default_rng(5), tissue=None)
    np.testing.assert_array_equal(a, b)


def test_organs_name_expands_into_the_procedural_torsos(monkeypatch):
    import gaze3d.models.procedural_volumes as pv

    assert "organs" in LABEL_VOLUMES
    monkeypatch.setattr(pv, "SHAPE", COARSE["shape"])       # the coarse grid: same code, less time
    monkeypatch.setattr(pv, "SPACING_MM", COARSE["spacing_mm"])
    vols = load_training_volumes(["organs"])
    assert [v.name for v in vols] == [f"organs{s}" for s in range(N_ORGANS_TORSOS)]
    assert all(v.tissue and v.image is None for v in vols)
    assert not np.array_equal(vols[0].labels, vols[1].labels)
    np.testing.assert_array_equal(load_label_volume("organs").labels, vols[0].labels)
    assert len(structures(vols[0], min_cm3=10.0)) >= 10


def test_the_bench_torso_is_a_held_out_seed_with_tissue_contrast(monkeypatch):
    """``bench/volume_interactive.py --datasets torso``: a seed no training run draws, its fixed-seed image
    with one intensity per tissue class (organs of one class touch at nearly one grey)."""
    import gaze3d.models.volume_eval as ve

    assert ve.TORSO_SEED >= N_ORGANS_TORSOS
    monkeypatch.setattr(ve, "TORSO_SHAPE", COARSE["shape"])
    monkeypatch.setattr(ve, "TORSO_SPACING_MM", COARSE["spacing_mm"])
    vol, labels, names = ve.load_torso()
    _, _, tissue = procedural_abdomen(ve.TORSO_SEED, **COARSE)
    assert vol.shape == labels.shape == COARSE["shape"]
    np.testing.assert_allclose(vol.spacing, COARSE["spacing_mm"])
    img = np.asarray(vol.array)
    soft = [k for k, c in tissue.items() if c == SOFT and (labels == k).any()]
    own = [k for k, c in tissue.items() if c >= 10 and (labels == k).any()]
    assert len(soft) >= 2 and own
    med = {k: float(np.median(img[labels == k])) for k in soft + own}
    spread_soft = max(med[k] for k in soft) - min(med[k] for k in soft)
    assert spread_soft < 0.25            # one class: offsets of sd 0.03 under a smooth bias field
    # without tissue classes, synth_image is what it always was (frog, phantom unchanged)
    np.testing.assert_array_equal(ve.synth_image(labels, seed=2), ve.synth_image(labels, seed=2, tissue=None))
