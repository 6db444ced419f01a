"""LAS/LAZ point clouds (laspy, with the lazrs backend for LAZ).

Read: scaled xyz (float64), ``classification`` as ``labels`` with ASPRS
class names in ``label_names``, RGB (16-bit, scaled to [0, 1]), intensity,
and every extra-bytes dimension as a field (``nx ny nz`` become normals).

Write: a cloud read from LAS goes back onto the file's own records
(``PointCloud.las_source``): version, point format, VLRs and every dimension
(GPS time, returns, scan angle, NIR...) are kept and only what the cloud
changed is replaced. Other clouds: LAS 1.4, point format 6 (or 7 with
colours). Classification comes from ``labels`` (0..255), and each field is an
extra-bytes dimension of its own dtype, which CloudCompare, PDAL and laspy
read back as scalar fields. Label names other than the ASPRS ones are kept in
a ``gaze3d`` VLR (JSON).
"""
from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._optional import optional_import
from ..errors import ScanFormatError
from ..scan import PointCloud
from ._common import atomic_path, check_readable, corrupt, scan_errors, too_short

# ASPRS LAS 1.4 R15 standard point classes.
ASPRS_CLASSES = {
    0: "never classified", 1: "unclassified", 2: "ground", 3: "low vegetation",
    4: "medium vegetation", 5: "high vegetation", 6: "building", 7: "low point (noise)",
    8: "model key-point", 9: "water", 10: "rail", 11: "road surface", 12: "overlap",
    13: "wire - guard", 14: "wire - conductor", 15: "transmission tower",
    16: "wire-structure connector", 17: "bridge deck", 18: "high noise",
    19: "overhead structure", 20: "ignored ground", 21: "snow", 22: "temporal exclusion",
}
# Extra-bytes names that hold data the scan types keep elsewhere.
_NORMALS = ("nx", "ny", "nz")
_FLOAT_INTENSITY = "intensity_float"
_VLR_USER, _VLR_NAMES = "gaze3d", 1
_EXTRA_TYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8")


def load_las(path) -> PointCloud:
    """Read a LAS or LAZ file.

    Returns
    -------
    PointCloud
        ``xyz (n, 3) float64``, ``labels (n,) int32`` (classification),
        ``colors (n, 3) float32`` if the point format has RGB,
        ``intensity (n,) float32``, extra-bytes dimensions in ``fields``.
    """
    laspy = optional_import("laspy", extra="io")
    path = check_readable(path)
    check_las_header(path)        # laspy trusts the header's counts (loops, allocations)
    try:
        las = laspy.read(str(path))
        n_header = int(las.header.point_count)
        xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1)
    except Exception as exc:  # laspy raises ValueError, LaspyException, lazrs errors...
        raise corrupt(path, "LAS/LAZ", exc) from None
    if len(xyz) != n_header:
        raise corrupt(path, "LAS/LAZ", f"header says {n_header} points, read {len(xyz)}")
    if len(xyz) == 0:
        raise ScanFormatError(f"{path}: empty point cloud (0 points)")
    dims = set(las.point_format.dimension_names)
    colors = None
    if {"red", "green", "blue"} <= dims:
        rgb = np.stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)], axis=1)
        colors, _ = _colors_from_rgb(rgb)
    labels = np.asarray(las.classification).astype(np.int32)
    extra = list(las.point_format.extra_dimension_names)
    fields = {name: np.asarray(las[name]) for name in extra
              if np.asarray(las[name]).ndim == 1 and name not in _NORMALS and name != _FLOAT_INTENSITY}
    normals = None
    if all(c in extra for c in _NORMALS):
        normals = np.stack([np.asarray(las[c]) for c in _NORMALS], axis=1)
    intensity = (np.asarray(las[_FLOAT_INTENSITY]) if _FLOAT_INTENSITY in extra
                 else np.asarray(las.intensity)).astype(np.float32)
    names = {int(c): ASPRS_CLASSES[int(c)] for c in np.unique(labels) if int(c) in ASPRS_CLASSES}
    names.update(_stored_label_names(las.header))
    with scan_errors(path):
        return PointCloud(xyz=xyz, colors=colors, intensity=intensity, normals=normals, labels=labels,
                          fields=fields, label_names=names, source=str(path),
                          las_source=LasSource(las.header, las.points.array, str(path)))


