"""Gaze-guided decoder blocks: the gate and the gaze-prior multi-head attention ("mha")."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from gaze3d.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from gaze3d.models.networks.gaze_blocks import (AttentionGuidedBlock,  # noqa: E402
                                                GazeMultiHeadBlock, GazeTokens)
from gaze3d.models.networks.segnet import GazeSegNet, SegNetConfig  # noqa: E402
from gaze3d.models.networks.unet import UNetConfig  # noqa: E402
from gaze3d.models.sparse import SparseTensor, sparse_from_points  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these tiny nets' many small ops gain nothing from a second one, and
    on a loaded machine a descheduled worker stalls every op (measured: 15 ms per 3000-row
    matmul, a 0.05 s test taking 24 s, the overfit test over 300 s instead of 2 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scene(sizes=((20.0, 20.0),), n=2500, seed=0, channels=5, voxel=0.5):
    """Batch of random point slabs, item b of extent ``sizes[b]`` metres: (x, point batch)."""
    gen = torch.Generator().manual_seed(seed)
    pts, batch = [], []
    for b, (sx, sy) in enumerate(sizes):
        p = torch.rand(n, 3, generator=gen, dtype=torch.float64)
        pts.append(p * torch.tensor([sx, sy, 3.0], dtype=torch.float64))
        batch.append(torch.full((n,), b))
    pts, batch = torch.cat(pts), torch.cat(batch)
    x, _ = sparse_from_points(pts, torch.randn(len(pts), channels, generator=gen), voxel, batch=batch,
                              origin=torch.zeros(3, dtype=torch.float64))
    return x


def small_config(guidance, task="interactive", **kw):
    semantic = task == "semantic"
    return SegNetConfig(unet=UNetConfig(base_channels=8, depth=3), head_channels=8,
                        num_outputs=3 if semantic else 1, att_channels=1 if semantic else 2,
                        task=task, class_codes=[1, 2, 6] if semantic else [], guidance=guidance,
                        heads=2, **kw)


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("guidance, block", [("gate", AttentionGuidedBlock),
                                              ("mha", GazeMultiHeadBlock)])
@pytest.mark.parametrize("task, outputs, att", [("interactive", 1, 2), ("semantic", 3, 1)])
def test_segnet_shapes_per_guidance(guidance, block, task, outputs, att):
    x = scene()
    net = GazeSegNet(small_config(guidance, task)).eval()
    assert all(type(b) is block for b in net.blocks) and len(net.blocks) == 3
    a = torch.rand(len(x), att)
    with torch.no_grad():
        logits, sel = net(x, a)
        again = net.decode(net.encode(x), a)
        no_gaze, _ = net(x)
    assert logits.shape == (len(x), outputs) and sel.shape == (len(x),)
    assert torch.isfinite(logits).all() and no_gaze.shape == logits.shape
    torch.testing.assert_close(again, logits)


# ---------------------------------------------------------------- bad input
BAD_CONFIGS = [
    (dict(guidance="attention"), "guidance"),
    (dict(guidance=None), "guidance"),
    (dict(guidance="mha", heads=0), "heads"),
    (dict(guidance="mha", heads=True), "heads"),
    (dict(guidance="mha", heads=3), "heads"),       # does not divide head_channels=16
    (dict(guidance="gate", heads=-1), "heads"),
]


@pytest.mark.parametrize("kwargs, param", BAD_CONFIGS)
def test_bad_guidance_config_raises_value_error(kwargs, param):
    with pytest.raises(ValueError, match=param):
        GazeSegNet(SegNetConfig(unet=UNetConfig(base_channels=8, depth=2), **kwargs))


BAD_BLOCKS = [
    (dict(heads=0), "heads"), (dict(heads=3), "heads"), (dict(heads=2.0), "heads"),
    (dict(token_stride=0), "token_stride"), (dict(max_tokens=0), "max_tokens"),
    (dict(eps=0.0), "eps"), (dict(channels=0), "channels"),
]


@pytest.mark.parametrize("kwargs, param", BAD_BLOCKS)
def test_bad_block_arguments_raise_value_error(kwargs, param):
    args = dict(feat_channels=8, att_channels=2, prev_channels=0, channels=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=param):
        GazeMultiHeadBlock(**args)


def test_gate_ignores_heads_that_do_not_divide():
    GazeSegNet(SegNetConfig(unet=UNetConfig(base_channels=8, depth=2), heads=3))


# ---------------------------------------------------------------- batch items stay apart
def test_batch_items_do_not_interact():
    # item 1 is 4x wider: with max_tokens=6 its tokens are coarser than item 0's
    x = scene(((12.0, 12.0), (48.0, 48.0)))
    torch.manual_seed(0)
    block = GazeMultiHeadBlock(5, 2, 0, 8, propagate=1, heads=2, max_tokens=6).eval()
    item0 = x.coords[:, 0] == 0
    a = torch.rand(len(x), 2)
    with torch.no_grad():
        out = block(x, x.replace(a)).feats
        b = a.clone()
        b[~item0] = torch.rand(int((~item0).sum()), 2)
        changed = block(x, x.replace(b)).feats
        alone = SparseTensor(x.coords[item0], x.feats[item0])
        single = block(alone, alone.replace(a[item0])).feats
    tok = GazeTokens.of(x, 16, 6)
    assert tok.strides[0] < tok.strides[1]
    assert torch.equal(changed[item0], out[item0])
    assert not torch.allclose(changed[~item0], out[~item0])
    torch.testing.assert_close(single, out[item0])     # same as running item 0 on its own


def test_weights_never_reach_other_items():
    x = scene(((12.0, 12.0), (20.0, 20.0)))
    block = GazeMultiHeadBlock(5, 2, 0, 8, heads=2).eval()
    with torch.no_grad():
        out, w, token = block(x, x.replace(torch.rand(len(x), 2)), return_weights=True)
        plain = block(x, x.replace(torch.zeros(len(x), 2)))
    tok = GazeTokens.of(x, block.token_stride, block.max_tokens)
    item_of_token = torch.cat([torch.full((s1 - s0,), b) for b, (s0, s1) in enumerate(tok.spans)])
    cross = item_of_token[None, None, :] != x.coords[:, 0][None, :, None]
    assert (w[cross.expand_as(w)] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, len(x)))
    assert (item_of_token[token] == x.coords[:, 0]).all()
    assert out.feats.shape == plain.feats.shape == (len(x), 8)


# ---------------------------------------------------------------- the gaze prior
def test_forward_with_weights_matches_forward():
    x = scene()
    block = GazeMultiHeadBlock(5, 2, 0, 8, heads=4, propagate=1).eval()
    a = x.replace(torch.rand(len(x), 2))
    with torch.no_grad():
        torch.testing.assert_close(block(x, a, return_weights=True)[0].feats, block(x, a).feats)


@pytest.mark.parametrize("channel, sign", [(0, 1), (1, -1)])   # positive attracts, negative repels
def test_attention_on_a_token_changes_its_weight_at_init(channel, sign):
    x = scene(((40.0, 40.0),))
    x = x.replace(torch.ones(len(x), 5))                        # identical features everywhere
    torch.manual_seed(1)
    block = GazeMultiHeadBlock(5, 2, 0, 8, heads=4).eval()
    base = torch.zeros(len(x), 2)
    base[:, 0] = 0.2                                            # weak attention everywhere
    with torch.no_grad():
        _, w0, token = block(x, x.replace(base), return_weights=True)
        on = token == 4
        raised = base.clone()
        raised[on, channel] = 1.0
        _, w1, _ = block(x, x.replace(raised), return_weights=True)
    others = ~on                                    # queries whose own features did not change
    change = (w1[:, others, 4] - w0[:, others, 4]) * sign
    assert (change > 0).all()                      # every head, every query
    if sign > 0:                                   # a few-fold more weight on the attended token
        assert (w1[:, others, 4] > 3 * w0[:, others, 4]).all()


def test_prior_is_monotone_in_attention():
    block = GazeMultiHeadBlock(8, 2, 0, 8, heads=2)
    a = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.0, 1.0]])
    p = block.prior(a)
    assert p.shape == (2, 4)
    assert (p[:, 0] < p[:, 1]).all() and (p[:, 1] < p[:, 2]).all() and (p[:, 3] < p[:, 0]).all()


@pytest.mark.parametrize("att_channels", [2, 1])
def test_gradient_reaches_the_prior(att_channels):
    x = scene()
    task = "interactive" if att_channels == 2 else "semantic"
    net = GazeSegNet(small_config("mha", task)).train()
    a = torch.rand(len(x), att_channels)
    logits, _ = net(x, a)
    (logits ** 2).mean().backward()
    for block in net.blocks:
        params = [block.beta] + ([block.gamma] if att_channels == 2 else [])
        assert (block.gamma is None) == (att_channels == 1)
        for p in params:
            assert p.grad is not None and torch.isfinite(p.grad).all() and (p.grad != 0).all()


# ---------------------------------------------------------------- configs and checkpoints
def test_config_round_trip_and_old_dicts():
    cfg = small_config("mha")
    d = cfg.to_dict()
    assert d["guidance"] == "mha" and d["heads"] == 2
    assert SegNetConfig.from_dict(d) == cfg
    old = {k: v for k, v in d.items() if k not in ("guidance", "heads")}   # saved before them
    back = SegNetConfig.from_dict(old)
    assert back.guidance == "gate" and back.heads == 4


def test_mha_checkpoint_round_trip(tmp_path):
    x = scene()
    net = GazeSegNet(small_config("mha")).eval()
    path = save_checkpoint(net, tmp_path / "mha.safetensors")
    back, _ = load_checkpoint(path)
    a = torch.rand(len(x), 2)
    assert back.config.guidance == "mha" and isinstance(back.blocks[0], GazeMultiHeadBlock)
    with torch.no_grad():
        torch.testing.assert_close(back(x, a)[0], net(x, a)[0])


def test_shipped_checkpoint_still_gates():
    from gaze3d.models.interactive import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.fail(f"the shipped checkpoint {DEFAULT_CHECKPOINT} is missing")
    model, _ = load_checkpoint(DEFAULT_CHECKPOINT)     # strict state-dict load
    assert model.config.guidance == "gate"
    assert all(type(b) is AttentionGuidedBlock for b in model.blocks)


# ---------------------------------------------------------------- learning
def two_boxes(seed):
    """Two equal boxes 12 m apart, each attended in one batch item: (x, att, target)."""
    gen = torch.Generator().manual_seed(seed)
    box = torch.rand(1200, 3, generator=gen, dtype=torch.float64) * torch.tensor(
        [6.0, 6.0, 4.0], dtype=torch.float64)
    ground = torch.rand(1500, 3, generator=gen, dtype=torch.float64) * torch.tensor(
        [24.0, 6.0, 0.0], dtype=torch.float64)
    one = torch.cat([box, box + torch.tensor([12.0, 0.0, 0.0], dtype=torch.float64), ground])
    pts = torch.cat([one, one])
    batch = torch.arange(2).repeat_interleave(len(one))
    feats = torch.cat([pts[:, 2:3] / 4.0, torch.ones(len(pts), 1), torch.zeros(len(pts), 3)], 1)
    x, inv = sparse_from_points(pts, feats.float(), 0.5, batch=batch,
                                origin=torch.zeros(3, dtype=torch.float64))
    # item b looks at box b (a spot on its top half) and its target is that box's points
    on_box = [(torch.arange(len(one)) >= 1200 * b) & (torch.arange(len(one)) < 1200 * (b + 1))
              for b in (0, 1)]
    att_pts = torch.zeros(len(pts), 2)
    target_pts = torch.zeros(len(pts))
    for b in (0, 1):
        rows = torch.arange(len(one)) + b * len(one)
        centre = torch.tensor([3.0 + 12.0 * b, 3.0, 3.0], dtype=torch.float64)
        near = (pts[rows] - centre).norm(dim=1) < 2.0
        att_pts[rows[near & on_box[b]], 0] = 1.0
        target_pts[rows[on_box[b]]] = 1.0
    att = torch.zeros(len(x), 2).scatter_reduce(0, inv[:, None].expand(-1, 2), att_pts, "amax",
                                                include_self=False)
    target = torch.zeros(len(x)).scatter_reduce(0, inv, target_pts, "amax", include_self=False)
    return x, att, target


def test_mha_head_overfits_two_boxes():
    # the two boxes look alike: only the attention tells the network which one is wanted
    torch.manual_seed(0)
    x, att, target = two_boxes(0)
    net = GazeSegNet(SegNetConfig(unet=UNetConfig(base_channels=8, depth=3), head_channels=8,
                                  heads=2, guidance="mha"))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):                  # about 2 s on one idle core
        logits = net.decode(net.encode(x), att)[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    with torch.no_grad():
        pred = net.decode(net.encode(x), att)[:, 0] > 0
    truth = target > 0.5
    for b in (0, 1):                     # both items: the attended box, not its twin
        m = x.coords[:, 0] == b
        iou = float((pred[m] & truth[m]).sum() / (pred[m] | truth[m]).sum())
        assert iou > 0.5, (b, iou, losses[::5])
    assert sum(losses[-5:]) / 5 < 0.2 * sum(losses[:5]) / 5, losses[::5]
