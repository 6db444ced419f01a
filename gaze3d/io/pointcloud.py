"""PCD and XYZ-family point clouds through Open3D.

PCD goes through Open3D's tensor I/O (``open3d.t.io``), which keeps extra
fields (``intensity``, ``label``, ``attention``...). The text formats
``.xyz .xyzn .xyzrgb .pts`` go through Open3D's legacy reader, which keeps
float64 coordinates; they carry no scalar fields (written files drop them).
Open3D reports parse failures as warnings and an empty cloud, so an empty
result is reported as a corrupt, truncated or empty file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import optional_import
from ..errors import ScanFormatError
from ..scan import PointCloud
from ._common import atomic_path

TEXT_EXTENSIONS = (".xyz", ".xyzn", ".xyzrgb", ".pts")
_LABEL_KEYS = ("label", "labels", "classification", "class")


def _empty(path) -> ScanFormatError:
    return ScanFormatError(f"{path}: no points read (empty point cloud, or a corrupt or truncated file)")


def _check_finite(path, xyz: np.ndarray) -> None:
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ScanFormatError(f"{path}: {int(bad.sum())} of {len(xyz)} points have NaN/inf coordinates "
                              f"(first at point {int(np.flatnonzero(bad)[0])})")


def load_pcd(path) -> PointCloud:
    """Read a PCD file with all its fields.

    Returns
    -------
    PointCloud
        ``xyz (n, 3) float64``; ``colors``, ``normals``, ``intensity``,
        ``labels`` (a ``label`` field) where present; other fields in ``fields``.
    """
    o3d = optional_import("open3d", extra="io")
    pcd = o3d.t.io.read_point_cloud(str(path))
    if "positions" not in pcd.point or len(pcd.point["positions"]) == 0:
        raise _empty(path)
    attrs = {k: pcd.point[k].numpy() for k in pcd.point}
    xyz = attrs.pop("positions").astype(np.float64)
    _check_finite(path, xyz)
    colors = attrs.pop("colors", None)
    if colors is not None and np.issubdtype(colors.dtype, np.integer):
        colors = colors / 255.0
    normals = attrs.pop("normals", None)
    intensity = attrs.pop("intensity", None)
    labels = None
    for key in _LABEL_KEYS:
        if key in attrs and np.issubdtype(attrs[key].dtype, np.integer):
            labels = attrs.pop(key).reshape(-1)
            break
    fields = {k: v.reshape(-1) for k, v in attrs.items() if v.ndim == 1 or v.shape[1] == 1}
    return PointCloud(xyz=xyz, colors=colors, normals=normals,
                      intensity=None if intensity is None else intensity.reshape(-1),
                      labels=labels, fields=fields, source=str(path))


def save_pcd(cloud: PointCloud, path) -> None:
    """Write a binary PCD with xyz (float64), colours, normals, intensity, ``label`` and fields."""
    o3d = optional_import("open3d", extra="io")
    pcd = o3d.t.geometry.PointCloud()
    pcd.point["positions"] = o3d.core.Tensor(cloud.xyz)
    if cloud.colors is not None:
        pcd.point["colors"] = o3d.core.Tensor(cloud.colors)
    if cloud.normals is not None:
        pcd.point["normals"] = o3d.core.Tensor(cloud.normals)
    if cloud.intensity is not None:
        pcd.point["intensity"] = o3d.core.Tensor(cloud.intensity.reshape(-1, 1))
    if cloud.labels is not None:
        pcd.point["label"] = o3d.core.Tensor(cloud.labels.reshape(-1, 1))
    for name, values in cloud.fields.items():
        if name in ("positions", "colors", "normals", "intensity", "label"):
            raise ScanFormatError(f"{path}: field name {name!r} clashes with a PCD attribute")
        values = np.asarray(values)
        pcd.point[name] = o3d.core.Tensor(
            np.ascontiguousarray(values.astype(np.uint8) if values.dtype == bool else values).reshape(-1, 1))
    with atomic_path(path) as tmp:
        if not o3d.t.io.write_point_cloud(str(tmp), pcd):
            raise ScanFormatError(f"{path}: Open3D could not write the PCD file")


def load_text_cloud(path) -> PointCloud:
    """Read ``.xyz`` (x y z), ``.xyzn`` (+ normals), ``.xyzrgb`` (+ colours) or ``.pts``."""
    o3d = optional_import("open3d", extra="io")
    ext = Path(path).suffix.lower().lstrip(".")
    pcd = o3d.io.read_point_cloud(str(path), format=ext)
    xyz = np.asarray(pcd.points, dtype=np.float64)
    if len(xyz) == 0:
        raise _empty(path)
    _check_finite(path, xyz)
    return PointCloud(xyz=xyz,
                      colors=np.asarray(pcd.colors) if pcd.has_colors() else None,
                      normals=np.asarray(pcd.normals) if pcd.has_normals() else None,
                      source=str(path))


def save_text_cloud(cloud: PointCloud, path) -> None:
    """Write xyz (plus normals for ``.xyzn``, colours for ``.xyzrgb``); fields are not kept."""
    o3d = optional_import("open3d", extra="io")
    ext = Path(path).suffix.lower()
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.xyz))
    if ext == ".xyzn":
        if cloud.normals is None:
            raise ScanFormatError(f"{path}: .xyzn needs normals, the point cloud has none")
        pcd.normals = o3d.utility.Vector3dVector(cloud.normals.astype(np.float64))
    if ext == ".xyzrgb":
        if cloud.colors is None:
            raise ScanFormatError(f"{path}: .xyzrgb needs colours, the point cloud has none")
        pcd.colors = o3d.utility.Vector3dVector(cloud.colors.astype(np.float64))
    with atomic_path(path) as tmp:
        if not o3d.io.write_point_cloud(str(tmp), pcd, write_ascii=True):
            raise ScanFormatError(f"{path}: Open3D could not write the {ext} file")
