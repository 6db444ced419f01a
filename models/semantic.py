"""Semantic segmentation with and without gaze, trained on a few labelled sub-tiles.

A tile is cut into a grid of sub-tiles; a few from the west half are the
labelled training set, the east half is the test set. The simulated
annotator looks at the objects of ``gaze_class`` in each sub-tile (a few
fixations each, as when labelling them); that attention is one input channel
of the gaze-guided head at train and test time. The no-gaze model is the
same network with that channel all zero.
"""
from __future__ import annotations

import time
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
