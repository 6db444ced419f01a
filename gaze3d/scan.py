"""Scan types: point clouds, triangle meshes and voxel volumes.

World units and axes
--------------------
* Point clouds and meshes keep the coordinates of their file, in float64
  (airborne LiDAR is in a projected CRS in metres, e.g. Lambert-93 with
  values near 6.6e6 that float32 cannot hold to the centimetre).
* Volumes live in the ITK/DICOM patient frame: **LPS, millimetres**
  (x towards the patient's Left, y Posterior, z Superior). ``Volume.affine``
  maps a voxel index ``(i, j, k, 1)`` to that frame. NIfTI files (RAS) are
  converted on load by SimpleITK, as 3D Slicer and ITK-SNAP do.
* Every scan may carry extra per-element scalar fields in ``fields``
  (``attention``, ``confidence``...), which the writers save beside xyz.

All types validate on construction and raise :class:`~gaze3d.errors.InputError`
naming the field and what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from .errors import InputError


def _check_xyz(name: str, xyz, source: str) -> np.ndarray:
    try:
        arr = np.asarray(xyz, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}{name}: expected numeric coordinates ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{source}{name}: expected shape (n, 3), got {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"{source}{name}: empty (0 points)")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise InputError(
            f"{source}{name}: {int(bad.sum())} of {len(arr)} rows have NaN/inf coordinates "
            f"(first at row {int(np.flatnonzero(bad)[0])})"
        )
    return arr


def _check_per_element(name: str, values, n: int, source: str, width: int | None = None,
                       dtype=None) -> Optional[np.ndarray]:
    if values is None:
        return None
    try:
        arr = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}{name}: expected numeric values ({exc})") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{source}{name}: expected numeric values, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[0] != n or (width is None and arr.ndim != 1) or (
            width is not None and (arr.ndim != 2 or arr.shape[1] != width)):
        want = f"({n},)" if width is None else f"({n}, {width})"
        raise InputError(f"{source}{name}: expected shape {want}, got {arr.shape}")
    return arr


def _check_colors(colors, n: int, source: str) -> Optional[np.ndarray]:
    """Colours as (n, 3) float32 in [0, 1]; 8-bit (uint8) and 16-bit (uint16) integers are scaled."""
    if colors is None:
        return None
    raw = np.asarray(colors)
    if raw.dtype == np.uint8 or raw.dtype == np.uint16:
        raw = raw / float(np.iinfo(raw.dtype).max)
    arr = _check_per_element("colors", raw, n, source, 3, np.float32)
    if arr.size and (not np.isfinite(arr).all() or arr.min() < -1e-6 or arr.max() > 1 + 1e-6):
        raise InputError(f"{source}colors: expected values in [0, 1] (or uint8/uint16 integers), "
                         f"got range [{np.nanmin(arr):.4g}, {np.nanmax(arr):.4g}]")
    return arr


def _prefix(source: str | None) -> str:
    return f"{source}: " if source else ""


@dataclass(eq=False)
class PointCloud:
    """A point cloud with optional per-point attributes.

    Attributes
    ----------
    xyz : (n, 3) float64
        Point coordinates in the file's world frame.
    colors : (n, 3) float32 in [0, 1], optional
    intensity : (n,) float32, optional
    normals : (n, 3) float32, optional
    labels : (n,) int32, optional
        Class per point (LAS classification codes for LAS files).
    fields : dict of str -> (n,) array
        Extra scalar fields such as ``attention``.
    label_names : dict of int -> str
        Names of the label codes, where known.
    source : str, optional
        The path it was read from, used in error messages.
    las_source : gaze3d.io.las.LasSource, optional
        Set by the LAS reader: the file's header and raw point records, so
        that writing LAS again keeps every dimension the attributes above do
        not hold (GPS time, returns, scan angle, NIR, point format, VLRs).
        It follows the cloud through ``dataclasses.replace``; the writer uses
        it only while the cloud still has the file's points.
    """

    xyz: np.ndarray
    colors: Optional[np.ndarray] = None
    intensity: Optional[np.ndarray] = None
    normals: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    fields: Dict[str, np.ndarray] = field(default_factory=dict)
    label_names: Dict[int, str] = field(default_factory=dict)
    source: Optional[str] = None
    las_source: Optional[object] = field(default=None, repr=False)

    def __post_init__(self):
        p = _prefix(self.source)
        self.xyz = _check_xyz("xyz", self.xyz, p)
        n = len(self.xyz)
        self.colors = _check_colors(self.colors, n, p)
        self.intensity = _check_per_element("intensity", self.intensity, n, p, None, np.float32)
        self.normals = _check_per_element("normals", self.normals, n, p, 3, np.float32)
        self.labels = _check_per_element("labels", self.labels, n, p, None, np.int32)
        self.fields = {k: _check_per_element(f"fields[{k!r}]", v, n, p)
                       for k, v in self.fields.items()}

    def __len__(self) -> int:
        return len(self.xyz)

    @property
    def n_points(self) -> int:
        return len(self.xyz)

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) float64: min and max corner."""
        return np.stack([self.xyz.min(axis=0), self.xyz.max(axis=0)])

    def __repr__(self) -> str:
        extras = [k for k in ("colors", "intensity", "normals", "labels") if getattr(self, k) is not None]
        return f"PointCloud(n={len(self)}, attributes={extras + list(self.fields)}, source={self.source!r})"


