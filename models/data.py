"""The real labelled tiles used for training and evaluation, and their splits.

Tiles live in ``shared/data`` beside the repository (or ``$GAZE3D_DATA``).
Each is split in two halves along x: the east half is the test split; in the
west half a box (:attr:`TileSpec.val_box`) is the validation split, used to
choose between trained models, and the rest trains. Points belong to the
region they lie in, objects to the region of their centroid, so a model is
never validated or tested on points it was trained on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .features import height_above_local_min, point_features
from .gaze_sim import find_objects

US_FOOT = 1200.0 / 3937.0
SPLITS = ("train", "val", "test")   # region codes 0, 1, 2


@dataclass(frozen=True)
class TileSpec:
    path: str                      # relative to the data root
    metres_per_unit: float         # coordinates are rescaled to metres
    voxel_size: float              # metres
    object_classes: Sequence[int]  # classes whose connected components are objects
    semantic_classes: Sequence[int]
    # (x0, x1, y0, y1) metres from the tile's min corner: the validation part of the west half
    val_box: Tuple[float, float, float, float]


TILES = {
    # validation: a small building (236 points) and two tree clusters; training keeps the large
    # building and five tree clusters
    "ign": TileSpec("pointcloud/ign_lidarhd/870000_6618000.subset.50mx100m.las", 1.0, 0.5, (6, 1),
                    (1, 2, 6), (14.0, 30.0, 30.0, 47.0)),
    # autzen is in US survey feet (Oregon state plane) and 5x sparser than the IGN tile;
    # validation: one of its three west tree clusters
    "autzen": TileSpec("pointcloud/laspy/autzen_trim.laz", US_FOOT, 1.0, (1,), (1, 2),
                       (0.0, 128.0, 0.0, 40.0)),
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
    """A loaded tile: metres, features, objects and the train/val/test split."""
    name: str
    xyz: np.ndarray          # (n, 3) float64, metres
    feats: np.ndarray        # (n, 5) float32
    labels: np.ndarray       # (n,) int32
    objects: np.ndarray      # (n,) int64, -1 = no object
    object_class: np.ndarray  # (m,) class code of each object
    region: np.ndarray       # (n,) int8, index into SPLITS
    x_split: float           # metres: east of it is the test half (the median x)
    voxel_size: float
    spec: TileSpec
    normals: Optional[np.ndarray] = None   # (n, 3) float32 unit, where the source has them (surface clouds)

    def in_split(self, split: str) -> np.ndarray:
        """(n,) bool: points of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        return self.region == _split_code(split)

    def object_region(self) -> np.ndarray:
        """(m,) int8: the region (index into :data:`SPLITS`) of each object's centroid."""
        m = int(self.objects.max()) + 1
        on = self.objects >= 0
        count = np.maximum(np.bincount(self.objects[on], minlength=m), 1)
        centre = np.stack([np.bincount(self.objects[on], self.xyz[on, a], m) / count
                           for a in (0, 1)], 1)
        return regions(centre, self.spec.val_box, self.x_split)

    def split_objects(self, split: str) -> np.ndarray:
        """Ids of the objects of ``split``."""
        return np.flatnonzero(self.object_region() == _split_code(split))


def _split_code(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    return SPLITS.index(split)


def regions(xy: np.ndarray, val_box, x_split: float) -> np.ndarray:
    """(n,) int8 region of each ``xy`` (n, 2): test east of ``x_split``, val inside ``val_box``."""
    x0, x1, y0, y1 = val_box
    out = np.zeros(len(xy), dtype=np.int8)
    val = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
    out[val & (xy[:, 0] < x_split)] = 1
    out[xy[:, 0] >= x_split] = 2
    return out


def load_tile(name: str, root=None, ground: str = "local-min") -> Tile:
    """Load tile ``name`` (one of :data:`TILES`) with its features (``ground``: the
    ground model of :func:`~gaze3d.models.features.point_features`) and objects."""
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
    feats = point_features(cloud, ground=ground)
    objects = np.full(len(xyz), -1, dtype=np.int64)
    classes = []
    elevated = height_above_local_min(xyz, 10.0) > 2.0     # > 2 m above the local minimum
    for c in spec.object_classes:    # one id space over all object classes
        o = find_objects(xyz, cloud.labels, [c], voxel=max(1.0, 2 * spec.voxel_size),
                         keep=None if c == 6 else elevated)
        m = o >= 0
        objects[m] = o[m] + len(classes)
        classes += [c] * (int(o.max()) + 1 if m.any() else 0)
    x_split = float(np.median(xyz[:, 0]))
    return Tile(name, xyz, feats, cloud.labels, objects, np.asarray(classes, dtype=np.int64),
                regions(xyz[:, :2], spec.val_box, x_split), x_split, spec.voxel_size, spec)
