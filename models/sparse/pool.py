"""Sparse pooling over the cells of a downsampling, and global pooling per batch item."""
from __future__ import annotations

import torch
from torch import nn

from .conv import _check_int, check_input
from .kernel_map import down_map
from .tensor import SparseTensor


class _Pool(nn.Module):
    reduce = "amax"

    def __init__(self, kernel_size: int = 2, stride: int = 2):
        super().__init__()
        self.kernel_size = _check_int("kernel_size", kernel_size)
        self.stride = _check_int("stride", stride, 2)

    def forward(self, x: SparseTensor) -> SparseTensor:
        check_input(x)
        out_coords, pairs = down_map(x.manager, x.stride, self.kernel_size, self.stride)
        src = torch.cat([p[0] for p in pairs])
        dst = torch.cat([p[1] for p in pairs])
        out = x.feats.new_zeros(len(out_coords), x.num_channels)
        index = dst[:, None].expand(-1, x.num_channels)
        out = out.scatter_reduce(0, index, x.feats.index_select(0, src), self.reduce,
                                 include_self=False)
        return SparseTensor(out_coords, out, x.stride * self.stride, x.manager)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class SparseMaxPool3d(_Pool):
    """Max over the input voxels of each output cell."""
    reduce = "amax"


class SparseAvgPool3d(_Pool):
    """Mean over the (occupied) input voxels of each output cell."""
    reduce = "mean"


def global_avg_pool(x: SparseTensor) -> torch.Tensor:
    """Mean feature of each batch item: ``(B, C)``."""
    b = x.coords[:, 0]
    out = x.feats.new_zeros(x.batch_size, x.num_channels)
    out.index_add_(0, b, x.feats)
    count = torch.bincount(b, minlength=x.batch_size).clamp_(min=1).to(x.feats.dtype)
    return out / count[:, None]
