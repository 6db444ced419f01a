"""Semantic segmentation from a few labelled sub-tiles, with and without gaze.

Two uses of the simulated annotator's gaze:

* gaze as an **input** (:class:`SemanticSampler`, :func:`train_semantic`): a tile
  is cut into a grid of sub-tiles; a few from the west half are the labelled
  training set, the east half is the test set. The annotator looks at the
  objects of ``gaze_class`` in each sub-tile; that attention is one input
  channel of the gaze-guided head at train and test time. The no-gaze model is
  the same network with that channel all zero (``bench/interactive.py --semantic``).
* gaze as **weak supervision** (:class:`FewLabelNet`, :func:`train_fewlabel`,
  after GazeMedSeg): scans with only gaze get multi-level pseudo-labels
  (:func:`gaze_pseudo_labels`) and consistency losses; no gaze at test time
  (``bench/semantic_fewlabel.py``; docs/models.md, "Semantic with few labels").
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .batching import Example, collate
from .data import Tile
from .gaze_sim import AnnotatorSimulator, GazeModel
from .networks.segnet import GazeSegNet, SegNetConfig
from .networks.selective_attention import attention_loss
from .networks.unet import UNetConfig


def sub_tiles(tile: Tile, nx: int = 4, ny: int = 2) -> List[np.ndarray]:
    """Point indices of an ``nx x ny`` grid of sub-tiles, west to east."""
    lo, hi = tile.xyz[:, :2].min(0), tile.xyz[:, :2].max(0) + 1e-6
    ij = np.floor((tile.xyz[:, :2] - lo) / (hi - lo) * [nx, ny]).astype(int)
    return [np.flatnonzero((ij[:, 0] == i) & (ij[:, 1] == j)) for i in range(nx) for j in range(ny)]


class SemanticSampler:
    """Examples of sub-tiles with class targets and (optionally) gaze on ``gaze_class`` objects."""

    def __init__(self, tile: Tile, parts: List[np.ndarray], gaze: bool, gaze_class: int = 6,
                 fixations_per_object: int = 3, seed: int = 0, augment: bool = True,
                 gaze_model: Optional[GazeModel] = None):
        self.tile, self.parts, self.gaze = tile, parts, gaze
        self.codes = list(tile.spec.semantic_classes)
        self.lut = {c: i for i, c in enumerate(self.codes)}
        self.sim = AnnotatorSimulator(tile.xyz, gaze_model, seed=seed)
        self.rng = np.random.default_rng(seed)
        self.gaze_class = gaze_class
        self.k = fixations_per_object
        self.augment = augment

    def attention(self, idx: np.ndarray) -> np.ndarray:
        t = self.tile
        att = np.zeros(len(t.xyz), np.float32)
        objs = np.unique(t.objects[idx])
        for o in objs[objs >= 0]:
            if t.object_class[o] != self.gaze_class:
                continue
            pts = np.intersect1d(np.flatnonzero(t.objects == o), idx)
            if len(pts) < 10:
                continue
            cam, vis = self.sim.view(pts)
            att += self.sim.attention(cam, vis, t.xyz[self.sim.pick_targets(pts, vis, self.k)])
        a = att[idx]
        return a / a.max() if a.max() > 0 else a

    def example(self, part: int) -> Example:
        idx = self.parts[part]
        t = self.tile
        att = self.attention(idx)[:, None] if self.gaze else np.zeros((len(idx), 1), np.float32)
        target = np.array([self.lut.get(int(c), -1) for c in t.labels[idx]], dtype=np.int64)
        xyz = t.xyz[idx]
        if self.augment:
            a = self.rng.uniform(0, 2 * np.pi)
            c, s = np.cos(a), np.sin(a)
            xyz = (xyz - xyz.mean(0)) @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]).T
        return Example(xyz, t.feats[idx], att, target, t.voxel_size)

    def sample(self) -> Example:
        return self.example(int(self.rng.integers(len(self.parts))))


def semantic_config(codes, base_channels: int = 16, voxel_size: float = 0.5) -> SegNetConfig:
    return SegNetConfig(unet=UNetConfig(in_channels=5, base_channels=base_channels),
                        num_outputs=len(codes), att_channels=1, voxel_size=voxel_size,
                        task="semantic", class_codes=list(codes))


def train_semantic(model: GazeSegNet, sampler: SemanticSampler, steps: int = 150,
                   batch_size: int = 2, lr: float = 3e-3, log=print) -> List[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        b = collate([sampler.sample() for _ in range(batch_size)])
        feats = model.encode(b.x)
        logits = model.decode(feats, b.att).index_select(0, b.inverse)
        loss = F.cross_entropy(logits, b.target_points, ignore_index=-1)
        if sampler.gaze:
            loss = loss + 0.2 * attention_loss(model.selective(feats[-1].feats), b.att[:, 0],
                                               b.x.coords[:, 0])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log and (step % 25 == 0 or step == steps - 1):
            log(f"  step {step:4d} loss {np.mean(losses[-25:]):.4f} {time.perf_counter() - t0:5.0f} s")
    model.eval()
    return losses


@torch.no_grad()
def evaluate_semantic(model: GazeSegNet, sampler: SemanticSampler, predicted_attention: bool = False
                      ) -> dict:
    """Per-class IoU and mIoU over all points of the sampler's parts.

    ``predicted_attention``: ignore the sampler's gaze and let the
    selective-attention head supply the attention channel.
    """
    n = len(sampler.codes)
    inter = np.zeros(n)
    union = np.zeros(n)
    for p in range(len(sampler.parts)):
        ex = sampler.example(p)
        b = collate([ex])
        logits = model(b.x)[0] if predicted_attention else model.decode(model.encode(b.x), b.att)
        pred = logits.argmax(1).index_select(0, b.inverse).numpy()
        t = ex.target
        for c in range(n):
            inter[c] += np.sum((pred == c) & (t == c))
            union[c] += np.sum(((pred == c) | (t == c)) & (t >= 0))
    ious = inter / np.maximum(union, 1)
    return {"iou": {int(code): float(v) for code, v in zip(sampler.codes, ious)},
            "miou": float(ious.mean())}


# ---------------------------------------------------------------------------
# Few labels, gaze as weak supervision (issue 12; after GazeMedSeg, Zhong et al. 2024)
#
# A few scans are labelled; the others carry only the simulated annotator's gaze
# over the objects of the classes of interest, each look tagged with the class key
# the annotator pressed. That gaze is never a network input: it becomes
# pseudo-labels at several attention thresholds (one classifier head per level)
# plus consistency losses between the levels and between two augmented views.
# The comparison model is the same network trained on the labelled scans alone.
# ---------------------------------------------------------------------------

DEFAULT_THRESHOLDS = (0.5, 0.3, 0.15)   # attention levels (fraction of an object's peak)
DEFAULT_BACKGROUND = 0.03               # below it a point was not looked at
# an unseen point closer than this (xy, metres) to a looked-at one is ignored, not excluded: the
# foveal spot never covers a whole roof, and the parts it missed are still the object's
DEFAULT_MARGIN = 2.0
# the simulated camera frames every object at the same angular size (half the view), so covering
# one takes about the same number of fixations whatever its size (~2.5 s at 0.3 s dwell)
DEFAULT_FIXATIONS = 8


def class_attention(xyz: np.ndarray, objects: np.ndarray, object_class: np.ndarray,
                    gaze_codes, seed: int = 0, gaze_model: Optional[GazeModel] = None,
                    engine: str = "attention", min_points: int = 10,
                    fixations: int = DEFAULT_FIXATIONS) -> np.ndarray:
    """Simulated annotator attention per gazed class on one scan.

    The annotator views each object of a class in ``gaze_codes`` from an oblique
    camera and fixates ``fixations`` points spread over it; the attention of
    each object is scaled to its own peak (a small object counts as much as a
    large one) and a class's channel is the maximum over its objects.

    Parameters
    ----------
    xyz : (n, 3) float64
        The scan's points, metres.
    objects : (n,) int64
        Object id per point, -1 = none.
    object_class : (m,) int
        Class code of each object id.
    gaze_codes : sequence of int, length G
        Classes the annotator looks at (and presses the key of).

    Returns
    -------
    (n, G) float32 in [0, 1]
    """
    gaze_codes = [int(c) for c in gaze_codes]
    out = np.zeros((len(xyz), len(gaze_codes)), np.float32)
    sim = AnnotatorSimulator(xyz, gaze_model, seed=seed, engine=engine)
    ids = np.unique(objects[objects >= 0])
    for o in ids:
        code = int(object_class[o])
        if code not in gaze_codes:
            continue
        pts = np.flatnonzero(objects == o)
        if len(pts) < min_points:
            continue
        cam, vis = sim.view(pts)
        a = sim.attention(cam, vis, xyz[sim.pick_targets(pts, vis, fixations)])
        if a.max() > 0:
            g = gaze_codes.index(code)
            out[:, g] = np.maximum(out[:, g], a / a.max())
    return out


def gaze_pseudo_labels(att: np.ndarray, gaze_codes, codes, thresholds=DEFAULT_THRESHOLDS,
                       background: float = DEFAULT_BACKGROUND, exhaustive=(), xyz=None,
                       margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Multi-level pseudo-labels from per-class attention, as sets of allowed classes.

    At level ``k`` a point whose strongest class attention is ``>= thresholds[k]``
    gets that class (the annotator's key); a point with every class's attention
    ``< background`` was not looked at, so it is none of the ``exhaustive``
    classes (those whose every object the annotator was asked to look at) and
    may be any other class, unless (``xyz`` given) it lies within ``margin``
    metres (xy) of a looked-at point; every other point is ignored at that level.

    Parameters
    ----------
    att : (n, G) float
        :func:`class_attention`.
    gaze_codes : sequence of int, length G
    codes : sequence of int, length C
        The network's classes (order of its outputs).
    thresholds : sequence of float, length K, each in (0, 1]
    background : float, below every threshold
    exhaustive : sequence of int
        Codes in ``gaze_codes`` whose objects were all looked at.
    xyz : (n, 3) float, optional
        Point positions (metres) for ``margin``; without them no margin.
    margin : float >= 0

    Returns
    -------
    (K, n, C) bool
        ``allowed[k, i, c]``: class ``c`` is consistent with level ``k``'s
        pseudo-label of point ``i``; a row of all False is ignored.
    """
    att = np.asarray(att, dtype=np.float32)
    codes = [int(c) for c in codes]
    gaze_codes = [int(c) for c in gaze_codes]
    if att.ndim != 2 or att.shape[1] != len(gaze_codes):
        raise ValueError(f"att: expected shape (n, {len(gaze_codes)}), got {att.shape}")
    missing = [c for c in gaze_codes + [int(e) for e in exhaustive] if c not in codes]
    if missing:
        raise ValueError(f"gaze_codes/exhaustive: codes {missing} are not among the classes {codes}")
    if [int(e) for e in exhaustive if int(e) not in gaze_codes]:
        raise ValueError(f"exhaustive: expected codes among gaze_codes {gaze_codes}, got {list(exhaustive)}")
    thresholds = [float(t) for t in thresholds]
    if not thresholds or any(not (background < t <= 1.0) for t in thresholds):
        raise ValueError(f"thresholds: expected values in (background={background}, 1], got {thresholds}")
    n, C = len(att), len(codes)
    peak = att.max(1) if att.shape[1] else np.zeros(n, np.float32)
    key = np.array([codes.index(c) for c in gaze_codes], np.int64)[att.argmax(1)] if att.shape[1] \
        else np.zeros(n, np.int64)
    rest = np.ones(C, bool)
    rest[[codes.index(int(e)) for e in exhaustive]] = False
    unseen = peak < background
    if xyz is not None and margin > 0 and unseen.any() and (~unseen).any():
        from scipy.spatial import cKDTree

        xy = np.asarray(xyz, dtype=np.float64)[:, :2]
        if len(xy) != n:
            raise ValueError(f"xyz: expected {n} points (one per attention row), got {len(xy)}")
        d, _ = cKDTree(xy[~unseen]).query(xy[unseen], distance_upper_bound=margin)
        unseen[np.flatnonzero(unseen)[np.isfinite(d)]] = False
    out = np.zeros((len(thresholds), n, C), bool)
    for k, t in enumerate(thresholds):
        hit = np.flatnonzero(peak >= t)
        out[k, hit, key[hit]] = True
        out[k, unseen] = rest
    return out


