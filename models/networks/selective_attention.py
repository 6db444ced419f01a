"""Selective-attention head: predict where an annotator would look from geometry alone.

Trained against simulated or recorded attention maps with KL divergence
(between the attention distributions over the voxels of each scan) plus
``1 - Pearson correlation``; at inference its prediction stands in for gaze
where there is none.
"""
from __future__ import annotations

import torch
from torch import nn


class SelectiveAttentionHead(nn.Module):
    """Per-voxel attention logits ``(n,)`` from backbone features ``(n, C)``."""

    def __init__(self, in_channels: int, hidden: int = 16):
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels: expected a positive int, got {in_channels!r}")
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.mlp(feats).squeeze(1)


def _segment_softmax_log(logits: torch.Tensor, batch: torch.Tensor, nb: int) -> torch.Tensor:
    m = torch.full((nb,), -torch.inf, dtype=logits.dtype, device=logits.device)
    m = m.scatter_reduce(0, batch, logits, "amax")
    e = torch.exp(logits - m[batch])
    s = torch.zeros(nb, dtype=logits.dtype, device=logits.device).index_add_(0, batch, e)
    return logits - m[batch] - torch.log(s[batch])


def attention_loss(logits: torch.Tensor, target: torch.Tensor, batch: torch.Tensor,
                   kl_weight: float = 1.0, cc_weight: float = 1.0, eps: float = 1e-8) -> torch.Tensor:
    """KL(target || softmax(logits)) + (1 - correlation), averaged over batch items.

    Parameters
    ----------
    logits : (n,) float
    target : (n,) float >= 0
        Attention per voxel; items whose attention sums to 0 are skipped.
    batch : (n,) int64
        Batch item of each voxel.
    """
    if logits.shape != target.shape or batch.shape != target.shape:
        raise ValueError(f"target: expected shape {tuple(logits.shape)}, got {tuple(target.shape)}")
    nb = int(batch.max().item()) + 1
    tsum = torch.zeros(nb, dtype=target.dtype, device=target.device).index_add_(0, batch, target)
    keep = tsum > eps
    if not keep.any():
        return logits.sum() * 0.0
    p = target / tsum.clamp(min=eps)[batch]
    logq = _segment_softmax_log(logits, batch, nb)
    kl_terms = torch.where(p > 0, p * (torch.log(p.clamp(min=eps)) - logq), torch.zeros_like(p))
    kl = torch.zeros(nb, dtype=p.dtype, device=p.device).index_add_(0, batch, kl_terms)
    # Pearson correlation per item between predicted distribution and target
    q = torch.exp(logq)
    cnt = torch.bincount(batch, minlength=nb).to(p.dtype)
    def centred(v):
        mean = torch.zeros(nb, dtype=v.dtype, device=v.device).index_add_(0, batch, v) / cnt
        return v - mean[batch]
    a, b = centred(p), centred(q)
    def seg(v):
        return torch.zeros(nb, dtype=v.dtype, device=v.device).index_add_(0, batch, v)
    cc = seg(a * b) / torch.sqrt(seg(a * a) * seg(b * b) + eps)
    loss = kl_weight * kl + cc_weight * (1.0 - cc)
    return loss[keep].mean()
