"""``gaze3d info SCAN``: what a scan file holds, as gaze3d reads it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import InputError


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "info", help="print what a scan file holds (type, counts, bounds, labels, fields, affine)",
        description="Load a point cloud, mesh or volume as gaze3d sees it and print its type, "
                    "element counts, bounds, per-label counts with names, scalar fields and, for "
                    "volumes, the index -> LPS millimetre affine.")
    p.add_argument("scan", help="scan file (.ply .pcd .xyz .las .laz .obj .stl .glb .nii(.gz) .nrrd "
                                ".mha .mhd .dcm) or a DICOM series folder")
    p.add_argument("--labels", help="volumes: a label volume on the same grid")
    p.add_argument("--label-names", metavar="JSON[:KEY]",
                   help='JSON file mapping label values to names ({"1": "spleen", ...}); '
                        "KEY picks a sub-map, e.g. label_map.json:total")
    p.set_defaults(func=run)
    return p


def read_label_names(spec: str | None) -> dict:
    """Parse ``--label-names FILE[:KEY]`` into ``{int: str}``."""
    if not spec:
        return {}
    path, _, key = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    try:
        data = json.loads(Path(path).read_text())
        if key:
            data = data[key]
        return {int(k): str(v) for k, v in data.items()}
    except FileNotFoundError:
        raise InputError(f"--label-names {path}: no such file") from None
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise InputError(f"--label-names {spec}: expected a JSON object of label value -> name "
                         f"({type(exc).__name__}: {exc})") from None


def _fmt_bounds(bounds) -> str:
    lo, hi = bounds
    return "  ".join(f"{a}: [{l:.3f}, {h:.3f}]" for a, l, h in zip("xyz", lo, hi))


def describe(scan) -> str:
    """A multi-line human-readable summary of a scan."""
    from ..scan import Mesh, PointCloud, Volume

    lines = [f"{type(scan).__name__}: {scan.source}"]
    if isinstance(scan, PointCloud):
        lines.append(f"  points: {len(scan):,}")
        lines.append(f"  bounds: {_fmt_bounds(scan.bounds)}")
        attrs = [k for k in ("colors", "intensity", "normals") if getattr(scan, k) is not None]
        lines.append(f"  attributes: {', '.join(attrs) or 'none'}")
    elif isinstance(scan, Mesh):
        lines.append(f"  vertices: {len(scan):,}  faces: {len(scan.faces):,}")
        lines.append(f"  bounds: {_fmt_bounds(scan.bounds)}")
        lines.append(f"  attributes: {'colors' if scan.colors is not None else 'none'}")
    elif isinstance(scan, Volume):
        lines.append(f"  shape (i, j, k): {scan.shape}  dtype: {scan.array.dtype}  voxels: {scan.array.size:,}")
        lines.append(f"  spacing (mm): {np.round(scan.spacing, 6).tolist()}")
        lines.append(f"  value range: [{scan.array.min():.6g}, {scan.array.max():.6g}]")
        corners = scan.index_to_world(np.array(np.meshgrid(*[[0, s - 1] for s in scan.shape])).reshape(3, -1).T)
        lines.append(f"  bounds (LPS mm): {_fmt_bounds(np.stack([corners.min(0), corners.max(0)]))}")
        lines.append("  affine (index -> LPS mm):")
        lines += ["    " + "  ".join(f"{v:12.6g}" for v in row) for row in scan.affine]
    for name, values in scan.fields.items():
        v = np.asarray(values)
        lines.append(f"  field {name!r}: {v.dtype}, range [{v.min():.6g}, {v.max():.6g}]")
    if scan.labels is not None:
        codes, counts = np.unique(scan.labels, return_counts=True)
        lines.append(f"  labels: {len(codes)} values")
        total = counts.sum()
        for code, count in zip(codes.tolist(), counts.tolist()):
            name = scan.label_names.get(code, "")
            lines.append(f"    {code:>5}  {name:<28} {count:>12,}  {100 * count / total:6.2f}%")
    return "\n".join(lines)


def run(args) -> int:
    from ..io import load_scan

    names = read_label_names(args.label_names)
    scan = load_scan(args.scan, labels=args.labels, label_names=names or None)
    print(describe(scan))
    return 0
