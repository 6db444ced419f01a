"""NIfTI header checks made before ITK reads a file.

ITK's NIfTI reader fills a truncated file's missing voxels silently, prints
niftilib's ``** ERROR: nifti_convert_nhdr2nim: bad dim[1]`` lines to stderr
before it raises, and a NaN ``sform`` gives an identity affine or an ITK
error with a matrix dump. Here the header is parsed (NIfTI-1 and NIfTI-2,
either byte order) and checked: dimensions, data type, voxel offset, finite
transforms, and the voxel bytes the header announces against what the file
(or its gzip stream) holds, without allocating the volume.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from ._common import DEFLATE_MAX_RATIO, corrupt, extension

# NIfTI datatype code -> bits per voxel (nifti1.h).
_DATATYPE_BITS = {1: 1, 2: 8, 4: 16, 8: 32, 16: 32, 32: 64, 64: 64, 128: 24, 256: 8, 512: 16, 768: 32,
                  1024: 64, 1280: 64, 1536: 128, 1792: 128, 2048: 256, 2304: 32}
# sizeof_hdr -> (format of the fields below, their offsets), NIfTI-1 (348) and NIfTI-2 (540).
_LAYOUT = {
    348: dict(dim=(40, "8h"), datatype=(70, "h"), pixdim=(76, "8f"), vox_offset=(108, "f"),
              qform_code=(252, "h"), sform_code=(254, "h"), quatern=(256, "6f"), srow=(280, "12f")),
    540: dict(datatype=(12, "h"), dim=(16, "8q"), pixdim=(104, "8d"), vox_offset=(168, "q"),
              qform_code=(344, "i"), sform_code=(348, "i"), quatern=(352, "6d"), srow=(400, "12d")),
}
_CHUNK = 1 << 22


def parse_nifti_header(header: bytes) -> Optional[dict]:
    """The fields of a NIfTI-1/2 header needed for the checks, or None if it is not NIfTI.

    Parameters
    ----------
    header : bytes
        The first 540 bytes of the (decompressed) file.

    Returns
    -------
    dict or None
        ``sizeof_hdr``, ``dim`` (8,), ``datatype``, ``pixdim`` (8,),
        ``vox_offset``, ``qform_code``, ``sform_code``, ``quatern`` (6,)
        (b, c, d, offsets), ``srow`` (12,).
    """
    for order in "<>":
        if len(header) < 4:
            return None
        size = struct.unpack(order + "i", header[:4])[0]
        if size in _LAYOUT and len(header) >= size:
            out = {"sizeof_hdr": size}
            for name, (offset, fmt) in _LAYOUT[size].items():
                values = struct.unpack_from(order + fmt, header, offset)
                out[name] = values if len(values) > 1 else values[0]
            return out
    return None


def check_nifti_header(path: Path) -> None:
    """Raise a one-line error if a .nii/.nii.gz header is invalid or announces more than the file holds.

    Checked: ``dim[0]`` in 1..7 and ``dim[1..dim[0]] >= 1``; a known
    datatype; ``vox_offset`` at or after the header; finite ``pixdim``,
    ``sform`` rows (when ``sform_code > 0``) and quaternion (when
    ``qform_code > 0``): a NaN sform would otherwise load as an identity
    affine, silently misplacing the volume; then ``vox_offset`` + voxel bytes
    against the file size. For ``.nii.gz`` the gzip trailer's size is
    compared first, then a count of the stream (at most 1032 bytes per
    compressed byte, decompressed in bounded chunks).

    Raises
    ------
    ScanFormatError
    """
    gz = extension(path) == ".nii.gz"
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            hdr = parse_nifti_header(fh.read(540))
    except (OSError, EOFError, zlib.error) as exc:
        raise corrupt(path, "NIfTI", exc) from None
    if hdr is None:
        return                                   # not NIfTI after all: let ITK report it

    def bad(reason):
        return corrupt(path, "NIfTI", reason)

    dim, ndim = hdr["dim"], hdr["dim"][0]
    if not 1 <= ndim <= 7:
        raise bad(f"dim[0] = {ndim} (the number of dimensions, expected 1 to 7)")
    for i in range(1, ndim + 1):
        if dim[i] < 1:
            raise bad(f"dim[{i}] = {dim[i]} (expected a size >= 1)")
    if hdr["datatype"] not in _DATATYPE_BITS:
        raise bad(f"datatype {hdr['datatype']} is not a NIfTI data type code")
    offset = hdr["vox_offset"]
    if not np.isfinite(offset) or offset < 0:
        raise bad(f"vox_offset {offset} (expected a byte offset >= 0)")
    offset = max(int(offset), hdr["sizeof_hdr"])   # niftilib reads an offset inside the header from its end
    if not np.all(np.isfinite(hdr["pixdim"][1:ndim + 1])):
        raise bad(f"pixdim {list(hdr['pixdim'][1:ndim + 1])} holds NaN/inf (expected voxel sizes)")
    if hdr["sform_code"] > 0 and not np.all(np.isfinite(hdr["srow"])):
        raise bad(f"sform (sform_code {hdr['sform_code']}) holds NaN/inf in srow_x/y/z; expected a finite "
                  f"affine (or sform_code 0 to use the qform)")
    if hdr["qform_code"] > 0 and not np.all(np.isfinite(hdr["quatern"])):
        raise bad(f"qform (qform_code {hdr['qform_code']}) holds NaN/inf in the quaternion or offsets")
    nvox = int(np.prod([int(d) for d in dim[1:ndim + 1]], dtype=object))
    need = int(offset) + (nvox * _DATATYPE_BITS[hdr["datatype"]] + 7) // 8
    if not gz:
        have = path.stat().st_size
    else:
        packed = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            if struct.unpack("<I", fh.read(4))[0] == need % (1 << 32) and need <= packed * DEFLATE_MAX_RATIO:
                return
        if need > packed * DEFLATE_MAX_RATIO:
            raise bad(f"header announces {need:,} bytes of header and voxels; {packed:,} gzip bytes "
                      f"hold at most {packed * DEFLATE_MAX_RATIO:,}")
        have = _gzip_length(path, need)
    if have < need:
        raise bad(f"header announces {need:,} bytes of header and voxels, the file holds {have:,}")


def _gzip_length(path: Path, enough: int) -> int:
    """Decompressed length of a gzip file, counted in bounded chunks, stopping past ``enough``."""
    have, inflate = 0, zlib.decompressobj(16 + zlib.MAX_WBITS)   # gzip framing
    try:
        with open(path, "rb") as fh:
            while have <= enough and not inflate.eof:
                data = inflate.unconsumed_tail or fh.read(_CHUNK)
                if not data:
                    break
                have += len(inflate.decompress(data, _CHUNK))
    except zlib.error as exc:
        raise corrupt(path, "NIfTI", exc) from None
    return have
