"""The malformed-scan table shared by ``tests/test_io_fuzz.py`` and ``bench/io_fuzz.py``.

Every case writes one file (or folder) into a scratch folder: a small valid
seed of its format (``ok_*`` cases, which must load) or a seed with one
header field or byte range broken (every other case, which must give the
one-line :class:`gaze3d.errors.ScanFormatError`). The seeds are written by
hand or by the libraries gaze3d reads with (laspy, SimpleITK), so the table
needs no real data.

Run as a script, it loads every case in this one process and prints one JSON
line per case as soon as it is done (so a hang names its case)::

    python tests/io_fuzz_cases.py FOLDER [--limit-mb 1024] [CASE ...]

Each line holds ``name``, ``ok`` (loaded), ``api`` (exception class of
:func:`gaze3d.load_scan`, or null), ``message``, ``cli_code`` and ``cli_err``
(exit code and stderr of ``gaze3d info`` run in-process through
:func:`gaze3d.cli.main`, with file descriptor 2 captured so that library
lines printed by C code show up), ``seconds`` (both calls) and
``peak_rss_mb`` (the peak resident memory growth during the case, from
``/proc/self/status`` ``VmHWM`` after resetting it; null where the kernel
refuses the reset). The address space is
capped at what the imports use plus ``--limit-mb``, so a reader that
allocates what a header claims fails instead of swapping the machine.
"""
from __future__ import annotations

import gzip
import json
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Tuple

import numpy as np


@dataclass(frozen=True)
class Case:
    """One row of the table.

    Attributes
    ----------
    name : str
        Unique id (also the pytest id); ``ok_*`` cases are valid seeds.
    filename : str
        Name of the file or folder made in the scratch folder.
    make : callable
        ``make(path)`` writes the input at ``path``.
    words : tuple of str
        Words the one-line error must contain (besides the file name).
    """

    name: str
    filename: str
    make: Callable[[Path], None]
    words: Tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.name.startswith("ok_")


# ------------------------------------------------------------------ seeds
def _ply_binary(n_vertices=4, faces=((0, 1, 2), (0, 2, 3)), face_count=None, vertex_count=None,
                body_cut=None) -> bytes:
    """A binary little-endian PLY mesh (float xyz, uchar/int face lists)."""
    header = ["ply", "format binary_little_endian 1.0",
              f"element vertex {n_vertices if vertex_count is None else vertex_count}",
              "property float x", "property float y", "property float z"]
    if faces is not None:
        header += [f"element face {len(faces) if face_count is None else face_count}",
                   "property list uchar int vertex_indices"]
    header.append("end_header")
    body = np.arange(n_vertices * 3, dtype="<f4").tobytes()
    if faces is not None:
        for f in faces:
            body += struct.pack("<B", len(f)) + np.asarray(f, "<i4").tobytes()
    raw = ("\n".join(header) + "\n").encode() + body
    return raw if body_cut is None else raw[:body_cut]


def _ply_ascii(header_lines, rows) -> bytes:
    return ("\n".join(["ply", "format ascii 1.0", *header_lines, "end_header", *rows]) + "\n").encode()


_XYZ3 = ["property float x", "property float y", "property float z"]


def _las_bytes(version="1.2", point_format=3, n=10, compress=False) -> bytes:
    import io as _io

    import laspy

    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = [0.01, 0.01, 0.01]
    las = laspy.LasData(header)
    rng = np.random.default_rng(0)
    las.x, las.y, las.z = (rng.uniform(0, 10, n) for _ in range(3))
    las.classification = np.full(n, 2, np.uint8)
    buf = _io.BytesIO()
    las.write(buf, do_compress=compress)
    return buf.getvalue()


def _patch(raw: bytes, offset: int, fmt: str, value) -> bytes:
    packed = struct.pack("<" + fmt, value)
    return raw[:offset] + packed + raw[offset + len(packed):]


def _las_patched(offset, fmt, value, version="1.2", point_format=3):
    def make(p: Path):
        p.write_bytes(_patch(_las_bytes(version, point_format), offset, fmt, value))
    return make


