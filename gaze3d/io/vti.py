"""Read VTK XML image data (``.vti``) with numpy alone: label volumes shipped as VTK files.

The core reads them without VTK (the room rule: only the viewer imports VTK):
the volume-model training data and the volume bench take pyvista's example
label volumes (``frog_tissues.vti``, ``channels.vti``) through here.

Supported, as VTK writes them: one ``Piece``; point or cell data arrays;
``format="binary"`` (inline base64) or ``"appended"`` (``encoding="base64"``
or ``"raw"``); ``header_type`` UInt32 or UInt64; no compression or
``vtkZLibDataCompressor``; little- or big-endian.
"""
from __future__ import annotations

import base64
import zlib
from typing import Tuple
from xml.etree import ElementTree

import numpy as np

from ._common import check_readable, corrupt
from .vtp import _VTK_TYPES

# VTK XML type name -> numpy dtype (little-endian): the writer's table, inverted
_TYPES = {name: code for code, name in _VTK_TYPES.items()}


def _b64(text: bytes) -> bytes:
    return base64.b64decode(b"".join(text.split()))


def _decode(blob: bytes, encoded: bool, header: np.dtype, compressed: bool) -> bytes:
    """The raw array bytes of one data array (``blob``: its text or bytes, from its start)."""
    s = header.itemsize

    def take(raw: bytes, start: int, n: int) -> bytes:
        if len(raw) < start + n:
            raise ValueError("data shorter than its header says")
        return raw[start:start + n]

    if not compressed:
        if encoded:
            raw = _b64(blob)
            n = int(np.frombuffer(take(raw, 0, s), header)[0])
            return take(raw, s, n)
        n = int(np.frombuffer(take(blob, 0, s), header)[0])
        return take(blob, s, n)
    # compressed: header [blocks, block size, last block size, compressed sizes...], then the blocks;
    # base64 encodes the header and the blocks as two separate streams
    if encoded:
        text = b"".join(blob.split())
        first = base64.b64decode(text[:4 * -(-s // 3) + 4])
        nblocks = int(np.frombuffer(take(first, 0, s), header)[0])
        hlen = 4 * -(-(3 + nblocks) * s // 3)
        head = np.frombuffer(take(base64.b64decode(text[:hlen]), 0, (3 + nblocks) * s), header)
        body = base64.b64decode(text[hlen:hlen + 4 * -(-int(head[3:].sum()) // 3)])
    else:
        nblocks = int(np.frombuffer(take(blob, 0, s), header)[0])
        head = np.frombuffer(take(blob, 0, (3 + nblocks) * s), header)
        body = blob[(3 + nblocks) * s:]
    out, pos = [], 0
    for size in head[3:].astype(np.int64):
        out.append(zlib.decompress(take(body, pos, int(size))))
        pos += int(size)
    return b"".join(out)


def read_vti(path, name: str | None = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One array of a ``.vti`` file on its grid.

    Parameters
    ----------
    path : str or Path
    name : str, optional
        The data array to read (default the first point-data array, else the first cell-data array).

    Returns
    -------
    array : (I, J, K)
        Point data on the points, or cell data on the cells (one fewer per axis), x fastest in the file.
    spacing : (3,) float64
    origin : (3,) float64
        Of the first point (point data) or the first cell centre (cell data).
    direction : (3, 3) float64
        Columns are the i, j, k axes in world coordinates.

    Raises
    ------
    ScanFormatError
        Not a VTK ImageData file, no such array, or data that does not match its header.
    """
    p = check_readable(path)
    raw = p.read_bytes()
    # the appended block is binary: parse the XML before it, keep its bytes apart
    cut = raw.find(b"<AppendedData")
    appended = b""
    xml_bytes = raw
    if cut >= 0:
        start = raw.index(b">", cut) + 1
        end = raw.rfind(b"</AppendedData>")
        appended = raw[start:end if end > 0 else len(raw)]
        underscore = appended.find(b"_")
        appended = appended[underscore + 1:] if underscore >= 0 else appended
        # keep the opening tag (its encoding attribute), self-closed, and drop the binary block
        xml_bytes = raw[:cut] + raw[cut:start - 1].rstrip(b"/") + b"/></VTKFile>"
    try:
        root = ElementTree.fromstring(xml_bytes)
    except ElementTree.ParseError as exc:
        raise corrupt(p, "VTK image data", f"not valid XML ({exc})") from None
    if root.tag != "VTKFile" or root.get("type") != "ImageData":
        raise corrupt(p, "VTK image data", "expected <VTKFile type=\"ImageData\">")
    img = root.find("ImageData")
    piece = img.find("Piece") if img is not None else None
    if piece is None:
        raise corrupt(p, "VTK image data", "no <ImageData><Piece>")
    try:
        extent = np.array(piece.get("Extent", img.get("WholeExtent")).split(), dtype=np.int64)
        spacing = np.array(img.get("Spacing", "1 1 1").split(), dtype=np.float64)
        origin = np.array(img.get("Origin", "0 0 0").split(), dtype=np.float64)
        direction = np.array(img.get("Direction", "1 0 0 0 1 0 0 0 1").split(), dtype=np.float64).reshape(3, 3)
    except (AttributeError, ValueError) as exc:
        raise corrupt(p, "VTK image data", f"bad extent, spacing, origin or direction ({exc})") from None
    points = extent[1::2] - extent[0::2] + 1
    arrays = [(a, "point") for a in piece.findall("PointData/DataArray")] + \
             [(a, "cell") for a in piece.findall("CellData/DataArray")]
    pick = [(a, kind) for a, kind in arrays if name is None or a.get("Name") == name]
    if not pick:
        known = ", ".join(a.get("Name", "?") for a, _ in arrays) or "none"
        raise corrupt(p, "VTK image data", f"no data array {name!r} (arrays: {known})")
    arr_el, kind = pick[0]
    dims = points if kind == "point" else np.maximum(points - 1, 1)
    dtype_name = _TYPES.get(arr_el.get("type", ""))
    if dtype_name is None or int(arr_el.get("NumberOfComponents", "1")) != 1:
        raise corrupt(p, "VTK image data", f"array {arr_el.get('Name')!r}: expected one component of a "
                                           f"numeric type, got {arr_el.get('type')!r}")
    order = "<" if root.get("byte_order", "LittleEndian") == "LittleEndian" else ">"
    header = np.dtype(order + ("u8" if root.get("header_type") == "UInt64" else "u4"))
    compressed = root.get("compressor") == "vtkZLibDataCompressor"
    if root.get("compressor") not in (None, "vtkZLibDataCompressor"):
        raise corrupt(p, "VTK image data", f"compressor {root.get('compressor')!r} is not supported (zlib only)")
    fmt = arr_el.get("format", "ascii")
    try:
        if fmt == "binary":
            data = _decode((arr_el.text or "").encode(), True, header, compressed)
        elif fmt == "appended":
            block = root.find("AppendedData")
            if block is None:
                raise ValueError("format 'appended' but no <AppendedData> block")
            encoded = block.get("encoding", "raw") == "base64"
            data = _decode(appended[int(arr_el.get("offset", "0")):], encoded, header, compressed)
        elif fmt == "ascii":
            data = np.array((arr_el.text or "").split(), dtype=order + dtype_name).tobytes()
        else:
            raise ValueError(f"format {fmt!r}")
        values = np.frombuffer(data, dtype=order + dtype_name)
        if values.size != int(np.prod(dims)):
            raise ValueError(f"{values.size} values for a {'x'.join(map(str, dims))} grid")
    except (ValueError, zlib.error, base64.binascii.Error) as exc:
        raise corrupt(p, "VTK image data", f"array {arr_el.get('Name')!r}: {exc}") from None
    origin = origin + direction @ (extent[0::2] * spacing)        # the piece may start off the origin
    if kind == "cell":
        origin = origin + direction @ (0.5 * spacing)
    return values.reshape(tuple(int(d) for d in dims), order="F"), spacing, origin, direction