# Smallest point record of each LAS point format (LAS 1.4 R15, tables 7-17).
_LAS_RECORD_BYTES = {0: 20, 1: 28, 2: 26, 3: 34, 4: 57, 5: 63, 6: 30, 7: 36, 8: 38, 9: 59, 10: 67}
# Header size of each LAS minor version; VLR and EVLR header sizes.
_LAS_HEADER_BYTES = {0: 227, 1: 227, 2: 227, 3: 235, 4: 375}
_VLR_HEADER, _EVLR_HEADER = 54, 60
_LASZIP_USER, _LASZIP_RECORD = b"laszip encoded", 22204
_LASZIP_VARIABLE_CHUNKS = 0xFFFFFFFF


def check_las_header(path) -> None:
    """Check a LAS/LAZ header's counts against the file size, before laspy reads it.

    laspy loops over the header's VLR count (0xFFFFFFFF VLRs: reads past the
    end for minutes, memory growing) and allocates ``point count x record
    length`` up front; lazrs aborts the process on a garbage chunk table. So:
    magic, version, header size, point format and record length must be
    valid; every VLR header must fit before the point data, every EVLR in the
    file; uncompressed points need ``count x record length`` bytes. A LAZ
    chunk stores its first point uncompressed, so its point data must hold
    ``chunks x record length`` bytes and at most ``chunks x chunk size``
    points (fixed-size chunks).

    Raises
    ------
    ScanFormatError
        One line naming the field, what it claims and what the file holds.
    """
    import struct

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(375)

        def bad(reason):
            return corrupt(path, "LAS/LAZ", reason)

        if len(head) < 227 or head[:4] != b"LASF":
            raise bad(f"not a LAS file (expected 'LASF' and a 227-byte header, got {len(head)} bytes"
                      f"{'' if head[:4] == b'LASF' else ' without the magic'})")
        major, minor = head[24], head[25]
        header_size, point_offset, n_vlr = struct.unpack_from("<HII", head, 94)
        fmt_id, record_len, legacy_count = struct.unpack_from("<BHI", head, 104)
        scales, offsets = struct.unpack_from("<3d", head, 131), struct.unpack_from("<3d", head, 155)
        if major != 1 or minor not in _LAS_HEADER_BYTES:
            raise bad(f"LAS version {major}.{minor} (expected 1.0 to 1.4)")
        if not _LAS_HEADER_BYTES[minor] <= header_size <= min(size, point_offset):
            raise bad(f"header size {header_size} (LAS 1.{minor} needs >= {_LAS_HEADER_BYTES[minor]}, "
                      f"and <= the point data offset {point_offset} and the file size {size})")
        if point_offset > size:
            raise bad(f"point data offset {point_offset:,} lies past the end of the file ({size:,} bytes)")
        fmt, compressed = fmt_id & 0x3F, bool(fmt_id & 0x80)
        if fmt not in _LAS_RECORD_BYTES:
            raise bad(f"point format {fmt_id} (expected 0 to 10, +128 when compressed)")
        if record_len < _LAS_RECORD_BYTES[fmt]:
            raise bad(f"point record length {record_len} < {_LAS_RECORD_BYTES[fmt]} bytes of point format {fmt}")
        for axis, scale, offset in zip("xyz", scales, offsets):
            if not (np.isfinite(scale) and scale != 0 and np.isfinite(offset)):
                raise bad(f"{axis} scale {scale!r} / offset {offset!r} (expected a non-zero finite scale "
                          f"and a finite offset, NaN/inf would give NaN coordinates)")
        count = legacy_count
        n_evlr = evlr_start = 0
        if minor >= 4 and len(head) >= 375:
            evlr_start, n_evlr, count64 = struct.unpack_from("<QIQ", head, 235)
            count = count64 or legacy_count
        # VLRs: each header must fit between the public header and the point data.
        pos, chunk_size = header_size, None
        for i in range(n_vlr):
            if pos + _VLR_HEADER > point_offset:
                raise bad(f"header claims {n_vlr:,} VLRs, only {i} fit before the point data at "
                          f"byte {point_offset}")
            fh.seek(pos)
            vlr = fh.read(_VLR_HEADER)
            user, record_id, length = vlr[2:18].rstrip(b"\0"), *struct.unpack_from("<HH", vlr, 18)
            if user == _LASZIP_USER and record_id == _LASZIP_RECORD and length >= 16:
                chunk_size = struct.unpack("<I", fh.read(16)[12:16])[0]
            pos += _VLR_HEADER + length
        if pos > point_offset:
            raise bad(f"VLR {n_vlr - 1} ends at byte {pos}, after the point data offset {point_offset}")
        data = size - point_offset
        if minor >= 4 and n_evlr:
            if evlr_start < point_offset or evlr_start > size:
                raise bad(f"header claims {n_evlr:,} EVLRs starting at byte {evlr_start:,}, "
                          f"outside the file's {point_offset:,}..{size:,}")
            pos = evlr_start
            for i in range(n_evlr):
                if pos + _EVLR_HEADER > size:
                    raise bad(f"header claims {n_evlr:,} EVLRs, only {i} fit in the file")
                fh.seek(pos + 20)
                pos += _EVLR_HEADER + struct.unpack("<Q", fh.read(8))[0]
            if pos > size:
                raise too_short(path, "LAS/LAZ", f"EVLR {n_evlr - 1} ends at byte {pos:,}: file", pos, size)
            data = evlr_start - point_offset
        if not compressed:
            if count * record_len > data:
                raise too_short(path, "LAS/LAZ", f"header claims {count:,} points of {record_len} bytes",
                                count * record_len, data, "the point data holds")
            return
        if chunk_size is None:
            raise bad(f"point format {fmt_id} is compressed (LAZ) but there is no LASzip VLR")
        fh.seek(point_offset)
        table = struct.unpack("<q", fh.read(8).ljust(8, b"\0"))[0]
        if table == -1:
            return                     # no chunk table (streamed LAZ): lazrs reads chunk by chunk
        if not point_offset + 8 <= table <= size - 8:
            raise bad(f"LAZ chunk table offset {table:,} lies outside the point data "
                      f"({point_offset + 8:,}..{size - 8:,})")
        fh.seek(table)
        version, n_chunks = struct.unpack("<II", fh.read(8))
        chunk_bytes = table - point_offset - 8
        if n_chunks * record_len > chunk_bytes:
            raise too_short(path, "LAS/LAZ", f"LAZ chunk table claims {n_chunks:,} chunks of at least one "
                                             f"{record_len}-byte point", n_chunks * record_len, chunk_bytes,
                            "the point data holds")
        if chunk_size != _LASZIP_VARIABLE_CHUNKS and count > n_chunks * chunk_size:
            raise bad(f"header claims {count:,} points, the {n_chunks:,} LAZ chunks of "
                      f"{chunk_size:,} hold at most {n_chunks * chunk_size:,}")