def _nifti_bytes(shape=(4, 5, 6)) -> bytes:
    """A NIfTI-1 single file (int16) written by SimpleITK."""
    import tempfile

    import SimpleITK as sitk

    with tempfile.TemporaryDirectory() as tmp:
        img = sitk.GetImageFromArray(np.arange(np.prod(shape), dtype=np.int16).reshape(shape[::-1]))
        img.SetSpacing((2.0, 2.0, 3.0))
        sitk.WriteImage(img, f"{tmp}/v.nii")
        return Path(f"{tmp}/v.nii").read_bytes()


def _nifti_patched(*patches, gz=False):
    def make(p: Path):
        raw = _nifti_bytes()
        for offset, fmt, value in patches:
            raw = _patch(raw, offset, fmt, value)
        p.write_bytes(gzip.compress(raw) if gz else raw)
    return make


def _mha(dims="4 5 6", etype="MET_SHORT", data_bytes=240, ndims=3, extra="", data_file="LOCAL",
         compressed=False) -> Callable[[Path], None]:
    def make(p: Path):
        head = (f"ObjectType = Image\nNDims = {ndims}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                f"CompressedData = {compressed}\n{extra}DimSize = {dims}\nElementType = {etype}\n"
                f"ElementDataFile = {data_file}\n")
        body = bytes(data_bytes) if data_file == "LOCAL" else b""
        p.write_bytes(head.encode() + body)
    return make


def _nrrd(sizes="4 5 6", type_="short", data_bytes=240, encoding="raw", extra="") -> Callable[[Path], None]:
    def make(p: Path):
        head = (f"NRRD0004\ntype: {type_}\ndimension: {len(sizes.split())}\nsizes: {sizes}\n"
                f"endian: little\nencoding: {encoding}\n{extra}\n")
        p.write_bytes(head.encode() + bytes(data_bytes))
    return make


def _dicom_bytes(rows=64, cols=64) -> bytes:
    """A 64x64 int16 DICOM slice written by SimpleITK (implicit VR little endian)."""
    import tempfile

    import SimpleITK as sitk

    with tempfile.TemporaryDirectory() as tmp:
        img = sitk.GetImageFromArray(np.arange(rows * cols, dtype=np.int16).reshape(rows, cols))
        sitk.WriteImage(img, f"{tmp}/s.dcm")
        return Path(f"{tmp}/s.dcm").read_bytes()


def _dicom_tag(raw: bytes, group: int, element: int) -> int:
    """Offset of the value of a tag in an implicit-VR little-endian DICOM data set."""
    at = raw.find(struct.pack("<HH", group, element), 132)
    assert at > 0, f"tag ({group:04x},{element:04x}) not in the seed"
    return at + 8


def _dicom_patched(group, element, fmt, value):
    def make(p: Path):
        raw = _dicom_bytes()
        p.write_bytes(_patch(raw, _dicom_tag(raw, group, element), fmt, value))
    return make


def _glb(json_text: str, declared_total=None, json_len=None, bin_chunk=b"") -> bytes:
    js = json_text.encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<I4s", len(js) if json_len is None else json_len, b"JSON") + js
    if bin_chunk:
        body += struct.pack("<I4s", len(bin_chunk), b"BIN\0") + bin_chunk
    total = 12 + len(body)
    return struct.pack("<4sII", b"glTF", 2, total if declared_total is None else declared_total) + body


_GLB_TRI = {
    "asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "scene": 0, "nodes": [{"mesh": 0}],
    "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
    "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                   "min": [0, 0, 0], "max": [1, 1, 0]},
                  {"bufferView": 1, "componentType": 5125, "count": 3, "type": "SCALAR"}],
    "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": 36},
                    {"buffer": 0, "byteOffset": 36, "byteLength": 12}],
    "buffers": [{"byteLength": 48}],
}
_GLB_BIN = np.array([0, 0, 0, 1, 0, 0, 0, 1, 0], "<f4").tobytes() + np.array([0, 1, 2], "<u4").tobytes()


def _glb_tri(**change) -> Callable[[Path], None]:
    def make(p: Path):
        doc = json.loads(json.dumps(_GLB_TRI))
        for key, value in change.items():
            section, index, field = key.split("__")
            doc[section][int(index)][field] = value
        p.write_bytes(_glb(json.dumps(doc), bin_chunk=_GLB_BIN))
    return make


