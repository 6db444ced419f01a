"""Residual sparse U-Net (MinkUNet-style), built from stage loops and a config.

Variants by name set the number of residual blocks per encoder and decoder
stage; channel widths scale with ``base_channels``. The backbone sees
geometry (and, when configured, gaze) features and returns the decoder
output at every stride so that gaze-guided heads can attach to each stage.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List

import torch
from torch import nn

from ..sparse import (SparseBatchNorm, SparseConv3d, SparseConvTranspose3d, SparseReLU,
                      SparseTensor, SubMConv3d)

# encoder blocks per stage, decoder blocks per stage (MinkUNet14/18/34 pattern)
VARIANTS = {
    "unet14": ((1, 1, 1, 1), (1, 1, 1, 1)),
    "unet18": ((2, 2, 2, 2), (2, 2, 2, 2)),
    "unet34": ((2, 3, 4, 6), (2, 2, 2, 2)),
}


@dataclass
class UNetConfig:
    """Backbone configuration.

    Attributes
    ----------
    in_channels : int
        Input feature channels per voxel.
    variant : str
        One of :data:`VARIANTS`; sets the residual blocks per stage.
    base_channels : int
        Width of the stem; stage ``i`` of the encoder has ``base * 2**(i+1)``
        channels (capped by ``max_channels``), the decoder mirrors it.
    depth : int
        Number of downsamplings (1..len(variant blocks)).
    max_channels : int
    """
    in_channels: int = 5
    variant: str = "unet14"
    base_channels: int = 16
    depth: int = 4
    max_channels: int = 64

    def validate(self) -> "UNetConfig":
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {self.variant!r}")
        for name in ("in_channels", "base_channels", "depth", "max_channels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if self.depth > len(VARIANTS[self.variant][0]):
            raise ValueError(f"depth: at most {len(VARIANTS[self.variant][0])} for "
                             f"{self.variant}, got {self.depth}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, SparseBatchNorm(channels), SparseReLU())


class ResidualBlock(nn.Module):
    """Two 3^3 submanifold convolutions with batch norm and an identity (or 1^3) shortcut."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = SubMConv3d(in_channels, out_channels, 3)
        self.bn1 = SparseBatchNorm(out_channels)
        self.conv2 = SubMConv3d(out_channels, out_channels, 3)
        self.bn2 = SparseBatchNorm(out_channels)
        self.short = None if in_channels == out_channels else nn.Sequential(
            SubMConv3d(in_channels, out_channels, 1), SparseBatchNorm(out_channels))

    def forward(self, x: SparseTensor) -> SparseTensor:
        h = torch.relu(self.bn1(self.conv1(x)).feats)
        h = self.bn2(self.conv2(x.replace(h))).feats
        s = x.feats if self.short is None else self.short(x).feats
        return x.replace(torch.relu(h + s))


def concat(a: SparseTensor, b: SparseTensor) -> SparseTensor:
    """Channel concatenation of two tensors on the same voxels."""
    if len(a) != len(b) or a.stride != b.stride:
        raise ValueError(f"b: cannot concatenate tensors of {len(a)} and {len(b)} voxels "
                         f"(strides {a.stride}, {b.stride})")
    return a.replace(torch.cat([a.feats, b.feats], 1))


class SparseUNet(nn.Module):
    """Residual sparse U-Net.

    ``forward(x)`` returns the list of decoder outputs from the coarsest
    decoder stage (stride ``2**(depth-1)``) to stride 1; ``out_channels[i]``
    is the width of the i-th of them.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config.validate()
        enc_blocks, dec_blocks = VARIANTS[config.variant]
        b, cap = config.base_channels, config.max_channels
        enc = [min(cap, b * 2 ** (i + 1)) for i in range(config.depth)]
        dec = [min(cap, b * 2 ** i) for i in reversed(range(config.depth))]
        dec[-1] = max(dec[-1], b)
        self.stem = nn.Sequential(conv_bn_relu(SubMConv3d(config.in_channels, b, 3), b),
                                  ResidualBlock(b, b))
        self.down = nn.ModuleList()
        self.enc = nn.ModuleList()
        prev = b
        skips = [b]
        for i in range(config.depth):
            self.down.append(conv_bn_relu(SparseConv3d(prev, enc[i], 2, 2), enc[i]))
            self.enc.append(nn.Sequential(*[ResidualBlock(enc[i], enc[i])
                                            for _ in range(enc_blocks[i])]))
            prev = enc[i]
            skips.append(enc[i])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for j in range(config.depth):
            skip = skips[config.depth - 1 - j]
            self.up.append(conv_bn_relu(SparseConvTranspose3d(prev, dec[j], 2, 2), dec[j]))
            n = dec_blocks[config.depth - 1 - j]
            blocks = [ResidualBlock(dec[j] + skip, dec[j])] + [
                ResidualBlock(dec[j], dec[j]) for _ in range(n - 1)]
            self.dec.append(nn.Sequential(*blocks))
            prev = dec[j]
        self.out_channels: List[int] = dec

    def forward(self, x: SparseTensor) -> List[SparseTensor]:
        if x.num_channels != self.config.in_channels:
            raise ValueError(f"x: expected {self.config.in_channels} input channels, "
                             f"got {x.num_channels}")
        h = self.stem(x)
        skips = [h]
        for down, enc in zip(self.down, self.enc):
            h = enc(down(h))
            skips.append(h)
        outs = []
        for j, (up, dec) in enumerate(zip(self.up, self.dec)):
            h = dec(concat(up(h), skips[-2 - j]))
            outs.append(h)
        return outs