def partial_label_loss(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``-log P(class in allowed set)``, averaged over the rows with a non-empty set.

    With one allowed class per row this is the cross-entropy; with every class
    allowed it is 0; rows with none are ignored.

    Parameters
    ----------
    logits : (n, C) float
    allowed : (n, C) bool
    """
    if logits.shape != allowed.shape:
        raise ValueError(f"allowed: expected shape {tuple(logits.shape)}, got {tuple(allowed.shape)}")
    rows = allowed.any(1)
    if not rows.any():
        return logits.sum() * 0.0
    lg, al = logits[rows], allowed[rows]
    inside = torch.logsumexp(lg.masked_fill(~al, -torch.inf), 1)
    return (torch.logsumexp(lg, 1) - inside).mean()


def level_consistency(logits: torch.Tensor) -> torch.Tensor:
    """Cross-level consistency: mean squared distance of each head's class probabilities
    ``(K, n, C)`` logits to the (detached) mean over heads."""
    p = torch.softmax(logits, -1)
    return ((p - p.mean(0, keepdim=True).detach()) ** 2).sum(-1).mean()


def view_consistency(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Consistency between two augmented views of the same points: squared distance of
    each view's class probabilities ``(..., n, C)`` to the other's, detached (both ways)."""
    pa, pb = torch.softmax(logits_a, -1), torch.softmax(logits_b, -1)
    return 0.5 * (((pa - pb.detach()) ** 2).sum(-1).mean() + ((pb - pa.detach()) ** 2).sum(-1).mean())


class FewLabelNet(torch.nn.Module):
    """Sparse U-Net backbone and one linear classifier per pseudo-label level.

    The prediction is the mean of the heads' class probabilities. Gaze is no
    input: with or without gaze supervision it is the same network.
    """

    def __init__(self, num_classes: int, levels: int = len(DEFAULT_THRESHOLDS),
                 unet: Optional[UNetConfig] = None):
        super().__init__()
        from .networks.unet import SparseUNet

        if num_classes < 2 or levels < 1:
            raise ValueError(f"num_classes/levels: expected >= 2 and >= 1, got {num_classes}, {levels}")
        self.backbone = SparseUNet(unet or UNetConfig(in_channels=5, base_channels=16))
        c = self.backbone.out_channels[-1]
        self.heads = torch.nn.ModuleList(torch.nn.Linear(c, num_classes) for _ in range(levels))

    def forward(self, x) -> torch.Tensor:
        """Logits ``(levels, n_voxels, num_classes)`` of a batched SparseTensor."""
        f = self.backbone(x)[-1].feats
        return torch.stack([h(f) for h in self.heads])

    @torch.no_grad()
    def predict(self, x) -> torch.Tensor:
        """Class index ``(n_voxels,)``: argmax of the heads' mean probability."""
        return torch.softmax(self(x), -1).mean(0).argmax(1)


@dataclass
class Scan:
    """One scan (sub-tile) of the few-label study.

    Attributes
    ----------
    xyz : (n, 3) float64, metres
    feats : (n, 5) float32
    target : (n,) int64
        Class index per point (-1 = unknown); used for labelled scans and scoring only.
    allowed : (K, n, C) bool, optional
        Gaze pseudo-labels (:func:`gaze_pseudo_labels`); None for a labelled scan.
    voxel_size : float
    name : str
    """
    xyz: np.ndarray
    feats: np.ndarray
    target: np.ndarray
    allowed: Optional[np.ndarray] = None
    voxel_size: float = 0.5
    name: str = ""


def augmented(scan: Scan, rng: np.random.Generator) -> Example:
    """One random view of ``scan``: rotation about z, scale 0.9-1.1, 2 cm jitter, feature noise
    (same points in the same order, so two views compare point by point)."""
    a = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(a), np.sin(a)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) * rng.uniform(0.9, 1.1)
    xyz = (scan.xyz - scan.xyz.mean(0)) @ rot.T + rng.normal(0, 0.02, scan.xyz.shape)
    feats = scan.feats + rng.normal(0, 0.02, scan.feats.shape).astype(np.float32)
    return Example(xyz, feats, np.zeros((len(xyz), 1), np.float32), scan.target, scan.voxel_size)


