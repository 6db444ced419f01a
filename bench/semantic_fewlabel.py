"""Benchmark: semantic segmentation from a few labelled scans, with and without gaze as weak supervision.

    OMP_NUM_THREADS=1 python bench/semantic_fewlabel.py [--labelled 1,2,5] [--seeds 3] [--steps 200]
        [--gaze-classes 6] [--control-at 2] [--models ...] [--json runs.jsonl] [--report runs.jsonl]

The IGN tile (classes 1 unclassified/vegetation, 2 ground, 6 building) is cut
into a grid of sub-tiles ("scans", 20 m x 21 m for 5x3). The two east columns
are the test scans (3 buildings); the other columns are the pool. Per seed the
pool is shuffled: the first L scans are labelled (L = 1, 2, 5; nested), the
rest are gaze-only: the simulated annotator (attention engine, 0.5 deg offset,
0.1 deg noise, 1 deg foveal sigma) looks at every object of ``--gaze-classes``
in them (6: buildings; 6,1: also tree clusters), 8 fixations each, pressing the
class key; that attention becomes multi-level pseudo-labels
(:func:`gaze3d.models.semantic.gaze_pseudo_labels`).

Models (same network, :class:`~gaze3d.models.semantic.FewLabelNet`, same steps):

* ``labelled only``: the L labelled scans (class-balanced cross-entropy, view and
  level consistency);
* ``labelled + gaze on ...``: plus the gaze-only scans (pseudo-label loss per level
  and consistency), the GazeMedSeg-style scheme;
* ``labelled + unlabelled`` (at ``--control-at`` L only): the gaze-only scans with
  consistency but no pseudo-labels, to tell gaze from merely seeing more scans.

Scored on every point of the test scans (no gaze at test time): per-class IoU and
mIoU, mean and std over seeds, and the gain over labelled only with the same
seed; every run is printed, then the tables in markdown. ``--json`` appends each
run to a file, ``--report`` prints the tables of stored runs (several
invocations, e.g. one model each in parallel processes) without training.
Torch runs on CUDA when present, else on the CPU with 1 thread.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from gaze3d.models.data import load_tile
from gaze3d.models.semantic import (DEFAULT_BACKGROUND, DEFAULT_FIXATIONS, DEFAULT_MARGIN,
                                    DEFAULT_THRESHOLDS, FewLabelConfig, FewLabelNet,
                                    evaluate_fewlabel, gaze_only_scan, pseudo_label_quality,
                                    sub_tiles, tile_scan, train_fewlabel)

EXHAUSTIVE = (6,)          # every building is an object; class 1 is also low vegetation and clutter


def print_table(rows, title):
    keys = list(rows[0])
    print(f"\n{title}\n")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k])
                                for k in keys) + " |")
    sys.stdout.flush()


def tables(rows, Ls, codes) -> None:
    """Every run, the mean and std over seeds, and the per-seed gain over labelled only (markdown)."""
    print_table(rows, "## every run")
    mean = []
    for L in Ls:
        for name in dict.fromkeys(r["model"] for r in rows if r["L"] == L):
            same = [r for r in rows if r["L"] == L and r["model"] == name]
            mean.append({"labelled scans": L, "model": name, "seeds": len(same),
                         **{f"IoU {c}": float(np.mean([r[f'IoU {c}'] for r in same])) for c in codes},
                         "mIoU": float(np.mean([r["mIoU"] for r in same])),
                         "mIoU std": float(np.std([r["mIoU"] for r in same]))})
    print_table(mean, "## mean over seeds (std over seeds)")
    gain = []
    for L in Ls:
        base = {r["seed"]: r["mIoU"] for r in rows if r["L"] == L and r["model"] == "labelled only"}
        for name in dict.fromkeys(r["model"] for r in rows if r["L"] == L and r["model"] != "labelled only"):
            d = [r["mIoU"] - base[r["seed"]] for r in rows
                 if r["L"] == L and r["model"] == name and r["seed"] in base]
            if d:
                gain.append({"labelled scans": L, "model": name,
                             "mIoU gain (points)": float(100 * np.mean(d)),
                             "std (points)": float(100 * np.std(d)),
                             "per seed": ", ".join(f"{100 * v:+.1f}" for v in d)})
    if gain:
        print_table(gain, "## gain over labelled only, same seed (mIoU points)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labelled", default="1,2,5", help="numbers of labelled scans")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--control-at", default="2",
                    help="L values that also run the labelled + unlabelled control ('' for none)")
    ap.add_argument("--grid", default="5x3", help="sub-tiles along x and y")
    ap.add_argument("--test-columns", type=int, default=2, help="east columns held out as test")
    ap.add_argument("--gaze-classes", default="6",
                    help="classes the annotator looks at (6 buildings, 1 tree clusters)")
    ap.add_argument("--models", default="labelled only,labelled + gaze,labelled + unlabelled",
                    help="which of the three models to train (comma-separated)")
    ap.add_argument("--pseudo", choices=("both", "keyed", "excluded"), default="both",
                    help="ablation: keep only the keyed (one class) or only the excluded (not looked "
                         "at) pseudo-labels")
    ap.add_argument("--json", help="also append every run as a JSON line to this file")
    ap.add_argument("--report", help="train nothing: print the tables of the runs in these JSON-lines "
                                     "files (comma-separated)")
    args = ap.parse_args(argv)
    if args.report:
        rows = [json.loads(line) for f in args.report.split(",") for line in open(f) if line.strip()]
        tables(rows, sorted({r["L"] for r in rows}), [c for c in (1, 2, 6) if f"IoU {c}" in rows[0]])
        return 0
    gaze_codes = tuple(int(v) for v in args.gaze_classes.split(",") if v)
    bad = [c for c in gaze_codes if c not in (1, 6)]
    wanted = {m.strip() for m in args.models.split(",")}
    if bad or not gaze_codes:
        print(f"--gaze-classes: expected codes among 6 and 1 (the tile's object classes), got "
              f"{args.gaze_classes!r}", file=sys.stderr)
        return 2
    Ls = [int(v) for v in args.labelled.split(",") if v]
    control = {int(v) for v in args.control_at.split(",") if v}
    nx, ny = (int(v) for v in args.grid.lower().split("x"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(1)

    tile = load_tile("ign", ground="dtm")
    codes = [int(c) for c in tile.spec.semantic_classes]
    parts = sub_tiles(tile, nx, ny)                  # column-major: part = i * ny + j
    n_test = args.test_columns * ny
    test_idx, pool_idx = list(range(len(parts) - n_test, len(parts))), list(range(len(parts) - n_test))
    if max(Ls) >= len(pool_idx):
        print(f"--labelled: at most {len(pool_idx) - 1} (the pool has {len(pool_idx)} scans)",
              file=sys.stderr)
        return 2
    test = [tile_scan(tile, parts[i], f"s{i}") for i in test_idx]
    ext = (tile.xyz[:, :2].max(0) - tile.xyz[:, :2].min(0)) / [nx, ny]
    print(f"# few labels: IGN tile cut into {nx}x{ny} sub-tiles of {ext[0]:.0f} m x {ext[1]:.0f} m; "
          f"test = the {args.test_columns} east columns ({len(test)} scans, "
          f"{sum(len(s.xyz) for s in test)} points); pool = {len(pool_idx)} scans; "
          f"steps {args.steps}; device {device}; thresholds {DEFAULT_THRESHOLDS}, background "
          f"{DEFAULT_BACKGROUND}, margin {DEFAULT_MARGIN} m, {DEFAULT_FIXATIONS} fixations per object; "
          f"gaze on classes {gaze_codes}")
    sys.stdout.flush()
    config = FewLabelConfig(steps=args.steps)
    rows, quality = [], []
    t_all = time.perf_counter()
    for seed in range(args.seed, args.seed + args.seeds):
        order = list(np.random.default_rng(seed).permutation(pool_idx))
        t0 = time.perf_counter()
        gaze = {i: gaze_only_scan(tile, parts[i], gaze_codes, EXHAUSTIVE, seed=1000 * seed + i,
                                  name=f"s{i}")[0] for i in pool_idx}
        for g in gaze.values():
            size = g.allowed.sum(2, keepdims=True)
            if args.pseudo == "keyed":
                g.allowed &= size == 1
            elif args.pseudo == "excluded":
                g.allowed &= size > 1
        print(f"\nseed {seed}: pool order {[int(i) for i in order]}; gaze simulated on {len(gaze)} scans in "
              f"{time.perf_counter() - t0:.0f} s")
        for i in pool_idx:
            for k, q in enumerate(pseudo_label_quality(gaze[i].allowed, gaze[i].target)):
                quality.append({"seed": seed, "scan": f"s{i}", "level": k, **q})
        for L in Ls:
            lab = [tile_scan(tile, parts[i], f"s{i}") for i in order[:L]]
            unl = [gaze[i] for i in order[L:]]
            n_build = sum(int((s.target == codes.index(6)).sum()) for s in lab)
            gaze_name = f"labelled + gaze on {','.join(map(str, gaze_codes))}" + \
                ("" if args.pseudo == "both" else f" ({args.pseudo} only)")
            arms = [("labelled only", [], False), (gaze_name, unl, True)]
            if L in control:
                arms.append(("labelled + unlabelled", unl, False))
            arms = [a for a in arms if a[0] in wanted or (a[2] and "labelled + gaze" in wanted)]
            for name, unlabelled, use_gaze in arms:
                torch.manual_seed(seed)
                net = FewLabelNet(len(codes)).to(device)
                t0 = time.perf_counter()
                print(f"  seed {seed} L={L} ({n_build} labelled building points) {name}")
                sys.stdout.flush()
                train_fewlabel(net, lab, unlabelled, config, seed=seed, use_gaze=use_gaze,
                               log=lambda m: (print(m), sys.stdout.flush()), device=device)
                r = evaluate_fewlabel(net, test, len(codes), device=device)
                row = {"L": L, "seed": seed, "model": name,
                       **{f"IoU {c}": v for c, v in zip(codes, r["iou"])}, "mIoU": r["miou"],
                       "train s": round(time.perf_counter() - t0)}
                rows.append(row)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps({**row, "gaze classes": list(gaze_codes)}) + "\n")
                print(f"  -> mIoU {r['miou']:.3f} IoU {np.round(r['iou'], 3).tolist()} "
                      f"({row['train s']} s; {time.perf_counter() - t_all:.0f} s in all)")
                sys.stdout.flush()

    tables(rows, Ls, codes)
    qm = []
    for k in range(len(DEFAULT_THRESHOLDS)):
        qs = [q for q in quality if q["level"] == k]
        qm.append({"level": k, "threshold": DEFAULT_THRESHOLDS[k],
                   **{key: float(np.nanmean([q[key] for q in qs])) for key in
                      ("keyed", "keyed correct", "excluded", "excluded correct")}})
    print_table(qm, "## pseudo-labels on the pool scans (mean over scans and seeds)")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
