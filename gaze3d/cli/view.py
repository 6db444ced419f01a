"""``gaze3d view``: the labeling viewer (gaze or mouse as gaze, label keys, undo, save)."""
from __future__ import annotations

import argparse

from gaze3d.errors import InputError

from ._args import add_viewport, size_wxh


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "view", help="open a scan in the gaze labeling viewer",
        description="Open a point cloud, mesh or volume in the labeling viewer. With --tracker the gaze "
                    "comes from a running `gaze3d tracker`; without it (or while the tracker is away) the "
                    "mouse cursor is the gaze. Look at a structure and press 1-9 (or Return and type a "
                    "label name) to label it; u/r undo/redo, c clear attention, ctrl+s save. "
                    "See docs/viewer.md.")
    p.add_argument("scan", help="scan file (.las .laz .ply .pcd .obj .nii.gz ... or a DICOM folder)")
    p.add_argument("--tracker", metavar="ADDRESS",
                   help="tracker control address (its PUB address is asked from it), or 'PUB,CTRL'")
    p.add_argument("--record", metavar="SESSION.gaze3d",
                   help="session recording to create (samples, every camera frame, label events); "
                        "with --tracker the tracker writes it")
    p.add_argument("--labels", metavar="FILE",
                   help="label set or label map (.json, .txt, ITK-SNAP .txt, .csv, .tsv; FILE.json#NAME picks "
                        "one of several maps, e.g. TotalSegmentator's #total); default the scan's class names")
    p.add_argument("--out", metavar="FILE", help="where ctrl+s saves the annotations "
                                                 "(default <scan>.labels.ply/.las/.nii.gz)")
    p.add_argument("--load", metavar="FILE", help="start from the labels in this annotation file")
    p.add_argument("--annotator", help="name stored with each label (default: the login name)")
    p.add_argument("--segmenter", choices=("auto", "model", "walker", "grow"), default="auto",
                   help="region of a label: the interactive model when available (auto; volumes: the volume "
                        "model), the model only, the ROI random walker (volumes), or region growing")
    p.add_argument("--window", type=size_wxh, default="1280x800", metavar="WxH", help="window size (1280x800)")
    add_viewport(p, help="where the 3D view sits on the tracker's display, in normalised display "
                         "coordinates (default 0,0,1,1: a full-screen window)")
    p.add_argument("--point-size", type=float, default=3.0,
                   help="point clouds: splat size in pixels, drawn and used for attention (3)")
    p.add_argument("--point-budget", default="auto", metavar="N|auto",
                   help="point clouds: points drawn while you interact (keys, camera motion), an even subset, "
                        "so frames stay fast on a slow GPU or none; the whole cloud is drawn once idle for a "
                        "moment. auto (default): sized from measured render times (everything where it fits); "
                        "0: always draw every point. Attention and labels always use every point")
    p.add_argument("--sigma-deg", type=float, default=1.0,
                   help="foveal Gaussian sigma of the attention, visual degrees (1.0), as for gaze3d attention")
    p.add_argument("--profile", metavar="NAME",
                   help="calibration profile whose correction is applied to the tracker's gaze (default: the "
                        "one selected with `gaze3d calibrate profiles select`; key p cycles through them)")
    p.add_argument("--drift-threshold", type=float, default=1.0, metavar="DEG",
                   help="drift check (key d): alert above this offset, degrees (default 1.0)")
    p.add_argument("--qt", action="store_true", help="Qt window with a side panel (needs gaze3d[qt])")
    p.add_argument("--replay", metavar="VR_SESSION.gaze3d",
                   help="play a VR recording back over the scan: head path, current gaze ray, attention building "
                        "up; time slider, keys Left/Right/Up/Down, space play/pause (docs/vr.md)")
    p.add_argument("--off-screen", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from gaze3d.io import load_scan
    from gaze3d.viewer.labels import LabelSet

    w, h = args.window
    viewport = args.viewport
    from gaze3d.calib.profiles import ProfileStore

    if not (args.drift_threshold > 0):
        raise InputError(f"--drift-threshold: expected a positive angle in degrees, got {args.drift_threshold}")
    from gaze3d.viewer.lod import parse_budget

    parse_budget(args.point_budget)                     # a bad budget: one-line error before the scan loads
    profile = ProfileStore().resolve(args.profile)      # a missing profile: one-line error, nothing opened
    scan = load_scan(args.scan)
    if args.replay:
        from gaze3d.viewer.vr import VRReplay

        replay = VRReplay(scan, args.replay, off_screen=args.off_screen, window_size=(w, h),
                          point_size=args.point_size)
        if args.off_screen:   # smoke mode (tests): one frame, then close
            replay.set_time(replay.duration / 2)
            replay.close()
            return 0
        replay.run()
        return 0
    label_set = LabelSet.load(args.labels) if args.labels else None
    tracker = None
    if args.tracker:
        from gaze3d.viewer.tracker_link import TrackerLink, parse_tracker_address

        pub, ctrl = parse_tracker_address(args.tracker)
        tracker = TrackerLink(pub, ctrl)
    from gaze3d.attention import AttentionOptions

    attention = AttentionOptions(sigma_deg=args.sigma_deg, point_size=args.point_size)   # checked: one line
    kw = dict(tracker=tracker, record=args.record, annotations=args.out, window_size=(w, h),
              segmenter=args.segmenter, annotator=args.annotator, point_size=args.point_size,
              viewport=viewport, profile=profile, drift_threshold_deg=args.drift_threshold,
              attention_options=attention, point_budget=args.point_budget)
    if args.qt:
        from gaze3d.viewer.qt_panel import run_qt

        return run_qt(scan, label_set, load=args.load, **kw)
    from gaze3d.viewer.app import ViewerApp

    app = ViewerApp(scan, label_set, off_screen=args.off_screen, **kw)
    if args.load:
        app.session.load_annotations(args.load)
    if args.off_screen:       # smoke mode (tests): one frame, then close
        app.frame()
        app.close()
        return 0
    app.run()
    return 0
