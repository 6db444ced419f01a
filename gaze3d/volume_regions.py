"""Classical gaze-seeded volume segmentation, from kept libraries: the baselines a volume model must beat.

Both methods take the attention of the positive fixations (what the annotator
looked at to include) and, optionally, of the negative ones (looked at to
exclude), on the volume's grid:

``confidence_connected``
    SimpleITK's ``ConfidenceConnected`` region grower seeded at the attention
    peaks: voxels join while their intensity lies within ``multiplier``
    standard deviations of the region's mean (re-estimated ``iterations``
    times). Negative fixations cut their attended core out of the region.
``random_walk`` (and ``random_walk_roi``, the viewer's interactive one)
    scikit-image's ``random_walker`` (Grady 2006) on a box around what was
    looked at: attended cores of positive fixations are object seeds, those of
    negative fixations and the box's faces background seeds; a voxel belongs to
    the object where a random walk from it, steered by intensity edges, more
    likely reaches an object seed.

The flood fill the viewer falls back to (``gaze3d.regions.grow_volume``)
is the third baseline. ``bench/volume_interactive.py`` compares them.

Heavy libraries are imported on first use (SimpleITK from the ``io`` extra,
scikit-image from the ``io`` extra).
"""
from __future__ import annotations

import warnings
from typing import Tuple

import numpy as np

from ._optional import optional_import
from .errors import InputError

__all__ = ["attended_core", "within_reach", "confidence_connected", "random_walk", "random_walk_roi"]

#: voxel budget of :func:`random_walk_roi`'s walk (a 32^3 box: ~0.1-0.2 s on one core)
ROI_MAX_VOXELS = 32 ** 3


def _check(array: np.ndarray, attention, name: str) -> np.ndarray:
    att = np.asarray(attention, dtype=np.float64)
    if att.shape != array.shape:
        raise InputError(f"{name}: expected shape {array.shape} (the volume grid), got {att.shape}")
    lo, hi = (float(att.min()), float(att.max())) if att.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0:    # min/max carry any NaN: two passes, no temporaries
        raise InputError(f"{name}: expected finite, non-negative attention")
    return att


def attended_core(attention: np.ndarray, rel: float = 0.5) -> np.ndarray:
    """(I, J, K) bool: voxels with attention at or above ``rel`` of the peak (none if no attention).

    Parameters
    ----------
    attention : (I, J, K) float
    rel : float in (0, 1]
    """
    if not 0 < rel <= 1:
        raise InputError(f"rel: expected a value in (0, 1], got {rel}")
    peak = float(np.max(attention)) if attention.size else 0.0
    if not peak > 0:
        return np.zeros(attention.shape, dtype=bool)
    return attention >= rel * peak


def _inputs(array, attention, negative, rel_seed: float):
    """The image as float32 and the positive and negative attended cores (the latter None if absent)."""
    img = np.asarray(array, dtype=np.float32)
    att = _check(img, attention, "attention")
    neg = attended_core(_check(img, negative, "negative"), rel_seed) if negative is not None else None
    return img, att, attended_core(att, rel_seed), neg


def _seed_voxels(core: np.ndarray, max_seeds: int) -> np.ndarray:
    """(s, 3) int: up to ``max_seeds`` voxels spread evenly over the core (deterministic)."""
    idx = np.argwhere(core)
    if len(idx) > max_seeds:
        idx = idx[np.linspace(0, len(idx) - 1, max_seeds).round().astype(int)]
    return idx