@dataclass
class FewLabelConfig:
    """Training recipe of the few-label study (one source of truth for the bench and tests)."""
    steps: int = 300
    lr: float = 3e-3
    pseudo_weight: float = 0.5        # pseudo-label loss on gaze-only scans, per level
    consistency_weight: float = 1.0   # view + level consistency, ramped up over the first 30 %
    labelled_per_step: int = 1
    unlabelled_per_step: int = 1
    # cross-entropy class weights from the labelled points' frequencies f_c: (1 / sqrt f_c), mean 1
    # (buildings are < 10 % of the points; unweighted, a few hundred steps never predict them)
    balanced: bool = True


def train_fewlabel(net: FewLabelNet, labelled: List[Scan], unlabelled: List[Scan],
                   config: FewLabelConfig = FewLabelConfig(), seed: int = 0, use_gaze: bool = True,
                   log=print, device="cpu") -> List[float]:
    """Train ``net`` on labelled scans (cross-entropy on every head) and, when ``unlabelled``
    is given, gaze-only scans.

    Each step takes two augmented views of ``labelled_per_step`` labelled scans
    and ``unlabelled_per_step`` unlabelled ones. Loss: cross-entropy of every
    head on the labelled points; with ``use_gaze``, head ``k``'s partial-label
    loss against level ``k`` of the unlabelled scans' pseudo-labels
    (``pseudo_weight``); on every scan, the consistency between the two views
    and between the heads (``consistency_weight``, ramped up). Without gaze and
    without unlabelled scans this is the labelled-only comparison model.
    ``net`` must already be on ``device``.
    """
    if not labelled:
        raise ValueError("labelled: expected at least one labelled scan")
    if use_gaze and any(s.allowed is None for s in unlabelled):
        raise ValueError("unlabelled: every gaze-only scan needs pseudo-labels (allowed)")
    rng = np.random.default_rng(seed)
    weight = None
    if config.balanced:
        num_classes = net.heads[0].out_features
        t = np.concatenate([s.target for s in labelled])
        freq = np.bincount(t[t >= 0], minlength=num_classes) / max(int((t >= 0).sum()), 1)
        w = np.where(freq > 0, 1.0 / np.sqrt(np.maximum(freq, 1e-12)), 0.0)
        w = w / w[freq > 0].mean()
        weight = torch.as_tensor(w, dtype=torch.float32, device=device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    # warm-up over 10 % of the steps (at least 2: OneCycleLR divides by the warm-up length)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps,
                                                pct_start=max(0.1, 2.5 / config.steps))
    net.train()
    losses: List[float] = []
    t0 = time.perf_counter()
    for step in range(config.steps):
        ramp = min(1.0, (step + 1) / (0.3 * config.steps))
        scans = [labelled[i] for i in rng.integers(len(labelled), size=config.labelled_per_step)]
        n_lab = len(scans)
        if unlabelled:
            scans += [unlabelled[i] for i in rng.integers(len(unlabelled), size=config.unlabelled_per_step)]
        views = [augmented(s, rng) for s in scans for _ in range(2)]
        b = collate(views, device)
        logits = net(b.x).index_select(1, b.inverse)     # (K, points, C)
        loss = logits.new_zeros(())
        start = 0
        for j, s in enumerate(scans):
            n = len(s.xyz)
            la = logits[:, start:start + n]
            lb = logits[:, start + n:start + 2 * n]
            start += 2 * n
            if j < n_lab:
                t = torch.from_numpy(s.target).to(device)
                for lv in (la, lb):
                    loss = loss + F.cross_entropy(lv.reshape(-1, lv.shape[-1]), t.repeat(len(lv)),
                                                  weight=weight, ignore_index=-1) / n_lab
            elif use_gaze:
                al = torch.from_numpy(s.allowed).to(device)
                w = config.pseudo_weight / (len(scans) - n_lab)
                for lv in (la, lb):
                    loss = loss + w * sum(partial_label_loss(lv[k], al[k]) for k in range(len(lv))) \
                        / len(lv)
            cw = config.consistency_weight * ramp / len(scans)
            loss = loss + cw * (view_consistency(la, lb) + 0.5 * (level_consistency(la)
                                                                  + level_consistency(lb)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.item()))
        if log and (step % 50 == 0 or step == config.steps - 1):
            log(f"    step {step:4d} loss {np.mean(losses[-50:]):.4f} {time.perf_counter() - t0:5.0f} s")
    net.eval()
    return losses


