"""``gaze3d segment``: one object's mask from gaze attention with the gaze-guided network."""
from __future__ import annotations

import sys


def register(subparsers):
    p = subparsers.add_parser(
        "segment", help="segment the object looked at, from per-point attention",
        description="Run the gaze-guided interactive network on a point cloud given per-point "
                    "attention (positive, optional negative) and write the cloud with fields "
                    "'probability' and 'mask'.")
    p.add_argument("scan", help="point cloud (LAS/LAZ/PLY/PCD/...)")
    p.add_argument("--attention", required=True,
                   help="per-point attention: .npy/.txt/.csv with one value per point (or two "
                        "columns: positive, negative), or a point cloud with an 'attention' field")
    p.add_argument("--negative", default=None,
                   help="optional per-point attention on rejected regions (same formats)")
    p.add_argument("--model", default=None, help="checkpoint (.safetensors); default: the shipped one")
    p.add_argument("--metres-per-unit", type=float, default=1.0,
                   help="scan units to metres (0.3048006 for US survey feet)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("-o", "--output", required=True,
                   help="output point cloud with fields probability, mask and attention: .ply, .las/.laz "
                        "(the input LAS's dimensions kept), .pcd or .vtp (ParaView/PyVista)")
    p.set_defaults(func=run)
    return p


def _read_attention(path: str, n: int, field: str = "attention"):
    from pathlib import Path

    import numpy as np

    from gaze3d.errors import InputError

    ext = Path(path).suffix.lower()
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such attention file")
    if ext == ".npy":
        a = np.load(path, allow_pickle=False)
    elif ext in (".txt", ".csv"):
        a = np.loadtxt(path, delimiter="," if ext == ".csv" else None, ndmin=1)
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
    import numpy as np

    from gaze3d.errors import InputError
    from gaze3d.io import check_output, load_scan, save_scan
    from gaze3d.scan import PointCloud

    # before importing torch and loading the model and the scan: an output that cannot hold the mask fails first
    check_output(args.output, PointCloud, keeps=["probability", "mask", "attention"], what="-o")
    from gaze3d.models.interactive import InteractiveSegmenter
    if not 0.0 < args.threshold < 1.0:
        raise InputError(f"--threshold: expected a value in (0, 1), got {args.threshold}")
    if not args.metres_per_unit > 0:
        raise InputError(f"--metres-per-unit: expected > 0, got {args.metres_per_unit}")
    cloud = load_scan(args.scan)
    if not isinstance(cloud, PointCloud):
        raise InputError(f"{args.scan}: gaze3d segment needs a point cloud, got a {type(cloud).__name__}")
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
