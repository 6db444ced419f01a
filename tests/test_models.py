"""Gaze-guided networks: configs, shapes, losses, checkpoints, gaze simulator, segmenter, CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gaze3d.demo import bundled_tile  # noqa: E402
from gaze3d.errors import InputError  # noqa: E402
from gaze3d.models.checkpoint import load_checkpoint, save_checkpoint, weights_digest  # noqa: E402
from gaze3d.models.gaze_sim import (AnnotatorSimulator, GazeModel, click_map,  # noqa: E402
                                    find_objects, oblique_camera, visible_points)
from gaze3d.models.networks.segnet import GazeSegNet, SegNetConfig  # noqa: E402
from gaze3d.models.networks.selective_attention import attention_loss  # noqa: E402
from gaze3d.models.networks.unet import VARIANTS, SparseUNet, UNetConfig  # noqa: E402
from gaze3d.models.sparse import sparse_from_points  # noqa: E402

# the real IGN LiDAR HD tile, bundled with the package for the demo (always present)
IGN = bundled_tile()
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "checkpoints" / "interactive_unet14.safetensors"


def small_input(n=3000, channels=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=gen, dtype=torch.float64) * torch.tensor([20.0, 20.0, 3.0],
                                                                               dtype=torch.float64)
    return sparse_from_points(pts, torch.randn(n, channels, generator=gen), 0.5)


# ---------------------------------------------------------------- configs
BAD_NET_CONFIGS = [
    (dict(unet=UNetConfig(variant="unet99")), "variant"),
    (dict(unet=UNetConfig(base_channels=0)), "base_channels"),
    (dict(unet=UNetConfig(depth=9)), "depth"),
    (dict(unet=UNetConfig(in_channels=-2)), "in_channels"),
    (dict(num_outputs=0), "num_outputs"),
    (dict(att_channels=0), "att_channels"),
    (dict(head_channels=0), "head_channels"),
    (dict(propagate=-1), "propagate"),
    (dict(voxel_size=0.0), "voxel_size"),
    (dict(task="detect"), "task"),
    (dict(task="semantic", num_outputs=3, class_codes=[1, 2]), "class_codes"),
]


@pytest.mark.parametrize("kwargs, param", BAD_NET_CONFIGS)
def test_bad_network_config_raises_value_error(kwargs, param):
    with pytest.raises(ValueError, match=param):
        GazeSegNet(SegNetConfig(**kwargs))


@pytest.mark.parametrize("kwargs, param", [
    (dict(accuracy_deg=-1.0), "accuracy_deg"), (dict(sigma_deg=0.0), "sigma_deg"),
    (dict(rate_hz=0.0), "rate_hz")])
def test_bad_gaze_model_raises(kwargs, param):
    with pytest.raises(ValueError, match=param):
        GazeModel(**kwargs).validate()


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("depth", [2, 4])
def test_unet_variants_output_every_decoder_stride(variant, depth):
    x, _ = small_input()
    net = SparseUNet(UNetConfig(variant=variant, base_channels=8, depth=depth))
    outs = net(x)
    assert [o.stride for o in outs] == [2 ** (depth - 1 - j) for j in range(depth)]
    assert [o.num_channels for o in outs] == net.out_channels
    assert len(outs[-1]) == len(x)


@pytest.mark.parametrize("task, outputs, att", [("interactive", 1, 2), ("semantic", 3, 1)])
def test_segnet_shapes_and_cached_head(task, outputs, att):
    x, _ = small_input()
    cfg = SegNetConfig(unet=UNetConfig(base_channels=8, depth=3), num_outputs=outputs,
                       att_channels=att, task=task, class_codes=[1, 2, 6][:outputs] if task == "semantic" else [])
    net = GazeSegNet(cfg).eval()
    a = torch.rand(len(x), att)
    with torch.no_grad():
        logits, sel = net(x, a)
        feats = net.encode(x)
        again = net.decode(feats, a)
        no_gaze, _ = net(x)          # falls back on the selective-attention prediction
    assert logits.shape == (len(x), outputs) and sel.shape == (len(x),)
    torch.testing.assert_close(again, logits)
    assert no_gaze.shape == logits.shape
    with pytest.raises(ValueError, match="att"):
        net.decode(feats, torch.rand(len(x), att + 1))


# ---------------------------------------------------------------- losses
def test_attention_loss_prefers_matching_prediction():
    batch = torch.zeros(100, dtype=torch.long)
    target = torch.zeros(100)
    target[10:20] = 1.0
    good = torch.full((100,), -5.0)
    good[10:20] = 5.0
    bad = torch.full((100,), -5.0)
    bad[50:60] = 5.0
    lg, lb = attention_loss(good, target, batch), attention_loss(bad, target, batch)
    assert 0 <= lg < 0.1 < lb
    empty = attention_loss(good, torch.zeros(100), batch)   # items without attention are skipped
    assert float(empty) == 0.0


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path):
    x, _ = small_input()
    net = GazeSegNet(SegNetConfig(unet=UNetConfig(base_channels=8, depth=2))).eval()
    path = save_checkpoint(net, tmp_path / "m.safetensors", {"note": "test"})
    back, meta = load_checkpoint(path)
    a = torch.rand(len(x), 2)
    with torch.no_grad():
        torch.testing.assert_close(back(x, a)[0], net(x, a)[0])
    assert meta == {"note": "test"}
    half = save_checkpoint(net, tmp_path / "h.safetensors", half=True)
    assert half.stat().st_size < path.stat().st_size


def test_weights_digest_follows_the_weights_not_the_header(tmp_path):
    torch.manual_seed(0)
    net = GazeSegNet(SegNetConfig(unet=UNetConfig(base_channels=8, depth=2)))
    a = save_checkpoint(net, tmp_path / "a.safetensors", {"command": "one path"}, half=True)
    b = save_checkpoint(net, tmp_path / "b.safetensors", {"command": "another", "val_score": 0.5}, half=True)
    assert a.read_bytes() != b.read_bytes()
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        next(net.parameters()).view(-1)[0] += 1.0
    c = save_checkpoint(net, tmp_path / "c.safetensors", {"command": "one path"}, half=True)
    assert weights_digest(c) != weights_digest(a)
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="x.safetensors"):
        weights_digest(bad)


def test_ensemble_checkpoint_holds_its_members_as_they_were(tmp_path):
    """save_ensemble keeps every member's tensors bit for bit under its prefix; load_members gives them
    back (and a single checkpoint as one member); load_checkpoint refuses an ensemble by name."""
    from gaze3d.models.checkpoint import load_members, read_meta, save_ensemble

    cfg = SegNetConfig(unet=UNetConfig(base_channels=8, depth=2))
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(GazeSegNet(cfg).eval())
    paths = [save_checkpoint(n, tmp_path / f"m{i}.safetensors", {"kind": "volume", "seed": i, "val_score": 0.1})
             for i, n in enumerate(nets)]
    out = save_ensemble(paths, tmp_path / "e.safetensors")
    models, meta = load_members(out)
    assert len(models) == 2 and meta["kind"] == "volume" and meta["seed"] == 0 and "val_score" not in meta
    assert [m["weights_sha256"] for m in meta["members"]] == [weights_digest(p) for p in paths]
    assert [m["meta"]["seed"] for m in meta["members"]] == [0, 1] and read_meta(out) == meta
    for back, net in zip(models, nets):
        for (k, a), (k2, b) in zip(back.state_dict().items(), net.state_dict().items()):
            assert k == k2 and torch.equal(a, b), k
    single, smeta = load_members(paths[1])
    assert len(single) == 1 and smeta["seed"] == 1
    with pytest.raises(InputError, match="e.safetensors: an ensemble of 2"):
        load_checkpoint(out)
    other = save_checkpoint(GazeSegNet(SegNetConfig(unet=UNetConfig(base_channels=16, depth=2))),
                            tmp_path / "w.safetensors")
    for bad, match in (([paths[0], other], "w.safetensors: its network config differs"),
                       ([paths[0]], "at least 2"), ([paths[0], out], "already an ensemble")):
        with pytest.raises(InputError, match=match):
            save_ensemble(bad, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_checkpoint_rejects_other_files(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="x.safetensors"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_shipped_checkpoint_is_small_and_loads():
    if not SHIPPED.is_file():
        pytest.fail(f"the shipped checkpoint {SHIPPED} is missing (see docs/models.md)")
    assert SHIPPED.stat().st_size < 5e6
    model, meta = load_checkpoint(SHIPPED)
    assert model.config.task == "interactive" and "command" in meta
    # chosen on the validation split, never on the test split (docs/models.md)
    assert meta["val_score"] > 0.5 and meta["val_objects"]


# ---------------------------------------------------------------- splits
@pytest.mark.parametrize("name", ["ign", "autzen"])
def test_splits_partition_the_tile_and_keep_held_out_objects_out_of_training(name, request):
    from gaze3d.models.data import SPLITS, load_tile

    if name != "ign":          # the IGN tile is bundled; autzen needs shared/data
        request.getfixturevalue("shared_data")
    tile = load_tile(name)
    masks = [tile.in_split(s) for s in SPLITS]
    assert np.array_equal(np.sum(masks, 0), np.ones(len(tile.xyz)))       # a partition
    assert all(m.sum() > 1000 for m in masks)
    ids = {s: set(tile.split_objects(s).tolist()) for s in SPLITS}
    assert all(ids[s] for s in SPLITS) and not (ids["train"] & ids["val"]) and not (ids["val"] & ids["test"])
    train_pts = masks[0]
    for o in ids["val"] | ids["test"]:       # no held-out object point may enter a training crop
        assert not np.any(train_pts & (tile.objects == o)), o
    with pytest.raises(ValueError, match="split"):
        tile.in_split("holdout")


def test_cli_train_validates_and_stores_the_score(tmp_path):
    out = tmp_path / "m.safetensors"
    r = subprocess.run([sys.executable, "-m", "gaze3d", "train", "-o", str(out), "--tiles", "ign",
                        "--steps", "2", "--base-channels", "8", "--gaze-engine", "internal",
                        "--val-repeats", "1", "--val-fixations", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    _, meta = load_checkpoint(out)
    assert 0.0 <= meta["val_score"] <= 1.0
    assert meta["val_objects"] == ["ign:1", "ign:7", "ign:9"]
    assert meta["val_summary"]["objects"] == 3 and "validation score" in r.stdout


# ---------------------------------------------------------------- gaze simulator
def test_visibility_hides_points_under_a_roof():
    g = np.stack(np.meshgrid(np.arange(0, 10, 0.25), np.arange(0, 10, 0.25)), -1).reshape(-1, 2)
    ground = np.c_[g, np.zeros(len(g))]
    roof = np.c_[g[(g[:, 0] > 3) & (g[:, 0] < 7) & (g[:, 1] > 3) & (g[:, 1] < 7)], ]
    roof = np.c_[roof, np.full(len(roof), 5.0)]
    xyz = np.concatenate([ground, roof])
    cam = oblique_camera(np.array([5.0, 5.0, 0.0]), 8.0, np.random.default_rng(0), elevation_deg=(89, 89.5))
    vis = visible_points(xyz, cam)
    under = (xyz[:, 2] == 0) & (np.abs(xyz[:, 0] - 5) < 1.5) & (np.abs(xyz[:, 1] - 5) < 1.5)
    assert vis[len(ground):].mean() > 0.95
    assert vis[under].mean() < 0.05
    assert vis[:len(ground)][~under[:len(ground)]].mean() > 0.5


def test_simulated_attention_lands_on_the_fixated_object():
    rng = np.random.default_rng(1)
    ground = np.c_[rng.uniform(0, 60, (20000, 2)), np.zeros(20000)]
    # a 30 m wide roof 6 m up (no walls), dense enough for the engine's splats to close it;
    # ground under its middle is hidden from every view at >= 40 deg elevation
    box = np.c_[rng.uniform(15, 45, (40000, 2)), np.full(40000, 6.0)]
    xyz = np.concatenate([ground, box])
    labels = np.r_[np.full(20000, 2), np.full(40000, 6)]
    obj = find_objects(xyz, labels, [6], voxel=1.0, max_fraction=0.9)
    assert obj.max() == 0 and (obj[20000:] == 0).all()
    sim = AnnotatorSimulator(xyz, GazeModel(accuracy_deg=0.5, precision_deg=0.1), seed=0)
    idx = np.flatnonzero(obj == 0)
    cam, vis = sim.view(idx)
    att = sim.attention(cam, vis, xyz[sim.pick_targets(idx, vis, 5)])
    assert att.dtype == np.float32 and att.shape == (len(xyz),)
    assert att[20000:].sum() / att.sum() > 0.5            # mostly on the box
    under = np.all(np.abs(xyz[:, :2] - 30.0) < 5.0, axis=1) & (xyz[:, 2] == 0)
    assert under.sum() > 30 and (att[under] == 0).all()    # never on the ground under the roof
    clicks = click_map(xyz, xyz[[20100]], radius=1.0)
    assert clicks[20100] == pytest.approx(1.0) and clicks.max() <= 1.0


# ---------------------------------------------------------------- segmenter + training on a real tile
def test_interactive_segmenter_finds_a_test_building():
    if not SHIPPED.is_file():
        pytest.fail(f"the shipped checkpoint {SHIPPED} is missing")
    from gaze3d.models.data import load_tile
    from gaze3d.models.interactive import InteractiveSegmenter
    from gaze3d.models.interactive_eval import iou
    from gaze3d.scan import PointCloud

    tile = load_tile("ign")
    test_buildings = [o for o in range(len(tile.object_class))
                      if tile.object_class[o] == 6 and o in tile.split_objects("test")]
    o = max(test_buildings, key=lambda k: (tile.objects == k).sum())
    seg = InteractiveSegmenter()
    seg.set_scan(PointCloud(xyz=tile.xyz, colors=tile.feats[:, 2:5], intensity=tile.feats[:, 1]))
    idx = np.flatnonzero(tile.objects == o)
    sim = AnnotatorSimulator(tile.xyz, GazeModel(0.5, 0.1), seed=3)
    cam, vis = sim.view(idx)
    prob = seg.update(sim.attention(cam, vis, tile.xyz[sim.pick_targets(idx, vis, 5)]))
    assert prob.shape == (len(tile.xyz),) and prob.dtype == np.float32
    truth = tile.objects == o
    chance = truth.mean()                      # IoU of "everything is the object"
    assert iou(prob >= 0.5, truth) > max(0.4, 5 * chance)
    with pytest.raises(ValueError, match="attention"):
        seg.update(np.zeros(10))


@pytest.mark.slow
def test_training_on_real_tile_reduces_loss_and_beats_chance():
    from gaze3d.models.batching import collate
    from gaze3d.models.data import load_tile
    from gaze3d.models.train import (InteractiveSampler, TrainConfig, default_interactive_config,
                                     train_interactive)

    torch.manual_seed(0)
    tile = load_tile("ign")
    cfg = default_interactive_config(base_channels=8)
    cfg.unet.depth = 3
    model = GazeSegNet(cfg)
    losses = train_interactive(model, InteractiveSampler([tile], "train", seed=0),
                               TrainConfig(steps=50, batch_size=2, lr=5e-3), log=None)
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
    # held-out objects (east half): better than chance (predicting the prior everywhere)
    test = InteractiveSampler([tile], "test", seed=1)
    batch = collate([test.sample() for _ in range(6)])
    with torch.no_grad():
        prob = torch.sigmoid(model.decode(model.encode(batch.x), batch.att)[:, 0])[batch.inverse]
    truth = batch.target_points > 0.5
    pred = prob >= 0.5
    model_iou = float((pred & truth).sum() / (pred | truth).sum())
    chance_iou = float(truth.float().mean())       # IoU of "everything is the object"
    assert model_iou > chance_iou + 0.15, (model_iou, chance_iou)


# ---------------------------------------------------------------- CLI
def test_cli_segment_writes_mask_and_rejects_bad_attention(tmp_path):
    if not SHIPPED.is_file():
        pytest.fail(f"the shipped checkpoint {SHIPPED} is missing")
    import laspy

    las = laspy.read(IGN)
    keep = np.arange(len(las.points)) % 7 == 0
    small = tmp_path / "small.las"
    las.points = las.points[keep]
    las.write(small)
    n = int(keep.sum())
    att = np.zeros(n, np.float32)
    att[: n // 10] = 1.0
    np.save(tmp_path / "att.npy", att)
    out = tmp_path / "out.ply"
    cmd = [sys.executable, "-m", "gaze3d", "segment", str(small), "--attention",
           str(tmp_path / "att.npy"), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from gaze3d.io import load_scan
    seg = load_scan(out)
    assert len(seg) == n and {"probability", "mask"} <= set(seg.fields)
    np.save(tmp_path / "bad.npy", np.zeros(n + 1, np.float32))
    cmd[6] = str(tmp_path / "bad.npy")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "expected" in r.stderr and "bad.npy" in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--tiles", "mars"], "--tiles"),
    (["--steps", "0"], "steps"),
    (["--variant", "unet99"], "variant"),
    (["--val-repeats", "-1"], "--val-repeats"),
])
def test_cli_train_rejects_bad_options(tmp_path, args, needle):
    r = subprocess.run([sys.executable, "-m", "gaze3d", "train", "-o", str(tmp_path / "m.safetensors"),
                        *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_segmenter_roi_limits_the_mask_to_the_attended_area():
    from gaze3d.models.interactive import InteractiveSegmenter
    from gaze3d.scan import PointCloud

    rng = np.random.default_rng(0)
    xyz = np.c_[rng.uniform(0, 200, (6000, 2)), rng.uniform(0, 1, 6000)]
    net = GazeSegNet(SegNetConfig(unet=UNetConfig(base_channels=8, depth=2)))
    with torch.no_grad():                       # a head that says "object" everywhere
        net.classifier.bias.fill_(10.0)
    seg = InteractiveSegmenter(net, roi_margin=10.0)
    seg.set_scan(PointCloud(xyz=xyz))
    att = np.zeros(len(xyz), np.float32)
    near = np.linalg.norm(xyz[:, :2] - 100, axis=1) < 3
    att[near] = 1.0
    p = seg.update(att)
    far = np.abs(xyz[:, :2] - 100).max(1) > 15
    assert (p[far] == 0).all() and (p[near] > 0.5).all()
    assert (seg.update(np.zeros(len(xyz))) == 0).all()
    with pytest.raises(ValueError, match="roi_margin"):
        InteractiveSegmenter(net, roi_margin=-1.0)


def test_simulator_stand_in_agrees_with_attention_engine():
    from gaze3d.models.data import load_tile

    tile = load_tile("ign")
    idx = np.flatnonzero(tile.objects == 0)
    maps = []
    for engine in ("attention", "internal"):
        sim = AnnotatorSimulator(tile.xyz, GazeModel(0.5, 0.1), seed=1, engine=engine)
        cam, vis = sim.view(idx)
        maps.append(sim.attention(cam, vis, tile.xyz[sim.pick_targets(idx, vis, 3)]))
    assert np.corrcoef(maps[0], maps[1])[0, 1] > 0.9
    assert 0.8 < maps[0].sum() / maps[1].sum() < 1.25


def test_summarise_counts_fixations_and_keeps_only_the_ks_that_were_run():
    from gaze3d.models.interactive_eval import ObjectResult, session_seed, summarise

    a = ObjectResult("t", 0, 1, 10, ious={"gaze+net": [0.5, 0.82, 0.9]})
    b = ObjectResult("t", 1, 1, 10, ious={"gaze+net": [0.1, 0.2, 0.3]})
    row = summarise([a, b], cap=3)[0]
    assert "IoU@5" not in row and "IoU@10" not in row          # only 3 fixations were run
    assert row["IoU@1"] == pytest.approx(0.3) and row["IoU@3"] == pytest.approx(0.6)
    assert row["NoF@80"] == pytest.approx((2 + 3) / 2) and row["fail@80"] == 1
    assert session_seed(7, 0) == 7 and session_seed(7, 2, base=1000) == 3007


def test_training_stops_with_one_line_at_the_first_non_finite_loss():
    """A diverged step would turn every weight into NaN and the run would save them: it stops there."""
    from gaze3d.errors import Gaze3DError
    from gaze3d.models.train import TrainConfig, optimise

    w = torch.nn.Parameter(torch.ones(3))
    model = torch.nn.Module()
    model.w = w
    seen = []

    def step_loss(rng):
        seen.append(len(seen))
        scale = float("nan") if len(seen) == 4 else 1.0
        loss = (w * scale).pow(2).sum()
        return loss, loss.detach()

    with pytest.raises(Gaze3DError, match=r"training diverged at step 3: the loss is nan"):
        optimise(model, TrainConfig(steps=10, batch_size=1, log_every=1), step_loss, log=None)
    assert seen == [0, 1, 2, 3] and torch.isfinite(w).all()          # the bad step changed nothing
    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="fixation_weight"):
            TrainConfig(fixation_weight=bad).validate()


@pytest.mark.parametrize("steps", [1, 2, 9, 10, 11, 20])
def test_every_step_count_trains(steps):
    """OneCycleLR divides by (pct_start x steps - 1): 10 steps crashed with a ZeroDivisionError."""
    from gaze3d.models.train import TrainConfig, optimise

    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.ones(3))

    def step_loss(rng):
        loss = model.w.pow(2).sum()
        return loss, loss.detach()

    losses = optimise(model, TrainConfig(steps=steps, batch_size=1, log_every=100), step_loss, log=None)
    assert len(losses) == steps and losses[-1] < losses[0] or steps == 1