@dataclass(eq=False)
class Mesh:
    """A triangle mesh.

    Attributes
    ----------
    vertices : (n, 3) float64
    faces : (m, 3) int64
        Vertex indices of each triangle.
    colors : (n, 3) float32 in [0, 1], optional
        Per-vertex colours.
    labels : (n,) int32, optional
        Per-vertex labels.
    fields : dict of str -> (n,) array
        Extra per-vertex scalar fields such as ``attention``.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    fields: Dict[str, np.ndarray] = field(default_factory=dict)
    label_names: Dict[int, str] = field(default_factory=dict)
    source: Optional[str] = None

    def __post_init__(self):
        p = _prefix(self.source)
        self.vertices = _check_xyz("vertices", self.vertices, p)
        faces = np.asarray(self.faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
            raise InputError(f"{p}faces: expected a non-empty (m, 3) integer array, got {faces.shape}")
        if not np.issubdtype(faces.dtype, np.integer):
            raise InputError(f"{p}faces: expected integer vertex indices, got {faces.dtype}")
        if faces.min() < 0 or faces.max() >= len(self.vertices):
            raise InputError(f"{p}faces: vertex indices must lie in [0, {len(self.vertices)}), "
                             f"got [{faces.min()}, {faces.max()}]")
        self.faces = faces.astype(np.int64)
        n = len(self.vertices)
        self.colors = _check_colors(self.colors, n, p)
        self.labels = _check_per_element("labels", self.labels, n, p, None, np.int32)
        self.fields = {k: _check_per_element(f"fields[{k!r}]", v, n, p)
                       for k, v in self.fields.items()}

    def __len__(self) -> int:
        return len(self.vertices)

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) float64: min and max corner."""
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    def __repr__(self) -> str:
        return f"Mesh(n_vertices={len(self)}, n_faces={len(self.faces)}, source={self.source!r})"


@dataclass(eq=False)
class Volume:
    """A 3D voxel volume (CT, MRI) in the LPS patient frame, millimetres.

    Attributes
    ----------
    array : (I, J, K) array
        Voxel values indexed ``[i, j, k]`` with ``i`` the fastest axis of the
        file (x in ITK). Note: SimpleITK's ``GetArrayFromImage`` returns
        ``[k, j, i]``; the loader transposes.
    affine : (4, 4) float64
        Maps ``(i, j, k, 1)`` to world ``(x, y, z, 1)`` in LPS millimetres:
        ``affine[:3, :3] = direction @ diag(spacing)``, ``affine[:3, 3] = origin``.
    labels : (I, J, K) int32, optional
        A label volume on the same grid.
    fields : dict of str -> (I, J, K) array
        Extra per-voxel fields such as ``attention``.
    """

    array: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    labels: Optional[np.ndarray] = None
    fields: Dict[str, np.ndarray] = field(default_factory=dict)
    label_names: Dict[int, str] = field(default_factory=dict)
    source: Optional[str] = None

    def __post_init__(self):
        p = _prefix(self.source)
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise InputError(f"{p}array: expected a 3D volume, got {arr.ndim}D with shape {arr.shape}")
        if arr.size == 0:
            raise InputError(f"{p}array: empty volume {arr.shape}")
        self.array = arr
        aff = np.asarray(self.affine, dtype=np.float64)
        if aff.shape != (4, 4) or not np.isfinite(aff).all():
            raise InputError(f"{p}affine: expected a finite (4, 4) matrix, got shape {aff.shape}")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
            raise InputError(f"{p}affine: singular (zero spacing?)")
        self.affine = aff
        for name in ["labels"]:
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v)
                if v.shape != arr.shape:
                    raise InputError(f"{p}{name}: expected shape {arr.shape} (same grid as the image), got {v.shape}")
                if not (np.issubdtype(v.dtype, np.integer) or v.dtype == bool):
                    if not np.issubdtype(v.dtype, np.floating) or not np.all(np.mod(v, 1) == 0):
                        raise InputError(f"{p}{name}: expected integer label values, got {v.dtype} "
                                         f"with fractional or non-numeric values")
                setattr(self, name, v.astype(np.int32, copy=False))
        for k, v in self.fields.items():
            if np.shape(v) != arr.shape:
                raise InputError(f"{p}fields[{k!r}]: expected shape {arr.shape}, got {np.shape(v)}")
        self.fields = {k: np.asarray(v) for k, v in self.fields.items()}

    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def spacing(self) -> np.ndarray:
        """(3,) float64: voxel size in mm along i, j, k."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def origin(self) -> np.ndarray:
        """(3,) float64: world position of voxel (0, 0, 0) in mm."""
        return self.affine[:3, 3].copy()

    @property
    def direction(self) -> np.ndarray:
        """(3, 3) float64: unit direction cosines of the i, j, k axes (columns)."""
        return self.affine[:3, :3] / self.spacing

    def index_to_world(self, ijk) -> np.ndarray:
        """Map voxel indices to world coordinates.

        Parameters
        ----------
        ijk : (n, 3) float
            Continuous voxel indices (voxel centres at integers).

        Returns
        -------
        xyz : (n, 3) float64
            LPS millimetres.
        """
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, xyz) -> np.ndarray:
        """Inverse of :meth:`index_to_world`: (n, 3) world mm -> (n, 3) float voxel indices."""
        xyz = np.asarray(xyz, dtype=np.float64)
        return (xyz - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T

    def __repr__(self) -> str:
        return (f"Volume(shape={self.shape}, spacing={np.round(self.spacing, 4).tolist()}, "
                f"labels={'yes' if self.labels is not None else 'no'}, source={self.source!r})")


Scan = (PointCloud, Mesh, Volume)
