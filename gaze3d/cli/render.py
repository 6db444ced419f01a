"""``gaze3d render``: a publication-quality screenshot of a scan with its attention heat map."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gaze3d.errors import InputError
from gaze3d.protocol import TOPIC_GAZE_3D

from ._args import bounded_float, size_wxh


def _window(text: str):
    w, h = size_wxh(text)
    if w < 16 or h < 16 or w > 8192 or h > 8192:
        raise argparse.ArgumentTypeError(f"expected a size between 16 and 8192 pixels, got {text!r}")
    return w, h


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "render", help="offscreen screenshot of a scan with an attention heat map and colour bar",
        description="Render a point cloud, mesh or volume offscreen (volumes: three orthogonal slices and a "
                    "volume rendering) with per-element attention as a heat overlay and a colour bar, "
                    "from a fixed camera, and write a PNG.")
    p.add_argument("scan", help="scan file (.las .laz .ply .pcd .obj .nii.gz ... or a DICOM folder)")
    p.add_argument("--attention", metavar="A",
                   help="attention per element: a .npy array, the name of a scalar field of the scan "
                        "(e.g. 'attention'), or a volume file on the scan's grid")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--camera", metavar="CAM.json",
                   help="camera (gaze3d Camera JSON: position, focal_point, view_up, vfov_deg, width, height); "
                        "default a 3/4 view of the whole scan")
    p.add_argument("--window", type=_window, default=(1600, 1200), metavar="WxH", help="image size (1600x1200)")
    p.add_argument("--cmap", default="inferno", help="matplotlib colour map of the heat (inferno)")
    p.add_argument("--no-colorbar", action="store_true", help="leave out the colour bar")
    p.add_argument("--point-size", type=bounded_float(0.0, 100.0, low_open=True, what="pixels"), default=3.0,
                   help="point size in pixels (point clouds), at most 100")
    p.add_argument("--title", default=None, help="text at the top of the image")
    p.add_argument("--no-volume-render", action="store_true", help="volumes: slices only")
    p.add_argument("--no-slices", action="store_true",
                   help="volumes: the volume rendering only (attention shows as heat inside the volume)")
    p.add_argument("--vr-session", metavar="SESSION.gaze3d",
                   help="draw a VR recording's head path (blue) and gaze rays (green, up to the point of regard "
                        "where the recording has one) over the scan (docs/vr.md)")
    p.set_defaults(func=run)
    return p


def load_attention(scan, spec: str):
    """Attention for ``scan`` from a .npy, .txt or .csv file, a scan field name or a volume file."""

    from gaze3d.scan import Volume

    if spec in scan.fields:
        return np.asarray(scan.fields[spec], dtype=np.float32)
    path = Path(spec)
    if not path.exists():
        known = ", ".join(sorted(scan.fields)) or "none"
        raise InputError(f"--attention {spec!r}: no such file and no such field of the scan (fields: {known})")
    from gaze3d.io.arrays import ARRAY_EXTENSIONS, read_array

    if path.suffix.lower() in ARRAY_EXTENSIONS:
        values = read_array(path, "--attention")
    else:
        from gaze3d.io import load_scan

        other = load_scan(path)
        if not isinstance(other, Volume):
            raise InputError(f"--attention {path}: expected a .npy array or a volume file, got a "
                             f"{type(other).__name__}")
        values = other.array
    expected = scan.shape if isinstance(scan, Volume) else (len(scan),)
    values = np.asarray(values, dtype=np.float32)
    if values.size != int(np.prod(expected)):
        raise InputError(f"--attention {path}: expected {int(np.prod(expected))} values "
                         f"(shape {tuple(expected)}), got shape {values.shape}")
    return values.reshape(expected)


def load_camera(path):
    """A :class:`gaze3d.camera.Camera` from a JSON file (also accepts ``{"camera": {...}}``)."""
    from gaze3d.camera import Camera

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--camera {p}: no such file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--camera {p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("camera"), dict):
        data = data["camera"]
    if not isinstance(data, dict):
        raise InputError(f"--camera {p}: expected a JSON object with position, focal_point, view_up...")
    try:
        return Camera.from_dict({"view_up": [0, 0, 1], "vfov_deg": 30.0, "width": 1024, "height": 768, **data})
    except InputError as exc:
        raise InputError(f"--camera {p}: {exc}") from None


def run(args) -> int:
    from gaze3d.io import load_scan
    from gaze3d.viewer.render import render_scan
    from gaze3d.viewer.scene import choose_up

    scan = load_scan(args.scan)
    scalars = load_attention(scan, args.attention) if args.attention else None
    camera = load_camera(args.camera) if args.camera else None
    vr = {}
    if args.vr_session:
        from gaze3d.recording import Recording
        from gaze3d.vr.analysis import choose_topic, read_rays

        with Recording(args.vr_session) as rec:           # opened once: opening verifies every checksum
            choose_topic(rec, TOPIC_GAZE_3D)              # no usable ray: one line, exit 2
            r = read_rays(rec)
        d = r["direction"].copy()
        d[~r["valid"]] = float("nan")
        length = np.linalg.norm(r["point"] - r["origin"], axis=1) if np.isfinite(r["point"]).any() else None
        vr = {"head_path": r["origin"], "gaze_rays": (r["origin"], d) if length is None else (r["origin"], d, length)}
    up = None
    if camera is None:              # the default view stands on the scene's own up axis: say which
        up, why = choose_up(scan)
        print(f"up axis: {why}")
    render_scan(scan, scalars, camera=camera, out=args.out, window_size=args.window, cmap=args.cmap,
                colorbar=not args.no_colorbar, point_size=args.point_size, title=args.title,
                volume_render=not args.no_volume_render, slices=not args.no_slices, up=up, **vr)
    print(f"wrote {args.out}")
    return 0
