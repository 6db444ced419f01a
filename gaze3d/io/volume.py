"""Voxel volumes through SimpleITK: NIfTI, NRRD, MHA/MHD, DICOM files and series.

SimpleITK reports every format in the ITK/DICOM patient frame (LPS, mm) and
converts NIfTI's RAS on read and write, as 3D Slicer and ITK-SNAP do. The
voxel array is transposed from SimpleITK's ``[k, j, i]`` to ``[i, j, k]`` and
the affine is ``direction @ diag(spacing)`` with the origin as translation
(see :class:`gaze3d.scan.Volume`).
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

from .._optional import optional_import
from ..errors import ScanFormatError
from ..scan import Volume
from ._common import _fsync, atomic_path, check_readable, corrupt, extension, quiet_stderr, scan_errors, umask
from ._nifti import check_nifti_header
from ._volume_checks import check_dicom_files, check_volume_header

EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
WRITE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
# Grids agree when every affine entry matches to this many millimetres.
AFFINE_TOLERANCE_MM = 1e-3


def _sitk():
    return optional_import("SimpleITK", extra="io")


def _itk_reason(exc: BaseException) -> str:
    """The useful line of a multi-line ITK/SimpleITK error message."""
    lines = []
    for line in str(exc).splitlines()[1:] or str(exc).splitlines():
        line = re.sub(r"^(ITK ERROR: \w+\(0x[0-9a-fA-F]+\): |sitk::ERROR: |\[\w+\] )", "", line.strip())
        # ITK adds errno's text, often stale ("No such file") for a file that exists
        if line and not line.endswith("trouble") and not line.startswith("Reason:"):
            lines.append(line)
    return lines[-1] if lines else type(exc).__name__


def _read_image(path: Path):
    sitk = _sitk()
    # ITK warnings ("No Series were found", MetaIO/niftilib lines) go to stderr above our
    # one-line error: hide them (global flag and C-level fd 2) and keep the last line as reason.
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    err = None
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            with quiet_stderr() as err:
                series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise ScanFormatError(f"{path}: no DICOM series in this folder")
            # Several series: take the one with the most slices.
            files = max((reader.GetGDCMSeriesFileNames(str(path), s) for s in series), key=len)
            check_dicom_files(sitk, path, files)
            reader.SetFileNames(files)
            with quiet_stderr() as err:
                return reader.Execute()
        if extension(path) in (".nii", ".nii.gz"):
            check_nifti_header(path)
        else:
            check_volume_header(sitk, path)
        with quiet_stderr() as err:
            return sitk.ReadImage(str(path))
    except ScanFormatError:
        raise
    except Exception as exc:  # SimpleITK raises RuntimeError with multi-line ITK messages
        kind = "DICOM" if path.is_dir() else extension(path).lstrip(".").upper()
        reason = _itk_reason(exc)
        if err is not None and err.last_line and err.last_line not in reason:
            reason = f"{err.last_line}; {reason}"          # niftilib/MetaIO say what is wrong
        raise corrupt(path, kind, reason) from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _to_3d(path, image):
    sitk = _sitk()
    size = image.GetSize()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ScanFormatError(f"{path}: {image.GetNumberOfComponentsPerPixel()} components per voxel "
                              f"(vector/RGB image); expected a scalar 3D volume")
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)          # one slice, unit spacing along k
    elif image.GetDimension() == 4 and size[3] == 1:
        image = image[:, :, :, 0]
    elif image.GetDimension() != 3:
        raise ScanFormatError(f"{path}: {image.GetDimension()}D volume of size "
                              f"{'x'.join(map(str, size))}; expected a 3D volume")
    return image


def image_affine(image) -> np.ndarray:
    """(4, 4) float64 index -> LPS mm affine of a 3D SimpleITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return affine


def read_image(path):
    """Read any SimpleITK-readable 3D image.

    Returns
    -------
    array : (I, J, K) array
        Voxels indexed ``[i, j, k]``.
    affine : (4, 4) float64
        Index -> LPS millimetres.
    """
    sitk = _sitk()
    path = check_readable(path, allow_dir=True)
    image = _to_3d(path, _read_image(path))
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    if array.size == 0:
        raise ScanFormatError(f"{path}: empty volume {array.shape}")
    return array, image_affine(image)


def check_same_grid(image_path, labels_path, shape, affine, label_shape, label_affine) -> None:
    """Raise :class:`ScanFormatError` unless the label volume lies on the image's grid."""
    if tuple(label_shape) != tuple(shape):
        raise ScanFormatError(f"{labels_path}: label volume shape {tuple(label_shape)} differs from "
                              f"the image {image_path} shape {tuple(shape)}")
    diff = float(np.abs(np.asarray(label_affine) - np.asarray(affine)).max())
    if diff > AFFINE_TOLERANCE_MM:
        raise ScanFormatError(f"{labels_path}: label volume affine differs from the image {image_path} "
                              f"affine by up to {diff:.4g} mm (expected the same grid)")


