"""Read and write scans, with the format chosen by the file extension.

=====================  ===========  ==========================================
extension              scan type    library / what is kept
=====================  ===========  ==========================================
.ply                   cloud, mesh  own parser: every vertex property
.pcd                   cloud        Open3D tensor I/O: all fields
.xyz .xyzn .xyzrgb     cloud        Open3D: xyz (+ normals / colours)
.pts                   cloud        Open3D (read only)
.las .laz              cloud        laspy + lazrs: classification, RGB,
                                    intensity, extra-bytes dimensions;
                                    written back on the input's records
.obj .stl .off .glb    mesh         trimesh: geometry, vertex colours
.vtp                   cloud, mesh  own writer (write only): float64 points,
                                    every field as VTK point data
.nii .nii.gz .nrrd     volume       SimpleITK: voxels, affine (LPS mm)
.mha .mhd .dcm         volume       SimpleITK
folder                 volume       a DICOM series (SimpleITK/GDCM)
=====================  ===========  ==========================================

Errors are :class:`~gaze3d.errors.ScanFormatError` (an ``InputError``) with
one line naming the file and the problem. Writes are atomic: a temporary
file in the target folder replaces the target only once complete.
Heavy libraries are imported on first use.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple, Union

from ..errors import InputError, ScanFormatError
from ..scan import Mesh, PointCloud, Volume
from ._common import check_readable, extension

Scan = Union[PointCloud, Mesh, Volume]

_CLOUD_TEXT = (".xyz", ".xyzn", ".xyzrgb", ".pts")
_MESH = (".obj", ".stl", ".off", ".glb", ".gltf")
_VOLUME = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
READ_EXTENSIONS = (".ply", ".pcd", ".las", ".laz") + _CLOUD_TEXT + _MESH + _VOLUME
WRITE_EXTENSIONS = {
    PointCloud: (".ply", ".pcd", ".las", ".laz", ".vtp", ".xyz", ".xyzn", ".xyzrgb"),
    Mesh: (".ply", ".vtp", ".obj", ".stl", ".off", ".glb"),
    Volume: (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"),
}
# The formats that hold labels and per-element fields (attention, mask...);
# the others keep geometry (and colours or normals at most). A volume file
# holds one array: its labels and fields are written as volumes of their own.
KEEPS_FIELDS = {
    PointCloud: (".ply", ".pcd", ".las", ".laz", ".vtp"),
    Mesh: (".ply", ".vtp"),
    Volume: (),
}

_KIND_NAMES = {PointCloud: "point cloud", Mesh: "mesh", Volume: "volume"}

__all__ = ["load_scan", "save_scan", "load_volume", "save_labels", "check_output", "READ_EXTENSIONS",
           "WRITE_EXTENSIONS", "KEEPS_FIELDS", "Scan"]


def load_scan(path, labels=None, *, label_names: Optional[Mapping[int, str]] = None) -> Scan:
    """Read a point cloud, mesh or volume; the extension picks the reader.

    Parameters
    ----------
    path : str or Path
        A scan file, or a folder holding a DICOM series.
    labels : str or Path, optional
        Volumes only: a label volume on the same grid (checked: shape and
        affine must match).
    label_names : dict of int -> str, optional
        Names of the label values (LAS files get ASPRS names by default).

    Returns
    -------
    PointCloud, Mesh or Volume
        A PLY file with a non-empty ``face`` element is a :class:`Mesh`.

    Raises
    ------
    ScanFormatError
        Missing file, unknown extension, corrupt or truncated file, empty
        scan, NaN/inf coordinates, a label volume on another grid, a 4D volume.
    """
    p = check_readable(path, allow_dir=True)
    ext = "" if p.is_dir() else extension(p)
    if p.is_dir() or ext in _VOLUME:
        from .volume import load_volume as _load_volume
        return _load_volume(p, labels=labels, label_names=label_names)
    if labels is not None:
        raise InputError(f"{p}: labels= takes a label volume and applies to volumes only; "
                         f"point clouds and meshes carry their labels in the file")
    if ext == ".ply":
        from .ply import load_ply as reader
    elif ext == ".pcd":
        from .pointcloud import load_pcd as reader
    elif ext in _CLOUD_TEXT:
        from .pointcloud import load_text_cloud as reader
    elif ext in (".las", ".laz"):
        from .las import load_las as reader
    elif ext in _MESH:
        from .mesh import load_mesh as reader
    else:
        raise ScanFormatError(f"{p}: unknown scan extension {ext or '(none)'!r} "
                              f"(supported: {' '.join(READ_EXTENSIONS)} or a DICOM folder)")
    scan = reader(p)
    if label_names:
        scan.label_names = {**scan.label_names, **{int(k): str(v) for k, v in label_names.items()}}
    return scan


def load_volume(path, labels=None, label_names: Optional[Mapping[int, str]] = None) -> Volume:
    """Read a volume (file or DICOM folder), optionally with a label volume on its grid.

    See :func:`gaze3d.io.volume.load_volume`; raises :class:`ScanFormatError`
    if ``path`` is not a volume format.
    """
    p = check_readable(path, allow_dir=True)
    if not p.is_dir() and extension(p) not in _VOLUME:
        raise ScanFormatError(f"{p}: not a volume format (expected {' '.join(_VOLUME)} or a DICOM folder)")
    from .volume import load_volume as _load_volume
    return _load_volume(p, labels=labels, label_names=label_names)


def save_scan(scan: Scan, path, *, labels=None, fields: Optional[Dict[str, str]] = None) -> None:
    """Write a scan; the extension picks the format (see the module table).

    Parameters
    ----------
    scan : PointCloud, Mesh or Volume
        Validated again before writing (arrays may have been replaced since
        construction): a label array of the wrong length is an error.
    path : str or Path
        Target file, written atomically.
    labels : str or Path, optional
        Volumes only: also write ``scan.labels`` there as a label volume.
    fields : dict of str -> path, optional
        Volumes only: also write these ``scan.fields`` as volumes.
    """
    path = Path(path)
    kind = next((t for t in WRITE_EXTENSIONS if isinstance(scan, t)), None)
    if kind is None:
        raise InputError(f"{path}: save_scan expects a PointCloud, Mesh or Volume, got {type(scan).__name__}")
    ext = extension(path)
    if ext not in WRITE_EXTENSIONS[kind]:
        raise ScanFormatError(f"{path}: cannot write a {kind.__name__} as {ext or '(no extension)'!r} "
                              f"(expected one of {' '.join(WRITE_EXTENSIONS[kind])})")
    if kind is not Volume and (labels is not None or fields):
        raise InputError(f"{path}: labels=/fields= paths apply to volumes only; point clouds and "
                         f"meshes write labels and fields into the file itself")
    scan = dataclasses.replace(scan, source=str(path))     # re-runs validation, names the file
    if kind is Volume:
        from .volume import save_volume
        save_volume(scan, path, labels=labels, fields=fields)
    elif ext == ".ply":
        from .ply import save_ply
        save_ply(scan, path)
    elif ext == ".pcd":
        from .pointcloud import save_pcd
        save_pcd(scan, path)
    elif ext in (".las", ".laz"):
        from .las import save_las
        save_las(scan, path)
    elif ext == ".vtp":
        from .vtp import save_vtp
        save_vtp(scan, path)
    elif ext in _CLOUD_TEXT:
        from .pointcloud import save_text_cloud
        save_text_cloud(scan, path)
    else:
        from .mesh import save_mesh
        save_mesh(scan, path)


def save_labels(volume: Volume, path) -> None:
    """Write ``volume.labels`` as a label volume (NIfTI/NRRD/MHA) on the image's grid."""
    from .volume import save_labels as _save_labels
    _save_labels(volume, path)


