"""Attention-guided decoder blocks: gaze steers the features of each decoder stage.

Gaze arrives as per-voxel attention channels (positive, negative, ...) pooled
to the stage's stride (max over the cell, so a fixation spot survives
downsampling). A block fuses the stage's backbone features, the pooled
attention and the (upsampled) output of the coarser block, then gates the
fused features with a sigmoid whose pre-activation has the attention as a
prior: ``gate = sigmoid(W_f h + W_a a + b)`` with ``W_a`` initialised so that
attended voxels start open. At coarse strides the block also propagates with
3^3 submanifold convolutions, which carries a fixation's evidence across the
object cheaply (few voxels there).
"""
from __future__ import annotations

import torch
from torch import nn

from ..sparse import SparseBatchNorm, SparseMaxPool3d, SparseTensor, SubMConv3d
from ..sparse.kernel_map import down_map


def pool_to(att: SparseTensor, stride: int) -> SparseTensor:
    """Max-pool attention channels from ``att.stride`` to ``stride`` (power-of-2 ratio)."""
    if stride % att.stride:
        raise ValueError(f"stride: {stride} is not a multiple of the attention stride {att.stride}")
    pool = SparseMaxPool3d(2, 2)
    while att.stride < stride:
        att = pool(att)
    return att


def upsample_nearest(coarse: SparseTensor, fine_stride: int) -> torch.Tensor:
    """Features of ``coarse`` copied to its children at ``fine_stride`` (cached parent map)."""
    feats = coarse.feats
    stride = coarse.stride
    manager = coarse.manager
    while stride > fine_stride:
        fine = stride // 2

        def build(fine=fine):
            _, pairs = down_map(manager, fine, 2, 2)
            parent = torch.empty(len(manager.coords[fine]), dtype=torch.long, device=feats.device)
            for fine_rows, coarse_rows in pairs:
                parent[fine_rows] = coarse_rows
            return parent
        feats = feats.index_select(0, manager.get(("parent", fine), build))
        stride = fine
    return feats


class AttentionGuidedBlock(nn.Module):
    """Gaze-gated fusion block of one decoder stage.

    Parameters
    ----------
    feat_channels : int
        Backbone channels at this stage.
    att_channels : int
        Attention channels (2: positive, negative).
    prev_channels : int
        Channels of the coarser block's output (0 at the coarsest stage).
    channels : int
        Output channels.
    propagate : int
        Number of residual 3^3 submanifold convolutions (0 at fine strides).
    """

    def __init__(self, feat_channels: int, att_channels: int, prev_channels: int, channels: int,
                 propagate: int = 0):
        super().__init__()
        for name, v in (("feat_channels", feat_channels), ("att_channels", att_channels),
                        ("channels", channels)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.fuse = nn.Linear(feat_channels + att_channels + prev_channels, channels)
        self.gate_f = nn.Linear(channels, channels)
        self.gate_a = nn.Linear(att_channels, channels, bias=False)
        with torch.no_grad():   # prior: positive attention opens the gate, negative closes it
            self.gate_a.weight.zero_()
            self.gate_a.weight[:, 0] = 2.0
            if att_channels > 1:
                self.gate_a.weight[:, 1] = -2.0
        self.props = nn.ModuleList([nn.ModuleDict({
            "conv": SubMConv3d(channels, channels, 3, dilation=1 + i % 2),
            "bn": SparseBatchNorm(channels)}) for i in range(propagate)])

    def forward(self, feats: SparseTensor, att: SparseTensor, prev=None) -> SparseTensor:
        parts = [feats.feats, att.feats] + ([] if prev is None else [prev])
        h = torch.relu(self.fuse(torch.cat(parts, 1)))
        gate = torch.sigmoid(self.gate_f(h) + self.gate_a(att.feats))
        h = h * (0.5 + gate)
        x = feats.replace(h)
        for p in self.props:
            x = x.replace(torch.relu(x.feats + p["bn"](p["conv"](x)).feats))
        return x
