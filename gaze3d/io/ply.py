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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import ScanFormatError
from ..scan import Mesh, PointCloud
from ._common import atomic_path

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int",
                 "u4": "uint", "f4": "float", "f8": "double"}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_LABEL_NAMES = ("label", "labels", "class", "classification")
_INTENSITY_NAMES = ("intensity",)
_FACE_LISTS = ("vertex_indices", "vertex_index")
_COLOR_NAMES = (("red", "green", "blue"), ("diffuse_red", "diffuse_green", "diffuse_blue"), ("r", "g", "b"))
_MAX_HEADER = 1 << 20
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass
class _Property:
    name: str
    dtype: str                    # numpy type code without byte order
    count_dtype: Optional[str] = None   # set for list properties


@dataclass
class _Element:
    name: str
    count: int
    properties: List[_Property] = field(default_factory=list)


@dataclass
class PlyData:
    """The parsed content of a PLY file.

    Attributes
    ----------
    elements : dict of str -> dict of str -> array
        Per element (``vertex``, ``face``...), its properties: scalar
        properties as ``(count,)`` arrays, list properties as ``(count, k)``
        arrays when every list has length ``k``, else as a list of arrays.
    comments : list of str
    """

    elements: Dict[str, Dict[str, object]]
    comments: List[str]


# ---------------------------------------------------------------- reading
def _parse_header(path: Path, raw: bytes):
    if not raw.startswith(b"ply"):
        raise ScanFormatError(f"{path}: not a PLY file (missing 'ply' magic line)")
    end = raw.find(b"end_header", 0, _MAX_HEADER)
    if end < 0:
        raise ScanFormatError(f"{path}: corrupt or truncated PLY file (no 'end_header' line)")
    newline = raw.find(b"\n", end)
    body_start = len(raw) if newline < 0 else newline + 1
    lines = raw[:end].decode("ascii", errors="replace").splitlines()[1:]
    fmt, elements, comments = None, [], []
    for number, line in enumerate(lines, start=2):
        words = line.split()
        if not words:
            continue
        key = words[0]
        try:
            if key == "format":
                fmt = words[1]
                if fmt not in _FORMATS:
                    raise ScanFormatError(f"{path}: unsupported PLY format {fmt!r} "
                                          f"(expected one of {', '.join(_FORMATS)})")
            elif key in ("comment", "obj_info"):
                comments.append(line.split(None, 1)[1] if len(words) > 1 else "")
            elif key == "element":
                elements.append(_Element(words[1], int(words[2])))
                if elements[-1].count < 0:
                    raise ValueError("negative element count")
            elif key == "property":
                if not elements:
                    raise ValueError("property before any element")
                if words[1] == "list":
                    prop = _Property(words[4], _TYPES[words[3]], _TYPES[words[2]])
                else:
                    prop = _Property(words[2], _TYPES[words[1]])
                elements[-1].properties.append(prop)
            else:
                raise ValueError(f"unknown keyword {key!r}")
        except (IndexError, KeyError, ValueError) as exc:
            raise ScanFormatError(f"{path}: bad PLY header line {number} {line.strip()!r} ({exc})") from None
    if fmt is None:
        raise ScanFormatError(f"{path}: bad PLY header (no 'format' line)")
    return fmt, elements, comments, body_start


def _read_binary_element(path, el: _Element, raw: bytes, pos: int, order: str):
    props = el.properties
    short = f"{path}: corrupt or truncated PLY file (element {el.name!r}: "
    if not any(p.count_dtype for p in props):
        dtype = np.dtype([(p.name, order + p.dtype) for p in props])
        need = dtype.itemsize * el.count
        if pos + need > len(raw):
            raise ScanFormatError(short + f"needs {need} bytes, {len(raw) - pos} left)")
        arr = np.frombuffer(raw, dtype=dtype, count=el.count, offset=pos)
        return {p.name: arr[p.name].astype(p.dtype) for p in props}, pos + need
    if el.count == 0:
        return {p.name: np.zeros((0, 3), p.dtype) if p.count_dtype else np.zeros(0, p.dtype)
                for p in props}, pos
    # Fast path: every list has the length of the first record's lists.
    lengths, offset = [], pos
    for p in props:
        if p.count_dtype:
            if offset + np.dtype(p.count_dtype).itemsize > len(raw):
                raise ScanFormatError(short + "ends inside the first record)")
            k = int(np.frombuffer(raw, order + p.count_dtype, 1, offset)[0])
            lengths.append(k)
            offset += np.dtype(p.count_dtype).itemsize + k * np.dtype(p.dtype).itemsize
        else:
            offset += np.dtype(p.dtype).itemsize
    fields, li = [], 0
    for p in props:
        if p.count_dtype:
            fields.append((p.name + "__n", order + p.count_dtype))
            fields.append((p.name, order + p.dtype, (lengths[li],)))
            li += 1
        else:
            fields.append((p.name, order + p.dtype))
    dtype = np.dtype(fields)
    if pos + dtype.itemsize * el.count <= len(raw):
        arr = np.frombuffer(raw, dtype=dtype, count=el.count, offset=pos)
        uniform = all((arr[p.name + "__n"] == k).all()
                      for p, k in zip([q for q in props if q.count_dtype], lengths))
        if uniform:
            out = {p.name: arr[p.name].astype(p.dtype) for p in props}
            return out, pos + dtype.itemsize * el.count
    # Slow path: lists of varying length (polygons), record by record.
    out = {p.name: [] for p in props}
    for _ in range(el.count):
        for p in props:
            if p.count_dtype:
                size = np.dtype(p.count_dtype).itemsize
                if pos + size > len(raw):
                    raise ScanFormatError(short + "file ends early)")
                k = int(np.frombuffer(raw, order + p.count_dtype, 1, pos)[0])
                pos += size
                item = np.dtype(p.dtype).itemsize * k
                if pos + item > len(raw):
                    raise ScanFormatError(short + "file ends early)")
                out[p.name].append(np.frombuffer(raw, order + p.dtype, k, pos).astype(p.dtype))
                pos += item
            else:
                size = np.dtype(p.dtype).itemsize
                if pos + size > len(raw):
                    raise ScanFormatError(short + "file ends early)")
                out[p.name].append(np.frombuffer(raw, order + p.dtype, 1, pos)[0])
                pos += size
    return {p.name: (v if p.count_dtype else np.asarray(v, p.dtype)) for p, v in
            ((p, out[p.name]) for p in props)}, pos


