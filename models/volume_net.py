"""Gaze-prompted volume segmentation: the sparse-conv network on a crop of voxels around the gaze.

A CT or MR volume is too large for a CPU forward pass at native resolution,
and the structure being looked at is local, so the network sees a cube of
``crop`` voxels of ``voxel_size`` mm (default 32 voxels of 4 mm: a 128 mm
cube) centred on what the annotator looked at (the centroid of the positive
attention's core). Every crop voxel is a voxel of the sparse tensor (a dense
grid run through the same sparse layers as the point clouds, so one backbone
and one head serve both). Channels (:data:`INPUT_CHANNELS`):

* backbone (early fusion): intensity, normalised per modality
  (:func:`normalise_intensity`); the positive and negative attention, each
  scaled to max 1; and the random walker's object probability seeded by the
  same attention on the crop (:func:`walker_prior`): the network refines the
  classical baseline rather than learning the whole task from scratch;
* head: the positive and negative attention again at every decoder stage
  (the gaze-guided blocks of :class:`~.networks.segnet.GazeSegNet`).

The head is residual (:func:`mask_logits`): the mask logit is the walker's
logit (its probability clipped to [``PRIOR_CLIP``, 1 - ``PRIOR_CLIP``] by
:func:`~.networks.segnet.prior_logit`)
plus the network's correction, whose classifier starts at zero
(:func:`build_volume_model`), so an untrained model *is* the random walker on
the crop and training learns only where the walker is wrong.

Why early fusion: with gaze only in the head (a per-voxel gate and two 3^3
convolutions at stride 4), a voxel far from the fixation cannot tell whether
it belongs to the looked-at structure, and training collapsed to empty masks
(loss plateau ~1.05, Dice 0 on the held-out CT). With the prompt in the
backbone's input, every stage sees where the fixation is. The price: the
backbone runs on every update (about 35 ms for a 32^3 crop on one core: the
crop fills a box, so its submanifold convolutions run as dense oneDNN
convolutions, :func:`~.sparse.conv.dense_box`).

The mask logits are "the structure being looked at" (class-agnostic). They are
interpolated back onto the native grid inside the crop box (trilinear,
separable per axis); outside the box the probability is 0. Resampling in both
directions is axis-separable: an ``(n_out, n_in)`` weight matrix per axis, so
a 256^3 volume costs three small GEMMs over the crop box rather than a gather
per voxel.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from gaze3d.errors import InputError

from .checkpoint import load_members
from .networks.segnet import GazeSegNet, SegNetConfig, prior_logit
from .networks.unet import UNetConfig
from .sparse import CoordinateManager, SparseTensor

#: checkpoint metadata ``kind`` of volume models (point-cloud checkpoints have none)
VOLUME_KIND = "volume"
#: the shipped volume model: ``make volume-checkpoint`` (scripts/train_volume_checkpoint.sh) rebuilds it
DEFAULT_VOLUME_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "volume_unet14_walker.safetensors"
#: modalities of :func:`normalise_intensity`
MODALITIES = ("auto", "ct", "mr")
#: CT window (HU) mapped to [0, 1]: soft tissue to bone edge, where the organs differ
CT_WINDOW = (-200.0, 300.0)
DEFAULT_CROP = 32
DEFAULT_VOXEL_MM = 4.0
#: backbone input channels of a volume model, in order
INPUT_CHANNELS = ("intensity", "positive", "negative", "walker")
#: axis flips of test-time mirroring, in the order ``mirror=k`` takes the first k (training flips every
#: axis at random, so each flipped crop is in-distribution); ``()`` is the crop as it is
MIRRORS = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
#: the walker a volume model refines (checkpoint metadata ``prior``): ``"crop"``, the full random walker on
#: the crop grid (:func:`walker_prior`, the first design); ``"native"``, the viewer's ROI walker
#: (:func:`roi_prior`) on the volume's own grid, with the network's correction added to its logit there
PRIORS = ("crop", "native")


def build_volume_model(base_channels: int = 8, voxel_mm: float = DEFAULT_VOXEL_MM) -> GazeSegNet:
    """A fresh volume model whose correction starts at zero (it reproduces the walker prior)."""
    model = GazeSegNet(default_volume_config(base_channels, voxel_mm))
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
    return model


def walker_logit(x: SparseTensor) -> torch.Tensor:
    """(n,) logit of the walker prior (input channel ``"walker"`` of ``x``), clipped by :func:`prior_logit`."""
    return prior_logit(x.feats[:, INPUT_CHANNELS.index("walker")])


def mask_logits(model: GazeSegNet, x: SparseTensor, att: torch.Tensor, feats=None) -> torch.Tensor:
    """(n,) mask logits: the walker prior's logit (:func:`walker_logit`) plus the network's correction
    (``feats``: the backbone's output for ``x`` where already computed)."""
    return walker_logit(x) + model.decode(model.encode(x) if feats is None else feats, att)[:, 0]


def default_volume_config(base_channels: int = 8, voxel_mm: float = DEFAULT_VOXEL_MM) -> SegNetConfig:
    """Network of the volume model: :data:`INPUT_CHANNELS` in, unet14 of depth 3, widths 8..32, 2 gaze
    channels in the head."""
    return SegNetConfig(unet=UNetConfig(in_channels=len(INPUT_CHANNELS), variant="unet14",
                                        base_channels=base_channels,
                                        depth=3, max_channels=32),
                        num_outputs=1, att_channels=2, head_channels=16, voxel_size=float(voxel_mm),
                        task="interactive", guidance="gate")


def normalise_intensity(array: np.ndarray, modality: str = "auto") -> np.ndarray:
    """Intensities to about [0, 1], per modality.

    Parameters
    ----------
    array : (I, J, K) array
    modality : {"auto", "ct", "mr"}
        ``"ct"``: Hounsfield units, window :data:`CT_WINDOW` clipped to [0, 1];
        ``"mr"`` (and anything without calibrated units): the 1st to 99th
        percentile of the non-zero voxels to [0, 1], clipped; ``"auto"``: CT
        when the values look like HU (minimum <= -500, the air of a CT), MR
        otherwise.

    Returns
    -------
    (I, J, K) float32
    """
    if modality not in MODALITIES:
        raise InputError(f"modality: expected one of {MODALITIES}, got {modality!r}")
    a = np.asarray(array, dtype=np.float32)
    if modality == "auto":
        modality = "ct" if a.size and float(a.min()) <= -500 else "mr"
    if modality == "ct":
        lo, hi = CT_WINDOW
    else:
        nz = a[a != 0]
        nz = nz if nz.size else a.ravel()
        nz = nz[::max(1, nz.size // 1_000_000)]          # percentiles of ~1 M voxels: same to < 0.1 %
        lo, hi = (float(v) for v in np.percentile(nz, [1, 99])) if nz.size else (0.0, 1.0)
        if not hi > lo:
            hi = lo + 1.0
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def axis_weights(centre: float, n_native: int, spacing: float, crop: int, voxel_mm: float,
                 average: bool = False) -> Tuple[np.ndarray, int, int]:
    """Resampling weights of one axis between the native grid and the crop.

    Crop voxel ``g`` sits at native index ``centre + (g - (crop - 1) / 2) * voxel_mm / spacing``.

    Returns
    -------
    w : (crop, hi - lo) float32
        Row ``g``: weights of native voxels ``lo..hi-1`` for crop voxel ``g``:
        linear interpolation (positions past the edge take the edge voxel), or
        with ``average`` the mean of the native voxels inside the crop voxel's
        cell (so a one-voxel-thin attention slice is not stepped over).
    lo, hi : int
        The native index range the crop touches.
    """
    step = voxel_mm / spacing
    pos = centre + (np.arange(crop) - (crop - 1) / 2.0) * step
    half = max(step / 2.0, 0.5) if average else 1.0
    lo = int(np.clip(np.floor(pos[0] - half), 0, n_native - 1))
    hi = int(np.clip(np.ceil(pos[-1] + half) + 1, lo + 1, n_native))
    idx = np.arange(lo, hi, dtype=np.float64)
    if average:
        # overlap of native cell [i-0.5, i+0.5] with crop cell [p-h, p+h]
        ov = np.minimum(idx[None] + 0.5, pos[:, None] + half) - np.maximum(idx[None] - 0.5, pos[:, None] - half)
        w = np.clip(ov, 0.0, None)
    else:
        p = np.clip(pos, 0, n_native - 1)
        w = np.clip(1.0 - np.abs(idx[None] - p[:, None]), 0.0, None)
    s = w.sum(1, keepdims=True)
    w = np.divide(w, s, out=np.zeros_like(w), where=s > 0)
    return w.astype(np.float32), lo, hi


def to_crop(native: np.ndarray, weights) -> np.ndarray:
    """(crop, crop, crop) from the native box: ``weights`` = three :func:`axis_weights` results."""
    (w0, l0, h0), (w1, l1, h1), (w2, l2, h2) = weights
    box = np.asarray(native[l0:h0, l1:h1, l2:h2], dtype=np.float32)
    return separable(w0, w1, w2, box)


def separable(w0: np.ndarray, w1: np.ndarray, w2: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``out[a, b, c] = sum w0[a, i] w1[b, j] w2[c, k] x[i, j, k]`` as three GEMMs, float32.

    Each GEMM contracts the leading axis and puts the new one last, so after
    three the axes are back in order (torch's matmul: ~10x faster here than
    ``numpy.einsum``/``tensordot``, which copy through transposes).
    """
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    for w in (w0, w1, w2):
        n = t.shape[0]
        t = torch.matmul(torch.from_numpy(w), t.reshape(n, -1)).reshape(w.shape[0], *t.shape[1:])
        t = t.permute(1, 2, 0)
    return t.contiguous().numpy()


def crop_box_weights(centre_native: np.ndarray, shape, spacing, crop: int, voxel_mm: float):
    """Per axis: linear weights (crop -> native) over the native voxels inside the crop box.

    Returns ``[(u (hi - lo, crop) float32, lo, hi)] * 3``: native voxel ``lo + r``
    gets ``u[r] @ crop_values`` (each row sums to 1 inside the box).
    """
    out = []
    for ax in range(3):
        step = voxel_mm / float(spacing[ax])
        first = centre_native[ax] - (crop - 1) / 2.0 * step
        lo = int(np.clip(np.ceil(first), 0, shape[ax]))
        hi = int(np.clip(np.floor(first + (crop - 1) * step) + 1, lo, shape[ax]))
        g = (np.arange(lo, hi) - first) / step           # fractional crop index of native voxels
        cols = np.arange(crop, dtype=np.float64)
        u = np.clip(1.0 - np.abs(g[:, None] - cols[None]), 0.0, None).astype(np.float32)
        out.append((u, lo, hi))
    return out


def attention_centre(positive: np.ndarray, rel: float = 0.5) -> Optional[np.ndarray]:
    """(3,) float native index: attention-weighted centroid of voxels >= ``rel`` of the peak (None if none)."""
    flat = np.asarray(positive).reshape(-1)
    peak = float(flat.max()) if flat.size else 0.0
    if not peak > 0:
        return None
    hot = np.flatnonzero(flat >= rel * peak)           # one pass; the core is small
    idx = np.stack(np.unravel_index(hot, np.shape(positive)), 1)
    w = flat[hot].astype(np.float64)
    return (idx * w[:, None]).sum(0) / w.sum()


def grid_coords(crop: int, batch: int = 0) -> torch.Tensor:
    """(crop^3, 4) int64 sparse coordinates (batch, i, j, k) of a dense crop, C order."""
    g = torch.stack(torch.meshgrid(*[torch.arange(crop)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return torch.cat([torch.full((len(g), 1), batch, dtype=torch.long), g], 1)


def walker_prior(image: np.ndarray, pos: np.ndarray, neg: Optional[np.ndarray], voxel_mm: float) -> np.ndarray:
    """(C, C, C) float32: the random walker's object probability on a crop, seeded by its attention.

    :func:`gaze3d.volume_regions.random_walk` with ``probability=True`` on the
    crop grid (isotropic ``voxel_mm``); zeros when there is no positive attention.
    """
    from gaze3d.volume_regions import random_walk

    if not np.any(pos > 0):
        return np.zeros(image.shape, np.float32)
    negative = neg if neg is not None and np.any(neg > 0) else None
    return random_walk(image, pos, negative, spacing=(voxel_mm,) * 3, probability=True)


def roi_prior(image: np.ndarray, pos: np.ndarray, neg: Optional[np.ndarray], spacing) -> np.ndarray:
    """(I, J, K) float32: :func:`gaze3d.volume_regions.random_walk_roi`'s object probability (the viewer's
    walker; ``>= 0.5`` is its mask), zeros when there is no positive attention (an all-zero ``neg`` counts
    as none: the walker itself handles both, so no whole-volume pass is added here).

    ``spacing`` (3,) mm of ``image``'s grid: the volume's own at inference, the crop's in training.
    """
    from gaze3d.volume_regions import random_walk_roi

    return random_walk_roi(image, pos, neg, spacing=spacing, probability=True)


def crop_input(image: np.ndarray, pos: np.ndarray, neg: Optional[np.ndarray], prior: np.ndarray,
               batch: int = 0):
    """Sparse input and gaze channels of one crop.

    Parameters
    ----------
    image : (C, C, C) float, normalised intensity
    pos, neg : (C, C, C) float attention (neg may be None)
    prior : (C, C, C) float, the :func:`walker_prior` of the crop

    Returns
    -------
    SparseTensor with the :data:`INPUT_CHANNELS` (C^3, 4), and (C^3, 2) float32 gaze channels
    (attention scaled to max 1 per channel)
    """
    c = image.shape[0]
    att = gaze_channels(pos, neg)
    feats = torch.cat([torch.from_numpy(np.ascontiguousarray(image, np.float32).reshape(-1, 1)), att,
                       torch.from_numpy(np.ascontiguousarray(prior, np.float32).reshape(-1, 1))], 1)
    return SparseTensor(grid_coords(c, batch), feats), att


def gaze_channels(pos: np.ndarray, neg: Optional[np.ndarray]) -> torch.Tensor:
    """(C^3, 2) float32: positive and negative attention, each divided by its max."""
    chans = []
    for a in (pos, neg):
        a = np.zeros_like(pos, dtype=np.float32) if a is None else np.asarray(a, np.float32)
        m = float(a.max()) if a.size else 0.0
        chans.append((a / m if m > 0 else a).reshape(-1))
    return torch.from_numpy(np.stack(chans, 1))


class VolumeSegmenter:
    """Mask of the structure looked at in a volume, updated after every fixation.

    Parameters
    ----------
    checkpoint : path, GazeSegNet or sequence of GazeSegNet, optional
        A volume checkpoint (``meta["kind"] == "volume"``; an ensemble checkpoint,
        :func:`~.checkpoint.save_ensemble`, too), a built model, or built models of
        one architecture (default: the shipped one, :data:`DEFAULT_VOLUME_CHECKPOINT`).
        The mask logits of several models are averaged (the walker prior is
        shared, so this averages their corrections); each costs one forward pass.
    crop : int, optional
        Crop edge in voxels (default: the checkpoint's). The network is fully
        convolutional, so a larger crop than the training one covers larger
        structures at a cubic cost.
    device : str
    mirror : int
        Test-time mirroring: the network's output is averaged (as logits) over the first ``mirror`` of
        :data:`MIRRORS` (1, the default: the crop alone; 8: every axis flip, as nnU-Net does), each flipped
        crop run through the network and its output flipped back. Each costs one forward pass.
    prior : {"crop", "native"}, optional
        The walker the network refines (default: the checkpoint's ``meta["prior"]``,
        ``"crop"`` where it has none). ``"crop"``: :func:`walker_prior` on the
        crop grid; the probability is the crop's, interpolated back, 0 outside
        the crop box. ``"native"``: :func:`roi_prior` (the viewer's walker) on the
        volume's own grid, resampled into the crop as the backbone's input; the
        network's correction (its logit minus the prior's) is interpolated back
        and added to the walker's logit on the native voxels, so the walker's
        own boundary is kept at native resolution where the network does not
        change it, and outside the crop box the walker's probability stands.

    Not thread-safe (the crop grid's kernel maps are cached in the segmenter); one segmenter per thread.
    """

    def __init__(self, checkpoint=None, crop: Optional[int] = None, device: str = "cpu",
                 prior: Optional[str] = None, mirror: int = 1):
        checkpoint = DEFAULT_VOLUME_CHECKPOINT if checkpoint is None else checkpoint
        if isinstance(checkpoint, GazeSegNet):
            checkpoint = [checkpoint]
        if isinstance(checkpoint, (list, tuple)):
            if not checkpoint or not all(isinstance(m, GazeSegNet) for m in checkpoint):
                raise InputError("checkpoint: expected a path, a GazeSegNet or a non-empty sequence of them")
            self.models, self.meta = [m.to(device).eval() for m in checkpoint], {"kind": VOLUME_KIND}
        else:
            self.models, self.meta = load_members(checkpoint, device)
            if self.meta.get("kind") != VOLUME_KIND:
                raise InputError(f"{checkpoint}: not a volume checkpoint (trained by gaze3d train --volumes)")
        self.model = self.models[0]
        for m in self.models:
            if m.config != self.model.config:
                raise InputError("checkpoint: the models differ in architecture (an ensemble shares one)")
        if self.model.config.att_channels != 2 or self.model.config.unet.in_channels != len(INPUT_CHANNELS):
            raise InputError(f"checkpoint: expected a volume model ({len(INPUT_CHANNELS)} input channels "
                             f"{INPUT_CHANNELS}, 2 gaze channels); retrain it with gaze3d train --volumes")
        self.crop = int(crop or self.meta.get("crop", DEFAULT_CROP))
        prior = self.meta.get("prior", "crop") if prior is None else prior
        if prior not in PRIORS:
            raise InputError(f"prior: expected one of {PRIORS}, got {prior!r}")
        self.prior = prior
        if not (isinstance(mirror, (int, np.integer)) and 1 <= mirror <= len(MIRRORS)):
            raise InputError(f"mirror: expected an int from 1 to {len(MIRRORS)} (flipped passes), got {mirror!r}")
        self.mirror = int(mirror)
        self.voxel_mm = float(self.model.config.voxel_size)
        self.device = torch.device(device)
        self._image = None
        self.last_prior = None
        # every update's input is the same dense crop grid: one manager keeps what is built from its
        # coordinates between updates (the strided levels, their kernel maps, the dense-box checks)
        self._grid = CoordinateManager()

    def set_volume(self, array: np.ndarray, spacing, modality: str = "auto") -> None:
        """Normalise and keep the volume (``(I, J, K)``, ``spacing`` (3,) mm)."""
        a = np.asarray(array)
        if a.ndim != 3:
            raise InputError(f"array: expected an (I, J, K) volume, got shape {a.shape}")
        self._raw = a
        self._image = normalise_intensity(a, modality)
        self.spacing = np.asarray(spacing, dtype=np.float64)
        if self.spacing.shape != (3,) or not np.all(self.spacing > 0):
            raise InputError(f"spacing: expected 3 positive values (mm), got {spacing}")

    @torch.no_grad()
    def update(self, positive: np.ndarray, negative: Optional[np.ndarray] = None) -> np.ndarray:
        """(I, J, K) float32 probability of the structure looked at (outside the crop box: 0, or with the
        ``"native"`` prior the walker's).

        Parameters
        ----------
        positive : (I, J, K) float
            Attention of fixations on the structure (any scale).
        negative : (I, J, K) float, optional
            Attention of fixations on what is not the structure.
        """
        if self._image is None:
            raise RuntimeError("set_volume() must be called before update()")
        shp = self._image.shape
        for name, a in (("positive", positive), ("negative", negative)):
            if a is not None and np.shape(a) != shp:
                raise InputError(f"{name}: expected shape {shp} (the volume grid), got {np.shape(a)}")
        centre = attention_centre(np.asarray(positive))
        if centre is None:
            return np.zeros(shp, dtype=np.float32)
        w_lin = [axis_weights(centre[a], shp[a], self.spacing[a], self.crop, self.voxel_mm) for a in range(3)]
        w_avg = [axis_weights(centre[a], shp[a], self.spacing[a], self.crop, self.voxel_mm, True)
                 for a in range(3)]
        img = to_crop(self._image, w_lin)
        pos_c = to_crop(positive, w_avg)
        neg_c = to_crop(negative, w_avg) if negative is not None else None
        native = roi_prior(self._raw, positive, negative, self.spacing) if self.prior == "native" else None
        prior = to_crop(native, w_lin) if native is not None else walker_prior(img, pos_c, neg_c, self.voxel_mm)
        self.last_prior = prior
        x, logits = self._logits(img, pos_c, neg_c, prior)
        (u0, l0, h0), (u1, l1, h1), (u2, l2, h2) = crop_box_weights(centre, shp, self.spacing, self.crop,
                                                                    self.voxel_mm)
        box = (slice(l0, h0), slice(l1, h1), slice(l2, h2))
        if native is None:
            out = np.zeros(shp, dtype=np.float32)
            out[box] = separable(u0, u1, u2, torch.sigmoid(logits).cpu().numpy().reshape((self.crop,) * 3))
            return out
        # residual on the native grid: the walker's logit there plus the interpolated correction; outside
        # the crop box the walker's probability stands (roi_prior's array is this call's own: no copy)
        correction = (logits - walker_logit(x)).cpu().numpy().reshape((self.crop,) * 3)
        out = native
        out[box] = torch.sigmoid(prior_logit(torch.from_numpy(np.ascontiguousarray(native[box])))
                                 + torch.from_numpy(separable(u0, u1, u2, correction))).numpy()
        return out

    def _logits(self, img, pos, neg, prior):
        """The crop's sparse input (unflipped) and its (C^3,) mask logits, averaged over the models and
        :attr:`mirror` flips of the crop (the crop grid is symmetric, so every pass reuses its kernel maps)."""
        c = self.crop
        total, x0 = None, None
        for axes in MIRRORS[:self.mirror]:
            def flip(a):
                return np.flip(a, axes) if axes and a is not None else a
            x, att = crop_input(flip(img), flip(pos), flip(neg), flip(prior))
            x = SparseTensor(x.coords.to(self.device), x.feats.to(self.device), manager=self._grid)
            att = att.to(self.device)
            for model in self.models:
                logits = mask_logits(model, x, att)
                if axes:
                    logits = torch.flip(logits.reshape((c,) * 3), axes).reshape(-1)
                total = logits if total is None else total + logits
            if not axes:
                x0 = x
        passes = self.mirror * len(self.models)
        return x0, total if passes == 1 else total / passes

    def segment(self, positive: np.ndarray, negative: Optional[np.ndarray] = None, threshold: float = 0.5):
        """:class:`~gaze3d.models.segment.SegmentResult` on the voxels (flattened ``(I*J*K,)`` check):
        mask ``(I, J, K)`` bool, probability ``(I, J, K)``, and a status that is never a silent empty mask."""
        from .segment import SegmentResult, check_mask

        prob = self.update(positive, negative)
        mask = prob >= threshold
        status, reason = check_mask(mask.reshape(-1), np.asarray(positive).reshape(-1))
        return SegmentResult(mask, prob, "net", status, f"volume network: {reason}" if reason else "")


def network_method(checkpoint, modality: str = "auto", threshold: float = 0.5,
                   crop: Optional[int] = None, prior: Optional[str] = None, mirror: int = 1) -> Callable:
    """A method for :func:`gaze3d.models.volume_eval.run_structure`: ``(array, pos, neg, spacing) -> mask``.

    The segmenter is kept between calls and the volume re-normalised only when
    a different array is passed.
    """
    seg = VolumeSegmenter(checkpoint, crop=crop, prior=prior, mirror=mirror)
    state = {"array": None}

    def method(array, pos, neg, spacing):
        if state["array"] is not array:
            seg.set_volume(array, spacing, modality)
            state["array"] = array
        return seg.update(pos, neg) >= threshold

    return method


def is_volume_checkpoint(path) -> bool:
    """True when ``path`` is a checkpoint written by volume training (reads the header only)."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(Path(path)), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    except Exception:      # not a safetensors file: load_checkpoint will say why
        return False
    return meta.get("kind") == VOLUME_KIND