def _stored_label_names(header) -> dict:
    """Label names that gaze3d wrote into its own VLR (they override the ASPRS names)."""
    for vlr in getattr(header, "vlrs", []):
        if getattr(vlr, "user_id", "") == _VLR_USER and getattr(vlr, "record_id", None) == _VLR_NAMES:
            try:
                return {int(k): str(v) for k, v in json.loads(bytes(vlr.record_data).decode()).items()}
            except (ValueError, AttributeError, UnicodeDecodeError):
                return {}
    return {}


@dataclass(frozen=True, eq=False)
class LasSource:
    """A LAS/LAZ file's header and raw point records as read (``PointCloud.las_source``).

    Attributes
    ----------
    header : laspy.LasHeader
        Version, point format, scales and offsets, VLRs/EVLRs (CRS...).
    array : (n,) structured array
        The point records exactly as stored (``X Y Z`` integers, GPS time,
        returns, scan angle, NIR, extra bytes...).
    path : str
        The file they came from, for messages.
    """

    header: object
    array: np.ndarray
    path: str


def _colors_from_rgb(rgb: np.ndarray):
    """``(colors (n, 3) float32 in [0, 1], divisor)`` of LAS RGB values.

    The spec says 16-bit, but some writers store 8-bit values unscaled: those
    are detected (all values <= 255) and divided by 255.
    """
    divisor = 255.0 if rgb.max() <= 255 else 65535.0
    return (rgb / divisor).astype(np.float32), divisor


def _scale_offset(xyz: np.ndarray):
    """Per-axis scale (a power of ten) and offset that store xyz in int32 losslessly enough.

    The scale keeps about 1e-9 of the extent (at most 1e9 steps across it),
    so a 100 m tile is stored to 0.1 micrometre and a 1000 km one to 1 mm.
    """
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    extent = np.maximum(hi - lo, 1e-3)
    scale = 10.0 ** np.ceil(np.log10(extent / 1e9))
    offset = np.floor(lo / scale) * scale
    return scale, offset


# Point formats that add what a cloud needs to a file's format: RGB, and
# 8-bit classification (formats 0-5 hold classes 0..31 only).
_WITH_RGB = {0: 2, 1: 3, 4: 5, 6: 7, 9: 10}
_LAS14 = {0: 6, 1: 6, 2: 7, 3: 7, 4: 9, 5: 10}