@torch.no_grad()
def evaluate_fewlabel(net: FewLabelNet, scans: List[Scan], num_classes: int, device="cpu") -> dict:
    """Per-class IoU ``{"iou": [C floats], "miou": float}`` over every point of ``scans``
    (no augmentation, no gaze)."""
    net.eval()
    inter = np.zeros(num_classes)
    union = np.zeros(num_classes)
    for s in scans:
        b = collate([Example(s.xyz - s.xyz.mean(0), s.feats, np.zeros((len(s.xyz), 1), np.float32),
                             s.target, s.voxel_size)], device)
        pred = net.predict(b.x).index_select(0, b.inverse).cpu().numpy()
        ok = s.target >= 0
        for c in range(num_classes):
            inter[c] += np.sum((pred == c) & (s.target == c))
            union[c] += np.sum(((pred == c) | (s.target == c)) & ok)
    iou = inter / np.maximum(union, 1)
    return {"iou": [float(v) for v in iou], "miou": float(iou.mean())}


def pseudo_label_quality(allowed: np.ndarray, target: np.ndarray) -> List[dict]:
    """Per level, how good the pseudo-labels ``(K, n, C)`` are against the true ``target (n,)``.

    ``keyed``: fraction of points given one class (the annotator's key), and
    ``keyed correct`` the fraction of those right; ``excluded``: fraction given
    a set (not looked at), and ``excluded correct`` the fraction whose true
    class is in the set.
    """
    out = []
    ok = target >= 0
    for al in allowed:
        size = al.sum(1)
        row = {}
        for name, sel in (("keyed", (size == 1) & ok), ("excluded", (size > 1) & ok)):
            right = al[np.flatnonzero(sel), target[sel]]
            row[name] = float(sel.sum() / max(ok.sum(), 1))
            row[f"{name} correct"] = float(right.mean()) if sel.any() else float("nan")
        out.append(row)
    return out


