"""Kernel maps by sorting packed coordinate keys and binary search.

A kernel map says, for every output voxel and kernel offset, which input voxel
(if any) lies at ``output + offset``. Coordinates are packed into one int64 key
per voxel with a margin on each axis, so a neighbour key is the voxel key plus
an offset key (packing is linear) and one ``torch.searchsorted`` over the
sorted input keys answers all ``n_out * K`` queries at once; no Python loop
over voxels, the same code on CPU and CUDA.

Maps are cached in the tensor's :class:`~.tensor.CoordinateManager`.
"""
from __future__ import annotations

import itertools
from typing import List, Tuple

import torch

from .tensor import SparseTensor


def kernel_offsets(kernel_size: int, device=None) -> torch.Tensor:
    """Integer kernel offsets ``(K, 3)``, x slowest and z fastest.

    Odd kernels are centred (``-k//2 .. k//2``), so offset ``K-1-k`` is the
    negation of offset ``k``; even kernels span ``0 .. k-1`` (the cell of a
    stride-``k`` downsampling).
    """
    if not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size: expected a positive int, got {kernel_size!r}")
    r = range(-(kernel_size // 2), kernel_size // 2 + 1) if kernel_size % 2 else range(kernel_size)
    return torch.tensor(list(itertools.product(r, r, r)), dtype=torch.long, device=device)


def downsample_coords(coords: torch.Tensor, stride: int) -> torch.Tensor:
    """Unique coordinates of the cells of size ``stride`` holding ``coords`` (m, 4)."""
    out = coords.clone()
    out[:, 1:] = torch.div(out[:, 1:], stride, rounding_mode="floor") * stride
    return unique_rows(out)


def unique_rows(coords: torch.Tensor, return_inverse: bool = False):
    """``torch.unique(coords, dim=0)`` for ``(m, 4)`` int64 coordinates, the same rows in the same order.

    A 1-D unique over the packed keys (:class:`KeyPacker`: mixed radix, batch slowest, so key
    order is the rows' lexicographic order) instead of the row unique, which sorts row by row
    and cost ~80 ms per call on a training crop (most of a small training run's voxelisation).
    Coordinates too spread to pack fall back to the row unique.

    Returns ``unique (u, 4)``, and ``inverse (m,)`` with ``return_inverse``.
    """
    try:
        keys = KeyPacker(coords, 0).keys(coords) if len(coords) else None
    except ValueError:                       # extent too large for int64 keys
        keys = None
    if keys is None:
        return torch.unique(coords, dim=0, return_inverse=return_inverse)
    ukeys, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    out = coords.new_empty((len(ukeys), coords.shape[1]))
    out[inverse] = coords                    # every row of a key holds the same coordinates
    return (out, inverse) if return_inverse else out


class KeyPacker:
    """Linear packing of (batch, x, y, z) into int64 with ``pad`` spare on each side."""

    def __init__(self, coords: torch.Tensor, pad: int):
        lo = coords.min(0).values
        hi = coords.max(0).values
        lo[1:] -= pad
        span = hi - lo + 1
        span[1:] += pad
        sizes = [int(s) for s in span.tolist()]
        total = 1
        for s in sizes:
            total *= s
        if total >= 2 ** 62:
            raise ValueError(f"coords: extent {sizes} (batch, x, y, z) too large to pack into "
                             "int64 keys; use a larger voxel_size or split the scene")
        self.lo = lo
        mult = [sizes[1] * sizes[2] * sizes[3], sizes[2] * sizes[3], sizes[3], 1]
        self.mult = torch.tensor(mult, dtype=torch.long, device=coords.device)

    def keys(self, coords: torch.Tensor) -> torch.Tensor:
        return ((coords - self.lo) * self.mult).sum(1)

    def offset_keys(self, offsets: torch.Tensor) -> torch.Tensor:
        return (offsets * self.mult[1:]).sum(1)


def neighbour_table(in_coords: torch.Tensor, out_coords: torch.Tensor,
                    offsets: torch.Tensor) -> torch.Tensor:
    """Index of the input voxel at ``out + offset`` for each output and offset.

    Parameters
    ----------
    in_coords : (n_in, 4) int64
    out_coords : (n_out, 4) int64
    offsets : (K, 3) int64
        Offsets in voxel-coordinate units (already multiplied by the stride).

    Returns
    -------
    (n_out, K) int64
        Input row, or -1 where no input voxel sits there.
    """
    pad = int(offsets.abs().max().item()) + 1 if len(offsets) else 1
    packer = KeyPacker(torch.cat([in_coords, out_coords]), pad)
    in_keys = packer.keys(in_coords)
    sorted_keys, perm = torch.sort(in_keys)
    query = packer.keys(out_coords)[:, None] + packer.offset_keys(offsets)[None, :]
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=len(sorted_keys) - 1)
    found = sorted_keys[pos] == query
    return torch.where(found, perm[pos], torch.full_like(pos, -1))


class KernelPairs(list):
    """Per-offset ``(in_rows, out_rows)`` list; ``symmetric`` marks submanifold maps
    of odd kernels, where offset ``K-1-k`` holds the pairs of offset ``k`` reversed
    (the convolution's backward uses that)."""

    symmetric = False


def reversed_pairs(pairs: KernelPairs) -> KernelPairs:
    """``pairs`` with input and output rows swapped (a transposed convolution's map),
    cached on ``pairs`` so the convolution's chunked plan is built once."""
    rev = getattr(pairs, "_reversed", None)
    if rev is None:
        rev = KernelPairs(None if p is None else (p[1], p[0]) for p in pairs)
        pairs._reversed = rev
    return rev


def table_to_pairs(table: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Per offset ``k``: ``(in_rows, out_rows)`` of the valid entries of ``table[:, k]``."""
    pairs = KernelPairs()
    for k in range(table.shape[1]):
        col = table[:, k]
        out_rows = torch.nonzero(col >= 0, as_tuple=False).squeeze(1)
        pairs.append((col[out_rows], out_rows))
    return pairs


def subm_table(x: SparseTensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Cached ``(n, K)`` neighbour table of ``x`` onto itself (-1 where empty)."""
    def build():
        offsets = kernel_offsets(kernel_size, x.device) * (x.stride * dilation)
        return neighbour_table(x.coords, x.coords, offsets)
    return x.manager.get(("subm_table", x.stride, kernel_size, dilation), build)


def subm_pairs(x: SparseTensor, kernel_size: int, dilation: int = 1):
    """Cached per-offset ``(in_rows, out_rows)`` of a submanifold convolution of ``x``.

    The centre offset (identity) is ``None``: the convolution applies it as one
    dense GEMM without gather or scatter.
    """
    def build():
        pairs = table_to_pairs(subm_table(x, kernel_size, dilation))
        pairs[len(pairs) // 2] = None
        pairs.symmetric = True
        return pairs
    return x.manager.get(("subm", x.stride, kernel_size, dilation), build)


def down_map(manager, in_stride: int, kernel_size: int, stride: int):
    """Cached map from the voxels at ``in_stride`` to their downsampling by ``stride``.

    Parameters
    ----------
    manager : CoordinateManager
        Must hold coordinates at ``in_stride``.
    in_stride, kernel_size, stride : int

    Returns
    -------
    out_coords : (m, 4) int64
        Coordinates at stride ``in_stride * stride`` (also registered in the manager).
    pairs : list of K ``(in_rows, out_rows)``
        For offset k, the fine voxels ``in_rows`` at ``out + offset_k * in_stride``
        of the coarse voxels ``out_rows``. Transposed convolution uses the same
        pairs with the roles swapped.
    """
    out_stride = in_stride * stride
    in_coords = manager.coords.get(in_stride)
    if in_coords is None:
        raise ValueError(f"stride: no voxels at tensor stride {in_stride} in this coordinate "
                         f"manager (have {sorted(manager.coords)})")

    def build():
        out_coords = manager.coords.get(out_stride)
        if out_coords is None:
            out_coords = manager.register(out_stride, downsample_coords(in_coords, out_stride))
        offsets = kernel_offsets(kernel_size, in_coords.device) * in_stride
        return out_coords, table_to_pairs(neighbour_table(in_coords, out_coords, offsets))
    return manager.get(("down", in_stride, out_stride, kernel_size), build)
