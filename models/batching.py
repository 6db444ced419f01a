"""Point examples to a batched SparseTensor and back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from .sparse import SparseTensor
from .sparse.voxelize import scatter_mean, voxelize


@dataclass
class Example:
    """One training or inference item (points in metres).

    Attributes
    ----------
    xyz : (n, 3) float64
    feats : (n, F) float32
    att : (n, A) float32
        Gaze channels, each scaled to max 1.
    target : (n,) int64 or float32, optional
        Mask (0/1) or class index per point (-1 = ignore).
    voxel_size : float
    """
    xyz: np.ndarray
    feats: np.ndarray
    att: np.ndarray
    target: Optional[np.ndarray] = None
    voxel_size: float = 0.5
    state: Optional[dict] = None     # what a sampler needs to add fixations later


@dataclass
class Batch:
    x: SparseTensor          # geometry features per voxel
    att: torch.Tensor        # (m, A) max per voxel
    inverse: torch.Tensor    # (n_points_total,) voxel of each point
    point_batch: torch.Tensor
    target_points: Optional[torch.Tensor] = None


def collate(examples: List[Example], device="cpu") -> Batch:
    """Voxelise several examples into one batch (each at its own voxel size)."""
    coords, inverses, feats, atts, targets, pb = [], [], [], [], [], []
    offset = 0
    for b, ex in enumerate(examples):
        c, inv = voxelize(ex.xyz, ex.voxel_size)
        c[:, 0] = b
        coords.append(c)
        inverses.append(inv + offset)
        offset += len(c)
        feats.append(torch.from_numpy(np.ascontiguousarray(ex.feats, dtype=np.float32)))
        atts.append(torch.from_numpy(np.ascontiguousarray(ex.att, dtype=np.float32)))
        pb.append(torch.full((len(ex.xyz),), b, dtype=torch.long))
        if ex.target is not None:
            targets.append(torch.from_numpy(np.asarray(ex.target)))
    coords = torch.cat(coords).to(device)
    inverse = torch.cat(inverses).to(device)
    f = torch.cat(feats).to(device)
    a = torch.cat(atts).to(device)
    n = len(coords)
    vf = scatter_mean(f, inverse, n)
    va = voxel_max(a, inverse, n)
    return Batch(SparseTensor(coords, vf), va, inverse, torch.cat(pb).to(device),
                 torch.cat(targets).to(device) if targets else None)


def voxel_max(a: torch.Tensor, inverse: torch.Tensor, n: int) -> torch.Tensor:
    """Per-voxel maximum ``(n, A)`` of point values ``a (p, A)``; ``inverse (p,)`` voxel of each point."""
    return a.new_zeros(n, a.shape[1]).scatter_reduce(
        0, inverse[:, None].expand(-1, a.shape[1]), a, "amax", include_self=False)
