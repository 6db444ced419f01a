"""Semantic with few labels, gaze as weak supervision: pseudo-labels from attention at several
thresholds, the partial-label and consistency losses, the simulated class attention, and a
short training run of the few-label network."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the few-label study needs torch (gaze3d[models])")

from gaze3d.models.semantic import (FewLabelConfig, FewLabelNet, Scan, class_attention,  # noqa: E402
                                    evaluate_fewlabel, gaze_pseudo_labels, level_consistency,
                                    partial_label_loss, pseudo_label_quality, train_fewlabel,
                                    view_consistency)
from gaze3d.models.networks.unet import UNetConfig  # noqa: E402

CODES = (1, 2, 6)          # output order: index 0 = code 1, 1 = ground, 2 = building
SMALL = UNetConfig(in_channels=5, base_channels=8, depth=2)     # keeps the training tests quick


def test_pseudo_labels_key_high_attention_exclude_unseen_and_ignore_between():
    # columns: building (6), tree (1) attention
    att = np.array([[0.9, 0.0],     # building, every level
                    [0.4, 0.1],     # building at the 0.3 and 0.15 levels only
                    [0.05, 0.2],    # tree at the 0.15 level only
                    [0.0, 0.01],    # not looked at: not a building, may be class 1 or ground
                    [0.1, 0.05]])   # looked at, below every level: ignored
    al = gaze_pseudo_labels(att, (6, 1), CODES, thresholds=(0.5, 0.3, 0.15), background=0.03,
                            exhaustive=(6,))
    assert al.shape == (3, 5, 3)
    assert al[:, 0].tolist() == [[False, False, True]] * 3
    assert al[:, 1].tolist() == [[False, False, False], [False, False, True], [False, False, True]]
    assert al[:, 2].tolist() == [[False, False, False]] * 2 + [[True, False, False]]
    assert al[:, 3].tolist() == [[True, True, False]] * 3
    assert not al[:, 4].any()
    # a lower threshold keys a superset of the points of a higher one
    keyed = al.sum(2) == 1
    assert (keyed[0] <= keyed[1]).all() and (keyed[1] <= keyed[2]).all()


def test_pseudo_labels_margin_spares_unseen_points_next_to_looked_at_ones():
    xyz = np.array([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]])
    att = np.array([[1.0], [0.0], [0.0]])
    al = gaze_pseudo_labels(att, (6,), CODES, thresholds=(0.5,), exhaustive=(6,), xyz=xyz, margin=2.0)
    assert al[0, 0].tolist() == [False, False, True]
    assert not al[0, 1].any()                      # 1 m from the roof: may be roof, ignored
    assert al[0, 2].tolist() == [True, True, False]
    # without an exhaustive class nothing is excluded: the unseen point may be any class
    al = gaze_pseudo_labels(att, (6,), CODES, thresholds=(0.5,), xyz=xyz, margin=2.0)
    assert al[0, 2].all()


@pytest.mark.parametrize("kwargs, field", [
    ({"thresholds": (0.02,)}, "thresholds"),          # not above the background
    ({"thresholds": (1.5,)}, "thresholds"),
    ({"exhaustive": (1,)}, "exhaustive"),             # not a gazed class
    ({"exhaustive": (9,)}, "exhaustive"),             # not a class at all
])
def test_pseudo_labels_reject_bad_parameters_naming_them(kwargs, field):
    with pytest.raises(ValueError, match=field):
        gaze_pseudo_labels(np.zeros((4, 1)), (6,), CODES, **kwargs)


def test_pseudo_labels_reject_attention_of_the_wrong_shape():
    with pytest.raises(ValueError, match="att"):
        gaze_pseudo_labels(np.zeros((4, 2)), (6,), CODES)


def test_partial_label_loss_is_cross_entropy_for_one_class_and_zero_for_all():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=g)
    target = torch.tensor([0, 2, 1, 1, 0, 2])
    one = torch.nn.functional.one_hot(target, 3).bool()
    assert torch.allclose(partial_label_loss(logits, one),
                          torch.nn.functional.cross_entropy(logits, target), atol=1e-6)
    assert partial_label_loss(logits, torch.ones(6, 3, dtype=torch.bool)).abs() < 1e-6
    # rows with no allowed class are left out of the mean
    some = one.clone()
    some[3:] = False
    assert torch.allclose(partial_label_loss(logits, some),
                          torch.nn.functional.cross_entropy(logits[:3], target[:3]), atol=1e-6)
    assert partial_label_loss(logits, torch.zeros(6, 3, dtype=torch.bool)) == 0
    with pytest.raises(ValueError, match="allowed"):
        partial_label_loss(logits, one[:, :2])


def test_partial_label_loss_moves_probability_into_the_allowed_set():
    logits = torch.zeros(1, 3, requires_grad=True)
    allowed = torch.tensor([[True, True, False]])
    partial_label_loss(logits, allowed).backward()
    # gradient descent raises both allowed classes equally and lowers the excluded one
    assert logits.grad[0, 0] < 0 and logits.grad[0, 1] < 0 and logits.grad[0, 2] > 0
    assert torch.isclose(logits.grad[0, 0], logits.grad[0, 1])


def test_consistency_losses_vanish_on_agreement_only():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20, 3, generator=g)
    assert level_consistency(a.expand(3, 20, 3)) < 1e-9
    assert view_consistency(a, a.clone()) < 1e-9
    b = torch.randn(20, 3, generator=g)
    assert level_consistency(torch.stack([a, b])) > 1e-3
    assert view_consistency(a, b) > 1e-3


def _box_scene(rng, n_ground=1500):
    """A 30 m x 30 m ground with two 6 m x 6 m x 5 m boxes: (xyz, objects, object_class)."""
    g = np.c_[rng.uniform(0, 30, (n_ground, 2)), rng.normal(0, 0.02, n_ground)]
    boxes, objs = [], []
    for o, (cx, cy) in enumerate([(7.0, 7.0), (23.0, 23.0)]):
        top = np.c_[rng.uniform(-3, 3, (400, 2)) + [cx, cy], np.full(400, 5.0)]
        side = np.c_[rng.uniform(-3, 3, 200) + cx, np.full(200, cy - 3.0), rng.uniform(0, 5, 200)]
        boxes += [top, side]
        objs += [np.full(600, o)]
    keep = ~(((np.abs(g[:, 0] - 7) < 3) & (np.abs(g[:, 1] - 7) < 3))
             | ((np.abs(g[:, 0] - 23) < 3) & (np.abs(g[:, 1] - 23) < 3)))
    g = g[keep]
    xyz = np.concatenate([g] + boxes)
    objects = np.concatenate([np.full(len(g), -1)] + objs)
    return xyz, objects, np.array([6, 6])


def test_class_attention_covers_the_looked_at_object_and_not_the_other_class():
    xyz, objects, _ = _box_scene(np.random.default_rng(0))
    # box 0 is a building, box 1 a "tree": look at buildings only
    att = class_attention(xyz, objects, np.array([6, 1]), (6,), seed=0)
    assert att.shape == (len(xyz), 1) and att.dtype == np.float32
    assert att.max() == pytest.approx(1.0)
    on0, on1 = att[objects == 0, 0], att[objects == 1, 0]
    assert np.median(on0) > 0.2          # 8 fixations spread over the box cover most of it
    assert on1.max() < 0.03              # the other object, 20 m away, is never looked at


def _scan(rng, allowed=False):
    xyz, objects, _ = _box_scene(rng, 1000)
    target = np.where(objects >= 0, 2, 1).astype(np.int64)          # building or ground
    feats = np.zeros((len(xyz), 5), np.float32)
    feats[:, 0] = xyz[:, 2] / 5.0                                     # height feature
    al = None
    if allowed:
        att = np.where(objects >= 0, 1.0, 0.0)[:, None]               # both roofs looked at
        al = gaze_pseudo_labels(att, (6,), CODES, thresholds=(0.5, 0.3), exhaustive=(6,),
                                xyz=xyz, margin=1.0)
    return Scan(xyz, feats, target, al, 1.0, "boxes")


def test_few_label_training_learns_from_labels_and_from_gaze_pseudo_labels_only():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    lab, unl, test = _scan(rng), _scan(rng, allowed=True), _scan(rng)
    q = pseudo_label_quality(unl.allowed, unl.target)
    assert q[0]["keyed correct"] == 1.0 and q[0]["excluded correct"] == 1.0
    net = FewLabelNet(3, levels=2, unet=SMALL)
    losses = train_fewlabel(net, [lab], [unl], FewLabelConfig(steps=20, lr=1e-2), log=None)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    r = evaluate_fewlabel(net, [test], 3)
    assert r["iou"][1] > 0.8 and r["iou"][2] > 0.8
    with pytest.raises(ValueError, match="labelled"):
        train_fewlabel(net, [], [unl], log=None)
    with pytest.raises(ValueError, match="pseudo-labels"):
        train_fewlabel(net, [lab], [test], log=None)


def test_gaze_pseudo_labels_alone_teach_a_class_no_labelled_scan_shows():
    """The labelled scan has no building; the gaze-only scan's keyed roofs teach it."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    lab, unl, test = _scan(rng), _scan(rng, allowed=True), _scan(rng)
    lab = Scan(lab.xyz[lab.target == 1], lab.feats[lab.target == 1], lab.target[lab.target == 1],
               None, 1.0)
    ious = []
    for unlabelled, use_gaze in (([], False), ([unl], True)):
        torch.manual_seed(0)
        net = FewLabelNet(3, levels=2, unet=SMALL)
        train_fewlabel(net, [lab], unlabelled, FewLabelConfig(steps=20, lr=1e-2), use_gaze=use_gaze,
                       log=None)
        ious.append(evaluate_fewlabel(net, [test], 3)["iou"][2])
    assert ious[0] < 0.05 and ious[1] > 0.5