def _keep_seeded(region: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The connected components (6-connected) of ``region`` that hold a seed voxel."""
    from scipy import ndimage

    lab, _ = ndimage.label(region)
    keep = np.unique(lab[tuple(seeds.T)]) if len(seeds) else np.zeros(0, int)
    keep = keep[keep > 0]
    return np.isin(lab, keep)


def within_reach(attention: np.ndarray, spacing, reach_mm: float) -> np.ndarray:
    """(I, J, K) bool: voxels within ``reach_mm`` of the looked-at zone (attention >= 1 % of the peak).

    Intensity alone cannot tell touching soft-tissue organs apart on CT; like the
    viewer's flood fill, the growers stay near what was looked at.
    """
    from scipy import ndimage

    zone = attention >= 0.01 * float(np.max(attention))
    if not zone.any():
        return zone
    return ndimage.distance_transform_edt(~zone, sampling=np.asarray(spacing, dtype=np.float64)) <= reach_mm


def confidence_connected(array, attention, negative=None, *, spacing=(1.0, 1.0, 1.0),
                         reach_mm: float = 15.0, multiplier: float = 2.5, iterations: int = 3,
                         radius: int = 1, rel_seed: float = 0.5, max_seeds: int = 64) -> np.ndarray:
    """Region grown by SimpleITK ``ConfidenceConnected`` from the attended core.

    Parameters
    ----------
    array : (I, J, K) float
        Image intensities.
    attention : (I, J, K) float
        Attention of the positive fixations.
    negative : (I, J, K) float, optional
        Attention of the negative fixations: their attended core is removed.
    spacing : (3,) float
        Voxel size (mm).
    reach_mm : float
        The region stays within this distance of the looked-at zone
        (:func:`within_reach`, as the viewer's flood fill).
    multiplier, iterations, radius : float, int, int
        ``ConfidenceConnected`` parameters (interval width in standard
        deviations, re-estimations, initial neighbourhood radius in voxels).
    rel_seed : float
        Seeds: voxels with attention >= this fraction of the peak.
    max_seeds : int
        At most this many seeds, spread over the core.

    Returns
    -------
    (I, J, K) bool
    """
    sitk = optional_import("SimpleITK", "io")
    img, att, core, neg = _inputs(array, attention, negative, rel_seed)
    if not core.any():
        return np.zeros(img.shape, dtype=bool)
    seeds = _seed_voxels(core, max_seeds)
    image = sitk.GetImageFromArray(np.ascontiguousarray(img))      # numpy (i, j, k) = ITK (z, y, x)
    seg = sitk.ConfidenceConnected(image, seedList=[tuple(int(v) for v in s[::-1]) for s in seeds],
                                   numberOfIterations=int(iterations), multiplier=float(multiplier),
                                   initialNeighborhoodRadius=int(radius), replaceValue=1)
    region = (sitk.GetArrayFromImage(seg).astype(bool) & within_reach(att, spacing, reach_mm)) | core
    if neg is not None:
        region &= ~neg
        seeds = seeds[~neg[tuple(seeds.T)]]
    return _keep_seeded(region, seeds)


def _box(mask: np.ndarray, margin_vox: np.ndarray) -> Tuple[slice, ...]:
    """The bounding box of ``mask`` (not empty) grown by ``margin_vox`` (3,), clipped to the grid."""
    out = []
    for ax in range(3):      # projections, not argwhere: a 256^3 mask costs a few ms
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        lo = max(int(hit[0]) - int(margin_vox[ax]), 0)
        hi = min(int(hit[-1]) + int(margin_vox[ax]) + 1, mask.shape[ax])
        out.append(slice(lo, hi))
    return tuple(out)


def random_walk(array, attention, negative=None, *, spacing=(1.0, 1.0, 1.0), beta: float = 130.0,
                rel_seed: float = 0.5, margin_mm: float = 30.0, tol: float = 1e-2,
                probability: bool = False) -> np.ndarray:
    """Random-walker segmentation (scikit-image) seeded by attention, on a box around the gaze.

    Parameters
    ----------
    array : (I, J, K) float
        Image intensities.
    attention : (I, J, K) float
        Attention of the positive fixations; the object seeds are its core.
    negative : (I, J, K) float, optional
        Attention of the negative fixations; background seeds are its core.
    spacing : (3,) float
        Voxel size (mm): the walk and the margin are anisotropy-aware.
    beta : float
        Edge sensitivity of the walk (scikit-image's ``beta``).
    rel_seed : float
        Seed cores: attention >= this fraction of the peak.
    margin_mm : float
        The walk runs in the box around the looked-at zone (attention >= 1 %
        of the peak, and the negative cores) grown by this much; its voxels at
        least this far from the zone are background seeds.
    tol : float
        Tolerance of the Jacobi-preconditioned conjugate-gradient solve
        (1e-2: a mask changes by a handful of boundary voxels against 1e-3,
        at a fifth of the time).
    probability : bool
        Return the walk's object probability instead of the mask (the volume
        network's prior input).

    Returns
    -------
    (I, J, K) bool, or with ``probability`` (I, J, K) float32 in [0, 1]
    (0 outside the box, 1 on the positive core)
    """
    segmentation = optional_import("skimage.segmentation", "io")
    img, att, core, neg = _inputs(array, attention, negative, rel_seed)
    if not core.any():
        return np.zeros(img.shape, dtype=np.float32 if probability else bool)
    spacing = np.asarray(spacing, dtype=np.float64)
    zone = att >= 0.01 * att.max()
    if neg is not None:
        zone |= neg
    box = _box(zone, np.ceil(margin_mm / spacing).astype(int))
    from scipy import ndimage

    labels = np.zeros(img[box].shape, dtype=np.int32)
    # the prior: the object lies within margin_mm of what was looked at, so the
    # box's voxels farther than that are background seeds (they also tell the
    # walk what background looks like)
    far = ndimage.distance_transform_edt(~zone[box], sampling=spacing) >= margin_mm
    labels[far] = 2
    if neg is not None:
        labels[neg[box]] = 2
    labels[core[box]] = 1
    out = np.zeros(img.shape, dtype=np.float32 if probability else bool)
    if not (labels == 2).any():       # nothing says what background looks like: the core alone
        out[core] = True
        return out
    with warnings.catch_warnings():
        # at this tolerance a few probabilities land just outside [0, 1]; the argmax is unaffected
        warnings.filterwarnings("ignore", message="The probability range is outside")
        walk = segmentation.random_walker(img[box], labels, beta=float(beta), mode="cg_j", tol=float(tol),
                                          spacing=tuple(spacing), return_full_prob=probability)
    if probability:
        out[box] = np.clip(walk[0], 0.0, 1.0)
    else:
        out[box] = walk == 1
    return out


def _block_reduce(a: np.ndarray, f: Tuple[int, int, int], how: str) -> np.ndarray:
    """(ceil(I/f0), ceil(J/f1), ceil(K/f2)): block mean (``how="mean"``) or max, edge-padded."""
    pad = [(0, (-n) % k) for n, k in zip(a.shape, f)]
    if any(p[1] for p in pad):
        a = np.pad(a, pad, mode="edge")
    b = a.reshape(a.shape[0] // f[0], f[0], a.shape[1] // f[1], f[1], a.shape[2] // f[2], f[2])
    # one axis at a time, the contiguous one first: each pass shrinks the array (3x faster than one
    # multi-axis reduction here)
    if how == "mean":
        return b.sum(axis=5).sum(axis=3).sum(axis=1) / float(np.prod(f))
    return b.max(axis=5).max(axis=3).max(axis=1)


def _upsample_linear(coarse: np.ndarray, f: Tuple[int, int, int], shape) -> np.ndarray:
    """(shape) float32: ``coarse`` (block centres of :func:`_block_reduce`) interpolated linearly
    per axis onto the fine voxels (edges held)."""
    out = coarse.astype(np.float32)
    for ax in range(3):
        n_c, k = out.shape[ax], f[ax]
        x = (np.arange(shape[ax]) + 0.5) / k - 0.5           # fine voxel centres in coarse index units
        x = np.clip(x, 0, n_c - 1)
        i0 = np.floor(x).astype(int)
        i1 = np.minimum(i0 + 1, n_c - 1)
        w = (x - i0).astype(np.float32)
        sh = [1, 1, 1]
        sh[ax] = -1
        out = np.take(out, i0, axis=ax) * (1 - w).reshape(sh) + np.take(out, i1, axis=ax) * w.reshape(sh)
    return out


def random_walk_roi(array, attention, negative=None, *, spacing=(1.0, 1.0, 1.0),
                    max_voxels: int = ROI_MAX_VOXELS, margin_mm: float = 30.0, probability: bool = False,
                    **kw) -> np.ndarray:
    """:func:`random_walk` at interactive speed on any volume: the walk runs on the region of interest
    around the gaze, block-averaged until it has at most ``max_voxels`` voxels.

    The region of interest is :func:`random_walk`'s box (the looked-at zone
    and the negative cores grown by ``margin_mm``). When it is larger than
    ``max_voxels``, the image is block-averaged and the attention block-maxed
    (a one-voxel-thin slice of attention survives) by the smallest factor per
    axis that makes the coarse voxels about isotropic and the box fit; the
    walk's object probability is interpolated back linearly and thresholded
    at 0.5. A 256^3 volume costs the same as a small one.

    Parameters
    ----------
    array, attention, negative, spacing
        As :func:`random_walk`.
    max_voxels : int
        Voxel budget of the walk.
    margin_mm : float
        As :func:`random_walk`.
    probability : bool
        Return the walk's object probability (float32, 0 outside the box) instead of the mask.
    **kw
        ``beta``, ``rel_seed``, ``tol`` of :func:`random_walk`.

    Returns
    -------
    (I, J, K) bool, or with ``probability`` (I, J, K) float32
    """
    img = np.asarray(array)
    att, neg = np.asarray(attention), None if negative is None else np.asarray(negative)
    for name, a in (("attention", att), ("negative", neg)):
        if a is not None and a.shape != img.shape:
            raise InputError(f"{name}: expected shape {img.shape} (the volume grid), got {a.shape}")
    if int(max_voxels) < 8:
        raise InputError(f"max_voxels: expected >= 8, got {max_voxels}")
    spacing = np.asarray(spacing, dtype=np.float64)
    margin = np.ceil(margin_mm / spacing).astype(int)
    if img.size == 0:
        return np.zeros(img.shape, dtype=np.float32 if probability else bool)
    # the box of the looked-at zone (attention >= 1 % of the peak) and the negative cores, from maxima:
    # along k over the whole grid (NaN and inf show in it), then along i and j over the k-slab the zone
    # spans only, so a 256^3 volume costs about one pass and no whole-grid temporary. Values outside
    # the box cannot change the result; inside it they are checked (finite, >= 0) by random_walk.
    hot = None
    for name, a, rel in (("attention", att, 0.01), ("negative", neg, kw.get("rel_seed", 0.5))):
        if a is None:
            continue
        pk = a.max(axis=(0, 1))
        if not np.all(np.isfinite(pk)):
            raise InputError(f"{name}: expected finite, non-negative attention")
        top = float(pk.max())
        if a is att and not top > 0:
            return np.zeros(img.shape, dtype=np.float32 if probability else bool)
        if not top > 0:
            continue
        ks = np.flatnonzero(pk >= rel * top)
        pij = a[:, :, ks[0]:ks[-1] + 1].max(axis=2) >= rel * top
        h = [pij.any(axis=1), pij.any(axis=0), pk >= rel * top]
        hot = h if hot is None else [x | y for x, y in zip(hot, h)]
    box = []
    for ax in range(3):
        hit = np.flatnonzero(hot[ax])
        box.append(slice(max(int(hit[0]) - margin[ax], 0), min(int(hit[-1]) + margin[ax] + 1, img.shape[ax])))
    box = tuple(box)
    att = _check(img[box], att[box], "attention")
    neg = None if neg is None else _check(img[box], neg[box], "negative")
    sub_shape = np.array([b.stop - b.start for b in box])
    # coarse voxel edge h (mm): the smallest that fits the budget; per axis factor round(h / spacing)
    h = float(np.cbrt(np.prod(sub_shape * spacing) / max_voxels))
    f = tuple(int(v) for v in np.maximum(1, np.round(h / spacing)))
    while np.prod(np.ceil(sub_shape / np.array(f))) > max_voxels:
        f = tuple(int(np.ceil(v * 1.25)) if v * s <= h else v for v, s in zip(f, spacing))
        h *= 1.25
    out = np.zeros(img.shape, dtype=np.float32 if probability else bool)
    if f == (1, 1, 1):
        out[box] = random_walk(img[box], att, neg, spacing=spacing, margin_mm=margin_mm,
                               probability=probability, **kw)
        return out
    c_img = _block_reduce(np.asarray(img[box], np.float32), f, "mean")
    c_att = _block_reduce(np.asarray(att, np.float32), f, "max")
    c_neg = None if neg is None else _block_reduce(np.asarray(neg, np.float32), f, "max")
    prob = random_walk(c_img, c_att, c_neg, spacing=spacing * np.array(f), margin_mm=margin_mm,
                       probability=True, **kw)
    up = _upsample_linear(prob, f, tuple(sub_shape))
    out[box] = up if probability else up >= 0.5
    return out