def _gltf_external(data) -> Callable[[Path], None]:
    """A .gltf whose buffer is the file ``<stem>.bin`` holding ``data`` (None: a FIFO)."""
    def make(p: Path):
        doc = json.loads(json.dumps(_GLB_TRI))
        doc["buffers"][0]["uri"] = p.stem + ".bin"
        if data is None:
            _fifo(p.with_suffix(".bin"))
        else:
            p.with_suffix(".bin").write_bytes(data)
        p.write_text(json.dumps(doc))
    return make


def _stl_binary(n_declared: int, n_written: int) -> bytes:
    tri = struct.pack("<12fH", 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0)
    return b"\0" * 80 + struct.pack("<I", n_declared) + tri * n_written


def _write(content: bytes) -> Callable[[Path], None]:
    def make(p: Path):
        p.write_bytes(content)
    return make


def _fifo(p: Path):
    os.mkfifo(p)


def _dev_zero(p: Path):
    os.symlink("/dev/zero", p)


def _dicom_folder_with(extra_make: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(folder: Path):
        folder.mkdir()
        (folder / "s0.dcm").write_bytes(_dicom_bytes())
        extra_make(folder / "s1.dcm")
    return make


def _mhd_pair(data_make: Callable[[Path], None], dims="4 5 6", data_name="v.raw"):
    def make(p: Path):
        data_make(p.parent / data_name)
        _mha(dims=dims, data_file=data_name)(p)
    return make


# -------------------------------------------------------------- the table
# LAS public header offsets (LAS 1.2/1.4 R15, table 3 / table 4).
_LAS_HEADER_SIZE, _LAS_POINT_OFFSET, _LAS_N_VLR, _LAS_FORMAT, _LAS_RECORD_LEN = 94, 96, 100, 104, 105
_LAS_LEGACY_COUNT, _LAS_SCALE_X = 107, 131
_LAS14_EVLR_START, _LAS14_N_EVLR, _LAS14_COUNT = 235, 243, 247
# NIfTI-1 header offsets.
_NII_DIM, _NII_DATATYPE, _NII_BITPIX, _NII_VOX_OFFSET = 40, 70, 72, 108
_NII_QFORM_CODE, _NII_SFORM_CODE, _NII_QUATERN_B, _NII_SROW_X, _NII_PIXDIM = 252, 254, 256, 280, 76

CASES = [
    # ---- PLY (gaze3d's own parser)
    Case("ok_ply_mesh", "ok.ply", _write(_ply_binary())),
    Case("ok_ply_ascii_cloud", "ok_ascii.ply", _write(_ply_ascii(["element vertex 2", *_XYZ3], ["0 0 0", "1 2 3"]))),
    Case("ply_not_ply", "junk.ply", _write(b"not a ply at all\n"), ("not a PLY",)),
    Case("ply_no_end_header", "nohead.ply", _write(b"ply\nformat ascii 1.0\nelement vertex 1\n"), ("end_header",)),
    Case("ply_bad_format", "fmt.ply", _write(_ply_ascii(["element vertex 1", *_XYZ3], ["0 0 0"]).replace(
        b"ascii 1.0", b"binary_middle_endian 1.0")), ("format",)),
    Case("ply_negative_count", "neg.ply", _write(_ply_ascii(["element vertex -5", *_XYZ3], [])), ("negative",)),
    Case("ply_count_overflow", "big.ply", _write(_ply_ascii(["element vertex 99999999999999999999999", *_XYZ3],
                                                           ["0 0 0"])), ("vertex",)),
    Case("ply_unknown_type", "type.ply", _write(_ply_ascii(["element vertex 1", "property float128 x"], ["0"])),
         ("float128",)),
    Case("ply_property_first", "propfirst.ply", _write(_ply_ascii(["property float x", "element vertex 1"], ["0"])),
         ("property",)),
    Case("ply_ascii_vertices_1e9", "ascii_1e9.ply", _write(_ply_ascii(["element vertex 1000000000", *_XYZ3],
                                                                     ["0 0 0"] * 3)), ("1000000000",)),
    Case("ply_ascii_not_numbers", "words.ply", _write(_ply_ascii(["element vertex 2", *_XYZ3], ["0 0 0", "a b c"]))),
    Case("ply_ascii_short_row", "shortrow.ply", _write(_ply_ascii(["element vertex 2", *_XYZ3], ["0 0 0", "1 2"]))),
    Case("ply_binary_vertices_1e12", "v1e12.ply", _write(_ply_binary(vertex_count=10 ** 12)), ("bytes",)),
    Case("ply_faces_1e9", "faces1e9.ply", _write(_ply_binary(face_count=10 ** 9)), ("face",)),
    Case("ply_faces_1e9_varying", "faces1e9poly.ply",
         _write(_ply_binary(faces=((0, 1, 2, 3), (0, 1, 2)), face_count=10 ** 9)), ("face",)),
    Case("ply_face_list_length_1e9", "list1e9.ply", _write(_ply_binary(faces=None).replace(
        b"end_header\n", b"element face 1\nproperty list uint int vertex_indices\nend_header\n")
        + struct.pack("<I", 10 ** 9) + bytes(12)), ("1,000,000,000 entries",)),
    Case("ply_face_index_out_of_range", "badindex.ply", _write(_ply_binary(faces=((0, 1, 99),))), ("99",)),
    Case("ply_face_two_vertices", "twovert.ply", _write(_ply_binary(faces=((0, 1),))), ("2 vertices",)),
    Case("ply_truncated_vertices", "cutv.ply", _write(_ply_binary(faces=None, body_cut=120)), ("truncated",)),
    Case("ply_no_xyz", "noxyz.ply", _write(_ply_ascii(["element vertex 1", "property float a"], ["0"])), ("lacks",)),
    Case("ply_nan_xyz", "nan.ply", _write(_ply_ascii(["element vertex 2", *_XYZ3], ["0 0 0", "nan 0 0"])),
         ("NaN",)),
    Case("ply_signalling_nan", "snan.ply", lambda p: p.write_bytes(
        _ply_binary(faces=None).replace(np.arange(3, dtype="<f4").tobytes(), b"\x00\x00\xa0\x7f" * 3)), ("NaN",)),
    Case("ply_fifo", "fifo.ply", _fifo, ("not a regular file",)),
    Case("ply_dev_zero", "zero.ply", _dev_zero, ("not a regular file",)),
    Case("ply_is_a_folder", "folder.ply", lambda p: p.mkdir(), ("folder",)),
    # ---- LAS / LAZ (laspy)
    Case("ok_las", "ok.las", lambda p: p.write_bytes(_las_bytes())),
    Case("ok_las14", "ok14.las", lambda p: p.write_bytes(_las_bytes("1.4", 6))),
    Case("ok_laz", "ok.laz", lambda p: p.write_bytes(_las_bytes(compress=True))),
    Case("las_vlr_count_ffffffff", "vlrs.las", _las_patched(_LAS_N_VLR, "I", 0xFFFFFFFF), ("VLR",)),
    Case("las_points_huge", "points.las", _las_patched(_LAS_LEGACY_COUNT, "I", 0xFFFFFFF0), ("points", "bytes")),
    Case("las14_points_huge", "points14.las", _las_patched(_LAS14_COUNT, "Q", 10 ** 15, "1.4", 6),
         ("points", "bytes")),
    Case("las14_evlr_count_ffffffff", "evlrs.las", _las_patched(_LAS14_N_EVLR, "I", 0xFFFFFFFF, "1.4", 6),
         ("EVLR",)),
    Case("las14_evlr_start_past_end", "evlrstart.las", lambda p: p.write_bytes(
        _patch(_patch(_las_bytes("1.4", 6), _LAS14_N_EVLR, "I", 1), _LAS14_EVLR_START, "Q", 10 ** 12)),
         ("EVLR",)),
    Case("las_point_offset_past_end", "offset.las", _las_patched(_LAS_POINT_OFFSET, "I", 0x7FFFFFFF),
         ("point data",)),
    Case("las_header_size_tiny", "hsize.las", _las_patched(_LAS_HEADER_SIZE, "H", 10), ("header",)),
    Case("las_point_format_99", "pf99.las", _las_patched(_LAS_FORMAT, "B", 99)),
    Case("las_record_length_short", "reclen.las", _las_patched(_LAS_RECORD_LEN, "H", 4)),
    Case("las_scale_nan", "scale.las", _las_patched(_LAS_SCALE_X, "d", float("nan")), ("NaN",)),
    Case("las_truncated", "cut.las", lambda p: p.write_bytes(_las_bytes()[:-100]), ("truncated",)),
    Case("las_magic_only", "magic.las", _write(b"LASF" + b"\0" * 50)),
    Case("laz_garbage_chunks", "junk.laz", lambda p: p.write_bytes(
        (lambda raw: raw[:-60] + b"\xab" * 60)(_las_bytes(compress=True)))),
    Case("las_fifo", "fifo.las", _fifo, ("not a regular file",)),
    # ---- PCD and text clouds (Open3D)
    Case("ok_pcd", "ok.pcd", _write(b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\n"
                                    b"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\nDATA ascii\n0 0 0\n1 2 3\n")),
    Case("pcd_points_1e12_binary", "huge.pcd", _write(
        b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1000000000000\nHEIGHT 1\n"
        b"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 1000000000000\nDATA binary\n" + bytes(24)), ("points", "bytes")),
    Case("pcd_points_1e9_ascii", "huge_ascii.pcd", _write(
        b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1000000000\nHEIGHT 1\n"
        b"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 1000000000\nDATA ascii\n0 0 0\n"), ("points",)),
    Case("pcd_compressed_size_huge", "comp.pcd", _write(
        b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\n"
        b"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\nDATA binary_compressed\n" + struct.pack("<II", 8, 0xFFFFFFF0)
        + bytes(8))),
    Case("pcd_garbage", "junk.pcd", _write(b"garbage\n")),
    Case("xyz_words", "words.xyz", _write(b"a b c\nd e f\n")),
    Case("xyz_nan", "nan.xyz", _write(b"0 0 0\nnan 1 2\n"), ("NaN",)),
    # ---- meshes (trimesh)
    Case("ok_obj", "ok.obj", _write(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")),
    Case("ok_stl", "ok.stl", _write(_stl_binary(1, 1))),
    Case("ok_off", "ok.off", _write(b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")),
    Case("ok_glb", "ok.glb", _glb_tri()),
    Case("obj_face_out_of_range", "badface.obj", _write(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99\n")),
    Case("obj_binary_junk", "junk.obj", _write(b"\x00\x01\x02 binary junk")),
    Case("obj_mtllib_fifo", "mtl.obj", lambda p: (_fifo(p.with_name("fifo.mtl")), p.write_bytes(
        b"mtllib fifo.mtl\nusemtl a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")), ("not a regular file",)),
    Case("obj_texture_fifo", "tex.obj", lambda p: (
        _fifo(p.with_name("tex_fifo.png")), p.with_name("tex.mtl").write_bytes(b"newmtl a\nmap_Kd tex_fifo.png\n"),
        p.write_bytes(b"mtllib tex.mtl\nusemtl a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                      b"f 1/1 2/2 3/3\n")), ("not a regular file",)),
    Case("ok_gltf_external_buffer", "ok.gltf", _gltf_external(_GLB_BIN)),
    Case("gltf_buffer_fifo", "fifo.gltf", _gltf_external(None), ("not a regular file",)),
    Case("gltf_buffer_short", "short.gltf", _gltf_external(_GLB_BIN[:20]), ("byteLength",)),
    Case("stl_count_ffffffff", "count.stl", _write(_stl_binary(0xFFFFFFFF, 2)), ("triangles", "bytes")),
    Case("off_counts_1e9", "counts.off", _write(b"OFF\n1000000000 1000000000 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"),
         ("1000000000",)),
    Case("glb_length_past_end", "len.glb", lambda p: p.write_bytes(
        _glb(json.dumps(_GLB_TRI), declared_total=0x7FFFFFFF, bin_chunk=_GLB_BIN)), ("bytes",)),
    Case("glb_json_chunk_huge", "json.glb", lambda p: p.write_bytes(
        _glb(json.dumps(_GLB_TRI), json_len=0x7FFFFFF0, bin_chunk=_GLB_BIN))),
    Case("glb_accessor_count_1e9", "acc.glb", _glb_tri(accessors__0__count=10 ** 9)),
    Case("glb_buffer_view_past_end", "view.glb", _glb_tri(bufferViews__0__byteLength=10 ** 9)),
    # ---- NIfTI (SimpleITK)
    Case("ok_nii", "ok.nii", lambda p: p.write_bytes(_nifti_bytes())),
    Case("ok_nii_gz", "ok.nii.gz", lambda p: p.write_bytes(gzip.compress(_nifti_bytes()))),
    Case("nii_bad_dim1", "baddim.nii", _nifti_patched((_NII_DIM + 2, "h", 0)), ("dim",)),
    Case("nii_negative_dim", "negdim.nii", _nifti_patched((_NII_DIM + 4, "h", -7)), ("dim",)),
    Case("nii_dims_huge", "hugedim.nii", _nifti_patched((_NII_DIM + 2, "h", 32767), (_NII_DIM + 4, "h", 32767),
                                                        (_NII_DIM + 6, "h", 32767)), ("bytes",)),
    Case("nii_gz_dims_huge", "hugedim.nii.gz", _nifti_patched(
        (_NII_DIM + 2, "h", 32767), (_NII_DIM + 4, "h", 32767), (_NII_DIM + 6, "h", 32767), gz=True), ("bytes",)),
    Case("nii_ndim_9", "ndim.nii", _nifti_patched((_NII_DIM, "h", 9)), ("dim",)),
    Case("nii_datatype_bogus", "dtype.nii", _nifti_patched((_NII_DATATYPE, "h", 1234))),
    Case("nii_vox_offset_past_end", "voxoff.nii", _nifti_patched((_NII_VOX_OFFSET, "f", 1e9)), ("bytes",)),
    Case("nii_sform_nan", "sform.nii", _nifti_patched((_NII_QFORM_CODE, "h", 0), (_NII_SFORM_CODE, "h", 1),
                                                      (_NII_SROW_X, "f", float("nan"))), ("sform",)),
    Case("nii_qform_nan", "qform.nii", _nifti_patched((_NII_QFORM_CODE, "h", 1), (_NII_SFORM_CODE, "h", 0),
                                                      (_NII_QUATERN_B, "f", float("nan"))), ("qform",)),
    Case("nii_pixdim_inf", "pixdim.nii", _nifti_patched((_NII_PIXDIM + 8, "f", float("inf"))), ("pixdim",)),
    Case("nii_gz_corrupt_stream", "junk.nii.gz", _write(b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 200)),
    # ---- MHA / MHD / NRRD (SimpleITK)
    Case("ok_mha", "ok.mha", _mha()),
    Case("ok_nrrd", "ok.nrrd", _nrrd()),
    Case("ok_mhd", "ok.mhd", _mhd_pair(_write(bytes(240)))),
    Case("mha_dims_huge", "huge.mha", _mha(dims="100000 100000 100000"), ("bytes",)),
    Case("mha_compressed_dims_huge", "hugez.mha", _mha(dims="100000 100000 100000", compressed=True),
         ("bytes",)),
    Case("mha_short_data", "short.mha", _mha(data_bytes=100), ("bytes",)),
    Case("mha_element_type_bogus", "etype.mha", _mha(etype="MET_BOGUS")),
    Case("mha_negative_dim", "negdim.mha", _mha(dims="4 -5 6")),
    Case("mha_ndims_0", "ndims.mha", _mha(ndims=0, dims="")),
    Case("mhd_data_missing", "missing.mhd", lambda p: _mha(data_file="nowhere.raw")(p), ("nowhere.raw",)),
    Case("mhd_data_is_dev_zero", "zero.mhd", _mhd_pair(_dev_zero, dims="100000 100000 100000",
                                                       data_name="zero.raw"), ("not a regular file",)),
    Case("mhd_data_is_fifo", "fifo.mhd", _mhd_pair(_fifo, data_name="fifo.raw"), ("not a regular file",)),
    Case("nrrd_sizes_huge", "huge.nrrd", _nrrd(sizes="100000 100000 100000"), ("bytes",)),
    Case("nrrd_gzip_sizes_huge", "hugez.nrrd", _nrrd(sizes="100000 100000 100000", encoding="gzip"), ("bytes",)),
    Case("nrrd_type_bogus", "type.nrrd", _nrrd(type_="quaternion")),
    Case("nrrd_short_data", "short.nrrd", _nrrd(data_bytes=10), ("bytes",)),
    # ---- DICOM (SimpleITK / GDCM)
    Case("ok_dcm", "ok.dcm", lambda p: p.write_bytes(_dicom_bytes())),
    Case("ok_dicom_folder", "series", _dicom_folder_with(lambda p: p.write_bytes(_dicom_bytes()))),
    Case("dcm_rows_65535", "rows.dcm", _dicom_patched(0x0028, 0x0010, "H", 65535), ("65535",)),
    Case("dcm_columns_65535", "cols.dcm", _dicom_patched(0x0028, 0x0011, "H", 65535), ("65535",)),
    Case("dcm_bits_allocated_0", "bits.dcm", _dicom_patched(0x0028, 0x0100, "H", 0)),
    Case("dcm_pixel_data_truncated", "cutpix.dcm", lambda p: p.write_bytes(_dicom_bytes()[:-4000])),
    Case("dcm_garbage_after_preamble", "junk.dcm", _write(bytes(128) + b"DICM" + b"\xff" * 300)),
    # GDCM's folder scan skips what is not a regular file: the series loads.
    Case("ok_dicom_folder_with_fifo", "fifo_series", _dicom_folder_with(_fifo)),
    Case("nii_fifo", "fifo.nii", _fifo, ("not a regular file",)),
]

assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
assert len({c.filename for c in CASES}) == len(CASES), "file names must be unique"


def build(folder: Path):
    """Write every case into ``folder``; return ``[(case, path)]``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for case in CASES:
        path = folder / case.filename
        if not path.exists() and not path.is_symlink():
            case.make(path)
        out.append((case, path))
    return out


# ---------------------------------------------------------------- runner
def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:        # some sandboxes forbid it: the address-space cap still bounds memory
        return False


class _CaptureFd:
    """Capture what is written to a file descriptor (C libraries write to fd 2 directly)."""

    def __init__(self, fd: int):
        import tempfile

        self.fd, self.text = fd, ""
        self._file = tempfile.TemporaryFile()

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = os.dup(self.fd)
        os.dup2(self._file.fileno(), self.fd)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved, self.fd)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()


def run_case(case: Case, path: Path) -> dict:
    """Load one case through the API and the in-process CLI; time and measure it."""
    import gaze3d
    from gaze3d.cli import main

    measured = _reset_peak_rss()
    rss0 = _status_kb("VmRSS")
    t0 = time.perf_counter()
    api = message = None
    with _CaptureFd(1) as api_out, _CaptureFd(2) as api_err:
        try:
            gaze3d.load_scan(path)
            ok = True
        except Exception as exc:      # recorded, not handled: the test judges the class
            ok, api, message = False, type(exc).__name__, str(exc)
    with _CaptureFd(1) as out, _CaptureFd(2) as err:
        try:
            code = main(["info", str(path)])
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:
            code = f"raised {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    peak = round((_status_kb("VmHWM") - rss0) / 1024, 2) if measured else None
    return {"name": case.name, "path": str(path), "ok": ok, "api": api, "message": message,
            "api_noise": api_out.text + api_err.text, "cli_code": code, "cli_out": out.text,
            "cli_err": err.text, "seconds": round(seconds, 4), "peak_rss_mb": peak}


def warm_up(cases) -> None:
    """Import the readers' libraries before measuring (their first import is not the case's cost)."""
    import laspy  # noqa: F401
    import open3d  # noqa: F401
    import SimpleITK  # noqa: F401
    import trimesh  # noqa: F401

    import gaze3d
    for case, path in cases:
        if case.valid:
            try:
                gaze3d.load_scan(path)
            except Exception:
                pass                 # reported by the run itself


def wait_or_kill(proc, timeout_s: float) -> bool:
    """Wait for ``proc`` (started with ``start_new_session=True``); kill its process group after ``timeout_s``.

    Returns True when it finished in time, False when it was killed.
    """
    import signal
    import subprocess

    try:
        proc.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False


def read_results(lines) -> Tuple[dict, "str | None"]:
    """Parse what :func:`main` printed: ``({name: result row}, the case started but not finished or None)``."""
    rows, current = {}, None
    for line in lines:
        row = json.loads(line)
        if "start" in row:
            current = row["start"]
        else:
            rows[row["name"]], current = row, None
    return rows, current


def main(argv=None) -> int:
    import argparse
    import resource

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("names", nargs="*", help="only these cases")
    parser.add_argument("--limit-mb", type=float, default=1024.0,
                        help="address space allowed above what the imports use")
    args = parser.parse_intermixed_args(argv)
    cases = build(args.folder)
    if args.names:
        cases = [(c, p) for c, p in cases if c.name in args.names]
    warm_up(cases)
    limit = _status_kb("VmSize") * 1024 + int(args.limit_mb * 2 ** 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Results go to the original stdout; anything a library prints to fd 1 goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for case, path in cases:
        print(json.dumps({"start": case.name}), file=out, flush=True)
        print(json.dumps(run_case(case, path)), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