def check_output(path, kinds: Union[type, Tuple[type, ...]] = (PointCloud, Mesh, Volume), *,
                 keeps: Iterable[str] = (), what: str = "") -> Path:
    """Check, before any work, that ``path`` can receive the scan a command will write.

    Parameters
    ----------
    path : str or Path
        The output file.
    kinds : type or tuple of types
        The scan type(s) that may be written there (a tuple while the input
        is not read yet: the extension must suit at least one of them).
    keeps : iterable of str
        What the output must hold besides geometry (``"attention"``,
        ``"labels"``...); then formats that would drop them (``.xyz``,
        ``.obj``...) are refused. Volumes are never refused for this: their
        fields are written as volumes of their own.
    what : str
        The option that named the path (``"-o"``), for the message.

    Returns
    -------
    Path

    Raises
    ------
    ScanFormatError
        The extension is not written for these scan types or would drop
        ``keeps``; the folder does not exist or is not writable; the path is
        a folder.
    """
    path = Path(path)
    where = f"{what} {path}" if what else str(path)
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    keeps = list(keeps)
    ext = extension(path)
    # the formats that suit: all those written, or only those keeping `keeps` (any volume format:
    # a volume's field is a volume of its own)
    suits = {k: WRITE_EXTENSIONS[k] if (k is Volume or not keeps) else KEEPS_FIELDS[k] for k in kinds}
    expected = " ".join(sorted({e for k in kinds for e in suits[k]}))
    what_kind = "a " + " or ".join(_KIND_NAMES[k] for k in kinds) if len(kinds) < 3 else "a scan"
    writable = [k for k in kinds if ext in WRITE_EXTENSIONS[k]]
    if not writable:
        raise ScanFormatError(f"{where}: cannot write {what_kind} as {ext or '(no extension)'!r} "
                              f"(expected one of {expected})")
    if not any(ext in suits[k] for k in writable):
        raise ScanFormatError(f"{where}: {ext} would drop {', '.join(keeps)} (it holds geometry only); "
                              f"use one of {expected}")
    if path.is_dir():
        raise ScanFormatError(f"{where}: is a folder, expected an output file name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ScanFormatError(f"{where}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ScanFormatError(f"{where}: folder {folder} is not writable")
    return path