def tile_scan(tile: Tile, idx: np.ndarray, name: str = "") -> Scan:
    """The points ``idx`` of ``tile`` as a labelled :class:`Scan` (targets index ``tile.spec.semantic_classes``)."""
    codes = [int(c) for c in tile.spec.semantic_classes]
    lut = np.full(max(codes + [int(tile.labels.max())]) + 1, -1, np.int64)
    lut[codes] = np.arange(len(codes))
    target = np.where(tile.labels[idx] >= 0, lut[np.maximum(tile.labels[idx], 0)], -1)
    return Scan(tile.xyz[idx], tile.feats[idx], target, None, tile.voxel_size, name)


def gaze_only_scan(tile: Tile, idx: np.ndarray, gaze_codes, exhaustive=(), seed: int = 0,
                   thresholds=DEFAULT_THRESHOLDS, background: float = DEFAULT_BACKGROUND,
                   margin: float = DEFAULT_MARGIN, fixations: int = DEFAULT_FIXATIONS,
                   engine: str = "attention", name: str = "") -> tuple:
    """The points ``idx`` of ``tile`` as a gaze-only scan: ``(Scan with allowed, attention (n, G))``.

    The simulated annotator sees only this scan's points and looks at every
    object of ``gaze_codes`` in it (:func:`class_attention`); the scan keeps its
    true ``target`` for scoring the pseudo-labels, never for training.
    """
    scan = tile_scan(tile, idx, name)
    att = class_attention(tile.xyz[idx], tile.objects[idx], tile.object_class, gaze_codes,
                          seed=seed, engine=engine, fixations=fixations)
    scan.allowed = gaze_pseudo_labels(att, gaze_codes, tile.spec.semantic_classes, thresholds,
                                      background, exhaustive, tile.xyz[idx], margin)
    return scan, att
