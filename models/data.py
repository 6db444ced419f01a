"""The real labelled tiles used for training and evaluation, and their splits.

Tiles live in ``shared/data`` beside the repository (or ``$GAZE3D_DATA``).
Each is split in two halves along x (west = train, east = test), so a model
is never evaluated on points it was trained on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .features import point_features
from .gaze_sim import find_objects

US_FOOT = 1200.0 / 3937.0


@dataclass(frozen=True)
class TileSpec:
    path: str                      # relative to the data root
    metres_per_unit: float         # coordinates are rescaled to metres
    voxel_size: float              # metres
    object_classes: Sequence[int]  # classes whose connected components are objects
    semantic_classes: Sequence[int]


TILES = {
    "ign": TileSpec("pointcloud/ign_lidarhd/870000_6618000.subset.50mx100m.las", 1.0, 0.5, (6, 1),
                    (1, 2, 6)),
    # autzen is in US survey feet (Oregon state plane) and 5x sparser than the IGN tile
    "autzen": TileSpec("pointcloud/laspy/autzen_trim.laz", US_FOOT, 1.0, (1,), (1, 2)),
}


def data_root(root=None) -> Path:
    """``root``, else ``$GAZE3D_DATA``, else ``shared/data`` beside the repository."""
    if root is not None:
        return Path(root)
    if os.environ.get("GAZE3D_DATA"):
        return Path(os.environ["GAZE3D_DATA"])
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass
class Tile:
    """A loaded tile: metres, features, objects and the train/test split."""
    name: str
    xyz: np.ndarray          # (n, 3) float64, metres
    feats: np.ndarray        # (n, 5) float32
    labels: np.ndarray       # (n,) int32
    objects: np.ndarray      # (n,) int64, -1 = no object
    object_class: np.ndarray  # (m,) class code of each object
    train: np.ndarray        # (n,) bool, west half
    voxel_size: float
    spec: TileSpec

    def object_split(self) -> np.ndarray:
        """(m,) bool: object's centroid lies in the train half."""
        m = int(self.objects.max()) + 1
        cx = np.bincount(self.objects[self.objects >= 0], self.xyz[self.objects >= 0, 0], m)
        cx /= np.maximum(np.bincount(self.objects[self.objects >= 0], minlength=m), 1)
        return cx < np.median(self.xyz[:, 0])


def load_tile(name: str, root=None) -> Tile:
    """Load tile ``name`` (one of :data:`TILES`) with its features and objects."""
    from gaze3d.io import load_scan

    if name not in TILES:
        raise ValueError(f"name: expected one of {sorted(TILES)}, got {name!r}")
    spec = TILES[name]
    path = data_root(root) / spec.path
    if not path.is_file() and name == "ign":
        from gaze3d.demo import bundled_tile

        path = bundled_tile()  # the same tile ships with the package for the demo
    if not path.is_file():
        raise FileNotFoundError(f"tile {name}: {path} not found (set GAZE3D_DATA or pass root)")
    cloud = load_scan(path)
    xyz = (cloud.xyz - cloud.xyz.min(0)) * spec.metres_per_unit
    cloud.xyz = xyz
    feats = point_features(cloud)
    objects = np.full(len(xyz), -1, dtype=np.int64)
    classes = []
    elevated = feats[:, 0] * 10.0 > 2.0     # > 2 m above the local minimum
    for c in spec.object_classes:    # one id space over all object classes
        o = find_objects(xyz, cloud.labels, [c], voxel=max(1.0, 2 * spec.voxel_size),
                         keep=None if c == 6 else elevated)
        m = o >= 0
        objects[m] = o[m] + len(classes)
        classes += [c] * (int(o.max()) + 1 if m.any() else 0)
    return Tile(name, xyz, feats, cloud.labels, objects, np.asarray(classes, dtype=np.int64),
                xyz[:, 0] < np.median(xyz[:, 0]), spec.voxel_size, spec)
