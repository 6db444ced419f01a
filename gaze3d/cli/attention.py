"""``gaze3d attention SCAN RECORDING -o out.ply``: attention of a recording on a scan."""
from __future__ import annotations

import argparse

import numpy as np

from ._args import add_viewport
from ..errors import InputError
from ..protocol import GAZE_TOPICS, TOPIC_GAZE_2D, TOPIC_GAZE_3D


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "attention", help="accumulate a recording's gaze attention on a scan and save it",
        description="Replay a gaze recording through the viewer cameras it recorded and save the scan "
                    "with a per-point / per-vertex / per-voxel 'attention' field (seconds of foveal "
                    "dwell; see docs/attention.md).")
    p.add_argument("scan", help="point cloud, mesh or volume file (any format gaze3d reads)")
    p.add_argument("recording", help="gaze3d recording (SESSION.gaze3d): 2D gaze with camera frames, or VR "
                                     "gaze.3d rays (docs/vr.md)")
    p.add_argument("--topic", default="auto", choices=("auto",) + GAZE_TOPICS,
                   help=f"which gaze to use: auto = {TOPIC_GAZE_2D} if the recording has any, "
                        f"else {TOPIC_GAZE_3D} rays")
    p.add_argument("-o", "--output", required=True,
                   help="output: the scan with an 'attention' field for point clouds and meshes "
                        "(.ply .pcd .las .laz .vtp; .vtp for ParaView/PyVista), or for a volume the "
                        "attention volume itself on the scan's grid (.nii.gz .nrrd .mha...)")
    p.add_argument("--sigma-deg", type=float, default=1.0, help="foveal Gaussian sigma, visual degrees (1.0)")
    p.add_argument("--all-samples", action="store_true", help="count every valid sample, not only fixations")
    p.add_argument("--method", default="ivt", help="online fixation filter: ivt (Tobii defaults), idt, ivdt, ivvt")
    add_viewport(p)
    p.add_argument("--visual-per-camera-deg", type=float, default=1.0,
                   help="visual degrees per degree of the viewer camera (1.0)")
    p.add_argument("--point-size", type=float, default=3.0, help="point clouds: splat size in pixels (3)")
    p.add_argument("--volume-mode", choices=("render", "mip", "slice"), default="render",
                   help="volumes: how the volume was shown (render)")
    p.add_argument("--slice", nargs=2, type=int, metavar=("AXIS", "INDEX"),
                   help="volumes in slice mode: voxel axis (0, 1, 2) and slice index")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..io import check_output
    from ..recording import Recording
    from ..vr.analysis import choose_topic

    # the replay takes seconds to minutes: a bad output path fails first
    check_output(args.output, keeps=["attention"], what="-o")
    with Recording(args.recording) as rec:                 # opened once: opening verifies every checksum
        topic = choose_topic(rec, args.topic)              # no usable samples: one line, exit 2, nothing written
        return _attention(args, rec, topic)


def _attention(args, rec, topic: str) -> int:
    from ..attention import AttentionAccumulator, AttentionOptions
    from ..attention.batch import replay
    from ..io import check_output, load_scan, save_scan
    from ..scan import Volume

    scan = load_scan(args.scan)
    check_output(args.output, type(scan), keeps=["attention"], what="-o")
    engine = {}
    if isinstance(scan, Volume):
        engine["mode"] = args.volume_mode
        if args.slice:
            engine["axis"], engine["index"] = args.slice
    opts = AttentionOptions(sigma_deg=args.sigma_deg, fixations_only=not args.all_samples, method=args.method,
                            visual_deg_per_camera_deg=args.visual_per_camera_deg, point_size=args.point_size,
                            engine=engine)      # point_size reaches point clouds only
    acc = AttentionAccumulator.from_options(scan, opts)
    stats = replay(acc, rec, topic=topic, viewport=args.viewport)
    values = acc.values
    if not np.any(values):
        raise InputError(f"{args.recording}: no attention on {args.scan} from {stats['samples']} {topic} samples "
                         f"({acc.n_used} used{'' if args.all_samples else ' as fixations; try --all-samples'}); "
                         f"nothing written")
    if isinstance(scan, Volume):
        # A volume file holds one array: the attention, on the scan's grid (not a copy of the CT).
        save_scan(Volume(array=values, affine=scan.affine, source=str(args.output)), args.output)
    else:
        scan.fields["attention"] = values
        save_scan(scan, args.output)
    print(f"{stats['samples']} {topic} samples ({acc.n_used} used, {stats['before_first_camera']} before the first "
          f"camera), {stats['frames']} camera frames; attention > 0 on {int(np.count_nonzero(values))} of "
          f"{values.size} elements, max {float(values.max()):.4g} s -> {args.output}")
    return 0
