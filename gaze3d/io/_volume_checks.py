"""Checks of MetaImage, NRRD and DICOM headers before SimpleITK reads the voxels.

ITK allocates the image its header describes, then reads: a 400-byte MHA
claiming 100000^3 voxels fails in the allocator (or swaps), a DICOM whose
Rows say 65535 over 64x64 pixel data is zero-padded to 4.2 M voxels, and a
``.mhd`` whose data file is a FIFO blocks forever. So the header is read on
its own (``ImageFileReader.ReadImageInformation``: size and pixel type, no
voxels), the data files it names must be regular files, and the voxel bytes
must fit in what holds them: raw data byte for byte, gzip/zlib data at most
1032 bytes per compressed byte, text data at least two characters per value.
Encodings whose expansion has no useful bound (bzip2, JPEG in DICOM) are
left to ITK.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import List, Optional, Tuple

from ._common import (DEFLATE_MAX_RATIO, check_regular, corrupt, extension, quiet_stderr, referenced_file,
                      too_short)

_MAX_HEADER = 1 << 20
# DICOM transfer syntaxes whose pixel data is stored as is.
_DICOM_NATIVE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
_DICOM_DEFLATED = "1.2.840.10008.1.2.1.99"


class _Data:
    """Where a header's voxels are: byte count available and how they are encoded."""

    def __init__(self, nbytes: int, ratio: Optional[float], where: str):
        self.nbytes, self.ratio, self.where = nbytes, ratio, where   # ratio None: no bound


def _text_header(path: Path, separators, end_marker) -> Tuple[List[Tuple[str, str]], int]:
    """``(key, value)`` pairs of a text header and the byte offset after it.

    Keys are lower-cased; ``separators`` are tried in order on each line
    (``=`` for MetaImage, ``:=`` then ``:`` for NRRD). ``end_marker(key)``
    is true on the header's last line; the header also ends at an empty
    line (NRRD) or after 1 MiB.
    """
    with open(path, "rb") as fh:
        raw = fh.read(_MAX_HEADER)
    pairs, pos = [], 0
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        nl = len(raw) if nl < 0 else nl
        line = raw[pos:nl].decode("latin-1").rstrip("\r")
        pos = nl + 1
        if not line.strip():
            break
        for sep in separators:
            if sep in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition(sep)
                pairs.append((key.strip().lower(), value.strip()))
                break
        if pairs and end_marker(pairs[-1][0]):
            break
    return pairs, min(pos, len(raw))


def _external(path: Path, name: str, what: str) -> Optional[int]:
    """Size of a detached data file named in a header (None for lists/patterns of files)."""
    if name.upper().startswith("LIST") or "%" in name or " " in name.strip():
        return None                      # several files (slices): ITK checks each
    return referenced_file(path, name, what).st_size


def _metaimage_data(path: Path) -> Optional[_Data]:
    pairs, end = _text_header(path, ("=",), lambda key: key == "elementdatafile")
    keys = dict(pairs)
    if "elementdatafile" not in keys:
        return None                                # not a MetaImage header: ITK reports it
    name = keys["elementdatafile"]
    if name.upper() == "LOCAL":
        nbytes, where = path.stat().st_size - end, "the file holds"
    else:
        nbytes = _external(path, name, "data file")
        if nbytes is None:
            return None
        where = f"data file {name} holds"
    skip = keys.get("headersize", "0")
    nbytes -= int(skip) if skip.isdigit() else 0      # -1: the data is the end of the file
    if keys.get("compresseddata", "false").lower() == "true":
        return _Data(nbytes, DEFLATE_MAX_RATIO, where + " (zlib)")
    if keys.get("binarydata", "true").lower() == "false":
        return _Data(nbytes, 0.5, where + " (text)")
    return _Data(nbytes, 1.0, where)


def _nrrd_data(path: Path) -> Optional[_Data]:
    pairs, end = _text_header(path, (":=", ":"), lambda key: False)
    keys = dict(pairs)
    name = keys.get("data file") or keys.get("datafile")
    if name:
        nbytes = _external(path, name, "data file")
        if nbytes is None:
            return None
        where = f"data file {name} holds"
    else:
        nbytes, where = path.stat().st_size - end, "the file holds"
    skip = keys.get("byte skip", "0")
    nbytes -= int(skip) if skip.isdigit() else 0
    encoding = keys.get("encoding", "raw").lower()
    ratio = {"raw": 1.0, "gzip": DEFLATE_MAX_RATIO, "gz": DEFLATE_MAX_RATIO, "ascii": 0.5, "text": 0.5,
             "txt": 0.5, "hex": 0.5}.get(encoding)
    return _Data(nbytes, ratio, f"{where} ({encoding})")


