"""Graph prior + learned correction (issue 12): the random walker's potential as the
network's third input channel and the base of its mask logit."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the interactive network needs torch (gaze3d[models])")

from gaze3d.models.gaze_sim import AnnotatorSimulator  # noqa: E402
from gaze3d.models.procedural import make_scene  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def scene():
    return make_scene(np.random.default_rng(4), "als", name="prior-test", split="test")


def _attention(t, obj_id, other_id=None):
    sim = AnnotatorSimulator(t.xyz, None, seed=obj_id, engine="internal")
    obj = np.flatnonzero(t.objects == obj_id)
    cam, vis = sim.view(obj)
    pos = sim.attention(cam, vis, t.xyz[sim.pick_targets(obj, vis, 2)])
    neg = np.zeros_like(pos)
    if other_id is not None:
        other = np.flatnonzero(t.objects == other_id)
        neg = sim.attention(cam, vis, t.xyz[sim.pick_targets(other, vis, 1)])
    return pos, neg


def _segmenter(model, t):
    from gaze3d.models.interactive import InteractiveSegmenter
    from gaze3d.scan import PointCloud

    seg = InteractiveSegmenter(model, voxel_size=t.voxel_size)
    seg.set_scan(PointCloud(xyz=t.xyz, colors=t.feats[:, 2:5], intensity=t.feats[:, 1]))
    return seg


def test_untrained_prior_network_is_the_graph_baseline_and_a_correction_moves_it(scene):
    from gaze3d.models.interactive_eval import tile_graph
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.train import default_interactive_config

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GazeSegNet(default_interactive_config(base_channels=8, prior="graph"))
    seg = _segmenter(model, scene)
    graph = tile_graph(scene)
    for obj, other in ((0, None), (1, 2)):
        pos, neg = _attention(scene, obj, other)
        n = neg if neg.max() > 0 else None
        want = graph.segment(pos, n)
        got = seg.segment(pos, n)
        assert want.mask.any()
        # zero correction: the walker's own mask, point for point (its logit, thresholded at 0)
        np.testing.assert_array_equal(got.mask, want.mask)
    # a correction that is not zero changes the mask: the head is really in the loop
    with torch.no_grad():
        model.classifier.bias.fill_(-10.0)
    assert not seg.segment(pos, n).mask.any()


def test_prior_config_is_checked_and_survives_a_checkpoint(scene, tmp_path):
    from gaze3d.models.checkpoint import load_checkpoint, save_checkpoint
    from gaze3d.models.networks.segnet import GazeSegNet, SegNetConfig, prior_logit
    from gaze3d.models.train import default_interactive_config

    with pytest.raises(ValueError, match="prior"):
        SegNetConfig(att_channels=2, prior="graph").validate()
    with pytest.raises(ValueError, match="prior"):
        SegNetConfig(att_channels=3, prior="walker").validate()
    p = prior_logit(torch.tensor([0.0, 0.5, 1.0]))
    assert p[1] == 0 and p[0] < -3.5 and p[2] > 3.5 and torch.isfinite(p).all()
    torch.manual_seed(1)
    model = GazeSegNet(default_interactive_config(base_channels=8, prior="graph"))
    with torch.no_grad():
        model.classifier.bias.fill_(0.3)       # a trained-looking correction
    path = save_checkpoint(model, tmp_path / "p.safetensors", {"features": "dtm"})
    loaded, _ = load_checkpoint(path)
    assert loaded.config.prior == "graph" and loaded.config.att_channels == 3
    pos, _ = _attention(scene, 0)
    a = _segmenter(model, scene).update(pos)
    b = _segmenter(path, scene).update(pos)
    np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="prior"):        # a prior network needs its prior
        feats = loaded.encode(_batch_x(scene))
        loaded.point_logits(feats, torch.zeros(len(feats[-1]), 3), torch.zeros(5, dtype=torch.long))


def _batch_x(t):
    from gaze3d.models.batching import Example, collate

    ex = Example(t.xyz[:2000], t.feats[:2000], np.zeros((2000, 3), np.float32),
                 np.zeros(2000, np.float32), t.voxel_size)
    return collate([ex]).x


def test_sampler_prior_channel_follows_the_corrections_and_training_steps_run():
    from gaze3d.models.interactive_eval import tile_graph
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.train import (InteractiveSampler, TrainConfig, default_interactive_config,
                                     train_interactive)

    torch.set_num_threads(1)
    s = InteractiveSampler([], procedural=1.0, engine="internal", neighbour_negatives=0.5,
                           seed=3, pool=1, renew_every=1000, prior="graph")
    ex = s.sample()
    assert ex.att.shape == (len(ex.xyz), 3)
    st = ex.state
    t, crop = st["tile"], st["crop"]
    # the third channel is the walker's potential from the crop's attention
    p = np.zeros(len(t.xyz), np.float32)
    p[crop] = st["pos"]
    n = np.zeros(len(t.xyz), np.float32)
    n[crop] = st["neg"]
    want = tile_graph(t).segment(p, n if n.max() > 0 else None).score[crop]
    np.testing.assert_allclose(ex.att[:, 2], want, atol=1e-6)
    # a corrective positive fixation on a missed object re-solves the walk
    before = ex.att[:, 2].copy()
    assert s.correct(ex, np.zeros(len(ex.xyz), bool))
    assert not np.array_equal(before, ex.att[:, 2])
    with pytest.raises(ValueError, match="prior"):
        InteractiveSampler([], procedural=1.0, prior="walker")
    with pytest.raises(ValueError, match="fixation_weight"):
        TrainConfig(fixation_weight=-1.0).validate()
    # residual training: the zero-initialised correction moves, losses stay finite
    torch.manual_seed(0)
    model = GazeSegNet(default_interactive_config(base_channels=8, prior="graph"))
    losses = train_interactive(model, s, TrainConfig(steps=3, batch_size=2, error_rounds=1,
                                                     fixation_weight=1.0, log_every=100), log=None)
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert model.classifier.weight.abs().sum() > 0


def test_init_from_a_checkpoint_without_prior_starts_as_the_walker(scene, tmp_path):
    from gaze3d.errors import InputError
    from gaze3d.models.checkpoint import init_from_checkpoint, save_checkpoint
    from gaze3d.models.interactive_eval import tile_graph
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.train import default_interactive_config

    torch.set_num_threads(1)
    torch.manual_seed(2)
    plain = GazeSegNet(default_interactive_config(base_channels=8))
    path = save_checkpoint(plain, tmp_path / "plain.safetensors", {"tiles": [], "features": "dtm"})
    model = GazeSegNet(default_interactive_config(base_channels=8, prior="graph"))
    assert init_from_checkpoint(model, path)["tiles"] == []
    f = model.backbone.out_channels[0]
    # the old weights, a zero column for the prior channel, and no correction yet
    assert torch.equal(model.blocks[0].fuse.weight[:, :f + 2], plain.blocks[0].fuse.weight[:, :f + 2])
    assert model.blocks[0].fuse.weight[:, f + 2].abs().sum() == 0
    assert torch.equal(model.blocks[1].gate_a.weight[:, :2], plain.blocks[1].gate_a.weight)
    assert model.classifier.weight.abs().sum() == 0
    pos, neg = _attention(scene, 1, 2)
    np.testing.assert_array_equal(_segmenter(model, scene).segment(pos, neg).mask,
                                  tile_graph(scene).segment(pos, neg).mask)
    with pytest.raises(InputError, match="configuration differs"):
        init_from_checkpoint(GazeSegNet(default_interactive_config(base_channels=16, prior="graph")), path)
    with pytest.raises(InputError, match="attention channels"):
        prior_path = save_checkpoint(model, tmp_path / "prior.safetensors")
        init_from_checkpoint(GazeSegNet(default_interactive_config(base_channels=8)), prior_path)


def test_shipped_network_drops_the_neighbour_a_negative_fixation_rejects():
    """Negatives end to end with the shipped (graph-prior) network: the accumulator's own
    fixation records, the second marked negative, take box B out of the mask, A stays."""
    from test_segment_negatives import camera, look, two_boxes

    from gaze3d.attention import AttentionAccumulator
    from gaze3d.models.interactive import DEFAULT_CHECKPOINT, InteractiveSegmenter
    from gaze3d.scan import PointCloud

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.fail(f"the shipped checkpoint {DEFAULT_CHECKPOINT} is missing")
    torch.set_num_threads(1)
    xyz, owner = two_boxes()
    seg = InteractiveSegmenter()
    assert seg.model.config.prior == "graph"
    seg.set_scan(PointCloud(xyz))
    acc = AttentionAccumulator(PointCloud(xyz))
    look(acc, camera(), [np.array([7.7, 6.0, 1.2]), np.array([9.15, 6.0, 1.2])])   # A's edge, B
    pos, _ = acc.signed_values()
    both = seg.segment(pos)
    assert both.mask[owner == 1].mean() > 0.3          # both positive: B is (wrongly) in
    acc.set_polarity(1, False)
    pos, neg = acc.signed_values()
    res = seg.segment(pos, neg)
    assert res.ok, res.reason
    assert res.mask[owner == 1].mean() < 0.1
    assert res.mask[(owner == 0) & (xyz[:, 2] > 1.15)].mean() > 0.9    # A's roof
