"""``gaze3d segment``: one object's mask from gaze attention with the gaze-guided network."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from gaze3d.errors import InputError


#: the extent a point cloud may have once scaled to metres (--metres-per-unit)
MIN_EXTENT_M, MAX_EXTENT_M = 0.01, 100_000.0


def register(subparsers):
    p = subparsers.add_parser(
        "segment", help="segment the object looked at, from per-point attention",
        description="Run the gaze-guided interactive network on a point cloud given per-point "
                    "attention (positive, optional negative) and write the cloud with fields "
                    "'probability' and 'mask'.")
    p.add_argument("scan", help="point cloud (LAS/LAZ/PLY/PCD/...), or a volume (NIfTI/NRRD/MHA/DICOM file "
                                "or DICOM folder: see --method, --modality and docs/volumes.md)")
    p.add_argument("--attention", required=True,
                   help="per-point attention: .npy/.txt/.csv with one value per point (or two "
                        "columns: positive, negative), or a point cloud with an 'attention' field")
    p.add_argument("--negative", default=None,
                   help="optional per-point attention on rejected regions (same formats)")
    p.add_argument("--model", default=None, help="checkpoint (.safetensors); default: the shipped one")
    p.add_argument("--metres-per-unit", type=float, default=1.0,
                   help="scan units to metres (0.3048006 for US survey feet)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="probability above which a point (voxel) is in the mask, in (0, 1) (0.5)")
    # volumes (issue 14, docs/volumes.md): SCAN a NIfTI/NRRD/MHA/DICOM volume, --attention a
    # .npy or volume on its grid, --model a volume checkpoint (gaze3d train --volumes)
    p.add_argument("--modality", choices=("auto", "ct", "mr"), default="auto",
                   help="volumes: intensity normalisation (CT window, or MR percentiles)")
    p.add_argument("--method", choices=("network", "flood", "confidence", "random_walk", "walker_roi"),
                   default=None,
                   help="volumes: the gaze-prompted network (--model, default the shipped volume model) or a "
                        "classical baseline; default: network (walker_roi, the viewer's, where the models "
                        "extra is not installed)")
    p.add_argument("-o", "--output", required=True,
                   help="output point cloud with fields probability, mask and attention: .ply, .las/.laz "
                        "(the input LAS's dimensions kept), .pcd or .vtp (ParaView/PyVista)")
    p.set_defaults(func=run, model_option="model")     # a checkpoint it cannot use: one line (cli/__init__.py)
    return p


def _read_attention(path: str, n: int, field: str = "attention"):
    from gaze3d.io.arrays import ARRAY_EXTENSIONS, read_array

    ext = Path(path).suffix.lower()
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such attention file")
    if ext in ARRAY_EXTENSIONS:
        a = read_array(path)
    else:
        from gaze3d.io import load_scan
        scan = load_scan(path)
        if field not in scan.fields:
            raise InputError(f"{path}: no {field!r} field (has {sorted(scan.fields)})")
        a = scan.fields[field]
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.shape[0] != n or a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] != 2):
        raise InputError(f"{path}: expected {n} attention values (or ({n}, 2) positive, negative), "
                         f"got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise InputError(f"{path}: attention must be finite and >= 0")
    return a


def run(args):
    from gaze3d.io import check_output, load_scan, save_scan
    from gaze3d.scan import PointCloud

    if not (np.isfinite(args.metres_per_unit) and args.metres_per_unit > 0):
        raise InputError(f"--metres-per-unit: expected a finite value > 0, got {args.metres_per_unit}")
    if _is_volume_input(args.scan):
        return _run_volume(args)
    # before importing torch and loading the model and the scan: an output that cannot hold the mask fails first
    check_output(args.output, PointCloud, keeps=["probability", "mask", "attention"], what="-o")
    from gaze3d.models.interactive import InteractiveSegmenter
    if not 0.0 < args.threshold < 1.0:
        raise InputError(f"--threshold: expected a value in (0, 1), got {args.threshold}")
    cloud = load_scan(args.scan)
    if not isinstance(cloud, PointCloud):
        raise InputError(f"{args.scan}: gaze3d segment needs a point cloud, got a {type(cloud).__name__}")
    # the network voxelises metres: a scale that makes the scan smaller than a voxel or larger than a
    # city is a wrong unit, and would end in an overflow or a grid too large to allocate
    extent = float(np.ptp(cloud.xyz, axis=0).max()) * args.metres_per_unit if len(cloud) else 0.0
    if len(cloud) > 1 and not MIN_EXTENT_M <= extent <= MAX_EXTENT_M:
        raise InputError(f"--metres-per-unit {args.metres_per_unit:g}: makes {args.scan} {extent:.3g} m across; "
                         f"expected {MIN_EXTENT_M:g} to {MAX_EXTENT_M:g} m (the unit of its coordinates in metres)")
    att = _read_attention(args.attention, len(cloud))
    pos, neg = (att[:, 0], att[:, 1]) if att.ndim == 2 else (att, None)
    if args.negative:
        neg = _read_attention(args.negative, len(cloud))
        if neg.ndim != 1:
            raise InputError(f"{args.negative}: expected one value per point")
    seg = InteractiveSegmenter(args.model, metres_per_unit=args.metres_per_unit)
    seg.set_scan(cloud)
    res = seg.segment(pos, neg, threshold=args.threshold)
    prob = res.score
    cloud.fields = dict(cloud.fields, attention=pos, probability=prob,
                        mask=res.mask.astype(np.uint8))
    save_scan(cloud, args.output)
    print(f"{args.output}: {int(res.mask.sum())} of {len(cloud)} points in the mask")
    if not res.ok:   # never a silent empty mask
        print(f"warning: mask {res.status}: {res.reason}", file=sys.stderr)


def _is_volume_input(path: str) -> bool:
    from gaze3d.io import _VOLUME, extension

    return Path(path).is_dir() or extension(Path(path)) in _VOLUME


def _read_volume_attention(path: str, shape, what: str):
    """(I, J, K) float32 attention on the volume grid from a .npy or a volume file (same grid)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such attention file")
    if Path(path).suffix.lower() == ".npy":
        from gaze3d.io.arrays import read_array

        a = read_array(path)
    else:
        from gaze3d.io import load_volume
        a = load_volume(path).array
    a = np.asarray(a, dtype=np.float32)
    if a.shape != tuple(shape):
        raise InputError(f"{path}: expected {what} attention of shape {tuple(shape)} (the volume grid), "
                         f"got {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise InputError(f"{path}: attention must be finite and >= 0")
    return a


def _models_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "safetensors"))


