"""Interactive gaze segmentation: one object's mask, updated after every fixation.

:meth:`InteractiveSegmenter.set_scan` voxelises the scan and runs the backbone
once (its decoder features are cached); :meth:`~InteractiveSegmenter.update`
then only pools the new attention to the voxels and re-runs the light
attention-guided head, so a mask update after a fixation costs a fraction of
a full forward pass.

A checkpoint trained with ``prior="graph"`` also keeps a
:class:`~gaze3d.models.segment.GraphSegmenter` of the scan (built in
``set_scan``): every update first solves the gaze-seeded random walk, gives its
potential to the head as a third channel, and the mask logit is the walk's
logit plus the network's correction.

Thread-safety: not thread-safe (cached tensors and kernel maps are mutated);
use one segmenter per thread.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .features import point_features
from .networks.segnet import GazeSegNet
from .segment import SegmentResult, check_mask
from .sparse.voxelize import scatter_mean, voxelize
from .sparse import SparseTensor

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "interactive_unet14.safetensors"


class InteractiveSegmenter:
    """Class-agnostic object mask from positive and negative attention.

    Parameters
    ----------
    checkpoint : path or GazeSegNet, optional
        A checkpoint file, an already built model, or None for the shipped one.
    device : str
    voxel_size : float, optional
        Voxel edge in scan units; default: the checkpoint's.
    metres_per_unit : float
        Scan units to metres (the network was trained in metres).
    roi_margin : float or None
        Metres around the xy bounding box of the positively attended voxels
        (>= 5 % of the maximum) outside which the mask is 0, as in training,
        where the network saw crops of at most 30 m around the object. None
        disables it.
    """

    def __init__(self, checkpoint=None, device: str = "cpu", voxel_size: Optional[float] = None,
                 metres_per_unit: float = 1.0, roi_margin: Optional[float] = 20.0):
        if isinstance(checkpoint, GazeSegNet):
            self.model = checkpoint.to(device).eval()
            self.meta = {}
        else:
            self.model, self.meta = load_checkpoint(checkpoint or DEFAULT_CHECKPOINT, device)
        if self.model.config.task != "interactive":
            raise ValueError(f"checkpoint: expected an interactive model, got task "
                             f"{self.model.config.task!r}")
        if not metres_per_unit > 0:
            raise ValueError(f"metres_per_unit: expected > 0, got {metres_per_unit!r}")
        self.device = torch.device(device)
        self.voxel_size = voxel_size or self.model.config.voxel_size
        self.metres_per_unit = metres_per_unit
        if roi_margin is not None and not roi_margin > 0:
            raise ValueError(f"roi_margin: expected > 0 or None, got {roi_margin!r}")
        self.roi_margin = roi_margin
        # the ground model the network was trained with (older checkpoints: local minimum)
        self.ground = self.meta.get("features", "local-min")
        self._feats = None
        self._inverse = None
        self._graph = None
        self.n_points = 0

    @torch.no_grad()
    def set_scan(self, cloud) -> None:
        """Voxelise ``cloud`` (a PointCloud) and cache the backbone features."""
        xyz = (cloud.xyz - cloud.xyz.min(0)) * self.metres_per_unit
        scaled = type(cloud)(xyz=xyz, colors=cloud.colors, intensity=cloud.intensity)
        f = torch.from_numpy(point_features(scaled, ground=self.ground)).to(self.device)
        coords, inverse = voxelize(torch.from_numpy(xyz).to(self.device), self.voxel_size)
        x = SparseTensor(coords, scatter_mean(f, inverse, len(coords)))
        self._feats = self.model.encode(x)
        if self.model.config.prior == "graph":
            from .features import height_above_dtm
            from .segment import GraphSegmenter

            # the same graph as the baseline's tile_graph (PointCloud colours are in [0, 1]);
            # a scan too small for a 10-NN graph gets a prior of 0 everywhere
            self._graph = (GraphSegmenter(xyz, cloud.colors, height=height_above_dtm(xyz))
                           if len(xyz) > 11 else None)
        self._xy = coords[:, 1:3]
        self._inverse = inverse
        self.n_points = len(xyz)
        self.n_voxels = len(coords)
        self.update(np.zeros(self.n_points, dtype=np.float32))   # warm the head's kernel maps

    def _to_voxels(self, values) -> torch.Tensor:
        v = torch.as_tensor(np.asarray(values, dtype=np.float32), device=self.device)
        if v.shape != (self.n_points,):
            raise ValueError(f"attention: expected shape ({self.n_points},), got {tuple(v.shape)}")
        m = float(v.max()) if self.n_points else 0.0
        if m > 0:
            v = v / m
        return v.new_zeros(self.n_voxels).scatter_reduce(0, self._inverse, v, "amax",
                                                          include_self=False)

    @torch.no_grad()
    def update(self, positive_attention, negative_attention=None) -> np.ndarray:
        """Object probability per point ``(n,)`` float32.

        Parameters
        ----------
        positive_attention : (n,) float
            Attention accumulated on the object (any scale; divided by its max).
        negative_attention : (n,) float, optional
            Attention on regions looked at and rejected.
        """
        if self._feats is None:
            raise RuntimeError("set_scan() must be called before update()")
        chans = [self._to_voxels(positive_attention),
                 self._to_voxels(negative_attention) if negative_attention is not None
                 else torch.zeros(self.n_voxels, device=self.device)]
        prior = None
        if self.model.config.prior:
            neg = None
            if negative_attention is not None and np.max(negative_attention) > 0:
                neg = negative_attention
            score = (self._graph.segment(positive_attention, neg).score if self._graph is not None
                     else np.zeros(self.n_points, np.float32))      # (n,) in [0, 1]
            prior = torch.from_numpy(score).to(self.device)
            chans.append(prior.new_zeros(self.n_voxels).scatter_reduce(
                0, self._inverse, prior, "amax", include_self=False))
        att = torch.stack(chans, 1)
        prob = torch.sigmoid(self.model.point_logits(self._feats, att, self._inverse, prior))
        if self.roi_margin is not None:
            seen = att[:, 0] >= 0.05
            if seen.any():
                pad = self.roi_margin / self.voxel_size
                lo = self._xy[seen].min(0).values - pad
                hi = self._xy[seen].max(0).values + pad
                inside = ((self._xy >= lo) & (self._xy <= hi)).all(1)
                prob = torch.where(inside.index_select(0, self._inverse), prob, torch.zeros_like(prob))
            else:
                prob = torch.zeros_like(prob)
        return prob.cpu().numpy()

    def segment(self, positive_attention, negative_attention=None, threshold: float = 0.5) -> SegmentResult:
        """Mask, probability and a status: never a silent empty mask.

        :meth:`update` thresholded at ``threshold``, checked by
        :func:`~gaze3d.models.segment.check_mask`: ``status`` is ``"empty"``,
        ``"collapsed"`` (the mask misses where the annotator looked),
        ``"flooded"`` or ``"no-attention"`` with a one-line ``reason``, so the
        caller falls back (e.g. to :class:`~gaze3d.models.segment.GraphSegmenter`).
        """
        prob = self.update(positive_attention, negative_attention)
        mask = prob >= threshold
        status, reason = check_mask(mask, positive_attention)
        if status != "ok":
            reason = f"network: {reason}"
        return SegmentResult(mask, prob, "net", status, reason)
