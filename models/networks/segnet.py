"""Gaze-guided segmentation network: sparse U-Net backbone + attention-guided head.

The backbone sees geometry only (height, intensity, colour), so its decoder
features can be cached per scan; gaze enters in the head, as input channels
at every decoder stage (pooled to the stage's stride) of an
:class:`~.gaze_blocks.AttentionGuidedBlock` (``guidance="gate"``) or a
:class:`~.gaze_blocks.GazeMultiHeadBlock` (``guidance="mha"``: attention to
coarse tokens with the gaze as a logit prior). After each new fixation only
the head runs again. A :class:`~.selective_attention.SelectiveAttentionHead`
predicts attention from the backbone features, standing in for gaze where
there is none.

Two tasks share it: interactive (``num_outputs=1`` mask logit, attention
channels positive and negative) and semantic (``num_outputs`` classes, one
attention channel).

Interactive with ``prior="graph"`` (issue 12): a third attention channel holds
the gaze-seeded random walker's potential (:class:`~gaze3d.models.segment.GraphSegmenter`,
same attention, positives and negatives) and the head is residual: the point
logit is the walker's logit plus the network's correction
(:meth:`GazeSegNet.point_logits`), the correction's classifier initialised to
zero, so an untrained network *is* the graph baseline and training learns
only where the walker is wrong.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional

import torch
from torch import nn

from ..sparse import SparseTensor
from .gaze_blocks import AttentionGuidedBlock, GazeMultiHeadBlock, pool_to, upsample_nearest
from .selective_attention import SelectiveAttentionHead
from .unet import SparseUNet, UNetConfig


# decoder block per ``SegNetConfig.guidance``
GUIDANCE = {"gate": AttentionGuidedBlock, "mha": GazeMultiHeadBlock}
# ``SegNetConfig.prior``: "" (none) or "graph" (random-walker potential, residual head)
PRIORS = ("", "graph")
# the walker's potential is clipped to [PRIOR_CLIP, 1 - PRIOR_CLIP] before its logit (+-3.9):
# seeds and far background stay correctable by the network
PRIOR_CLIP = 0.02


def prior_logit(score: torch.Tensor) -> torch.Tensor:
    """Logit ``(n,)`` of a prior probability ``score (n,)`` in [0, 1], clipped to +-3.9:
    0.5 maps to 0, so thresholding ``sigmoid`` at 0.5 gives the prior's own mask."""
    p = score.clamp(PRIOR_CLIP, 1.0 - PRIOR_CLIP)
    return torch.log(p) - torch.log1p(-p)


