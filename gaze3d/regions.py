"""Attention-seeded region growing on point clouds, meshes and volumes (core: numpy, scipy when called).

Beside the other segmenter strategies of the core (:mod:`gaze3d.volume_regions`);
the viewer (``gaze3d.viewer.regions``) and the volume baselines use it.

The fallback when no interactive model is available: start at the element
with the most attention and grow over neighbours (kNN graph for clouds,
vertex adjacency for meshes, 6-connected voxels for volumes) while the
attention stays above ``rel_threshold * max`` (and, for volumes, the
intensity stays within ``intensity_tol`` of the seed's).
"""
from __future__ import annotations

import numpy as np

from gaze3d.errors import InputError
from gaze3d.scan import Mesh, PointCloud, Volume


def _check(attention, n: int, name: str = "attention") -> np.ndarray:
    a = np.asarray(attention, dtype=np.float32).reshape(-1)
    if len(a) != n:
        raise InputError(f"{name}: expected {n} values (one per element), got {len(a)}")
    return a


def _bfs(seed: int, allowed: np.ndarray, neighbours) -> np.ndarray:
    """Boolean mask of the elements reachable from ``seed`` through ``allowed`` ones."""
    region = np.zeros(len(allowed), dtype=bool)
    region[seed] = True
    frontier = np.array([seed])
    while len(frontier):
        nb = neighbours(frontier)
        nb = nb[allowed[nb] & ~region[nb]]
        nb = np.unique(nb)
        region[nb] = True
        frontier = nb
    return region


def grow_cloud(xyz, attention, rel_threshold: float = 0.2, k: int = 8, max_radius: float | None = None) -> np.ndarray:
    """Region of a point cloud grown from the attention peak over a kNN graph.

    Parameters
    ----------
    xyz : (n, 3) float
    attention : (n,) float
    rel_threshold : float
        Points join while their attention is at least this fraction of the peak.
    k : int
        Neighbours per point in the graph.
    max_radius : float, optional
        Ignore neighbours farther than this (world units); default 4x the median kNN distance.

    Returns
    -------
    region : (n,) bool
    """
    from scipy.spatial import cKDTree

    xyz = np.asarray(xyz, dtype=np.float64)
    a = _check(attention, len(xyz))
    if not 0 < rel_threshold <= 1:
        raise InputError(f"rel_threshold: expected a value in (0, 1], got {rel_threshold}")
    peak = float(a.max())
    if not peak > 0:
        return np.zeros(len(xyz), dtype=bool)
    allowed = a >= rel_threshold * peak
    cand = np.flatnonzero(allowed)
    # graph only over the candidate points: the region cannot leave them
    tree = cKDTree(xyz[cand])
    kk = min(k + 1, len(cand))
    dist, nbr = tree.query(xyz[cand], k=kk)
    dist, nbr = dist.reshape(len(cand), kk), nbr.reshape(len(cand), kk)
    if max_radius is None:
        med = np.median(dist[:, -1]) if kk > 1 else 0.0
        max_radius = 4.0 * med if med > 0 else np.inf
    nbr = np.where(dist <= max_radius, nbr, np.arange(len(cand))[:, None])
    local = np.zeros(len(cand), dtype=bool)
    seed = int(np.argmax(a[cand]))
    sub = _bfs(seed, np.ones(len(cand), dtype=bool), lambda f: nbr[f].ravel())
    local |= sub
    region = np.zeros(len(xyz), dtype=bool)
    region[cand[local]] = True
    return region


def grow_mesh(vertices, faces, attention, rel_threshold: float = 0.2) -> np.ndarray:
    """Region of mesh vertices grown from the attention peak over edges. Returns (n,) bool."""
    from scipy.sparse import coo_matrix

    n = len(vertices)
    a = _check(attention, n)
    peak = float(a.max())
    if not peak > 0:
        return np.zeros(n, dtype=bool)
    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    indptr, indices = adj.indptr, adj.indices

    def neighbours(front):
        return np.concatenate([indices[indptr[v]:indptr[v + 1]] for v in front]) if len(front) else front

    return _bfs(int(np.argmax(a)), a >= rel_threshold * peak, neighbours)


def grow_volume(array, attention, rel_threshold: float = 0.2, intensity_tol: float | None = None,
                spacing=(1.0, 1.0, 1.0), reach_mm: float = 15.0) -> np.ndarray:
    """Flood fill (6-connected) from the voxel with the highest attention, by intensity.

    Volume attention concentrates where the gaze rays enter a structure, so the
    fill is led by intensity: voxels join while their intensity stays within
    ``intensity_tol`` of the seed's, inside the looked-at zone (voxels with
    attention >= 1 % of the peak) grown by ``reach_mm``, which keeps the fill
    from leaking into distant tissue of the same intensity.

    Parameters
    ----------
    array : (I, J, K) image intensities
    attention : (I, J, K) float
    rel_threshold : float
        The attended core (attention >= this fraction of the peak) always belongs
        to the candidates; it also sets the seed intensity.
    intensity_tol : float, optional
        Default: 3 robust standard deviations (1.4826 MAD) of the intensities of
        the attended core, at least 5 % of the image's 2nd-98th percentile range.
    spacing : (3,) float
        Voxel size in mm (for ``reach_mm``).
    reach_mm : float
        How far beyond the looked-at zone the fill may go.

    Returns
    -------
    region : (I, J, K) bool
    """
    from scipy import ndimage

    img = np.asarray(array, dtype=np.float32)
    att = np.asarray(attention, dtype=np.float32)
    if att.shape != img.shape:
        raise InputError(f"attention: expected shape {img.shape} (the volume grid), got {att.shape}")
    if not 0 < rel_threshold <= 1:
        raise InputError(f"rel_threshold: expected a value in (0, 1], got {rel_threshold}")
    peak = float(att.max())
    if not peak > 0:
        return np.zeros(img.shape, dtype=bool)
    seed = np.unravel_index(int(np.argmax(att)), att.shape)
    # intensity statistics of the attended core, robust (median, MAD): the core sits
    # where rays enter the structure, so a block around the seed would straddle its border
    core_vals = img[att >= max(rel_threshold, 0.8) * peak]
    seed_val = float(np.median(core_vals))
    if intensity_tol is None:
        lo, hi = np.percentile(img[::2, ::2, ::2], [2, 98])
        mad = float(np.median(np.abs(core_vals - seed_val)))
        intensity_tol = max(3.0 * 1.4826 * mad, 0.05 * float(hi - lo), 1e-6)
    steps = int(np.ceil(reach_mm / max(float(np.min(spacing)), 1e-6)))
    zone = att >= 0.01 * peak
    if steps > 0:
        zone = ndimage.binary_dilation(zone, iterations=steps)
    allowed = zone & (np.abs(img - seed_val) <= intensity_tol)
    allowed[seed] = True
    comp, _ = ndimage.label(allowed)
    return comp == comp[seed]


def grow_region(scan, attention, rel_threshold: float = 0.2, **kw) -> np.ndarray:
    """Attention-seeded region of any scan: (n,) bool for clouds/meshes, (I, J, K) bool for volumes."""
    if isinstance(scan, PointCloud):
        return grow_cloud(scan.xyz, attention, rel_threshold, **kw)
    if isinstance(scan, Mesh):
        return grow_mesh(scan.vertices, scan.faces, attention, rel_threshold)
    if isinstance(scan, Volume):
        kw.setdefault("spacing", scan.spacing)
        return grow_volume(scan.array, np.asarray(attention).reshape(scan.shape), rel_threshold, **kw)
    raise InputError(f"scan: expected a PointCloud, Mesh or Volume, got {type(scan).__name__}")