def save_las(cloud: PointCloud, path) -> None:
    """Write a point cloud as LAS (``.las``) or compressed LAZ (``.laz``).

    A cloud read from LAS (``cloud.las_source``) that still has the file's
    points is written back on the file's own records: version, point format,
    scales, VLRs and every dimension (GPS time, return numbers, scan angle,
    point source ID, NIR, flags, extra bytes) are kept, and only what the
    cloud changed is replaced: classification from ``labels``, colours and
    intensity when they differ from the file's, coordinates when moved, and
    ``fields`` as extra-bytes dimensions (added, updated, or dropped when the
    cloud no longer has them). The point format is widened only when needed
    (classes above 31 in formats 0-5 -> LAS 1.4 format 6+; colours on a
    format without RGB).

    Any other cloud is written as LAS 1.4 point format 6 (7 with colours).

    Parameters
    ----------
    cloud : PointCloud
        ``labels`` must lie in 0..255 (LAS classification); fields are written
        as extra-bytes dimensions.
    path : str or Path
        Written atomically; ``.laz`` needs the lazrs backend.
    """
    laspy = optional_import("laspy", extra="io")
    path = Path(path)
    if cloud.labels is not None and (cloud.labels.min() < 0 or cloud.labels.max() > 255):
        raise ScanFormatError(f"{path}: labels must lie in 0..255 for LAS classification, "
                              f"got [{cloud.labels.min()}, {cloud.labels.max()}]")
    src = cloud.las_source
    if src is not None and len(src.array) != len(cloud):
        warnings.warn(f"{path}: the cloud has {len(cloud)} points, {src.path} had {len(src.array)}; "
                      f"writing a new LAS 1.4 file without that file's other dimensions (GPS time, "
                      f"returns...)", stacklevel=3)
        src = None
    las = _from_source(laspy, cloud, src, path) if src is not None else _new_las(laspy, cloud, path)
    header = las.header
    for vlr in [v for v in header.vlrs if getattr(v, "user_id", "") == _VLR_USER
                and getattr(v, "record_id", None) == _VLR_NAMES]:
        header.vlrs.remove(vlr)         # ours, from the file read: replaced by the cloud's names
    custom = {k: v for k, v in cloud.label_names.items() if ASPRS_CLASSES.get(k) != v}
    if custom:   # names other than ASPRS's travel in a VLR that other tools ignore
        header.vlrs.append(laspy.VLR(user_id=_VLR_USER, record_id=_VLR_NAMES, description="label names (JSON)",
                                     record_data=json.dumps({str(k): v for k, v in sorted(custom.items())}).encode()))
    with atomic_path(path) as tmp:
        try:
            las.write(str(tmp))
        except Exception as exc:
            raise ScanFormatError(f"{path}: could not write LAS/LAZ ({type(exc).__name__}: {exc})") from exc


def _extras(cloud: PointCloud, path, standard, intensity_in_dims: bool) -> dict:
    """The extra-bytes dimensions a cloud needs: its fields, normals, and a float intensity.

    ``intensity_in_dims`` says whether ``cloud.intensity`` already fits the
    uint16 ``intensity`` dimension (then no ``intensity_float`` is needed).
    """
    extras = dict(cloud.fields)
    if cloud.intensity is not None and not intensity_in_dims:
        extras[_FLOAT_INTENSITY] = cloud.intensity       # not a uint16: keep it exactly
    if cloud.normals is not None:
        extras.update({c: cloud.normals[:, i] for i, c in enumerate(_NORMALS)})
    for name, values in extras.items():
        values = np.asarray(values)
        code = "u1" if values.dtype == bool else values.dtype.str[1:]
        if code not in _EXTRA_TYPES or name in standard or len(name) > 32:
            raise ScanFormatError(f"{path}: field {name!r} ({values.dtype}) cannot be a LAS extra-bytes "
                                  f"dimension (numeric, name <= 32 characters, not a standard dimension)")
        extras[name] = values.astype(np.uint8) if values.dtype == bool else values
    return extras


def _uint16_intensity(intensity) -> bool:
    return bool(np.all(np.mod(intensity, 1) == 0) and intensity.min() >= 0 and intensity.max() <= 65535)


