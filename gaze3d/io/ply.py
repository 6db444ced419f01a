"""PLY reader and writer that keep every per-vertex scalar property.

Open3D's legacy reader drops properties other than xyz, normals and colours,
so gaze3d parses PLY itself (ascii, binary little and big endian). Extra
vertex properties become ``fields`` (``attention``...), a ``label``/``class``
property becomes ``labels``. CloudCompare prefixes its scalar fields with
``scalar_``; the prefix is removed on read.

Written files are binary little-endian PLY with ``x y z`` in float64 (LiDAR
coordinates need it), ``nx ny nz`` float32, ``red green blue`` uint8, then one
property per scalar field in its own dtype, and ``label`` int32. Label names
travel in a ``comment gaze3d label_names {json}`` header line. CloudCompare,
Open3D's tensor reader (``open3d.t.io.read_point_cloud``), MeshLab and
ParaView read these properties back as scalar fields.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict

import numpy as np

from ..errors import ScanFormatError
from ..scan import Mesh, PointCloud
from ._common import atomic_path, scan_errors
from ._plyparse import NUMPY_TO_PLY, PlyData, read_ply

_LABEL_NAMES = ("label", "labels", "class", "classification")
_INTENSITY_NAMES = ("intensity",)
_FACE_LISTS = ("vertex_indices", "vertex_index")
_COLOR_NAMES = (("red", "green", "blue"), ("diffuse_red", "diffuse_green", "diffuse_blue"), ("r", "g", "b"))
_ALPHA_NAMES = ("alpha", "diffuse_alpha", "a")       # the alpha of each colour triple above
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


# ------------------------------------------------------- PLY -> scan types
def _triangles(path, lists) -> np.ndarray:
    if isinstance(lists, np.ndarray):
        if lists.ndim == 2 and lists.shape[1] == 3:
            return lists.astype(np.int64)
        lists = list(lists)
    tris = []
    for poly in lists:       # fan-triangulate polygons
        if len(poly) < 3:
            raise ScanFormatError(f"{path}: face with {len(poly)} vertices (expected at least 3)")
        tris.extend((poly[0], poly[i], poly[i + 1]) for i in range(1, len(poly) - 1))
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def _label_names_from_comments(comments) -> Dict[int, str]:
    for c in comments:
        if c.startswith("gaze3d label_names "):
            try:
                return {int(k): str(v) for k, v in json.loads(c.split(" ", 2)[2]).items()}
            except (ValueError, AttributeError):
                return {}
    return {}


def ply_to_scan(path, ply: PlyData):
    """Turn parsed PLY elements into a :class:`PointCloud` (no faces) or :class:`Mesh`."""
    if "vertex" not in ply.elements:
        raise ScanFormatError(f"{path}: PLY file has no 'vertex' element")
    vertex = dict(ply.elements["vertex"])
    missing = [c for c in "xyz" if c not in vertex]
    if missing:
        raise ScanFormatError(f"{path}: PLY vertex element lacks {', '.join(missing)} "
                              f"(has {', '.join(vertex) or 'nothing'})")
    if len(vertex["x"]) == 0:
        raise ScanFormatError(f"{path}: empty point cloud (0 vertices)")
    with np.errstate(invalid="ignore"):     # a signalling-NaN float32 warns on the cast; reported below
        xyz = np.stack([vertex.pop(c) for c in "xyz"], axis=1).astype(np.float64)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ScanFormatError(f"{path}: {int(bad.sum())} of {len(xyz)} vertices have NaN/inf "
                              f"coordinates (first at vertex {int(np.flatnonzero(bad)[0])})")
    normals = colors = intensity = labels = None
    if all(c in vertex for c in ("nx", "ny", "nz")):
        normals = np.stack([vertex.pop(c) for c in ("nx", "ny", "nz")], axis=1)
    for names, alpha in zip(_COLOR_NAMES, _ALPHA_NAMES):
        if all(c in vertex for c in names):
            rgb = np.stack([vertex.pop(c) for c in names], axis=1)
            vertex.pop(alpha, None)
            if rgb.dtype == np.uint16:
                scale = 65535.0
            elif np.issubdtype(rgb.dtype, np.integer) or rgb.max() > 1.0:   # some write floats in 0..255
                scale = 255.0
            else:
                scale = 1.0
            colors = (rgb / scale).astype(np.float32)
            break
    fields = {}
    for name, values in vertex.items():
        if not isinstance(values, np.ndarray) or values.ndim != 1:
            continue    # list properties on vertices: not a scalar field
        clean = name[7:] if name.lower().startswith("scalar_") else name
        key = clean.lower()
        if key in _LABEL_NAMES and labels is None and (
                np.issubdtype(values.dtype, np.integer) or np.all(np.mod(values, 1) == 0)):
            labels = values.astype(np.int32)
        elif key in _INTENSITY_NAMES and intensity is None:
            intensity = values.astype(np.float32)
        else:
            fields[clean] = values
    label_names = _label_names_from_comments(ply.comments)
    face = ply.elements.get("face", {})
    lists = next((face[k] for k in _FACE_LISTS if k in face), None)
    src = str(path)
    with scan_errors(path):                 # e.g. a face index past the last vertex
        if lists is not None and len(lists) > 0:
            if intensity is not None:          # meshes have no intensity slot: keep it as a field
                fields.setdefault("intensity", intensity)
            return Mesh(vertices=xyz, faces=_triangles(path, lists), colors=colors, labels=labels,
                        fields=fields, label_names=label_names, source=src)
        return PointCloud(xyz=xyz, colors=colors, intensity=intensity, normals=normals, labels=labels,
                          fields=fields, label_names=label_names, source=src)


def load_ply(path):
    """Read a PLY point cloud or mesh, keeping extra vertex properties.

    Returns
    -------
    PointCloud or Mesh
        A :class:`Mesh` when the file has a non-empty ``face`` element.
    """
    return ply_to_scan(path, read_ply(path))


# ---------------------------------------------------------------- writing
def _ply_dtype(path, name, values) -> np.dtype:
    values = np.asarray(values)
    if values.dtype == bool:
        return np.dtype("u1")
    code = values.dtype.str[1:]
    if code not in NUMPY_TO_PLY:
        if np.issubdtype(values.dtype, np.integer):
            return np.dtype("i4")
        if np.issubdtype(values.dtype, np.floating):
            return np.dtype("f8")
        raise ScanFormatError(f"{path}: field {name!r} has dtype {values.dtype}, "
                              f"expected a numeric scalar per vertex")
    if code == "i8" or code == "u8":
        return np.dtype("i4")
    return np.dtype(code)


def save_ply(scan, path) -> None:
    """Write a :class:`PointCloud` or :class:`Mesh` as binary little-endian PLY.

    Parameters
    ----------
    scan : PointCloud or Mesh
        Per-vertex ``fields`` are written as extra properties, ``labels`` as
        an ``int`` property named ``label``.
    path : str or Path
        Written atomically.
    """
    from .. import __version__

    path = Path(path)
    is_mesh = isinstance(scan, Mesh)
    xyz = scan.vertices if is_mesh else scan.xyz
    columns = [("x", xyz[:, 0], "f8"), ("y", xyz[:, 1], "f8"), ("z", xyz[:, 2], "f8")]
    normals = None if is_mesh else scan.normals
    if normals is not None:
        columns += [(c, normals[:, i], "f4") for i, c in enumerate(("nx", "ny", "nz"))]
    if scan.colors is not None:
        rgb = np.clip(np.round(scan.colors * 255.0), 0, 255)
        columns += [(c, rgb[:, i], "u1") for i, c in enumerate(("red", "green", "blue"))]
    intensity = None if is_mesh else scan.intensity
    if intensity is not None:
        columns.append(("intensity", intensity, "f4"))
    reserved = {c[0] for c in columns} | {"label"}
    for name, values in scan.fields.items():
        if not _NAME_OK.match(name) or name in reserved:
            raise ScanFormatError(f"{path}: field name {name!r} cannot be a PLY property "
                                  f"(use letters, digits and _; not one of {sorted(reserved)})")
        columns.append((name, values, _ply_dtype(path, name, values).str[1:]))
    if scan.labels is not None:
        columns.append(("label", scan.labels, "i4"))
    vertex = np.empty(len(xyz), dtype=[(n, "<" + t) for n, _, t in columns])
    for name, values, _ in columns:
        vertex[name] = values
    header = ["ply", "format binary_little_endian 1.0", f"comment generated by gaze3d {__version__}"]
    if scan.label_names:
        header.append("comment gaze3d label_names "
                      + json.dumps({str(k): v for k, v in sorted(scan.label_names.items())}))
    header.append(f"element vertex {len(xyz)}")
    header += [f"property {NUMPY_TO_PLY[t]} {n}" for n, _, t in columns]
    if is_mesh:
        header += [f"element face {len(scan.faces)}", "property list uchar int vertex_indices"]
    header.append("end_header")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vertex.tobytes())
        if is_mesh:
            faces = np.empty(len(scan.faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
            faces["n"] = 3
            faces["v"] = scan.faces
            fh.write(faces.tobytes())