def _run_volume(args):
    """Volume input: mask of the structure looked at, saved on the source grid (NIfTI/NRRD/MHA with the
    source affine) or, for DICOM inputs and a .dcm output, as a DICOM-SEG."""
    from gaze3d.io import check_output, extension, load_volume, save_scan
    from gaze3d.scan import Volume

    dicom_in = Path(args.scan).is_dir() or extension(Path(args.scan)) == ".dcm"
    dicom_out = extension(Path(args.output)) == ".dcm"
    if dicom_out and not dicom_in:
        raise InputError(f"-o {args.output}: a DICOM-SEG needs a DICOM input (got {args.scan}); "
                         f"write .nii.gz instead")
    if not dicom_out:
        check_output(args.output, Volume, what="-o")
    if not 0.0 < args.threshold < 1.0:
        raise InputError(f"--threshold: expected a value in (0, 1), got {args.threshold}")
    # the shipped volume model refines the viewer's walker (docs/volumes.md); without torch (the models
    # extra) the walker itself, which needs numpy and scipy only, rather than an error
    method = args.method or ("network" if _models_installed() else "walker_roi")
    vol = load_volume(args.scan)
    pos = _read_volume_attention(args.attention, vol.array.shape, "positive")
    neg = _read_volume_attention(args.negative, vol.array.shape, "negative") if args.negative else None
    if method == "network":
        from gaze3d.models.volume_net import VolumeSegmenter

        seg = VolumeSegmenter(args.model)
        seg.set_volume(vol.array, vol.spacing, args.modality)
        res = seg.segment(pos, neg, threshold=args.threshold)
        mask, status, reason = res.mask, res.status, res.reason
    else:
        from gaze3d.models.segment import check_mask
        from gaze3d.models.volume_eval import BASELINES

        mask = np.asarray(BASELINES[method](vol.array, pos, neg, vol.spacing), dtype=bool)
        status, reason = check_mask(mask.reshape(-1), pos.reshape(-1))
    if dicom_out:
        from gaze3d.io.dicom_seg import save_dicom_seg
        save_dicom_seg(mask, vol, args.scan, args.output)
    else:
        save_scan(Volume(mask.astype(np.uint8), affine=vol.affine), args.output)
    print(f"{args.output}: {int(mask.sum())} of {mask.size} voxels in the mask "
          f"({float(mask.sum() * np.prod(vol.spacing)) / 1000.0:.1f} cm3, {method})")
    if status != "ok":   # never a silent empty mask
        print(f"warning: mask {status}: {reason}", file=sys.stderr)
