"""A NIfTI completeness check: ITK fills the missing voxels of a truncated file silently."""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ._common import corrupt, extension


def _nifti_data_size(header: bytes):
    """Bytes a NIfTI-1/2 file needs (``vox_offset`` + voxel data), or None if not NIfTI."""
    for order in "<>":
        size = struct.unpack(order + "i", header[:4])[0] if len(header) >= 4 else 0
        if size == 348 and len(header) >= 348:                      # NIfTI-1
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
        elif size == 540 and len(header) >= 540:                    # NIfTI-2
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
        else:
            continue
        ndim = min(max(int(dims[0]), 0), 7)
        nvox = int(np.prod([max(int(d), 1) for d in dims[1:ndim + 1]], dtype=np.int64))
        return max(offset, size) + nvox * max(int(bitpix), 8) // 8
    return None


def check_nifti_complete(path: Path) -> None:
    """Raise if a .nii/.nii.gz file holds less voxel data than its header announces.

    ITK's NIfTI reader fills a truncated file's missing voxels silently. For
    ``.nii.gz`` the gzip trailer's size field is compared first (cheap); only
    if it disagrees is the stream decompressed to count the bytes.
    """
    gz = extension(path) == ".nii.gz"
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            need = _nifti_data_size(fh.read(540))
    except (OSError, EOFError, zlib.error) as exc:
        raise corrupt(path, "NIfTI", exc) from None
    if need is None:
        return                                   # not NIfTI after all: let ITK report it
    if not gz:
        have = path.stat().st_size
    else:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            if struct.unpack("<I", fh.read(4))[0] == need % (1 << 32):
                return
        have, inflate = 0, zlib.decompressobj(16 + zlib.MAX_WBITS)   # gzip framing
        try:
            with open(path, "rb") as fh:
                while (chunk := fh.read(1 << 22)) and not inflate.eof:
                    have += len(inflate.decompress(chunk))
        except zlib.error as exc:
            raise corrupt(path, "NIfTI", exc) from None
    if have < need:
        raise corrupt(path, "NIfTI", f"header announces {need} bytes of header and voxels, "
                                     f"the file holds {have}")
