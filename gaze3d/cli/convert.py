"""``gaze3d convert IN OUT``: rewrite a scan in another format."""
from __future__ import annotations

import argparse


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert", help="convert a scan to another format (extension picks it)",
        description="Read a scan and write it in the format of OUT's extension, keeping labels and "
                    "scalar fields where the target format can hold them (PLY, PCD and LAS keep "
                    "them; OBJ/STL/GLB and XYZ keep geometry only). Volumes: --labels reads a "
                    "label volume and --out-labels writes it.")
    p.add_argument("input", help="scan file or DICOM series folder")
    p.add_argument("output", help="output file; written atomically")
    p.add_argument("--labels", help="volumes: label volume to read with INPUT")
    p.add_argument("--out-labels", help="volumes: where to write the label volume")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import InputError
    from ..io import load_scan, save_scan

    scan = load_scan(args.input, labels=args.labels)
    if args.out_labels and scan.labels is None:
        raise InputError("--out-labels: the input has no labels (give --labels for volumes)")
    save_scan(scan, args.output, **({"labels": args.out_labels} if args.out_labels else {}))
    print(f"wrote {args.output}: {_size(scan)}" + (f", labels in {args.out_labels}" if args.out_labels else ""))
    return 0


def _size(scan) -> str:
    from ..scan import Mesh, Volume

    if isinstance(scan, Volume):
        return f"Volume {'x'.join(map(str, scan.shape))} voxels"
    if isinstance(scan, Mesh):
        return f"Mesh, {len(scan):,} vertices, {len(scan.faces):,} faces"
    return f"PointCloud, {len(scan):,} points"
