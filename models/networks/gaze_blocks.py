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

:class:`GazeMultiHeadBlock` replaces the gate with multi-head attention: every
voxel of the stage attends to coarse tokens of its own scan (the stage's
features averaged over cells of 16 voxels or coarser, a bounded number per
scan, so the cost stays linear in the voxels), and the attention logits carry
the gaze as a prior, ``+ beta_h log(eps + a+) - gamma_h a-`` of each token's
max-pooled attention: what the annotator looks at is what every voxel is
compared with.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..sparse import SparseBatchNorm, SparseMaxPool3d, SparseTensor, SubMConv3d
from ..sparse.kernel_map import KeyPacker, down_map


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


class _GazeBlock(nn.Module):
    """What every gaze block shares: the fusion of backbone features, pooled attention and the
    coarser block's output, and the residual 3^3 submanifold propagation at coarse strides."""

    def __init__(self, feat_channels: int, att_channels: int, prev_channels: int, channels: int,
                 propagate: int, **positive):
        super().__init__()
        for name, v in (("feat_channels", feat_channels), ("att_channels", att_channels),
                        ("channels", channels), *positive.items()):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.fuse = nn.Linear(feat_channels + att_channels + prev_channels, channels)
        self.props = nn.ModuleList([nn.ModuleDict({
            "conv": SubMConv3d(channels, channels, 3, dilation=1 + i % 2),
            "bn": SparseBatchNorm(channels)}) for i in range(propagate)])

    def _fused(self, feats: SparseTensor, att: SparseTensor, prev) -> torch.Tensor:
        parts = [feats.feats, att.feats] + ([] if prev is None else [prev])
        return torch.relu(self.fuse(torch.cat(parts, 1)))

    def _propagate(self, x: SparseTensor) -> SparseTensor:
        for p in self.props:
            x = x.replace(torch.relu(x.feats + p["bn"](p["conv"](x)).feats))
        return x


class AttentionGuidedBlock(_GazeBlock):
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
        super().__init__(feat_channels, att_channels, prev_channels, channels, propagate)
        self.gate_f = nn.Linear(channels, channels)
        self.gate_a = nn.Linear(att_channels, channels, bias=False)
        with torch.no_grad():   # prior: positive attention opens the gate, negative closes it
            self.gate_a.weight.zero_()
            self.gate_a.weight[:, 0] = 2.0
            if att_channels > 1:
                self.gate_a.weight[:, 1] = -2.0

    def forward(self, feats: SparseTensor, att: SparseTensor, prev=None) -> SparseTensor:
        h = self._fused(feats, att, prev)
        gate = torch.sigmoid(self.gate_f(h) + self.gate_a(att.feats))
        return self._propagate(feats.replace(h * (0.5 + gate)))


