"""``gaze3d convert IN OUT``: rewrite a scan in another format."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError, ScanFormatError


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert", help="convert a scan to another format (extension picks it)",
        description="Read a scan and write it in the format of OUT's extension. Labels and scalar "
                    "fields are kept (PLY, PCD, LAS/LAZ, VTP); a target that would drop them "
                    "(XYZ, OBJ/STL/OFF/GLB) is refused unless --geometry-only. LAS to LAS keeps "
                    "every dimension of the input (GPS time, returns, NIR...). Volumes: --labels "
                    "reads a label volume and --out-labels writes it.")
    p.add_argument("input", help="scan file or DICOM series folder")
    p.add_argument("output", help="output file; written atomically")
    p.add_argument("--labels", help="volumes: label volume to read with INPUT")
    p.add_argument("--out-labels", help="volumes: where to write the label volume")
    p.add_argument("--geometry-only", action="store_true",
                   help="allow a target format that drops the input's labels and fields")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..io import check_output, load_scan, save_scan
    from ..scan import Volume

    check_output(args.output)
    if args.out_labels:
        check_output(args.out_labels, Volume, what="--out-labels")
        # the second write would replace the first: the image would be lost under its own name
        if Path(args.out_labels).resolve() == Path(args.output).resolve():
            raise InputError(f"--out-labels {args.out_labels}: the same file as OUTPUT; "
                             "expected another path for the label volume")
    if args.labels and not args.out_labels:
        raise InputError("--labels: the label volume would be read and not written; give --out-labels")
    scan = load_scan(args.input, labels=args.labels)
    if args.out_labels and scan.labels is None:
        raise InputError("--out-labels: the input has no labels (give --labels for volumes)")
    if not isinstance(scan, Volume):
        held = (["labels"] if scan.labels is not None else []) + list(scan.fields)
        try:
            check_output(args.output, type(scan), keeps=[] if args.geometry_only else held)
        except ScanFormatError as exc:
            if not held or args.geometry_only or "would drop" not in str(exc):
                raise
            raise ScanFormatError(f"{exc} (or --geometry-only to drop them)") from None
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
