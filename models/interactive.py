"""Interactive gaze segmentation: one object's mask, updated after every fixation.

:meth:`InteractiveSegmenter.set_scan` voxelises the scan and runs the backbone
once (its decoder features are cached); :meth:`~InteractiveSegmenter.update`
then only pools the new attention to the voxels and re-runs the light
attention-guided head, so a mask update after a fixation costs a fraction of
a full forward pass. With ``head_roi`` (the default) the head runs only on a
crop of those features around the region of interest (the attended area plus
``roi_margin``, widened by the head's receptive field), outside which the mask
is 0: the same mask at a cost that follows the attended area, not the scan.

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
    head_roi : bool
        Run the head only on the voxels of that region (plus the head's receptive
        field, :meth:`~gaze3d.models.networks.segnet.GazeSegNet.head_reach`, on a crop
        aligned to the coarsest stride) instead of the whole scan: the same mask (the
        backbone features are cached for the whole scan and the head is local), at a
        cost that follows the attended area, not the scan. Ignored without
        ``roi_margin`` or with a non-local head (``guidance="mha"``).
    crop_slack : float
        Metres the head's crop extends beyond what the region of interest needs, so
        that the next fixations, which widen the region, reuse the crop and its kernel maps.
    """

    def __init__(self, checkpoint=None, device: str = "cpu", voxel_size: Optional[float] = None,
                 metres_per_unit: float = 1.0, roi_margin: Optional[float] = 20.0,
                 head_roi: bool = True, crop_slack: float = 20.0):
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
        self.head_roi = (bool(head_roi) and roi_margin is not None
                         and self.model.head_reach() is not None)
        if not crop_slack >= 0:
            raise ValueError(f"crop_slack: expected >= 0, got {crop_slack!r}")
        self.crop_slack = crop_slack
        self._crop = None
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
        self._crop = None
        self._inverse = inverse
        self.n_points = len(xyz)
        self.n_voxels = len(coords)
        self.update(np.zeros(self.n_points, dtype=np.float32))   # warm the head's kernel maps

    def _points(self, values) -> torch.Tensor:
        """Attention ``(n,)`` as a float32 tensor divided by its maximum."""
        v = torch.as_tensor(np.asarray(values, dtype=np.float32), device=self.device)
        if v.shape != (self.n_points,):
            raise ValueError(f"attention: expected shape ({self.n_points},), got {tuple(v.shape)}")
        m = float(v.max()) if self.n_points else 0.0
        return v / m if m > 0 else v

    @staticmethod
    def _pool(v: torch.Tensor, inverse: torch.Tensor, n: int) -> torch.Tensor:
        """Max of the point values ``v (p,)`` per voxel ``inverse (p,)``: ``(n,)``."""
        return v.new_zeros(n).scatter_reduce(0, inverse, v, "amax", include_self=False)

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
        pts = [self._points(positive_attention),
               self._points(negative_attention) if negative_attention is not None
               else torch.zeros(self.n_points, device=self.device)]
        if self.model.config.prior:
            neg = None
            if negative_attention is not None and np.max(negative_attention) > 0:
                neg = negative_attention
            score = (self._graph.segment(positive_attention, neg).score if self._graph is not None
                     else np.zeros(self.n_points, np.float32))      # (n,) in [0, 1]
            pts.append(torch.from_numpy(score).to(self.device))
        prior = pts[2] if self.model.config.prior else None
        if self.head_roi:
            return self._update_roi(pts, prior)
        att = torch.stack([self._pool(v, self._inverse, self.n_voxels) for v in pts], 1)
        prob = torch.sigmoid(self.model.point_logits(self._feats, att, self._inverse, prior))
        if self.roi_margin is not None:
            box = self._roi_box(pts[0])
            inside = (((self._xy >= box[0]) & (self._xy <= box[1])).all(1) if box is not None
                      else torch.zeros(self.n_voxels, dtype=torch.bool, device=self.device))
            prob = torch.where(inside.index_select(0, self._inverse), prob, torch.zeros_like(prob))
        return prob.cpu().numpy()

    def _roi_box(self, positive: torch.Tensor):
        """xy voxel box ``(lo (2,), hi (2,))`` of the region of interest: the voxels of the
        points attended at >= 5 % of the maximum (``positive`` (n,), already divided by it)
        plus ``roi_margin``; None when nothing is attended."""
        seen = positive >= 0.05
        if not seen.any():
            return None
        pad = self.roi_margin / self.voxel_size
        xy = self._xy.index_select(0, self._inverse[seen])
        return xy.min(0).values - pad, xy.max(0).values + pad

    def _head_crop(self, lo: torch.Tensor, hi: torch.Tensor):
        """The cached features cropped to cover the xy voxel box [lo, hi] plus the head's reach.

        The crop is aligned to the coarsest stride (a coarse cell is kept whole, so pooled
        attention and upsampling inside it are the full scene's) and widened by
        ``crop_slack`` metres so the next fixations usually reuse it (its kernel maps
        are cached). Returns ``(feats, rows, points, point_rows)``: cropped SparseTensors (a
        fresh coordinate manager), the crop's voxel rows in the scan ``(m,)``, the points
        in the crop ``(q,)`` and their crop voxel rows ``(q,)``.
        """
        from .sparse.tensor import CoordinateManager

        need_lo = lo - self.model.head_reach()
        need_hi = hi + self.model.head_reach()
        if self._crop is not None:
            c_lo, c_hi = self._crop[0]
            if bool((need_lo >= c_lo).all() and (need_hi <= c_hi).all()):
                return self._crop[1]
        coarse = max(self.model.strides)
        slack = self.crop_slack / self.voxel_size
        c_lo = torch.div(need_lo - slack, coarse, rounding_mode="floor").long() * coarse
        c_hi = (torch.div(need_hi + slack, coarse, rounding_mode="floor").long() + 1) * coarse - 1
        manager = CoordinateManager()
        feats = []
        for f in self._feats:
            xy = f.coords[:, 1:3]
            keep = ((xy >= c_lo) & (xy <= c_hi)).all(1)
            feats.append(SparseTensor(f.coords[keep], f.feats[keep], f.stride, manager))
        rows = torch.nonzero(((self._xy >= c_lo) & (self._xy <= c_hi)).all(1)).flatten()
        row_of = torch.full((self.n_voxels,), -1, dtype=torch.long, device=self.device)
        row_of[rows] = torch.arange(len(rows), device=self.device)
        point_row = row_of.index_select(0, self._inverse)
        points = torch.nonzero(point_row >= 0).flatten()
        self._crop = ((c_lo, c_hi), (feats, rows, points, point_row.index_select(0, points)))
        return self._crop[1]

    def _update_roi(self, pts, prior) -> np.ndarray:
        """:meth:`update` with the head run on a crop around the region of interest only:
        ``pts`` the attention channels per point (n,), ``prior`` (n,) or None."""
        prob = np.zeros(self.n_points, dtype=np.float32)
        box = self._roi_box(pts[0])
        if box is None:
            return prob
        feats, rows, points, point_rows = self._head_crop(*box)
        # every point of a crop voxel is in the crop: its pooled attention is the scan's
        att = torch.stack([self._pool(v.index_select(0, points), point_rows, len(rows))
                           for v in pts], 1)
        xy = self._xy.index_select(0, rows)
        inside = ((xy >= box[0]) & (xy <= box[1])).all(1).index_select(0, point_rows)
        sel = torch.nonzero(inside).flatten()
        logit = self.model.point_logits(feats, att, point_rows.index_select(0, sel),
                                        None if prior is None
                                        else prior.index_select(0, points.index_select(0, sel)))
        prob[points.index_select(0, sel).cpu().numpy()] = torch.sigmoid(logit).cpu().numpy()
        return prob

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
