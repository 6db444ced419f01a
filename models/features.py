"""Per-point input features from a PointCloud: height above local ground, intensity, colour.

Two ground models (``ground=``), recorded in a checkpoint's metadata (``"features"``):

* ``"local-min"`` (the shipped checkpoint): ``z`` minus the lowest ``z`` of the
  point's 10 m column. Inside a roof wider than a column the roof is its own
  "ground" (height 0), and on a slope the downhill side of a column is "tall".
* ``"dtm"``: a terrain model: a progressive morphological filter on the per-cell
  minimum (windows up to 40 m, wider than most buildings; slopes up to 30 %
  kept as ground), see :func:`height_above_dtm`.
  Heights are relative to that local ground and squashed (``h / (1 + h / 10 m)``)
  so a 30 m tree is not three times "more object" than a 10 m one.
"""
from __future__ import annotations

import numpy as np

GEOMETRY_CHANNELS = 5   # height, intensity, r, g, b
GROUND_MODELS = ("local-min", "dtm")


def height_above_local_min(xyz: np.ndarray, cell: float) -> np.ndarray:
    """``z`` minus the lowest ``z`` in the point's ``cell x cell`` column (a cheap ground proxy)."""
    ij = np.floor((xyz[:, :2] - xyz[:, :2].min(0)) / cell).astype(np.int64)
    key = ij[:, 0] * (ij[:, 1].max() + 1) + ij[:, 1]
    _, inv = np.unique(key, return_inverse=True)
    zmin = np.full(inv.max() + 1, np.inf)
    np.minimum.at(zmin, inv, xyz[:, 2])
    return xyz[:, 2] - zmin[inv]


def height_above_dtm(xyz: np.ndarray, dtm_cell: float = 1.0, max_window: float = 40.0,
                     slope: float = 0.3, dh0: float = 0.3, dh_max: float = 3.0) -> np.ndarray:
    """``z`` minus a terrain model ``(n,)``, clipped at 0.

    Progressive morphological filter (Zhang et al. 2003) on the per-cell minimum:
    openings with windows growing to ``max_window``; a cell standing more than
    ``slope * (window step) + dh0`` (at most ``dh_max``) above the opening is not
    ground. Ground is filled into the other cells from the nearest ground cell,
    smoothed over 3 cells and read bilinearly at the points.
    """
    from scipy import ndimage

    lo = xyz[:, :2].min(0)
    ij = np.floor((xyz[:, :2] - lo) / dtm_cell).astype(np.int64)
    shape = tuple(ij.max(0) + 1)
    zmin = np.full(shape, np.inf)
    np.minimum.at(zmin, (ij[:, 0], ij[:, 1]), xyz[:, 2])
    empty = ~np.isfinite(zmin)
    if empty.any():   # nearest filled cell
        _, (ii, jj) = ndimage.distance_transform_edt(empty, return_indices=True)
        zmin = zmin[ii, jj]
    ground = ~empty
    surface = zmin
    prev = 1
    w = 3
    while (w - 2) * dtm_cell <= max_window:
        op = ndimage.grey_opening(surface, size=(min(w, shape[0]), min(w, shape[1])), mode="nearest")
        dh = min(slope * (w - prev) * dtm_cell + dh0, dh_max)
        ground &= ~(zmin - op > dh)
        surface, prev, w = op, w, 2 * w - 1
    if ground.any() and not ground.all():
        _, (ii, jj) = ndimage.distance_transform_edt(~ground, return_indices=True)
        dtm = zmin[ii, jj]
    else:
        dtm = surface if not ground.any() else zmin
    dtm = ndimage.uniform_filter(dtm, size=3, mode="nearest")
    # bilinear read at the points (cell centres at (i + 0.5) * cell)
    f = (xyz[:, :2] - lo) / dtm_cell - 0.5
    i0 = np.clip(np.floor(f).astype(np.int64), 0, np.array(shape) - 1)
    i1 = np.minimum(i0 + 1, np.array(shape) - 1)
    a = np.clip(f - i0, 0.0, 1.0)
    g = (dtm[i0[:, 0], i0[:, 1]] * (1 - a[:, 0]) * (1 - a[:, 1])
         + dtm[i1[:, 0], i0[:, 1]] * a[:, 0] * (1 - a[:, 1])
         + dtm[i0[:, 0], i1[:, 1]] * (1 - a[:, 0]) * a[:, 1]
         + dtm[i1[:, 0], i1[:, 1]] * a[:, 0] * a[:, 1])
    return np.maximum(xyz[:, 2] - g, 0.0)


def point_features(cloud, ground_cell: float = 10.0, height_scale: float = 10.0,
                   ground: str = "local-min") -> np.ndarray:
    """Geometry features ``(n, 5)`` float32: height/height_scale, intensity, r, g, b.

    Intensity is divided by its 99th percentile (clipped to 2); missing
    attributes are zeros, so every scan gives the same channels.

    Parameters
    ----------
    cloud : gaze3d.scan.PointCloud
    ground_cell : float
        Column size (scan units) for the local-minimum ground proxy.
    height_scale : float
        Heights are divided by this.
    ground : {"local-min", "dtm"}
        Ground model (module docstring); ``"dtm"`` also squashes the heights.
    """
    xyz = cloud.xyz
    out = np.zeros((len(xyz), GEOMETRY_CHANNELS), dtype=np.float32)
    if ground == "local-min":
        out[:, 0] = height_above_local_min(xyz, ground_cell) / height_scale
    elif ground == "dtm":
        h = height_above_dtm(xyz) if len(xyz) else np.zeros(0)
        out[:, 0] = h / (1.0 + h / height_scale) / height_scale
    else:
        raise ValueError(f"ground: expected one of {GROUND_MODELS}, got {ground!r}")
    if cloud.intensity is not None:
        p99 = float(np.percentile(cloud.intensity, 99)) or 1.0
        out[:, 1] = np.clip(cloud.intensity / p99, 0.0, 2.0)
    if cloud.colors is not None:
        out[:, 2:5] = cloud.colors
    return out
