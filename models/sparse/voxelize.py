"""Points to voxels and back."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from .kernel_map import unique_rows
from .tensor import SparseTensor


def voxelize(xyz, voxel_size: float, batch=None, origin=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Integer voxel coordinates of points, unique per batch item.

    Parameters
    ----------
    xyz : (n, 3) float array or tensor
        Point coordinates (float64 keeps projected-CRS LiDAR exact).
    voxel_size : float > 0
    batch : (n,) int, optional
        Batch index of each point (all 0 when omitted).
    origin : (3,) float, optional
        Corner of voxel (0, 0, 0); the minimum of ``xyz`` when omitted.

    Returns
    -------
    coords : (m, 4) int64
        Unique (batch, i, j, k) voxel coordinates, sorted.
    inverse : (n,) int64
        Voxel row of each point.
    """
    if not (isinstance(voxel_size, (int, float)) and voxel_size > 0 and np.isfinite(voxel_size)):
        raise ValueError(f"voxel_size: expected a positive number, got {voxel_size!r}")
    pts = torch.as_tensor(np.asarray(xyz) if not isinstance(xyz, torch.Tensor) else xyz)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise ValueError(f"xyz: expected a non-empty (n, 3) array, got {tuple(pts.shape)}")
    pts = pts.to(torch.float64)
    if not torch.isfinite(pts).all():
        raise ValueError("xyz: contains NaN or inf")
    o = pts.min(0).values if origin is None else torch.as_tensor(origin, dtype=torch.float64,
                                                                 device=pts.device)
    ijk = torch.floor((pts - o) / voxel_size).long()
    if batch is None:
        b = torch.zeros(len(pts), dtype=torch.long, device=pts.device)
    else:
        b = torch.as_tensor(batch, device=pts.device).long()
        if b.shape != (len(pts),) or (b < 0).any():
            raise ValueError(f"batch: expected ({len(pts)},) non-negative ints, got {tuple(b.shape)}")
    coords, inverse = unique_rows(torch.cat([b[:, None], ijk], 1), return_inverse=True)
    return coords, inverse


def scatter_mean(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``values (p, C)`` per ``index (p,)`` into ``(n, C)``."""
    out = values.new_zeros(n, values.shape[1])
    out.index_add_(0, index, values)
    count = torch.bincount(index, minlength=n).clamp_(min=1).to(values.dtype)
    return out / count[:, None]


def sparse_from_points(xyz, feats: torch.Tensor, voxel_size: float, batch=None, origin=None
                       ) -> Tuple[SparseTensor, torch.Tensor]:
    """Voxelise points and average their features per voxel.

    Parameters
    ----------
    xyz : (n, 3) float
    feats : (n, C) float tensor
    voxel_size : float
    batch, origin : see :func:`voxelize`

    Returns
    -------
    x : SparseTensor
        Stride 1, features = mean of the points' features in each voxel.
    inverse : (n,) int64
        For :func:`devoxelize`.
    """
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or feats.shape[0] != len(xyz):
        raise ValueError(f"feats: expected a ({len(xyz)}, C) tensor, got "
                         f"{getattr(feats, 'shape', type(feats).__name__)}")
    coords, inverse = voxelize(xyz, voxel_size, batch, origin)
    coords = coords.to(feats.device)
    inverse = inverse.to(feats.device)
    return SparseTensor(coords, scatter_mean(feats, inverse, len(coords))), inverse


def devoxelize(x, inverse: torch.Tensor) -> torch.Tensor:
    """Per-point features ``(n, C)``: each point takes its voxel's features."""
    feats = x.feats if isinstance(x, SparseTensor) else x
    return feats.index_select(0, inverse)