def _dicom_data(path: Path) -> Optional[_Data]:
    """Native (uncompressed) or deflated DICOM: the file's size bounds the pixel data."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 14)
    syntax = "1.2.840.10008.1.2"          # no meta header: implicit VR little endian
    at = head.find(b"\x02\x00\x10\x00UI", 128)
    if head[128:132] == b"DICM" and at > 0:
        length = struct.unpack_from("<H", head, at + 6)[0]
        syntax = head[at + 8:at + 8 + length].rstrip(b"\0 ").decode("ascii", errors="replace")
    size = path.stat().st_size
    if syntax in _DICOM_NATIVE:
        return _Data(size, 1.0, "the file holds")
    if syntax == _DICOM_DEFLATED:
        return _Data(size, DEFLATE_MAX_RATIO, "the file holds (deflated)")
    return None


def header_voxel_bytes(sitk, path: Path, kind: str) -> Tuple[int, str]:
    """Voxel bytes an image header announces, read without the voxels (ITK's stderr lines hidden).

    Returns
    -------
    nbytes : int
    claim : str
        What the header claims, for messages (``"header claims 64x65535x1 voxels of 2 bytes"``).
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_stderr() as err:
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            from .volume import _itk_reason        # one parser of ITK messages
            raise corrupt(path, kind, err.last_line or _itk_reason(exc)) from None
    size = reader.GetSize()
    if any(s < 1 for s in size):
        raise corrupt(path, kind, f"size {'x'.join(map(str, size))} (expected sizes >= 1)")
    count = 1
    for s in size:
        count *= s
    stored = _dicom_stored_bits(reader)
    if stored:   # ITK's pixel type is after rescale (float32 for 16-bit CT): use the stored bits
        return (count * stored + 7) // 8, f"header claims {'x'.join(map(str, size))} pixels of {stored} bits"
    component = sitk.Image([1] * len(size), reader.GetPixelID()).GetSizeOfPixelComponent()
    voxel = component * reader.GetNumberOfComponents()
    return count * voxel, f"header claims {'x'.join(map(str, size))} voxels of {voxel} bytes"


def _dicom_stored_bits(reader) -> int:
    """Bits Allocated x Samples per Pixel of a DICOM header read by GDCM (0 if not DICOM)."""
    def tag(key, default):
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else default

    try:
        bits, samples = int(tag("0028|0100", "0")), max(int(tag("0028|0002", "1")), 1)
    except (RuntimeError, ValueError):
        return 0
    if samples == 3 and "422" in tag("0028|0004", ""):
        samples = 2        # YBR_*_422: two chroma samples per pixel pair, stored as is
    return bits * samples


def check_volume_header(sitk, path: Path) -> None:
    """Raise a one-line error if an MHA/MHD/NRRD/NHDR/DCM header announces more voxels than its data holds.

    Parameters
    ----------
    sitk : module
        SimpleITK.
    path : Path
        A regular file with one of those extensions (others return at once).
    """
    ext = extension(path)
    if ext in (".mha", ".mhd"):
        data = _metaimage_data(path)
    elif ext in (".nrrd", ".nhdr"):
        data = _nrrd_data(path)
    elif ext == ".dcm":
        data = _dicom_data(path)
    else:
        return
    kind = ext.lstrip(".").upper()
    need, claim = header_voxel_bytes(sitk, path, kind)
    if data is not None and data.ratio is not None and need > max(data.nbytes, 0) * data.ratio:
        where = data.where if data.ratio == 1.0 else \
            f"at most {data.ratio:g} voxel bytes per data byte and {data.where}"
        raise too_short(path, kind, claim, need, max(data.nbytes, 0), where)


def check_dicom_files(sitk, folder: Path, files) -> None:
    """Check a DICOM series' files: regular files, each large enough for the first one's slice."""
    files = [Path(f) for f in files]
    sizes = [check_regular(f).st_size for f in files]
    first = _dicom_data(files[0])
    need, claim = header_voxel_bytes(sitk, files[0], "DICOM")
    if first is None or first.ratio is None:
        return
    for f, size in zip(files, sizes):
        if need > size * first.ratio:
            raise too_short(f, "DICOM", f"series {folder.name}: the first slice's {claim}", need, size)
