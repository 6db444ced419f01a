"""Training of the gaze-guided networks on simulated annotator gaze.

Interactive task: for a random object of a training tile, the simulated
annotator makes 1..``max_fix`` fixations on its visible surface (and, half of
the time, 1..2 "rejecting" fixations on nearby other surfaces); the network
sees the crop around the object with positive/negative attention and learns
the object's mask (BCE + Dice on points), while its selective-attention head
learns to predict the positive attention from geometry (KL + correlation).

Semantic task: crops of the training half with the annotator looking at the
objects of ``gaze_class``; per-point cross-entropy, gaze optional.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .batching import Example, collate
from .data import SPLITS, Tile
from .gaze_sim import AnnotatorSimulator, GazeModel
from .networks.segnet import GazeSegNet, SegNetConfig
from .networks.selective_attention import attention_loss
from .networks.unet import UNetConfig


def _scale(a: np.ndarray) -> np.ndarray:
    m = float(a.max()) if len(a) else 0.0
    return a / m if m > 0 else a


def crop_box(xyz: np.ndarray, center_pts: np.ndarray, margin: float, allowed: np.ndarray) -> np.ndarray:
    """Indices of ``allowed`` points inside the xy box of ``center_pts`` grown by ``margin``."""
    lo = center_pts[:, :2].min(0) - margin
    hi = center_pts[:, :2].max(0) + margin
    inside = np.all((xyz[:, :2] >= lo) & (xyz[:, :2] <= hi), axis=1) & allowed
    return np.flatnonzero(inside)


class InteractiveSampler:
    """Random interactive training examples from the objects of some tiles.

    Parameters
    ----------
    tiles : list of Tile
    split : "train", "val" or "test"
        Objects and crop points come from this region of each tile only.
    margin : (float, float)
        Metres of context around the object in each crop, drawn uniformly in
        this range: wide crops hold other, unattended objects, which the
        network must learn to leave out.
    max_fix : int
    seed : int
    engine : str
        Attention deposition of the simulator (see :class:`AnnotatorSimulator`).
    """

    def __init__(self, tiles: Sequence[Tile], split: str = "train", margin=(6.0, 30.0),
                 max_fix: int = 10, seed: int = 0, gaze: Optional[GazeModel] = None,
                 engine: str = "attention"):
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        self.tiles = list(tiles)
        self.rng = np.random.default_rng(seed)
        self.sims = [AnnotatorSimulator(t.xyz, gaze, seed=seed + i, engine=engine)
                     for i, t in enumerate(self.tiles)]
        self.margin = margin
        self.max_fix = max_fix
        self.items = []
        for ti, t in enumerate(self.tiles):
            self.items += [(ti, int(o)) for o in t.split_objects(split)]
        if not self.items:
            raise ValueError(f"tiles: no objects in the {split} split")
        self.split = split

    def sample(self) -> Example:
        ti, o = self.items[self.rng.integers(len(self.items))]
        t, sim = self.tiles[ti], self.sims[ti]
        allowed = t.in_split(self.split)
        obj = np.flatnonzero(t.objects == o)
        cam, vis = sim.view(obj)
        k = int(self.rng.integers(1, self.max_fix + 1))
        pos = sim.attention(cam, vis, t.xyz[sim.pick_targets(obj, vis, k)])
        crop = crop_box(t.xyz, t.xyz[obj], self.rng.uniform(*self.margin), allowed | (t.objects == o))
        neg = np.zeros_like(pos)
        if self.rng.random() < 0.5:
            others = crop[(t.objects[crop] != o)]
            if len(others):
                neg = sim.attention(cam, vis, t.xyz[sim.pick_targets(others, vis, int(self.rng.integers(1, 3)))])
        att = np.stack([_scale(pos[crop]), _scale(neg[crop])], 1)
        target = (t.objects[crop] == o).astype(np.float32)
        return Example(self.augment(t.xyz[crop]), t.feats[crop], att, target, t.voxel_size)

    def augment(self, xyz: np.ndarray) -> np.ndarray:
        """Random rotation about z, mirror and small scale (train split only)."""
        if self.split != "train":
            return xyz
        a = self.rng.uniform(0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        if self.rng.random() < 0.5:
            rot[:, 0] *= -1
        centre = xyz.mean(0)
        return (xyz - centre) @ rot.T * self.rng.uniform(0.9, 1.1) + centre


def dice_loss(prob: torch.Tensor, target: torch.Tensor, batch: torch.Tensor, eps: float = 1.0):
    nb = int(batch.max().item()) + 1
    inter = torch.zeros(nb, dtype=prob.dtype).index_add_(0, batch, prob * target)
    total = torch.zeros(nb, dtype=prob.dtype).index_add_(0, batch, prob + target)
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def interactive_loss(model: GazeSegNet, batch, sel_weight: float = 0.2):
    """(total loss, mask loss) of one batch of interactive examples."""
    feats = model.encode(batch.x)
    logits = model.decode(feats, batch.att)[:, 0]
    lp = logits.index_select(0, batch.inverse)
    tgt = batch.target_points.float()
    mask_loss = F.binary_cross_entropy_with_logits(lp, tgt) + dice_loss(
        torch.sigmoid(lp), tgt, batch.point_batch)
    sel = model.selective(feats[-1].feats)
    sel_loss = attention_loss(sel, batch.att[:, 0], batch.x.coords[:, 0])
    return mask_loss + sel_weight * sel_loss, mask_loss


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 4
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    log_every: int = 20
    time_limit_s: Optional[float] = None

    def validate(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr!r}")
        return self


def default_interactive_config(variant="unet14", base_channels=16, voxel_size=0.5,
                               guidance="gate") -> SegNetConfig:
    return SegNetConfig(unet=UNetConfig(in_channels=5, variant=variant, base_channels=base_channels),
                        num_outputs=1, att_channels=2, voxel_size=voxel_size, task="interactive",
                        guidance=guidance)


def train_interactive(model: GazeSegNet, sampler: InteractiveSampler, cfg: TrainConfig,
                      log=print) -> List[float]:
    """Train in place; returns the mask loss of every step."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.1)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        batch = collate([sampler.sample() for _ in range(cfg.batch_size)])
        loss, mask_loss = interactive_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(mask_loss.item())
        if log and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            log(f"step {step:5d}  mask loss {np.mean(losses[-cfg.log_every:]):.4f}  "
                f"{time.perf_counter() - t0:6.1f} s")
        if cfg.time_limit_s and time.perf_counter() - t0 > cfg.time_limit_s:
            if log:
                log(f"time limit {cfg.time_limit_s} s reached at step {step}")
            break
    model.eval()
    return losses
