"""PLY parsing: header, and ascii / binary (little and big endian) elements.

Every element and property is returned as numpy arrays, whatever its name;
:mod:`gaze3d.io.ply` turns them into scan types. List properties (faces) take a
vectorised path when all lists have one length (triangle meshes), else a
record-by-record one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import ScanFormatError
from ._common import check_readable, too_short

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int",
                "u4": "uint", "f4": "float", "f8": "double"}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_MAX_HEADER = 1 << 20


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
        except ScanFormatError:
            raise
        except (IndexError, KeyError, ValueError) as exc:
            raise ScanFormatError(f"{path}: bad PLY header line {number} {line.strip()!r} ({exc})") from None
    if fmt is None:
        raise ScanFormatError(f"{path}: bad PLY header (no 'format' line)")
    return fmt, elements, comments, body_start


def _check_binary_count(path, el: _Element, left: int) -> None:
    """Refuse a record count that the bytes after ``pos`` cannot hold, before any allocation.

    A record takes at least its scalar properties plus one count per list
    (an empty list), so ``count * minimum`` bytes must remain.
    """
    if el.count and not el.properties:
        raise ScanFormatError(f"{path}: bad PLY header (element {el.name!r} has {el.count} records "
                              f"but no properties)")
    least = sum(np.dtype(p.count_dtype or p.dtype).itemsize for p in el.properties)
    if el.count * least > left:
        raise too_short(path, "PLY", f"element {el.name!r} claims {el.count:,} records of at least "
                                     f"{least} bytes", el.count * least, left, "the rest of the file holds")


def _read_binary_element(path, el: _Element, raw: bytes, pos: int, order: str):
    props = el.properties
    short = f"{path}: corrupt or truncated PLY file (element {el.name!r}: "
    _check_binary_count(path, el, len(raw) - pos)
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
            if k < 0:
                raise ScanFormatError(short + f"list {p.name!r} of the first record has length {k})")
            lengths.append(k)
            offset += np.dtype(p.count_dtype).itemsize + k * np.dtype(p.dtype).itemsize
            if offset > len(raw):     # also keeps the record dtype below to a sane size
                raise too_short(path, "PLY", f"element {el.name!r}: the first record's list {p.name!r} "
                                             f"claims {k:,} entries", offset - pos, len(raw) - pos,
                                "the rest of the file holds")
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
                if k < 0:
                    raise ScanFormatError(short + f"a {p.name!r} list has length {k})")
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
    path = check_readable(path)       # a FIFO would block read_bytes forever
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