def _read_ascii(path, elements, text_lines):
    data, line_no = {}, 0
    for el in elements:
        rows = text_lines[line_no:line_no + el.count]
        if len(rows) < el.count:
            raise ScanFormatError(f"{path}: corrupt or truncated PLY file (element {el.name!r}: "
                                  f"expected {el.count} lines, found {len(rows)})")
        line_no += el.count
        props = el.properties
        try:
            if not any(p.count_dtype for p in props):
                table = np.array([r.split() for r in rows], dtype=np.float64).reshape(el.count, len(props))
                data[el.name] = {p.name: table[:, i].astype(p.dtype) for i, p in enumerate(props)}
                continue
            out = {p.name: [] for p in props}
            for r in rows:
                words, i = r.split(), 0
                for p in props:
                    if p.count_dtype:
                        k = int(words[i])
                        out[p.name].append(np.array(words[i + 1:i + 1 + k], dtype=np.float64).astype(p.dtype))
                        if len(out[p.name][-1]) != k:
                            raise ValueError("short list")
                        i += 1 + k
                    else:
                        out[p.name].append(float(words[i]))
                        i += 1
            data[el.name] = {p.name: (_stack_lists(out[p.name]) if p.count_dtype else
                                      np.asarray(out[p.name]).astype(p.dtype)) for p in props}
        except (ValueError, IndexError) as exc:
            raise ScanFormatError(f"{path}: corrupt PLY file (element {el.name!r}: {exc})") from None
    return data


def _stack_lists(lists):
    if lists and all(len(x) == len(lists[0]) for x in lists):
        return np.stack(lists)
    return lists


def read_ply(path) -> PlyData:
    """Parse a PLY file (ascii or binary) into its elements.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    PlyData
    """
    path = Path(path)
    raw = path.read_bytes()
    fmt, elements, comments, pos = _parse_header(path, raw)
    if fmt == "ascii":
        lines = [line for line in raw[pos:].decode("ascii", errors="replace").splitlines() if line.strip()]
        data = _read_ascii(path, elements, lines)
    else:
        data = {}
        for el in elements:
            data[el.name], pos = _read_binary_element(path, el, raw, pos, _FORMATS[fmt])
    return PlyData(data, comments)


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
    xyz = np.stack([vertex.pop(c) for c in "xyz"], axis=1).astype(np.float64)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ScanFormatError(f"{path}: {int(bad.sum())} of {len(xyz)} vertices have NaN/inf "
                              f"coordinates (first at vertex {int(np.flatnonzero(bad)[0])})")
    normals = colors = intensity = labels = None
    if all(c in vertex for c in ("nx", "ny", "nz")):
        normals = np.stack([vertex.pop(c) for c in ("nx", "ny", "nz")], axis=1)
    for names in _COLOR_NAMES:
        if all(c in vertex for c in names):
            raw = [vertex.pop(c) for c in names]
            scale = 255.0 if np.issubdtype(raw[0].dtype, np.integer) else 1.0
            if raw[0].dtype == np.uint16:
                scale = 65535.0
            colors = np.stack(raw, axis=1).astype(np.float32) / scale
            break
    for alpha in ("alpha", "diffuse_alpha", "a"):
        vertex.pop(alpha, None)
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
    if lists is not None and len(lists) > 0:
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
    if code not in _NUMPY_TO_PLY:
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
    header += [f"property {_NUMPY_TO_PLY[t]} {n}" for n, _, t in columns]
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
