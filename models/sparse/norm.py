"""Normalisation and activations acting on the features of a SparseTensor."""
from __future__ import annotations

from torch import nn

from .conv import _check_int
from .tensor import SparseTensor


class SparseBatchNorm(nn.Module):
    """Batch norm over all voxels of the batch (``nn.BatchNorm1d`` on ``feats``)."""

    def __init__(self, num_channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        _check_int("num_channels", num_channels)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1], got {momentum!r}")
        self.bn = nn.BatchNorm1d(num_channels, momentum=momentum, eps=eps)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.bn(x.feats))


class SparseReLU(nn.Module):
    """ReLU on the features."""

    def __init__(self, inplace: bool = True):
        super().__init__()
        self.act = nn.ReLU(inplace=inplace)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.act(x.feats))
