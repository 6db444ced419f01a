"""DICOM-SEG output for masks of DICOM inputs, via highdicom (optional: ``pip install highdicom``).

A binary mask on the grid of a volume read from DICOM becomes a DICOM
Segmentation object that references the source series, so PACS viewers (and
3D Slicer, OHIF) open it over the images. highdicom is imported on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from .._optional import optional_import
from ..errors import InputError
from ._common import atomic_path


def dicom_sources(path) -> List[Path]:
    """The DICOM files of a volume input: the file itself, or every readable ``.dcm``/extension-less
    file of a series folder."""
    p = Path(path)
    if p.is_file():
        return [p]
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in ("", ".dcm"))
    if not files:
        raise InputError(f"{p}: no DICOM files in the folder")
    return files


def save_dicom_seg(mask: np.ndarray, volume, source, path, *, label: str = "gaze3d structure",
                   algorithm: str = "gaze3d gaze-prompted segmentation") -> Path:
    """Write ``mask`` (I, J, K) bool on ``volume``'s grid as a DICOM-SEG referencing ``source``.

    Parameters
    ----------
    mask : (I, J, K) bool
        On the grid of ``volume`` (``gaze3d.scan.Volume`` read from ``source``).
    volume : Volume
    source : path
        The DICOM file or series folder the volume was read from.
    path : path
        Output ``.dcm`` (written atomically).

    The source slices are matched to the volume's k index by their position
    along the slice normal (ImagePositionPatient), and each frame is the
    mask's ``[:, :, k]`` transposed to (rows = j, columns = i).
    """
    pydicom = optional_import("pydicom", "io")
    hd = optional_import("highdicom", extra="io")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != volume.array.shape:
        raise InputError(f"mask: expected shape {volume.array.shape}, got {mask.shape}")
    dss = [pydicom.dcmread(str(f)) for f in dicom_sources(source)]
    dss = [d for d in dss if "PixelData" in d and "ImagePositionPatient" in d]
    if len(dss) != mask.shape[2]:
        raise InputError(f"{source}: {len(dss)} DICOM slices with pixels, but the volume has {mask.shape[2]}")
    normal = volume.affine[:3, 2] / np.linalg.norm(volume.affine[:3, 2])
    origin = volume.affine[:3, 3]
    dss.sort(key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float) - origin, normal)))
    first = np.asarray(dss[0].ImagePositionPatient, float)
    if np.linalg.norm(first - origin) > 0.5 * float(np.min(volume.spacing)) + 1e-3:
        raise InputError(f"{source}: the first slice at {first.tolist()} is not the volume's origin "
                         f"{origin.tolist()} (mixed series?)")
    frames = np.stack([mask[:, :, k].T for k in range(mask.shape[2])]).astype(np.uint8)
    desc = hd.seg.SegmentDescription(
        segment_number=1, segment_label=label,
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure"),
        segmented_property_type=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm, version="1", family=hd.sr.CodedConcept("123109", "DCM", "Manual Processing")))
    seg = hd.seg.Segmentation(
        source_images=dss, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[desc], series_instance_uid=hd.UID(), series_number=900,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="gaze3d",
        manufacturer_model_name="gaze3d", software_versions="gaze3d", device_serial_number="0")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        seg.save_as(str(tmp))
    return out