def _coarse_cells(coords: torch.Tensor, stride: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unique cells of edge ``stride`` holding ``coords`` (n, 4).

    Returns ``cells (t, 4) int64`` sorted by batch then x, y, z, and ``inverse (n,) int64``;
    one 1-D unique over packed int64 keys (the kernel maps' packing) replaces a slower row
    unique.
    """
    cell = coords.clone()
    cell[:, 1:] = torch.div(cell[:, 1:], stride, rounding_mode="floor")
    _, inverse = torch.unique(KeyPacker(cell, 0).keys(cell), return_inverse=True)
    out = cell.new_empty(int(inverse.max()) + 1, 4)
    out[inverse] = cell                  # every voxel writes its own cell: equal values
    out[:, 1:] *= stride
    return out, inverse


class GazeTokens:
    """Key/value tokens of one decoder stage: its voxels pooled to coarse cells, per batch item.

    Each batch item gets the finest power-of-2 multiple of ``token_stride`` at which it holds
    at most ``max_tokens`` cells, so attention costs ``O(n * max_tokens)`` and an item's tokens
    never depend on the other items of the batch.

    Attributes
    ----------
    inverse : (n,) int64
        Token of every voxel (tokens of item b are contiguous).
    rows : list of (n_b,) int64 or None
        Voxels of each batch item (None: all voxels, a batch of one).
    spans : list of (start, stop)
        Token range of each batch item.
    strides : list of int
        Token cell edge of each batch item, in voxels.
    count : (t,) float
        Voxels per token.
    """

    def __init__(self, x: SparseTensor, token_stride: int, max_tokens: int):
        coords = x.coords
        batch = coords[:, 0]
        nb = x.batch_size
        self.rows = [None] if nb == 1 else [torch.nonzero(batch == b).squeeze(1) for b in range(nb)]
        self.inverse = torch.empty(len(coords), dtype=torch.long, device=coords.device)
        self.spans, self.strides = [], []
        start = 0
        for rows in self.rows:
            c = coords if rows is None else coords.index_select(0, rows)
            if len(c) == 0:                      # an empty batch item: no tokens
                self.spans.append((start, start))
                self.strides.append(0)
                continue
            t = max(token_stride, x.stride)
            cells, inv = _coarse_cells(c, t)
            while len(cells) > max_tokens:
                t *= 2
                cells, inv = _coarse_cells(c, t)
            if rows is None:
                self.inverse = inv
            else:
                self.inverse[rows] = inv + start
            self.spans.append((start, start + len(cells)))
            self.strides.append(t)
            start += len(cells)
        self.count = torch.bincount(self.inverse, minlength=start).to(torch.float32)

    def __len__(self) -> int:
        return self.spans[-1][1] if self.spans else 0

    @staticmethod
    def of(x: SparseTensor, token_stride: int, max_tokens: int) -> "GazeTokens":
        """Tokens of ``x``, cached in its coordinate manager (built once per scan and stride)."""
        return x.manager.get(("gaze_tokens", x.stride, token_stride, max_tokens),
                             lambda: GazeTokens(x, token_stride, max_tokens))

    def mean(self, feats: torch.Tensor) -> torch.Tensor:
        """(t, C) mean of ``feats`` (n, C) over each token's voxels."""
        out = feats.new_zeros(len(self), feats.shape[1]).index_add_(0, self.inverse, feats)
        return out / self.count.to(feats.dtype)[:, None]

    def max(self, feats: torch.Tensor) -> torch.Tensor:
        """(t, C) max of ``feats`` (n, C) over each token's voxels."""
        index = self.inverse[:, None].expand(-1, feats.shape[1])
        return feats.new_zeros(len(self), feats.shape[1]).scatter_reduce(
            0, index, feats, "amax", include_self=False)


class GazeMultiHeadBlock(_GazeBlock):
    """Gaze-prior multi-head attention block of one decoder stage.

    Fuses like :class:`AttentionGuidedBlock`, then every voxel of the stage
    (query) attends to coarse tokens of its own batch item (the fused
    features averaged over cells of ``token_stride`` voxels or coarser, see
    :class:`GazeTokens`); the attention logits carry the gaze as a prior,
    ``q.k / sqrt(d) + beta_h log(eps + a+_key) - gamma_h a-_key``, with
    ``a_key`` the attention max-pooled over the token's cell and ``beta_h``,
    ``gamma_h`` learnable per head (initialised positive: attended keys get
    more weight, negatively attended keys less). A residual output projection
    and LayerNorm follow, then the same optional propagation convolutions.
    Queries and keys come from layer-normed features, so the prior's scale
    (a few logits) stays comparable to the content term.

    Parameters
    ----------
    feat_channels, att_channels, prev_channels, channels, propagate : int
        As :class:`AttentionGuidedBlock`.
    heads : int
        Attention heads; must divide ``channels``.
    token_stride : int
        Finest token cell edge, in voxels of stride 1.
    max_tokens : int
        Most tokens per batch item (coarser cells beyond that).
    eps : float
        Floor of the positive attention inside the log prior.
    chunk : int
        Queries per attention call: bounds the logits' memory where the
        attention kernel materialises them (training, where the prior needs
        gradients); the fused CPU/CUDA kernels of inference never do.
    """

    def __init__(self, feat_channels: int, att_channels: int, prev_channels: int, channels: int,
                 propagate: int = 0, heads: int = 4, token_stride: int = 16,
                 max_tokens: int = 256, eps: float = 0.01, chunk: int = 65536):
        super().__init__(feat_channels, att_channels, prev_channels, channels, propagate,
                         heads=heads, token_stride=token_stride, max_tokens=max_tokens, chunk=chunk)
        if channels % heads:
            raise ValueError(f"heads: expected a divisor of channels={channels}, got {heads}")
        if not eps > 0:
            raise ValueError(f"eps: expected > 0, got {eps!r}")
        self.heads, self.token_stride, self.max_tokens = heads, token_stride, max_tokens
        self.eps, self.chunk = float(eps), chunk
        self.pre = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)
        self.out = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels)   # per voxel: batch items stay apart in training too
        # gaze prior per head: beta on log positive attention, gamma on negative attention
        self.beta = nn.Parameter(torch.ones(heads))
        self.gamma = nn.Parameter(torch.full((heads,), 2.0)) if att_channels > 1 else None

    def prior(self, key_att: torch.Tensor) -> torch.Tensor:
        """(heads, t) logit prior of tokens with max-pooled attention ``key_att`` (t, A)."""
        pos = key_att[:, 0].clamp(min=0)
        bias = self.beta[:, None] * torch.log(self.eps + pos)[None, :]
        if self.gamma is not None:
            bias = bias - self.gamma[:, None] * key_att[:, 1].clamp(min=0)[None, :]
        return bias

    def _attend(self, feats: SparseTensor, att: SparseTensor, prev, weights: bool):
        h = self._fused(feats, att, prev)
        tok = GazeTokens.of(feats, self.token_stride, self.max_tokens)
        n, c = h.shape
        nh, d = self.heads, c // self.heads
        hn = self.pre(h)
        q = self.q(hn).view(n, nh, d).transpose(0, 1)                       # (H, n, d)
        k, v = self.kv(self.pre(tok.mean(h))).view(-1, 2, nh, d).permute(1, 2, 0, 3)  # (H, t, d)
        bias = self.prior(tok.max(att.feats)).to(h.dtype)                   # (H, t)
        out = h.new_empty(nh, n, d)
        dense = h.new_zeros(nh, n, len(tok)) if weights else None
        for rows, (s0, s1) in zip(tok.rows, tok.spans):    # one batch item at a time: no mixing
            if s1 == s0:
                continue
            qb = q if rows is None else q.index_select(1, rows)
            # 4-d (1, H, L, d): the layout of the CPU flash kernel, which takes the float mask
            kb, vb, mb = k[None, :, s0:s1], v[None, :, s0:s1], bias[None, :, None, s0:s1]
            ob = []
            for i in range(0, qb.shape[1], self.chunk):
                qc = qb[None, :, i:i + self.chunk]
                if weights:
                    w = torch.softmax(qc @ kb.transpose(-1, -2) / d ** 0.5 + mb, -1)
                    ob.append((w @ vb)[0])
                    r = torch.arange(i, i + qc.shape[2], device=h.device) if rows is None \
                        else rows[i:i + self.chunk]
                    dense[:, r, s0:s1] = w[0]
                else:
                    ob.append(F.scaled_dot_product_attention(qc, kb, vb, attn_mask=mb)[0])
            ob = torch.cat(ob, 1)
            if rows is None:
                out = ob
            else:
                out[:, rows] = ob
        x = feats.replace(self.norm(h + self.out(out.transpose(0, 1).reshape(n, c))))
        return self._propagate(x), dense

    def forward(self, feats: SparseTensor, att: SparseTensor, prev=None,
                return_weights: bool = False):
        """Stage output (a SparseTensor on the voxels of ``feats``).

        Parameters
        ----------
        feats : SparseTensor (n, feat_channels)
        att : SparseTensor (n, att_channels)
            Attention pooled to the stage's stride.
        prev : (n, prev_channels) float, optional
            The coarser block's output upsampled to this stage.
        return_weights : bool
            Also return the attention, for inspection on small inputs (dense).

        Returns
        -------
        out : SparseTensor (n, channels)
        weights : (heads, n, t) float
            With ``return_weights``: softmax weights of every voxel on every
            token (0 on other batch items' tokens).
        token : (n,) int64
            With ``return_weights``: the token of each voxel.
        """
        x, weights = self._attend(feats, att, prev, return_weights)
        if not return_weights:
            return x
        return x, weights, GazeTokens.of(feats, self.token_stride, self.max_tokens).inverse