def _new_las(laspy, cloud: PointCloud, path):
    """A LAS 1.4 format 6/7 file holding what the cloud has."""
    header = laspy.LasHeader(point_format=7 if cloud.colors is not None else 6, version="1.4")
    header.scales, header.offsets = _scale_offset(cloud.xyz)
    intensity = cloud.intensity
    fits = intensity is None or _uint16_intensity(intensity)
    extras = _extras(cloud, path, set(laspy.PointFormat(header.point_format.id).dimension_names), fits)
    if extras:
        header.add_extra_dims([laspy.ExtraBytesParams(name=k, type=v.dtype) for k, v in extras.items()])
    las = laspy.LasData(header)
    las.x, las.y, las.z = cloud.xyz[:, 0], cloud.xyz[:, 1], cloud.xyz[:, 2]
    # return number 0 is invalid in LAS 1.4 (validators reject it): one return per point
    las.return_number = np.ones(len(cloud), np.uint8)
    las.number_of_returns = np.ones(len(cloud), np.uint8)
    if cloud.labels is not None:
        las.classification = cloud.labels.astype(np.uint8)
    if intensity is not None and fits:
        las.intensity = intensity.astype(np.uint16)
    if cloud.colors is not None:
        rgb = np.clip(np.round(cloud.colors * 65535.0), 0, 65535).astype(np.uint16)
        las.red, las.green, las.blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    for name, values in extras.items():
        las[name] = values
    return las


def _from_source(laspy, cloud: PointCloud, src: LasSource, path):
    """The source file's records with the cloud's changes applied (see :func:`save_las`)."""
    header = copy.deepcopy(src.header)
    las = laspy.LasData(header, laspy.PackedPointRecord(src.array.copy(), header.point_format))
    fmt = target = header.point_format.id
    if cloud.labels is not None and cloud.labels.max() > 31 and target in _LAS14:
        target = _LAS14[target]
    if cloud.colors is not None and target in _WITH_RGB:
        target = _WITH_RGB[target]
    had_rgb = {"red", "green", "blue"} <= set(header.point_format.dimension_names)
    if target != fmt:
        las = laspy.convert(las, point_format_id=target, file_version="1.4" if target >= 6 else None)
    dims = set(las.point_format.dimension_names)
    extra = list(las.point_format.extra_dimension_names)
    standard = dims - set(extra)

    if not np.array_equal(cloud.xyz, las.xyz):        # moved: keep the file's quantum if it still fits
        scales, offsets = np.asarray(las.header.scales), np.asarray(las.header.offsets)
        steps = np.round((cloud.xyz - offsets) / scales)
        if np.abs(steps).max() > np.iinfo(np.int32).max:
            # new quantum; not change_scaling, which re-encodes the old coordinates (may overflow)
            header = las.header
            header.scales, header.offsets = _scale_offset(cloud.xyz)
            las = laspy.LasData(header, laspy.PackedPointRecord(las.points.array, header.point_format))
        las.x, las.y, las.z = cloud.xyz[:, 0], cloud.xyz[:, 1], cloud.xyz[:, 2]
    if cloud.labels is not None and not np.array_equal(cloud.labels, np.asarray(las.classification)):
        las.classification = cloud.labels.astype(np.uint8)
    if cloud.colors is not None:
        rgb = np.stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)], axis=1)
        old, divisor = _colors_from_rgb(rgb) if had_rgb else (None, 65535.0)
        if old is None or not np.array_equal(old, cloud.colors):
            rgb = np.clip(np.round(cloud.colors * divisor), 0, divisor).astype(np.uint16)
            las.red, las.green, las.blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    fits = True
    if cloud.intensity is not None:
        old = np.asarray(las[_FLOAT_INTENSITY] if _FLOAT_INTENSITY in extra else las.intensity, np.float32)
        if not np.array_equal(old, cloud.intensity):
            fits = _uint16_intensity(cloud.intensity)
            if fits:
                las.intensity = cloud.intensity.astype(np.uint16)
        else:
            fits = _FLOAT_INTENSITY not in extra
    extras = _extras(cloud, path, standard, fits)
    # what the reader turned into fields/normals/intensity and the cloud no longer has
    kept = {name for name in extra if np.asarray(las[name]).ndim != 1}
    drop = [name for name in extra if name not in extras and name not in kept]
    retype = [name for name in extra if name in extras
              and np.asarray(las[name]).dtype != extras[name].dtype
              and not np.array_equal(extras[name].astype(np.asarray(las[name]).dtype), extras[name])]
    if drop or retype:
        las.remove_extra_dims(drop + retype)
    new = [k for k in extras if k not in extra or k in retype]
    if new:
        las.add_extra_dims([laspy.ExtraBytesParams(name=k, type=extras[k].dtype) for k in new])
    for name, values in extras.items():
        las[name] = values
    return las
