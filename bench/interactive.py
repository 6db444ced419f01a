"""Benchmark: interactive gaze segmentation on the real labelled tiles.

    python bench/interactive.py [--model CKPT] [--tiles ign,autzen] [--max-fix 20]
                                [--objects test|val|train|all] [--timing-points 1000000] [--semantic]

Per object of the test halves (east half of each tile; the shipped model was
trained on the west halves minus their validation boxes, and chosen among
training runs on the validation boxes only: see docs/models.md), simulated annotator gaze (0.5 deg accuracy
offset, 0.1 deg precision, 1 deg foveal sigma) and the correction protocol of
:mod:`gaze3d.models.interactive_eval`: IoU after k fixations (k = 1, 3, 5,
10) and NoF@80/85/90 (fixations to reach that IoU, capped at 20; objects
that never reach it count 20) for the network with gaze, the same network
with clicks at the fixation centres, and attention threshold + region
growing (no network). Then the mask-update time after a new fixation on a
~1M-point scene (the IGN tile repeated on a grid), and with ``--semantic``
the gaze-guided vs no-gaze semantic comparison (``semantic_few`` below, one run per
``--semantic-seeds`` training seed).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from gaze3d.models.data import load_tile
from gaze3d.models.gaze_sim import GazeModel
from gaze3d.models.interactive import DEFAULT_CHECKPOINT, InteractiveSegmenter
from gaze3d.models.interactive_eval import METHODS, run_object, summarise
from gaze3d.scan import PointCloud


def print_table(rows, title):
    keys = list(rows[0])
    print(f"\n{title}")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k])
                                for k in keys) + " |")


def timing(model_path, n_target: int, repeats: int = 10) -> None:
    tile = load_tile("ign")
    reps = int(np.ceil(n_target / len(tile.xyz)))
    side = int(np.ceil(np.sqrt(reps)))
    ext = tile.xyz.max(0) - tile.xyz.min(0) + 5.0
    xyz = np.concatenate([tile.xyz + np.array([i % side * ext[0], i // side * ext[1], 0.0])
                          for i in range(reps)])[:n_target]
    feats = np.concatenate([tile.feats] * reps)[:n_target]
    cloud = PointCloud(xyz=xyz, colors=feats[:, 2:5], intensity=feats[:, 1])
    seg = InteractiveSegmenter(model_path)
    t = time.perf_counter()
    seg.set_scan(cloud)
    t_set = time.perf_counter() - t
    rng = np.random.default_rng(0)
    pos = np.zeros(len(xyz), np.float32)
    neg = np.zeros(len(xyz), np.float32)
    times = []
    for i in range(repeats):
        c = xyz[rng.integers(len(xyz))]
        near = np.linalg.norm(xyz - c, axis=1) < 3.0      # a fixation's footprint
        (pos if i % 3 else neg)[near] += 0.1
        t = time.perf_counter()
        seg.update(pos, neg)
        times.append(time.perf_counter() - t)
    print(f"\n# mask update after a new fixation: {len(xyz)} points ({seg.n_voxels} voxels), "
          f"{torch.get_num_threads()} threads")
    print("| step | ms |")
    print("|---|---|")
    print(f"| set_scan (voxelise + backbone, once per scan) | {t_set * 1e3:.0f} |")
    print(f"| update, median of {repeats} | {np.median(times) * 1e3:.1f} |")
    print(f"| update, max | {np.max(times) * 1e3:.1f} |")
    print(f"| target | 150 |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--tiles", default="ign,autzen")
    ap.add_argument("--max-fix", type=int, default=20)
    ap.add_argument("--objects", choices=("test", "val", "train", "all"), default="test",
                    help="which split's objects to evaluate (default test: the east halves)")
    ap.add_argument("--timing-points", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--semantic", action="store_true",
                    help="also train gaze-guided and no-gaze semantic models on a few sub-tiles")
    ap.add_argument("--semantic-train-tiles", type=int, default=2)
    ap.add_argument("--semantic-steps", type=int, default=150)
    ap.add_argument("--semantic-seeds", type=int, default=3,
                    help="semantic runs (training seeds); rows per seed and their mean")
    ap.add_argument("--skip-interactive", action="store_true")
    args = ap.parse_args(argv)
    gaze = GazeModel(accuracy_deg=0.5, precision_deg=0.1, sigma_deg=1.0)
    print(f"# model {args.model}; gaze: accuracy offset {gaze.accuracy_deg} deg, precision "
          f"{gaze.precision_deg} deg RMS, foveal sigma {gaze.sigma_deg} deg; {args.max_fix} fixations")
    all_results = []
    t0 = time.perf_counter()
    for name in [t for t in args.tiles.split(",") if t and not args.skip_interactive]:
        tile = load_tile(name)
        seg = InteractiveSegmenter(args.model, voxel_size=tile.voxel_size)
        seg.set_scan(PointCloud(xyz=tile.xyz, colors=tile.feats[:, 2:5], intensity=tile.feats[:, 1]))
        ids = (range(len(tile.object_class)) if args.objects == "all"
               else tile.split_objects(args.objects).tolist())
        results = [run_object(seg, tile, o, args.max_fix, gaze, seed=args.seed + o) for o in ids]
        for r in results:
            print(f"  {name} object {r.object_id} (class {r.object_class}, {r.n_points} pts): " +
                  ", ".join(f"{m} IoU@1/5/10 = {r.ious[m][0]:.2f}/{r.ious[m][4]:.2f}/{r.ious[m][9]:.2f}"
                            for m in METHODS))
        print_table(summarise(results), f"## {name}: {len(results)} {args.objects} objects")
        all_results += results
    if all_results:
        print_table(summarise(all_results), f"## all tiles: {len(all_results)} objects")
        print(f"# protocol time {time.perf_counter() - t0:.0f} s")
    if args.timing_points:
        timing(args.model, args.timing_points)
    if args.semantic:
        semantic_few(args.semantic_train_tiles, args.semantic_steps,
                     range(args.seed, args.seed + args.semantic_seeds))
    return 0


def semantic_few(n_train: int, steps: int, seeds) -> None:
    """Gaze-guided vs no-gaze semantic mIoU, trained on ``n_train`` IGN sub-tiles (west half),
    once per training seed; prints every run and the mean over seeds."""
    from gaze3d.models.semantic import sub_tiles

    tile = load_tile("ign")
    parts = sub_tiles(tile, 4, 2)            # 25 m x 31 m each; parts 0-3 west, 4-7 east
    train_parts, test_parts = parts[:n_train], parts[4:]
    print(f"\n# semantic, IGN tile cut into 4x2 sub-tiles: trained on {n_train} west sub-tiles "
          f"({sum(map(len, train_parts))} labelled points), tested on the 4 east sub-tiles "
          f"({sum(map(len, test_parts))} points); {steps} steps each; gaze on buildings (class 6), "
          "3 fixations per building")
    seeds = list(seeds)
    rows = []
    for seed in seeds:
        rows += _semantic_runs(tile, train_parts, test_parts, steps, seed)
    print_table(rows, "## semantic mIoU, few labelled sub-tiles, every seed")
    mean = []
    for key in dict.fromkeys((r["model"], r["test gaze"]) for r in rows):
        same = [r for r in rows if (r["model"], r["test gaze"]) == key]
        mean.append({"model": key[0], "test gaze": key[1], "seeds": len(same),
                     **{k: float(np.mean([r[k] for r in same])) for k in same[0]
                        if k.startswith("IoU") or k == "mIoU"},
                     "mIoU std": float(np.std([r["mIoU"] for r in same]))})
    print_table(mean, f"## semantic mIoU, mean over {len(seeds)} seeds")


def _semantic_runs(tile, train_parts, test_parts, steps: int, seed: int) -> list:
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.semantic import (SemanticSampler, evaluate_semantic, semantic_config,
                                        train_semantic)

    rows = []
    for gaze in (True, False):
        torch.manual_seed(seed)
        model = GazeSegNet(semantic_config(tile.spec.semantic_classes))
        tr = SemanticSampler(tile, train_parts, gaze=gaze, seed=seed)
        train_semantic(model, tr, steps=steps)
        te = SemanticSampler(tile, test_parts, gaze=gaze, seed=seed + 100, augment=False)
        r = evaluate_semantic(model, te)
        rows.append({"seed": seed, "model": "gaze-guided" if gaze else "no gaze",
                     "test gaze": "simulated" if gaze else "none",
                     **{f"IoU class {c}": v for c, v in r["iou"].items()}, "mIoU": r["miou"]})
        if gaze:
            r = evaluate_semantic(model, te, predicted_attention=True)
            rows.append({"seed": seed, "model": "gaze-guided", "test gaze": "none (selective head)",
                         **{f"IoU class {c}": v for c, v in r["iou"].items()}, "mIoU": r["miou"]})
    return rows


if __name__ == "__main__":
    sys.exit(main())
