"""Label volumes turned into surface point clouds and training scenes (models/surface_clouds.py)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from gaze3d.models.data import SPLITS, data_root
from gaze3d.models.surface_clouds import (MIN_POINTS, SCENE_SIDE_M, SOURCES, iter_surface_scenes,
                                          label_surfaces, make_surface_scene, sample_surface)

HAVE_SKIMAGE = importlib.util.find_spec("skimage") is not None
TOTALSEG = data_root() / "medical" / "totalsegmentator" / "example_seg.nii.gz"
METHODS = ["boundary", pytest.param("marching-cubes", marks=pytest.mark.skipif(
    not HAVE_SKIMAGE, reason="marching cubes needs scikit-image (gaze3d[io])"))]


def _volume():
    """Two 10^3 cubes of label 3 (two components) and a ball of radius 6 of label 7."""
    v = np.zeros((40, 30, 20), np.int32)
    v[2:12, 2:12, 2:12] = 3
    v[25:35, 2:12, 2:12] = 3
    i, j, k = np.ogrid[:40, :30, :20]
    v[(i - 20) ** 2 + (j - 21) ** 2 + (k - 10) ** 2 <= 36] = 7
    return v


@pytest.mark.parametrize("method", METHODS)
def test_one_surface_per_component_with_its_area_and_outward_normals(method):
    surfaces = label_surfaces(_volume(), (1.0, 1.0, 1.0), method=method)
    assert [s.label for s in surfaces] == [3, 3, 7]
    rng = np.random.default_rng(0)
    for s, (centre, area) in zip(surfaces, [((6.5, 6.5, 6.5), 600.0), ((29.5, 6.5, 6.5), 600.0),
                                            ((20, 21, 10), 4 * np.pi * 6.5 ** 2)]):
        xyz, nrm = sample_surface(s, 20.0, rng)
        # the voxel staircase (boundary) overstates a ball's area; marching cubes rounds the cube
        assert len(xyz) == pytest.approx(20.0 * area, rel=0.35)
        assert np.allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-6)
        out = np.einsum("nd,nd->n", nrm, xyz - np.asarray(centre, float))
        assert (out > 0).mean() > 0.97                     # normals point away from the inside
        lo, hi = xyz.min(0), xyz.max(0)
        assert np.all(lo > np.asarray(centre) - 8) and np.all(hi < np.asarray(centre) + 8)


def test_spacing_scales_the_surface_and_downsample_and_min_voxels_apply():
    v = _volume()
    flat = label_surfaces(v, (1.0, 1.0, 2.0), method="boundary")
    xyz, nrm = sample_surface(flat[0], 10.0, np.random.default_rng(1))
    assert np.ptp(xyz[:, 2]) == pytest.approx(20.0, abs=0.5) and np.ptp(xyz[:, 0]) == pytest.approx(10.0, abs=0.5)
    # the ball vanishes below min_voxels (it has 925 voxels), the cubes stay
    assert [s.label for s in label_surfaces(v, (1, 1, 1), min_voxels=1001, method="boundary")] == []
    assert [s.label for s in label_surfaces(v, (1, 1, 1), min_voxels=900, method="boundary")] == [3, 3, 7]
    coarse = label_surfaces(v, (1.0, 1.0, 1.0), downsample=2, method="boundary")
    assert len(coarse) == 3
    xyz, _ = sample_surface(coarse[0], 10.0, np.random.default_rng(1))
    assert np.ptp(xyz[:, 0]) == pytest.approx(10.0, abs=1.0)      # still metres of the input grid


@pytest.mark.parametrize("kwargs, field", [({"method": "mesh"}, "method"), ({"downsample": 0}, "downsample")])
def test_bad_parameters_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        label_surfaces(_volume(), (1, 1, 1), **kwargs)
    with pytest.raises(ValueError, match="labels"):
        label_surfaces(np.zeros((4, 4)), (1, 1, 1))


def _check_scene(t, split="train"):
    n = len(t.xyz)
    assert 1000 < n <= 120_000 and t.feats.shape == (n, 5) and t.normals.shape == (n, 3)
    m = len(t.object_class)
    assert m >= 2 and set(np.unique(t.objects)) == set(range(-1, m))
    assert np.bincount(t.objects[t.objects >= 0]).min() >= MIN_POINTS
    assert set(np.unique(t.labels[t.objects >= 0])) == {1} and set(np.unique(t.labels[t.objects < 0])) == {2}
    assert (t.region == SPLITS.index(split)).all()
    side = np.ptp(t.xyz[:, :2], axis=0).max()
    assert SCENE_SIDE_M[0] * 0.9 <= side <= SCENE_SIDE_M[1] + 6.0     # + the ground margin and noise
    assert np.allclose(np.linalg.norm(t.normals, axis=1), 1.0, atol=1e-4)
    # the ground plane sits at height ~0 in the terrain-relative feature
    assert np.percentile(t.feats[t.objects < 0, 0], 90) < 0.05
    assert len(t.split_objects(split)) == m


@pytest.mark.skipif(not TOTALSEG.is_file(), reason=f"shared data absent ({TOTALSEG})")
@pytest.mark.parametrize("sensor", ["all", "photo"])
def test_totalsegmentator_scene_has_one_object_per_organ_component(sensor):
    t = make_surface_scene(np.random.default_rng(2), sensor, sources=("totalsegmentator",))
    _check_scene(t)
    assert t.name.endswith(f"totalsegmentator-{sensor}")
    assert set(t.object_class) <= set(range(1, 118))          # TotalSegmentator label codes


@pytest.mark.skipif(importlib.util.find_spec("pyvista") is None, reason="pyvista (ships frog_tissues.vti) absent")
def test_frog_scene_from_the_pyvista_wheel_and_validation_split():
    t = make_surface_scene(np.random.default_rng(3), "photo", sources=("frog",), split="val")
    _check_scene(t, "val")


def test_iter_surface_scenes_skips_missing_sources_and_says_when_none_is_left(tmp_path):
    with pytest.raises(FileNotFoundError, match="no label volume"):
        next(iter_surface_scenes(np.random.default_rng(0), sources=("totalsegmentator",), root=tmp_path))
    with pytest.raises(FileNotFoundError, match="totalsegmentator"):
        next(iter_surface_scenes(np.random.default_rng(0), sources=("totalsegmentator",), root=tmp_path,
                                 skip_missing=False))
    with pytest.raises(ValueError, match="sources"):
        make_surface_scene(np.random.default_rng(0), sources=("ct",))
    if not TOTALSEG.is_file():
        pytest.skip(f"shared data absent ({TOTALSEG})")
    it = iter_surface_scenes(np.random.default_rng(4), sources=("totalsegmentator",))
    a, b = next(it), next(it)
    assert a.name.startswith("surface0-") and b.name.startswith("surface1-")
    assert len(a.xyz) != len(b.xyz)                         # a fresh random scene each time