@dataclass
class SegNetConfig:
    """Full network configuration (saved inside checkpoints).

    Attributes
    ----------
    unet : UNetConfig
    num_outputs : int
        1 for an interactive mask logit, the number of classes for semantic.
    att_channels : int
        Gaze channels (2 = positive, negative; 1 = attention).
    head_channels : int
    propagate : int
        Residual 3^3 convolutions in head blocks at stride >= 4.
    voxel_size : float
        Voxel edge in scan units used to build the input.
    task : str
        ``"interactive"`` or ``"semantic"``.
    class_codes : list of int
        Semantic task: the label code of each output.
    guidance : str
        Head blocks: ``"gate"`` (gaze-gated fusion) or ``"mha"`` (multi-head
        attention with a gaze prior on the logits).
    heads : int
        Attention heads of ``"mha"`` blocks; must divide ``head_channels``.
    prior : str
        ``""`` or ``"graph"``: the last attention channel is the random walker's
        potential and the mask logit is its logit plus the head's correction.
    """
    unet: UNetConfig = field(default_factory=UNetConfig)
    num_outputs: int = 1
    att_channels: int = 2
    head_channels: int = 16
    propagate: int = 2
    voxel_size: float = 0.5
    task: str = "interactive"
    class_codes: List[int] = field(default_factory=list)
    guidance: str = "gate"      # defaults keep checkpoints saved before these fields loading
    heads: int = 4
    prior: str = ""

    def validate(self) -> "SegNetConfig":
        self.unet.validate()
        for name in ("num_outputs", "att_channels", "head_channels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if not isinstance(self.propagate, int) or self.propagate < 0:
            raise ValueError(f"propagate: expected an int >= 0, got {self.propagate!r}")
        if not (isinstance(self.voxel_size, (int, float)) and self.voxel_size > 0):
            raise ValueError(f"voxel_size: expected a positive number, got {self.voxel_size!r}")
        if self.task not in ("interactive", "semantic"):
            raise ValueError(f"task: expected 'interactive' or 'semantic', got {self.task!r}")
        if self.task == "semantic" and len(self.class_codes) != self.num_outputs:
            raise ValueError(f"class_codes: expected {self.num_outputs} codes, got {self.class_codes}")
        if not isinstance(self.guidance, str) or self.guidance not in GUIDANCE:
            raise ValueError(f"guidance: expected one of {sorted(GUIDANCE)}, got {self.guidance!r}")
        if isinstance(self.heads, bool) or not isinstance(self.heads, int) or self.heads < 1:
            raise ValueError(f"heads: expected a positive int, got {self.heads!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior: expected one of {PRIORS}, got {self.prior!r}")
        if self.prior and (self.task != "interactive" or self.att_channels != 3):
            raise ValueError("prior: needs task 'interactive' with att_channels 3 (positive, "
                             f"negative, prior), got {self.task!r} with {self.att_channels}")
        if self.guidance == "mha" and self.head_channels % self.heads:
            raise ValueError(f"heads: expected a divisor of head_channels={self.head_channels}, "
                             f"got {self.heads}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SegNetConfig":
        d = dict(d)
        unet = UNetConfig(**d.pop("unet", {}))
        return cls(unet=unet, **d).validate()


class GazeSegNet(nn.Module):
    """Backbone + gaze-guided head + selective-attention head."""

    def __init__(self, config: SegNetConfig):
        super().__init__()
        self.config = config.validate()
        self.backbone = SparseUNet(config.unet)
        chans = self.backbone.out_channels
        depth = config.unet.depth
        self.strides = [2 ** (depth - 1 - j) for j in range(depth)]
        self.blocks = nn.ModuleList()
        prev = 0
        extra = {"heads": config.heads} if config.guidance == "mha" else {}
        for c, s in zip(chans, self.strides):
            block = GUIDANCE[config.guidance]
            self.blocks.append(block(c, config.att_channels, prev, config.head_channels,
                                     config.propagate if s >= 4 else 0, **extra))
            prev = config.head_channels
        self.classifier = nn.Linear(config.head_channels, config.num_outputs)
        if config.prior:
            # residual head: the untrained correction is 0, i.e. the prior's own mask
            nn.init.zeros_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)
        self.selective = SelectiveAttentionHead(chans[-1])

    def head_reach(self) -> Optional[int]:
        """How far (stride-1 voxels, per axis) the head's output at a voxel can depend on
        other voxels, or None when it is not local (``guidance="mha"``: tokens span the scan).

        A stage at stride ``s`` adds its cell (``s``: max-pooled attention, nearest
        upsampling) and its propagation convolutions (``s * dilation`` each); the backbone
        features are cached for the whole scan, so only the head counts. Running the head
        on a crop aligned to the coarsest stride and this much wider than the region of
        interest gives the full scene's logits inside it.
        """
        if self.config.guidance != "gate":
            return None
        reach = 0
        for s, block in zip(self.strides, self.blocks):
            reach += s + sum(s * p["conv"].dilation * (p["conv"].kernel_size // 2)
                             for p in block.props)
        return reach

    def encode(self, x: SparseTensor) -> List[SparseTensor]:
        """Backbone decoder outputs, coarsest first (cache these per scan)."""
        return self.backbone(x)

    def decode(self, feats: List[SparseTensor], att: torch.Tensor) -> torch.Tensor:
        """Head logits ``(n_voxels, num_outputs)`` from cached features and attention.

        Parameters
        ----------
        feats : list of SparseTensor
            From :meth:`encode`.
        att : (n_voxels, att_channels) float
            Gaze channels at stride 1, on the voxels of ``feats[-1]``.
        """
        fine = feats[-1]
        if att.shape != (len(fine), self.config.att_channels):
            raise ValueError(f"att: expected shape ({len(fine)}, {self.config.att_channels}), "
                             f"got {tuple(att.shape)}")
        att1 = fine.replace(att.to(fine.feats.dtype))
        h = None
        for f, block in zip(feats, self.blocks):
            a = pool_to(att1, f.stride)
            up = None if h is None else upsample_nearest(h, f.stride)
            h = block(f, a, up)
        return self.classifier(h.feats)

    def point_logits(self, feats: List[SparseTensor], att: torch.Tensor, inverse: torch.Tensor,
                     prior: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Interactive mask logit per point ``(p,)``.

        Parameters
        ----------
        feats, att
            As :meth:`decode` (``att`` per voxel).
        inverse : (p,) long
            Voxel of each point.
        prior : (p,) float in [0, 1], optional
            The prior's probability per point; required when ``config.prior`` is set, then
            the result is ``prior_logit(prior) + correction``.
        """
        logit = self.decode(feats, att)[:, 0].index_select(0, inverse)
        if not self.config.prior:
            return logit
        if prior is None or prior.shape != logit.shape:
            raise ValueError(f"prior: expected shape {tuple(logit.shape)} (config.prior "
                             f"{self.config.prior!r}), got {None if prior is None else tuple(prior.shape)}")
        return logit + prior_logit(prior.to(logit.dtype))

    def forward(self, x: SparseTensor, att: Optional[torch.Tensor] = None):
        """``(logits (n, num_outputs), attention logits (n,))``; no ``att``: use the predicted one."""
        feats = self.encode(x)
        sel = self.selective(feats[-1].feats)
        if att is None:
            att = predicted_attention(sel, feats[-1].coords[:, 0], self.config.att_channels)
        return self.decode(feats, att), sel


def predicted_attention(sel_logits: torch.Tensor, batch: torch.Tensor, channels: int) -> torch.Tensor:
    """Selective-attention logits as gaze channels: sigmoid, scaled to max 1 per item, in channel 0."""
    p = torch.sigmoid(sel_logits.detach())
    nb = int(batch.max().item()) + 1
    m = torch.zeros(nb, dtype=p.dtype, device=p.device).scatter_reduce(0, batch, p, "amax")
    out = torch.zeros(len(p), channels, dtype=p.dtype, device=p.device)
    out[:, 0] = p / m.clamp(min=1e-6)[batch]
    return out
