"""VTK XML PolyData (``.vtp``) writer: point clouds and meshes that VTK readers keep whole.

VTK's PLY reader (ParaView, PyVista's ``pyvista.read("x.ply")``) keeps only
xyz, normals, colours and texture coordinates, and reads xyz as float32
(Lambert-93 northings near 6.6e6 m lose ~0.25 m). A ``.vtp`` file carries
float64 points and every per-point array, so ParaView and PyVista show
``attention``, ``label`` and the other fields as point data.

Written with numpy and the standard library only (the core never imports
VTK): one XML header, then the arrays as *appended raw* binary blocks, each
preceded by its byte count as a little-endian UInt64 (``header_type``).

Layout::

    Points                 Float64, 3 components (the file's coordinates)
    Verts (clouds)         one vertex cell per point, so ParaView draws them
    Polys (meshes)         the triangles
    PointData
      RGB                  UInt8, 3 components (colours, if any)
      Normals              Float32, 3 components (clouds with normals)
      intensity            Float32 (clouds with intensity)
      <field>              one array per field, its own dtype (bool -> UInt8)
      label                Int32 (labels, if any)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import ScanFormatError
from ..scan import Mesh
from ._common import atomic_path

# numpy dtype (little-endian) -> VTK XML type name
_VTK_TYPES = {"i1": "Int8", "u1": "UInt8", "i2": "Int16", "u2": "UInt16", "i4": "Int32", "u4": "UInt32",
              "i8": "Int64", "u8": "UInt64", "f4": "Float32", "f8": "Float64"}
_RESERVED = ("RGB", "Normals", "intensity", "label")


def _array(path, name: str, values) -> np.ndarray:
    """``values`` as a little-endian array VTK can type (bool -> uint8, float16 -> float32)."""
    values = np.asarray(values)
    if values.dtype == bool:
        values = values.astype(np.uint8)
    elif values.dtype == np.float16:
        values = values.astype(np.float32)
    code = values.dtype.str[1:]
    if code not in _VTK_TYPES:
        raise ScanFormatError(f"{path}: field {name!r} has dtype {values.dtype}, expected a numeric scalar "
                              f"per point (VTK types: {' '.join(_VTK_TYPES)})")
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))


def save_vtp(scan, path) -> None:
    """Write a :class:`PointCloud` or :class:`Mesh` as VTK XML PolyData (binary, appended raw).

    Parameters
    ----------
    scan : PointCloud or Mesh
        Points ``(n, 3) float64``; per-point colours, normals, intensity,
        ``fields`` and ``labels`` become point-data arrays (see the module
        docstring); label names go in a ``gaze3d_label_names`` field-data
        array (JSON as UInt8 bytes).
    path : str or Path
        Written atomically.
    """
    path = Path(path)
    is_mesh = isinstance(scan, Mesh)
    xyz = scan.vertices if is_mesh else scan.xyz
    n = len(xyz)
    point_data: List[Tuple[str, np.ndarray, int]] = []     # (name, array, components)
    if scan.colors is not None:
        point_data.append(("RGB", np.clip(np.round(scan.colors * 255.0), 0, 255).astype(np.uint8), 3))
    normals = None if is_mesh else scan.normals
    if normals is not None:
        point_data.append(("Normals", _array(path, "normals", normals), 3))
    intensity = None if is_mesh else scan.intensity
    if intensity is not None:
        point_data.append(("intensity", _array(path, "intensity", intensity), 1))
    for name, values in scan.fields.items():
        if name in _RESERVED or not name.strip():
            raise ScanFormatError(f"{path}: field name {name!r} cannot be a VTK array here "
                                  f"(empty, or one of {', '.join(_RESERVED)})")
        point_data.append((name, _array(path, name, values), 1))
    if scan.labels is not None:
        point_data.append(("label", _array(path, "label", scan.labels.astype(np.int32)), 1))

    # Cells: 32-bit indices while they fit (half the size), as VTK itself writes.
    index = np.int32 if max(n, 3 * len(scan.faces) if is_mesh else n) < 2**31 else np.int64
    if is_mesh:
        connectivity = scan.faces.astype(index).reshape(-1)
        offsets = np.arange(3, 3 * len(scan.faces) + 1, 3, dtype=index)
    else:
        connectivity = np.arange(n, dtype=index)
        offsets = np.arange(1, n + 1, dtype=index)
    cells = "Polys" if is_mesh else "Verts"
    n_cells = len(offsets)

    blocks: List[np.ndarray] = []

    def data_array(vtk_name: str, arr: np.ndarray, components: int, extra: str = "") -> str:
        offset = sum(8 + b.nbytes for b in blocks)
        blocks.append(arr)
        name = f" Name={quoteattr(vtk_name)}" if vtk_name else ""
        return (f'<DataArray type="{_VTK_TYPES[arr.dtype.str[1:]]}"{name} NumberOfComponents="{components}" '
                f'format="appended" offset="{offset}"{extra}/>')

    attrs = []
    if any(nm == "RGB" for nm, _, _ in point_data):
        attrs.append('Scalars="RGB"')
    elif scan.fields or scan.labels is not None:
        attrs.append(f"Scalars={quoteattr('attention' if 'attention' in scan.fields else point_data[-1][0])}")
    if normals is not None:
        attrs.append('Normals="Normals"')
    xml = ['<?xml version="1.0"?>',
           '<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian" header_type="UInt64">',
           "<PolyData>"]
    if scan.label_names:
        names = json.dumps({str(k): v for k, v in sorted(scan.label_names.items())}).encode()
        xml += ["<FieldData>", data_array("gaze3d_label_names", np.frombuffer(names, np.uint8), 1,
                                          f' NumberOfTuples="{len(names)}"'), "</FieldData>"]
    counts = {"Verts": 0, "Lines": 0, "Strips": 0, "Polys": 0, cells: n_cells}
    xml.append(f'<Piece NumberOfPoints="{n}" '
               + " ".join(f'NumberOf{k}="{v}"' for k, v in counts.items()) + ">")
    xml.append(f"<PointData {' '.join(attrs)}>")
    xml += [data_array(nm, arr, comp) for nm, arr, comp in point_data]
    xml.append("</PointData>")
    xml += ["<Points>", data_array("Points", np.ascontiguousarray(xyz, dtype="<f8"), 3), "</Points>"]
    xml += [f"<{cells}>", data_array("connectivity", connectivity, 1),
            data_array("offsets", offsets, 1), f"</{cells}>"]
    xml += ["</Piece>", "</PolyData>", '<AppendedData encoding="raw">']
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(xml) + "\n_").encode("utf-8"))
        for arr in blocks:
            fh.write(np.uint64(arr.nbytes).astype("<u8").tobytes())
            fh.write(memoryview(np.ascontiguousarray(arr)).cast("B"))
        fh.write(b"\n</AppendedData>\n</VTKFile>\n")
