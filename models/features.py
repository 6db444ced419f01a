"""Per-point input features from a PointCloud: height above local ground, intensity, colour."""
from __future__ import annotations

import numpy as np

GEOMETRY_CHANNELS = 5   # height, intensity, r, g, b


def height_above_local_min(xyz: np.ndarray, cell: float) -> np.ndarray:
    """``z`` minus the lowest ``z`` in the point's ``cell x cell`` column (a cheap ground proxy)."""
    ij = np.floor((xyz[:, :2] - xyz[:, :2].min(0)) / cell).astype(np.int64)
    key = ij[:, 0] * (ij[:, 1].max() + 1) + ij[:, 1]
    _, inv = np.unique(key, return_inverse=True)
    zmin = np.full(inv.max() + 1, np.inf)
    np.minimum.at(zmin, inv, xyz[:, 2])
    return xyz[:, 2] - zmin[inv]


def point_features(cloud, ground_cell: float = 10.0, height_scale: float = 10.0) -> np.ndarray:
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
    """
    xyz = cloud.xyz
    out = np.zeros((len(xyz), GEOMETRY_CHANNELS), dtype=np.float32)
    out[:, 0] = height_above_local_min(xyz, ground_cell) / height_scale
    if cloud.intensity is not None:
        p99 = float(np.percentile(cloud.intensity, 99)) or 1.0
        out[:, 1] = np.clip(cloud.intensity / p99, 0.0, 2.0)
    if cloud.colors is not None:
        out[:, 2:5] = cloud.colors
    return out
