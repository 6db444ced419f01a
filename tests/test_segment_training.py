"""Training for unseen scans: procedural scenes and sensors, terrain-relative heights,
AGILE3D-style corrective fixations, neighbour negatives, the ``gaze3d train`` options."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gaze3d.models.features import height_above_dtm, height_above_local_min
from gaze3d.models.procedural import SENSORS, make_scene, validation_scenes

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("sensor", SENSORS)
def test_procedural_scene_has_objects_and_the_sensor_signature(sensor):
    t = make_scene(np.random.default_rng(3), sensor)
    n = len(t.xyz)
    assert 5_000 < n <= 120_000 and t.feats.shape == (n, 5)
    m = len(t.object_class)
    assert m >= 2 and set(np.unique(t.objects)) == set(range(-1, m))
    sizes = np.bincount(t.objects[t.objects >= 0])
    assert sizes.min() >= 30
    assert len(t.split_objects("train")) == m and len(t.split_objects("val")) == 0
    colour, intensity = t.feats[:, 2:5].any(), t.feats[:, 1].any()
    if sensor == "photo":
        assert colour and not intensity          # photogrammetry: colour, no intensity
    if sensor == "indoor":
        assert colour
    if sensor in ("als", "tls"):
        assert intensity
    ext = t.xyz.max(0) - t.xyz.min(0)
    if sensor == "als":
        assert 3 <= n / (ext[0] * ext[1]) <= 60      # 5-50 pts/m^2 of ground, minus occlusion
    if sensor == "indoor":
        assert ext[0] < 12 and ext[2] < 3.5
    # ground (most unowned outdoor points) sits at height ~0 in the terrain-relative feature
    if sensor != "indoor":
        ground = t.labels == 2
        assert np.percentile(t.feats[ground, 0] * 10, 90) < 0.6


def test_procedural_scenes_are_reproducible_and_differ_between_seeds():
    a = make_scene(np.random.default_rng(5), "als")
    b = make_scene(np.random.default_rng(5), "als")
    c = make_scene(np.random.default_rng(6), "als")
    np.testing.assert_array_equal(a.xyz, b.xyz)
    assert len(a.xyz) != len(c.xyz) or not np.array_equal(a.xyz, c.xyz)
    v = make_scene(np.random.default_rng(5), "als", split="val")
    assert len(v.split_objects("val")) == len(v.object_class) and len(v.split_objects("train")) == 0
    with pytest.raises(ValueError, match="sensor"):
        make_scene(np.random.default_rng(0), "sonar")


def test_validation_scenes_are_one_fixed_set():
    # gaze3d train --val-scenes and bench/interactive.py --datasets validation use these
    a, b = validation_scenes(2), validation_scenes(2)
    assert [t.name for t in a] == [t.name for t in b] and a[0].name.startswith("val0-")
    np.testing.assert_array_equal(a[1].xyz, b[1].xyz)
    assert all(len(t.split_objects("val")) == len(t.object_class) > 0 for t in a)
    assert validation_scenes(1)[0].name == a[0].name          # a prefix of the same sequence


def test_terrain_model_sees_a_wide_roof_on_a_slope_as_tall():
    """The local minimum makes a 24 m roof its own ground and a slope "tall"; the DTM does not."""
    rng = np.random.default_rng(0)
    g = rng.uniform(0, 100, (40000, 2))
    g = g[~np.all((g > 38) & (g < 62), axis=1)]               # no ground seen under the roof
    ground = np.c_[g, 0.1 * g[:, 0]]                           # 10 % slope
    r = rng.uniform(38, 62, (8000, 2))
    roof = np.c_[r, 0.1 * r[:, 0] + 10.0]
    xyz = np.r_[ground, roof]
    centre = np.linalg.norm(xyz[:, :2] - 50, axis=1) < 5
    is_roof = np.r_[np.zeros(len(ground), bool), np.ones(len(roof), bool)]
    local = height_above_local_min(xyz, 10.0)
    dtm = height_above_dtm(xyz)
    assert np.median(local[centre & is_roof]) < 2.0            # the roof is its own "ground"
    assert abs(np.median(dtm[centre & is_roof]) - 10.0) < 1.5
    assert np.percentile(dtm[~is_roof], 95) < 0.6              # the slope is ground
    assert np.percentile(local[~is_roof], 95) > 0.8            # ... but "tall" for the local minimum


def test_sampler_neighbour_negatives_and_corrective_fixations():
    torch = pytest.importorskip("torch", reason="training needs torch (gaze3d[models])")
    from gaze3d.models.train import InteractiveSampler

    s = InteractiveSampler([], procedural=1.0, engine="internal", neighbour_negatives=1.0,
                           strong_augment=True, seed=1)
    on_other, tried = 0, 0
    for _ in range(6):
        ex = s.sample()
        assert ex.att.shape == (len(ex.xyz), 2) and ex.target.any()
        st = ex.state
        owner = st["tile"].objects[st["crop"]]
        target_id = owner[ex.target > 0.5][0]
        neg = st["neg"]
        if neg.sum() > 0:
            tried += 1
            # the negative attention lies on other objects, not on the target
            on_other += neg[(owner >= 0) & (owner != target_id)].sum() > 0.5 * neg.sum()
            assert neg[owner == target_id].sum() < 0.3 * neg.sum()
        # an all-background prediction: the correction is a positive fixation on the object
        before = st["pos"][ex.target > 0.5].sum()
        assert s.correct(ex, np.zeros(len(ex.xyz), bool))
        assert st["pos"][ex.target > 0.5].sum() > before
        # the prediction equal to the truth leaves nothing to correct
        assert not s.correct(ex, ex.target > 0.5)
    assert tried >= 3 and on_other >= tried // 2    # the rest spills onto the ground around small objects
    del torch


def test_training_with_corrective_rounds_runs_and_learns_on_procedural_scenes():
    torch = pytest.importorskip("torch", reason="training needs torch (gaze3d[models])")
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.train import (InteractiveSampler, TrainConfig, default_interactive_config,
                                     train_interactive)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GazeSegNet(default_interactive_config(base_channels=8))
    s = InteractiveSampler([], procedural=1.0, engine="internal", neighbour_negatives=0.5,
                           strong_augment=True, seed=2, pool=2, renew_every=1000)
    losses = train_interactive(model, s, TrainConfig(steps=12, batch_size=2, lr=3e-3, error_rounds=2,
                                                     log_every=100), log=None)
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert np.mean(losses[-4:]) < np.mean(losses[:4])      # it learns on two fixed scenes
    with pytest.raises(ValueError, match="error_rounds"):
        TrainConfig(error_rounds=-1).validate()
    with pytest.raises(ValueError, match="procedural"):
        InteractiveSampler([], procedural=1.5)


def test_sampler_mixes_label_volume_surfaces_into_the_generated_scenes():
    pytest.importorskip("torch", reason="training needs torch (gaze3d[models])")
    pytest.importorskip("pyvista", reason="pyvista (ships frog_tissues.vti and channels.vti) absent")
    from gaze3d.models.train import InteractiveSampler

    # surface=1: every pooled scene is a label-volume scene, and examples come out of it
    s = InteractiveSampler([], procedural=1.0, engine="internal", seed=4, pool=2, renew_every=1000,
                           surface=1.0, surface_sources=["channels"])
    for _ in range(2):
        ex = s.sample()
        assert ex.target.any() and ex.att[ex.target > 0.5, 0].sum() > 0
    kinds = [t.feats[:, 2:5].any() for t, _ in s._pool]
    assert len(s._pool) == 2 and not any(kinds)      # label surfaces carry no colour
    # surface=0 (the default) draws nothing extra: the same stream as before the option existed
    a = InteractiveSampler([], procedural=1.0, engine="internal", seed=5, pool=1)
    b = InteractiveSampler([], procedural=1.0, engine="internal", seed=5, pool=1, surface=0.0)
    ea, eb = a.sample(), b.sample()
    assert np.array_equal(ea.xyz, eb.xyz) and np.array_equal(ea.att, eb.att)
    with pytest.raises(ValueError, match="surface"):
        InteractiveSampler([], procedural=1.0, surface=1.5)
    with pytest.raises(ValueError, match="surface_sources"):
        InteractiveSampler([], procedural=1.0, surface=0.5, surface_sources=["bone"])


@pytest.mark.parametrize("args, needle", [
    (["--tiles", "none"], "--tiles"),
    (["--tiles", "none", "--procedural", "2"], "procedural"),
    (["--tiles", "none", "--procedural", "1", "--error-rounds", "-1"], "error_rounds"),
    (["--tiles", "none", "--procedural", "1", "--neighbour-negatives", "3"], "neighbour_negatives"),
    (["--tiles", "none", "--procedural", "1", "--surface", "2"], "surface"),
    (["--tiles", "none", "--procedural", "1", "--surface", "0.5", "--surface-sources", "bone"],
     "surface_sources"),
])
def test_cli_train_rejects_bad_procedural_options(tmp_path, args, needle):
    pytest.importorskip("torch", reason="gaze3d train needs torch (gaze3d[models])")
    r = subprocess.run([sys.executable, "-m", "gaze3d", "train", "-o", str(tmp_path / "m.safetensors"), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_cli_train_procedural_only_stores_the_ground_model_and_validates_on_scenes(tmp_path):
    pytest.importorskip("torch", reason="gaze3d train needs torch (gaze3d[models])")
    from gaze3d.models.checkpoint import load_checkpoint
    from gaze3d.models.interactive import InteractiveSegmenter

    out = tmp_path / "m.safetensors"
    r = subprocess.run([sys.executable, "-m", "gaze3d", "train", "-o", str(out), "--tiles", "none",
                        "--procedural", "1", "--error-rounds", "1", "--neighbour-negatives", "0.5",
                        "--strong-augment", "--ground", "dtm", "--steps", "2", "--batch-size", "1",
                        "--base-channels", "8", "--gaze-engine", "internal", "--threads", "1",
                        "--val-scenes", "1", "--val-repeats", "1", "--val-fixations", "2"],
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr
    _, meta = load_checkpoint(out)
    assert meta["tiles"] == [] and meta["features"] == "dtm" and meta["procedural_scenes_made"] >= 1
    assert 0.0 <= meta["val_score"] <= 1.0 and all(o.startswith("val0") for o in meta["val_objects"])
    assert InteractiveSegmenter(out).ground == "dtm"
