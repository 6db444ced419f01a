"""PCD and XYZ-family point clouds through Open3D.

PCD goes through Open3D's tensor I/O (``open3d.t.io``), which keeps extra
fields (``intensity``, ``label``, ``attention``...). The text formats
``.xyz .xyzn .xyzrgb .pts`` go through Open3D's legacy reader, which keeps
float64 coordinates; they carry no scalar fields (written files drop them).
Open3D reports parse failures as warnings and an empty cloud, so an empty
result is reported as a corrupt, truncated or empty file.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from .._optional import optional_import
from ..errors import ScanFormatError
from ..scan import PointCloud
from ._common import atomic_path, check_readable, corrupt, scan_errors, too_short

TEXT_EXTENSIONS = (".xyz", ".xyzn", ".xyzrgb", ".pts")
_LABEL_KEYS = ("label", "labels", "classification", "class")


def _empty(path) -> ScanFormatError:
    return ScanFormatError(f"{path}: no points read (empty point cloud, or a corrupt or truncated file)")


def _check_finite(path, xyz: np.ndarray) -> None:
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ScanFormatError(f"{path}: {int(bad.sum())} of {len(xyz)} points have NaN/inf coordinates "
                              f"(first at point {int(np.flatnonzero(bad)[0])})")


# LZF (PCD binary_compressed) codes a back-reference of at most 264 bytes in 3 bytes.
_LZF_MAX_RATIO = 88
_PCD_MAX_HEADER = 1 << 16


def check_pcd_header(path) -> None:
    """Check a PCD header's point count against the file size, before Open3D allocates it.

    Open3D allocates ``POINTS x record`` bytes from the header (a 168-byte
    file claiming 1e12 points fails deep in its allocator), so: the FIELDS,
    SIZE, TYPE and COUNT lines must agree; ``binary`` data needs ``points x
    record`` bytes; ``ascii`` at least two characters per value;
    ``binary_compressed`` must announce ``points x record`` uncompressed bytes
    and at most 88 times its compressed size (LZF's largest expansion). A
    file without a ``DATA`` line is left to Open3D (it reads no points).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_PCD_MAX_HEADER)
    size = path.stat().st_size
    keys, pos = {}, 0
    for raw in head.split(b"\n"):
        pos += len(raw) + 1
        words = raw.decode("ascii", errors="replace").split("#")[0].split()
        if not words:
            continue
        keys[words[0].upper()] = words[1:]
        if words[0].upper() == "DATA":
            break
    else:
        return

    def bad(reason):
        return corrupt(path, "PCD", reason)

    fields, sizes = keys.get("FIELDS", []), keys.get("SIZE", [])
    counts = keys.get("COUNT", ["1"] * len(fields))
    try:
        sizes, counts = [int(x) for x in sizes], [int(x) for x in counts]
        points = int(keys["POINTS"][0]) if "POINTS" in keys else \
            int(keys["WIDTH"][0]) * int(keys.get("HEIGHT", ["1"])[0])
    except (ValueError, IndexError, KeyError):
        raise bad("header lacks POINTS (or WIDTH/HEIGHT), or SIZE/COUNT are not integers") from None
    if not fields or len(sizes) != len(fields) or len(counts) != len(fields) or \
            len(keys.get("TYPE", fields)) != len(fields):
        raise bad(f"header has {len(fields)} FIELDS, {len(sizes)} SIZE, {len(keys.get('TYPE', []))} TYPE "
                  f"and {len(counts)} COUNT entries (expected one of each per field)")
    if points < 0 or min(sizes) < 1 or min(counts) < 1 or max(sizes) > 8:
        raise bad(f"POINTS {points}, SIZE {sizes}, COUNT {counts} (expected >= 0, sizes 1 to 8, counts >= 1)")
    record, values = sum(s * c for s, c in zip(sizes, counts)), sum(counts)
    mode, left = (keys["DATA"] or [""])[0].lower(), size - pos
    if mode == "binary" and points * record > left:
        raise too_short(path, "PCD", f"header claims {points:,} points of {record} bytes",
                        points * record, left, "the data holds")
    if mode == "ascii" and points * 2 * values > left + 1:
        raise too_short(path, "PCD", f"header claims {points:,} points of {values} text values "
                                     f"(at least 2 characters each)", points * 2 * values, left,
                        "the data holds")
    if mode == "binary_compressed":
        with open(path, "rb") as fh:
            fh.seek(pos)
            sizes8 = fh.read(8)
        if len(sizes8) < 8:
            raise bad("binary_compressed data ends before its two size fields")
        packed, unpacked = struct.unpack("<II", sizes8)
        if packed > left - 8:
            raise too_short(path, "PCD", "compressed size field", packed, left - 8, "the data holds")
        if unpacked != points * record or unpacked > packed * _LZF_MAX_RATIO:
            raise bad(f"binary_compressed data unpacks to {unpacked:,} bytes; {points:,} points of "
                      f"{record} bytes need {points * record:,}, and {packed:,} LZF bytes hold at most "
                      f"{packed * _LZF_MAX_RATIO:,}")


def load_pcd(path) -> PointCloud:
    """Read a PCD file with all its fields.

    Returns
    -------
    PointCloud
        ``xyz (n, 3) float64``; ``colors``, ``normals``, ``intensity``,
        ``labels`` (a ``label`` field) where present; other fields in ``fields``.
    """
    o3d = optional_import("open3d", extra="io")
    check_pcd_header(check_readable(path))
    try:
        with _quiet(o3d):
            pcd = o3d.t.io.read_point_cloud(str(path))
    except Exception as exc:      # Open3D raises RuntimeError with its own coloured prefix
        raise corrupt(path, "PCD", _open3d_reason(exc)) from None
    if "positions" not in pcd.point or len(pcd.point["positions"]) == 0:
        raise _empty(path)
    attrs = {k: pcd.point[k].numpy() for k in pcd.point}
    with np.errstate(invalid="ignore"):     # a signalling-NaN float32 warns on the cast; reported below
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
    with scan_errors(path):
        return PointCloud(xyz=xyz, colors=colors, normals=normals,
                          intensity=None if intensity is None else intensity.reshape(-1),
                          labels=labels, fields=fields, source=str(path))


def _quiet(o3d):
    """Open3D prints ``[Open3D WARNING] Read PCD failed`` on stdout; our one-line error says it."""
    return o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error)


def _open3d_reason(exc: BaseException) -> str:
    """Open3D's message without its ANSI colours and ``[Open3D Error] (function) file:line:`` prefix."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    text = re.sub(r"^\s*\[Open3D Error\] \(.*?\) \S+:\d+: ", "", text)
    return f"{type(exc).__name__}: {text}"


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
    ext = check_readable(path).suffix.lower().lstrip(".")
    try:
        with _quiet(o3d):
            pcd = o3d.io.read_point_cloud(str(path), format=ext)
    except Exception as exc:
        raise corrupt(path, ext.upper(), _open3d_reason(exc)) from None
    xyz = np.asarray(pcd.points, dtype=np.float64)
    if len(xyz) == 0:
        raise _empty(path)
    _check_finite(path, xyz)
    with scan_errors(path):
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