def load_volume(path, labels=None, label_names: Optional[Mapping[int, str]] = None) -> Volume:
    """Read a volume, optionally with a label volume on the same grid.

    Parameters
    ----------
    path : str or Path
        A NIfTI/NRRD/MHA/MHD/DICOM file, or a folder holding a DICOM series.
    labels : str or Path, optional
        A label volume (segmentation mask) with the same shape and affine.
    label_names : dict of int -> str, optional
        Names of the label values.

    Returns
    -------
    Volume
        ``array (I, J, K)``, ``affine (4, 4)`` index -> LPS mm, ``labels (I, J, K) int32``.
    """
    array, affine = read_image(path)
    label_array = None
    if labels is not None:
        label_array, label_affine = read_image(labels)
        check_same_grid(path, labels, array.shape, affine, label_array.shape, label_affine)
        if not np.issubdtype(label_array.dtype, np.integer):
            if not np.all(np.mod(label_array, 1) == 0):
                raise ScanFormatError(f"{labels}: label volume has non-integer values "
                                      f"({label_array.dtype}); expected integer labels")
    with scan_errors(path):
        return Volume(array=array, affine=affine, labels=label_array,
                      label_names={int(k): str(v) for k, v in (label_names or {}).items()},
                      source=str(path))


def _image(array: np.ndarray, affine: np.ndarray):
    sitk = _sitk()
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    if np.abs(direction.T @ direction - np.eye(3)).max() > 1e-4:
        raise ValueError("the affine's axes are not orthogonal (sheared); ITK formats store "
                         "orthonormal directions and would silently change the geometry")
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(affine[:3, 3].tolist())
    image.SetDirection(direction.reshape(-1).tolist())
    return image


def write_image(array: np.ndarray, affine: np.ndarray, path) -> None:
    """Write an ``(I, J, K)`` array with its index -> LPS affine, atomically.

    ``.mhd`` is a header plus a ``.raw``/``.zraw`` data file: both are written
    in a temporary folder beside the target, then moved, data file first.
    """
    sitk = _sitk()
    path = Path(path)
    ext = extension(path)
    if ext not in WRITE_EXTENSIONS:
        raise ScanFormatError(f"{path}: cannot write a volume as {ext or 'no extension'} "
                              f"(expected one of {', '.join(WRITE_EXTENSIONS)})")
    try:
        image = _image(np.asarray(array), np.asarray(affine, dtype=np.float64))
        if ext == ".mhd":
            folder = path.parent if str(path.parent) else Path(".")
            if not folder.is_dir():
                raise ScanFormatError(f"{path}: folder {folder} does not exist")
            # a header and its data file: written together in a temporary folder, each given the
            # umask mode and flushed like atomic_path does, then moved, the header last (a reader
            # that finds the new header finds its data)
            with tempfile.TemporaryDirectory(dir=folder, prefix=f".{path.stem}.") as tmp:
                sitk.WriteImage(image, str(Path(tmp) / path.name), True)
                names = sorted(os.listdir(tmp), key=lambda n: n == path.name)  # header last
                for name in names:
                    os.chmod(Path(tmp) / name, 0o666 & ~umask())
                    _fsync(Path(tmp) / name)
                for name in names:
                    os.replace(Path(tmp) / name, folder / name)
                _fsync(folder, directory=True)
            return
        with atomic_path(path) as tmp:
            sitk.WriteImage(image, str(tmp), ext != ".nii")
    except (RuntimeError, TypeError, ValueError) as exc:   # ITK rejects e.g. sheared directions
        raise ScanFormatError(f"{path}: could not write the volume ({_itk_reason(exc)})") from exc


def save_volume(volume: Volume, path, labels=None, fields: Optional[Dict[str, str]] = None) -> None:
    """Write a volume, and optionally its labels and fields, each on the image's grid.

    Parameters
    ----------
    volume : Volume
    path : str or Path
        Image file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``, ``.mhd``).
    labels : str or Path, optional
        Where to write ``volume.labels`` (an int32 label map that Slicer loads
        as a segmentation or label map).
    fields : dict of str -> path, optional
        Where to write each of ``volume.fields`` (e.g. ``{"attention": "att.nii.gz"}``).
    """
    write_image(volume.array, volume.affine, path)
    if labels is not None:
        save_labels(volume, labels)
    for name, target in (fields or {}).items():
        if name not in volume.fields:
            raise ScanFormatError(f"{target}: the volume has no field {name!r} "
                                  f"(has {', '.join(volume.fields) or 'none'})")
        write_image(np.asarray(volume.fields[name]), volume.affine, target)


def save_labels(volume: Volume, path) -> None:
    """Write ``volume.labels`` as a label volume on the image's grid."""
    if volume.labels is None:
        raise ScanFormatError(f"{path}: the volume has no labels to write")
    write_image(volume.labels, volume.affine, path)
