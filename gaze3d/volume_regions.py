"""Classical gaze-seeded volume segmentation, from kept libraries: the baselines a volume model must beat.

Both methods take the attention of the positive fixations (what the annotator
looked at to include) and, optionally, of the negative ones (looked at to
exclude), on the volume's grid:

``confidence_connected``
    SimpleITK's ``ConfidenceConnected`` region grower seeded at the attention
    peaks: voxels join while their intensity lies within ``multiplier``
    standard deviations of the region's mean (re-estimated ``iterations``
    times). Negative fixations cut their attended core out of the region.
``random_walk``
    scikit-image's ``random_walker`` (Grady 2006) on a box around what was
    looked at: attended cores of positive fixations are object seeds, those of
    negative fixations and the box's faces background seeds; a voxel belongs to
    the object where a random walk from it, steered by intensity edges, more
    likely reaches an object seed. Library defaults (``beta`` 130 on raw
    intensities): the kept-library baseline.
``random_walk_roi``
    The viewer's and ``gaze3d segment --method walker_roi``'s walker: the same
    walk at interactive speed on any volume (a coarse walk, then the band near
    its boundary at up to native resolution), with seeds per fixation gated by
    intensity, edge weights on intensity steps normalised by the box's spread
    (one ``beta`` for CT, MR and synthetic images), and the seeded components
    kept with their holes filled. Its settings (``ROI_*``) were chosen on the
    validation volumes (docs/volumes.md).

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

#: voxel budget of :func:`random_walk_roi`'s coarse walk (32^3: ~0.1 s on one core)
ROI_MAX_VOXELS = 32 ** 3
#: voxel budget of :func:`random_walk_roi`'s refined level (only the band near the coarse boundary is solved)
ROI_REFINE_VOXELS = 64 ** 3
#: :func:`random_walk_roi`'s edge sensitivity, on intensity steps in units of the box's robust spread
ROI_BETA = 4.0
#: :func:`random_walk_roi`'s seed cores: attention >= rel_seed of the highest within this distance (mm)
ROI_PEAK_MM = 20.0
#: :func:`random_walk_roi`'s intensity gate on seeds, in box spreads from the core's reference
ROI_GATE = 0.7


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


def _slices(hits, margin_vox, shape) -> Tuple[slice, ...]:
    """The box spanned by per-axis hit flags ``hits`` (3 bool arrays, each with a hit) grown by
    ``margin_vox`` (3,) voxels, clipped to ``shape``."""
    out = []
    for ax in range(3):
        hit = np.flatnonzero(hits[ax])
        lo = max(int(hit[0]) - int(margin_vox[ax]), 0)
        hi = min(int(hit[-1]) + int(margin_vox[ax]) + 1, shape[ax])
        out.append(slice(lo, hi))
    return tuple(out)


def _box(mask: np.ndarray, margin_vox: np.ndarray) -> Tuple[slice, ...]:
    """The bounding box of ``mask`` (not empty) grown by ``margin_vox`` (3,), clipped to the grid."""
    # projections, not argwhere: a 256^3 mask costs a few ms
    return _slices([mask.any(axis=tuple(a for a in range(3) if a != ax)) for ax in range(3)], margin_vox,
                   mask.shape)


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


def _factor(shape, spacing: np.ndarray, budget: int) -> Tuple[int, int, int]:
    """Block factor per axis: the smallest that makes the blocks about isotropic and ``shape`` fit
    ``budget`` voxels (coarse voxel edge h mm; per axis round(h / spacing))."""
    shape = np.asarray(shape)
    h = float(np.cbrt(np.prod(shape * spacing) / budget))
    f = tuple(int(v) for v in np.maximum(1, np.round(h / spacing)))
    while np.prod(np.ceil(shape / np.array(f))) > budget:
        f = tuple(int(np.ceil(v * 1.25)) if v * s <= h else v for v, s in zip(f, spacing))
        h *= 1.25
    return f


def _local_core(att: np.ndarray, spacing: np.ndarray, rel: float, peak_mm: float,
                floor: float = 0.01) -> np.ndarray:
    """(I, J, K) bool: voxels at >= ``rel`` of the highest attention within ``peak_mm`` (and >= ``floor``
    of the peak). Each fixation keeps its own core in a sum of fixations, where
    :func:`attended_core` keeps only the strongest (a second look at one place doubles its peak)."""
    from scipy import ndimage

    top = float(att.max())
    if peak_mm <= 0:
        return att >= rel * top
    size = tuple(int(v) for v in 2 * np.ceil(peak_mm / spacing) + 1)
    return (att >= rel * ndimage.maximum_filter(att, size=size, mode="nearest")) & (att >= floor * top)


def _gate(core: np.ndarray, img: np.ndarray, att: np.ndarray, scale: float, gate: float):
    """``core`` less its voxels whose intensity lies more than ``gate`` x ``scale`` from their component's
    reference (the median intensity of its most attended voxels, >= 90 % of the component's peak).

    The gaze lands up to ~0.5 deg beside its target and the attended core is ~1 deg wide, so on a small
    structure part of the core lies on the neighbouring tissue; seeding there makes both the object."""
    from scipy import ndimage

    if not core.any():
        return core, np.zeros(0)
    # on the core's bounding box: the same components, numbered in the same (raster) order; outside it
    # nothing is kept. A 256^3 volume's walk box is ~1000x the core.
    bb = _box(core, np.zeros(3, int))
    core_b, att_b, img_b = core[bb], att[bb], img[bb]
    lab, n = ndimage.label(core_b)
    idx = np.arange(1, n + 1)
    peak = np.asarray(ndimage.maximum(att_b, lab, idx))
    top = core_b & (att_b >= 0.9 * np.concatenate([[np.inf], peak])[lab])
    ref = np.asarray(ndimage.median(img_b, lab * top, idx))
    if gate <= 0:
        return core, ref
    keep = np.zeros_like(core)
    # a component whose peak voxels disagree with themselves keeps its peak
    keep[bb] = (core_b & (np.abs(img_b - np.concatenate([[0.0], ref])[lab]) <= gate * scale)) | top
    return keep, ref


def _robust_scale(img: np.ndarray) -> float:
    """The box's intensity spread: interquartile range / 1.349 (the sd of a normal), never 0."""
    q1, q3 = np.percentile(img, [25, 75])
    s = float(q3 - q1) / 1.349
    return s if s > 0 else max(float(np.std(img)), 1e-6)


def _solve(img, labels, spacing, beta: float, scale: float, tol: float) -> np.ndarray:
    """Object probability of the random walk (float32 in [0, 1]; seeds 1 / 0) with edge weights
    exp(-beta (intensity step / scale)^2) per voxel step (anisotropy kept relative to the finest axis)."""
    segmentation = optional_import("skimage.segmentation", "io")
    if not (labels == 2).any() or not (labels == 0).any():
        return (labels == 1).astype(np.float32)
    data = np.asarray(img, np.float64) / scale
    sd = float(data.std())
    # scikit-image divides beta by 10 x the image's sd and the steps by the spacing (mm): undone here, so
    # beta means the same on CT (HU), MR and any block size
    sp = np.asarray(spacing, np.float64) / float(np.min(spacing))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The probability range is outside")
        walk = segmentation.random_walker(data, labels, beta=float(beta) * 10.0 * max(sd, 1e-12), mode="cg_j",
                                          tol=float(tol), spacing=tuple(sp), return_full_prob=True)
    return np.clip(walk[0], 0.0, 1.0).astype(np.float32)


def random_walk_roi(array, attention, negative=None, *, spacing=(1.0, 1.0, 1.0),
                    max_voxels: int = ROI_MAX_VOXELS, refine_voxels: int = ROI_REFINE_VOXELS,
                    margin_mm: float = 30.0, beta: float = ROI_BETA, rel_seed: float = 0.5,
                    peak_mm: float = ROI_PEAK_MM, gate: float = ROI_GATE, tol: float = 1e-2,
                    reach_mm: float = 0.0, reach_gate: float = 1.0,
                    clean: bool = True, probability: bool = False) -> np.ndarray:
    """The random walker seeded by attention, at interactive speed on any volume.

    The volume network's prior, and the viewer's ``--segmenter walker``.

    The walk runs on the region of interest around the gaze (the looked-at
    zone, attention >= 1 % of the peak, and the negative cores, grown by
    ``margin_mm``), in two levels when that box is large: a coarse walk on at
    most ``max_voxels`` block averages, then the same walk at the finest
    resolution that fits ``refine_voxels`` (native where it fits) on the band of
    voxels near the coarse boundary only, seeded by the coarse inside and
    outside. The probability is interpolated back linearly and thresholded at
    0.5. A 256^3 volume costs about the same as a small one.

    Seeds (on each level): object = each positive fixation's attended core
    (attention >= ``rel_seed`` of the highest within ``peak_mm``: every fixation
    of a sum counts), less the voxels whose intensity lies more than ``gate``
    box spreads from that core's most attended voxels; background = the
    negative fixations' cores (gated the same way) and the box's voxels at least
    ``margin_mm`` from the looked-at zone. Edge weights are
    exp(-``beta`` (step / s)^2) with s the box's robust intensity spread
    (IQR / 1.349), so one ``beta`` serves CT in HU, MR and synthetic images.
    ``clean``: the mask keeps only its components that hold an object seed,
    with their holes filled.

    Parameters
    ----------
    array : (I, J, K) float
        Image intensities.
    attention : (I, J, K) float
        Attention of the positive fixations.
    negative : (I, J, K) float, optional
        Attention of the negative fixations.
    spacing : (3,) float
        Voxel size (mm).
    max_voxels : int
        Voxel budget of the coarse walk.
    refine_voxels : int
        Voxel budget of the refined level (0: no refinement, the coarse walk's
        probability is interpolated).
    margin_mm, beta, rel_seed, peak_mm, gate, tol
        As above; ``tol`` is the conjugate-gradient tolerance.
    reach_mm, reach_gate : float
        With ``reach_mm > margin_mm``: voxels within ``reach_gate`` box spreads
        of a core's reference intensity are background seeds only from
        ``reach_mm`` on (the box grows to it), so a large homogeneous structure
        can extend past the margin. Off by default: it lost Dice on the frog
        validation volume (docs/volumes.md).
    clean : bool
        Keep the seeded components, fill their holes.
    probability : bool
        Return the walk's object probability (float32, 0 outside the box; 0 on
        the components ``clean`` drops, 1 in the holes it fills) instead of the
        mask.

    Returns
    -------
    (I, J, K) bool, or with ``probability`` (I, J, K) float32; ``probability >= 0.5`` is the mask.
    """
    from scipy import ndimage

    img = np.asarray(array)
    att, neg = np.asarray(attention), None if negative is None else np.asarray(negative)
    for name, a in (("attention", att), ("negative", neg)):
        if a is not None and a.shape != img.shape:
            raise InputError(f"{name}: expected shape {img.shape} (the volume grid), got {a.shape}")
    if int(max_voxels) < 8:
        raise InputError(f"max_voxels: expected >= 8, got {max_voxels}")
    spacing = np.asarray(spacing, dtype=np.float64)
    margin = np.ceil(max(margin_mm, reach_mm) / spacing).astype(int)
    empty = np.zeros(img.shape, dtype=np.float32 if probability else bool)
    if img.size == 0:
        return empty
    # the box of the looked-at zone (attention >= 1 % of the peak) and the negative cores, from maxima:
    # along k over the whole grid (NaN and inf show in it), then along i and j over the k-slab the zone
    # spans only, so a 256^3 volume costs about one pass and no whole-grid temporary. Values outside
    # the box cannot change the result; inside it they are checked (finite, >= 0).
    hot = None
    for name, a, rel in (("attention", att, 0.01), ("negative", neg, rel_seed)):
        if a is None:
            continue
        pk = a.max(axis=(0, 1))
        if not np.all(np.isfinite(pk)):
            raise InputError(f"{name}: expected finite, non-negative attention")
        top = float(pk.max())
        if a is att and not top > 0:
            return empty
        if not top > 0:
            continue
        ks = np.flatnonzero(pk >= rel * top)
        pij = a[:, :, ks[0]:ks[-1] + 1].max(axis=2) >= rel * top
        h = [pij.any(axis=1), pij.any(axis=0), pk >= rel * top]
        hot = h if hot is None else [x | y for x, y in zip(hot, h)]
    box = _slices(hot, margin, img.shape)
    sub_img = np.asarray(img[box], np.float32)
    att = _check(sub_img, att[box], "attention")
    neg = None if neg is None else _check(sub_img, neg[box], "negative")
    if neg is not None and not neg.max() > 0:
        neg = None
    sub_shape = sub_img.shape
    # the finest level walked (native where the box fits refine_voxels), and the coarse level above it
    g = _factor(sub_shape, spacing, max(int(refine_voxels), int(max_voxels)))
    levels = [(sub_img, att, neg)] if g == (1, 1, 1) else \
        [(_block_reduce(sub_img, g, "mean"), _block_reduce(np.asarray(att, np.float32), g, "max"),
          None if neg is None else _block_reduce(np.asarray(neg, np.float32), g, "max"))]
    fine_shape, sp_g = levels[0][0].shape, spacing * np.array(g)
    f2 = _factor(fine_shape, sp_g, int(max_voxels)) if refine_voxels else (1, 1, 1)
    if f2 != (1, 1, 1):
        levels.append(tuple(None if a is None else _block_reduce(a, f2, "max" if k else "mean")
                            for k, a in enumerate(levels[0])))
    scale = _robust_scale(levels[-1][0])
    prob, pos_core = None, None
    for lev, (l_img, l_att, l_neg) in reversed(list(enumerate(levels))):
        sp = sp_g * (np.array(f2) if lev else 1)
        core, refs = _gate(_local_core(l_att, sp, rel_seed, peak_mm), l_img, l_att, scale, gate)
        neg_core = None
        if l_neg is not None:
            neg_core = _gate(_local_core(l_neg, sp, rel_seed, peak_mm), l_img, l_neg, scale, gate)[0]
        labels = np.zeros(l_img.shape, dtype=np.int32)
        solve_box = tuple(slice(0, n) for n in l_img.shape)
        if prob is None:
            # the prior: the object lies within margin_mm of what was looked at (attention >= 1 % of the
            # peak, and the negative cores), so the box's voxels farther than that are background seeds
            # (they also tell the walk what background looks like)
            zone = l_att >= 0.01 * float(l_att.max())
            if neg_core is not None:
                zone |= neg_core
            dist = ndimage.distance_transform_edt(~zone, sampling=sp)
            far = dist >= margin_mm
            if reach_mm > margin_mm and len(refs):
                # voxels like the object (within reach_gate spreads of a core's reference) may lie farther
                like = np.min(np.abs(l_img[..., None] - refs), axis=-1) <= reach_gate * scale
                far &= ~like | (dist >= reach_mm)
            labels[far] = 2
        else:
            # the refined level: seeds from the coarse walk, more than one coarse voxel from its boundary;
            # only the band between is solved
            coarse = prob >= 0.5
            inside = _repeat(ndimage.binary_erosion(coarse, border_value=1), f2, l_img.shape)
            outside = ~_repeat(ndimage.binary_dilation(coarse), f2, l_img.shape)
            labels[outside] = 2
            labels[inside] = 1
            band = labels == 0
            if band.any():
                solve_box = _box(band, np.ones(3, int))
        if neg_core is not None:
            labels[neg_core] = 2
        labels[core] = 1
        p = np.asarray(labels == 1, np.float32)
        p[solve_box] = _solve(l_img[solve_box], labels[solve_box], sp, beta, scale, tol)
        prob, pos_core = p, core
    if g != (1, 1, 1):
        prob = _upsample_linear(prob, g, sub_shape)
        pos_core = _repeat(pos_core, g, sub_shape)
    if clean:
        mask = prob >= 0.5
        if mask.any():
            # on the mask's box grown by one voxel: its components are the same, and a background voxel
            # there reaches the box's border exactly when it reaches the whole grid's (the grown layer is
            # background), so the holes are the same; a 256^3 volume's box costs several times this
            bb = _box(mask, np.ones(3, int))
            m = mask[bb]
            kept = ndimage.binary_fill_holes(_keep_seeded(m, np.argwhere(pos_core[bb] & m)))
            prob[bb] = np.where(kept & ~m, 1.0, np.where(m & ~kept, 0.0, prob[bb]))
    out = empty
    out[box] = prob if probability else prob >= 0.5
    return out


def _repeat(a: np.ndarray, f, shape) -> np.ndarray:
    """``a`` on the blocks of :func:`_block_reduce` (factor ``f``) repeated onto the fine grid ``shape``."""
    for ax in range(3):
        a = np.repeat(a, f[ax], axis=ax)
    return a[:shape[0], :shape[1], :shape[2]]
