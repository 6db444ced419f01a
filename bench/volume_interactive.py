"""Benchmark: interactive volume segmentation from simulated gaze on slices and on the volume rendering.

    .venv/bin/python bench/volume_interactive.py [--datasets ct,frog,mni,phantom,torso] [--views slice,render,mip]
                                                 [--methods flood,confidence,random_walk,walker_roi]
                                                 [--variant NAME:KEY=VALUE,...] [--structures N]
                                                 [--checkpoint CKPT [--crop N] [--prior crop|native] [--mirror 1,2,8]]
                                                 [--sessions 2] [--max-fix 20] [--min-cm3 20]
                                                 [--timing-size 256] [--quick] [--json OUT]

Per structure larger than ``--min-cm3`` of each labelled volume, ``--sessions``
simulated annotators (0.5 deg accuracy offset in a random direction per session,
0.1 deg precision, 1 deg foveal sigma, 60 samples at 250 Hz per fixation) read
the volume and correct the current mask as :mod:`gaze3d.models.volume_eval`
describes. ``--views``: ``slice`` (axial slices), ``render`` (slices hidden,
the volume rendering seen from the front: attention by compositing weight
along the ray) and ``mip`` (the maximum intensity projection from the front:
attention at the ray's maximum); see ``RenderAnnotator``. Each next fixation
goes to the centre of the largest error region (missed voxels -> positive,
wrongly included -> negative). Reported per dataset and
method: median Dice after k = 1, 3, 5, 10 fixations, mean fixations to reach
Dice 0.80 / 0.85 / 0.90 (capped at ``--max-fix``; never reached counts the cap),
how often that was never reached, the number of empty masks, and the median
mask-update time. Then the mask-update time after one fixation on a
``--timing-size``^3 volume (the CT resampled).

Datasets:

* ``ct``: the TotalSegmentator example CT (122 x 101 x 30 at 3 mm, real
  intensities) with its 41-label organ mask (model output, not hand-drawn), from
  ``../shared/data/medical/totalsegmentator``.
* ``mni``: the MNI152 T1 template in the nilearn wheel (real MR intensities) at
  2 mm, grey and white matter (the other head tissue fills more than half the
  grid and is skipped): a validation volume.
* ``phantom``: an abdomen-like phantom
  (:func:`gaze3d.models.volume_eval.load_phantom`: five ellipsoid organs, a
  650 cm^3 liver among them, in a body, 3 mm voxels, synthetic image, seed 0):
  liver-sized structures without the test CT.
* ``torso``: a procedural torso (:func:`gaze3d.models.volume_eval.load_torso`:
  seed 1000 of :func:`gaze3d.models.procedural_volumes.procedural_abdomen`,
  120 x 100 x 48 voxels at 3 mm, synthetic image with tissue classes): organs
  touching at nearly one intensity, which the phantom lacks. A validation
  volume; in-distribution for a checkpoint trained on ``organs`` (the same
  generator, other seeds), which the bench says.
* ``frog``: pyvista's ``frog_tissues.vti`` label volume (26 tissues, shipped in
  the pyvista wheel), downsampled by 2 to 250 x 235 x 68 voxels (2, 2, 3 mm), with
  a synthetic image (:func:`gaze3d.models.volume_eval.synth_image`, seed 0:
  random intensity per tissue, bias field, noise).

Methods (no training, so every structure is "held out"; their parameters are
the library defaults or the viewer's flood-fill settings, not tuned on these
volumes): ``flood`` (``gaze3d.regions.grow_volume``), ``confidence``
(SimpleITK ConfidenceConnected), ``random_walk`` (scikit-image random walker at
full resolution, library defaults), ``walker_roi``
(``gaze3d.volume_regions.random_walk_roi``: the viewer's label keys on volumes;
a coarse walk on at most 32^3 voxels refined near its boundary, its settings
chosen on ``frog`` and ``mni``). ``--variant NAME:KEY=VALUE,...`` adds
``random_walk_roi`` with other settings (how they were chosen: on ``frog`` and
``mni`` only, never on ``ct``). ``--checkpoint`` adds
``network`` (the volume network, crop ``--crop``; ``--mirror`` adds a row per test-time mirroring,
``network_mirrorK``), refused when the checkpoint
trained on the dataset (leave-one-volume-out); on its validation volume the
rows are marked as such (they may choose between checkpoints, never report a test).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from gaze3d.models.volume_eval import (BASELINES, DICE_TARGETS, VIEWS, SliceAnnotator, load_frog, load_mni,
                                       load_phantom, load_torso, run_structure)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
KS = (1, 3, 5, 10)


def load_ct():
    from gaze3d.io import load_scan

    ts = SHARED / "medical" / "totalsegmentator"
    if not (ts / "example_ct_sm.nii.gz").is_file():
        raise SystemExit(f"bench/volume_interactive.py: the CT is not at {ts} (the shared/ folder beside the repo)")
    vol = load_scan(ts / "example_ct_sm.nii.gz", labels=ts / "example_seg.nii.gz")
    names = json.loads((ts / "label_map_total_and_total_mr.json").read_text())["total"]
    return vol, np.asarray(vol.labels), {int(k): v for k, v in names.items()}


def structures(labels: np.ndarray, spacing, names, min_cm3: float, max_fraction: float = 0.5):
    """(label, name, cm3) of the labels > 0 larger than ``min_cm3`` and under ``max_fraction`` of the grid
    (a structure that fills the volume is not "looked at": the MNI's other head tissue)."""
    ids, counts = np.unique(labels, return_counts=True)
    cm3 = counts * float(np.prod(spacing)) / 1000.0
    return [(int(i), names.get(int(i), f"label{int(i)}"), float(c)) for i, c, n in zip(ids, cm3, counts)
            if i > 0 and c > min_cm3 and n <= max_fraction * labels.size]


def summarise(results, methods, cap):
    rows = []
    for m in methods:
        row = {"method": m, "n": len(results)}
        for k in KS:
            row[f"dice@{k}"] = float(np.median([r.dice_at(m, k) for r in results]))
        for t in DICE_TARGETS:
            nof = [r.nof(m, t, cap) for r in results]
            row[f"nof@{int(t * 100)}"] = float(np.mean(nof))
            row[f"never@{int(t * 100)}"] = int(sum(r.dice[m][-1] < t and n == cap for r, n in zip(results, nof)))
        row["empty"] = int(sum(r.empty[m] for r in results))
        secs = np.concatenate([r.seconds[m] for r in results if r.seconds[m]] or [np.zeros(0)])
        row["update_ms_median"] = float(np.median(secs) * 1000) if len(secs) else float("nan")
        rows.append(row)
    return rows


def print_table(title, rows, cap):
    print(f"\n{title}")
    head = ["method", "n"] + [f"Dice@{k}" for k in KS] + [f"NoF@{int(t * 100)}" for t in DICE_TARGETS] + \
           ["never@90", "empty", "update ms"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["method"], str(r["n"])] + [f"{r[f'dice@{k}']:.3f}" for k in KS] + \
                [f"{r[f'nof@{int(t * 100)}']:.2f}" for t in DICE_TARGETS] + \
                [str(r["never@90"]), str(r["empty"]), f"{r['update_ms_median']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    print(f"(NoF capped at {cap}; never@90: sessions that never reached Dice 0.90)")


def timing(vol, methods, size: int, repeats: int = 3):
    """Median mask-update time after one fixation on a size^3 resampling of ``vol``."""
    from scipy import ndimage

    from gaze3d.scan import Volume

    zoom = np.array([size, size, size]) / np.array(vol.shape)
    arr = ndimage.zoom(np.asarray(vol.array, np.float32), zoom, order=1)
    aff = vol.affine.copy()
    aff[:3, :3] = aff[:3, :3] / zoom
    big = Volume(arr, aff)
    ann = SliceAnnotator(big, seed=0)
    centre = np.array(arr.shape) // 2
    att = ann.fixation(centre)
    out = {}
    for name, fn in methods.items():
        secs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(big.array, att, None, big.spacing)
            secs.append(time.perf_counter() - t0)
        out[name] = float(np.median(secs))
    return out


def walker_variant(kw):
    """A method: :func:`gaze3d.volume_regions.random_walk_roi` with keyword values from strings."""
    from gaze3d.volume_regions import random_walk_roi

    kw = {k: (v.lower() == "true" if v.lower() in ("true", "false") else float(v) if "." in v or "e" in v
              else int(v)) for k, v in kw.items()}

    def method(array, pos, neg, spacing):
        return random_walk_roi(array, pos, neg, spacing=spacing, **kw)
    return method


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="ct,frog")
    ap.add_argument("--views", default="slice,render", help=f"comma-separated from {VIEWS}")
    ap.add_argument("--methods", default=",".join(BASELINES))
    ap.add_argument("--checkpoint", default=None, help="volume network checkpoint: adds the 'network' method")
    ap.add_argument("--crop", type=int, default=None, help="network crop edge in voxels (default: the checkpoint's)")
    ap.add_argument("--prior", choices=("crop", "native"), default=None,
                    help="the walker the network refines (default: the checkpoint's): the full walker on the "
                         "crop, or walker_roi on the native grid")
    ap.add_argument("--mirror", default="1", metavar="K[,K...]",
                    help="test-time mirroring of the network: one 'network' row per K (1: none, the row "
                         "'network'; K > 1: 'network_mirrorK', averaged over K axis flips of the crop)")
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--max-fix", type=int, default=20)
    ap.add_argument("--min-cm3", type=float, default=20.0)
    ap.add_argument("--timing-size", type=int, default=256, help="0 skips the timing")
    ap.add_argument("--timing-methods", default=None, help="methods timed at --timing-size (default: all)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                    help="adds method NAME: random_walk_roi with these keyword values (repeatable; for "
                         "choosing its settings on the validation volumes, frog and mni)")
    ap.add_argument("--structures", type=int, default=0, help="only the first N structures per dataset")
    ap.add_argument("--quick", action="store_true", help="3 structures per dataset, 1 session, 10 fixations")
    ap.add_argument("--json", type=Path, help="write all rows and per-structure Dice curves here")
    args = ap.parse_args(argv)
    methods = {m: BASELINES[m] for m in args.methods.split(",") if m}
    for spec in args.variant:
        name, _, kv = spec.partition(":")
        methods[name] = walker_variant(dict(item.split("=", 1) for item in kv.split(",") if item))
    views = [v for v in args.views.split(",") if v]
    if any(v not in VIEWS for v in views):
        raise SystemExit(f"--views: expected names from {VIEWS}, got {views}")
    seen = []
    if args.checkpoint:
        from gaze3d.errors import InputError
        from gaze3d.models.checkpoint import read_meta
        from gaze3d.models.volume_net import network_method

        meta = read_meta(args.checkpoint)
        seen = list(meta.get("volumes", []))
        validated = meta.get("val_volume")
        print(f"network {args.checkpoint}: trained on {meta.get('volumes')}, validated on {meta.get('val_volume')}")
        try:
            mirrors = sorted({int(v) for v in args.mirror.split(",") if v})
        except ValueError:
            mirrors = []
        if not mirrors:
            ap.error(f"--mirror: expected comma-separated integers, got {args.mirror!r}")
        nets = {}
        try:
            for k in mirrors:
                nets["network" if k == 1 else f"network_mirror{k}"] = network_method(
                    args.checkpoint, crop=args.crop, prior=args.prior, mirror=k)
        except InputError as exc:      # VolumeSegmenter's own check of mirror (and crop, prior): one line
            ap.error(str(exc))
        methods = {**nets, **methods}
    if args.quick:
        args.sessions, args.max_fix = 1, 10
    report = {"settings": vars(args) | {"json": str(args.json)}, "datasets": {}}
    t_start = time.time()
    for ds in [d for d in args.datasets.split(",") if d]:
        volume = "totalseg" if ds == "ct" else ds          # the label-volume name a checkpoint header uses
        if volume in seen:
            raise SystemExit(f"--checkpoint: it trained on {ds} (leave-one-volume-out)")
        if args.checkpoint and volume == validated:
            print(f"note: {ds} is the checkpoint's validation volume: its rows may choose, never report a test")
        if ds == "torso" and "organs" in seen:
            print("note: the checkpoint trained on other torsos of the same generator: torso is in-distribution "
                  "for it")
        if ds == "ct":
            vol, labels, names = load_ct()
        elif ds == "frog":
            vol, labels, names = load_frog()
        elif ds == "mni":
            vol, labels, names = load_mni()
        elif ds == "phantom":
            vol, labels, names = load_phantom()
        elif ds == "torso":
            vol, labels, names = load_torso()
        else:
            raise SystemExit(f"--datasets: unknown dataset {ds!r} (ct, frog, mni, phantom, torso)")
        todo = structures(labels, vol.spacing, names, args.min_cm3)
        if args.quick or args.structures:
            todo = todo[:args.structures or 3]
        print(f"{ds}: {vol.shape} voxels at {np.round(vol.spacing, 2).tolist()} mm, {len(todo)} structures "
              f"> {args.min_cm3} cm3, {args.sessions} session(s) each, views {views}", flush=True)
        report["datasets"][ds] = {}
        for view in views:
            results = []
            for lid, name, cm3 in todo:
                for s in range(args.sessions):
                    t0 = time.time()
                    r = run_structure(vol, labels == lid, methods, label=lid, name=name, session=s,
                                      max_fixations=args.max_fix, view=view)
                    results.append(r)
                    print(f"  [{view}] {name:28s} {cm3:8.1f} cm3  s{s}  " +
                          "  ".join(f"{m} {r.dice_at(m, 1):.2f}/{r.dice_at(m, 5):.2f}/{r.dice_at(m, 10):.2f}"
                                    for m in methods) + f"  ({time.time() - t0:.0f} s)", flush=True)
            rows = summarise(results, list(methods), args.max_fix)
            print_table(f"{ds}, gaze on {view} (Dice@k medians over {len(results)} structure-sessions)", rows,
                        args.max_fix)
            report["datasets"][ds][view] = {"rows": rows, "structures": [
                {"label": r.label, "name": r.name, "cm3": r.volume_cm3, "session": r.session, "dice": r.dice}
                for r in results]}
    if args.timing_size:
        vol, _, _ = load_ct()
        timed = methods if not args.timing_methods else {m: methods[m] for m in args.timing_methods.split(",")}
        t = timing(vol, timed, args.timing_size)
        print(f"\nmask update after one fixation, {args.timing_size}^3 voxels (CT resampled), median of 3:")
        for m, s in t.items():
            print(f"  {m:12s} {s * 1000:8.0f} ms")
        report["timing_s"] = t
    print(f"\ntotal {time.time() - t_start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
