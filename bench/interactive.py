"""Benchmark: interactive gaze segmentation, leave-one-dataset-out.

    python bench/interactive.py [--models CKPT[,CKPT...]] [--datasets ign,autzen,procedural]
                                [--methods gaze+net,click+net,gaze+grow,gaze+graph]
                                [--max-fix 20] [--allow-seen] [--timing-points 1000000] [--semantic]

Per dataset, per object, simulated annotator gaze (0.5 deg accuracy offset, 0.1 deg
precision, 1 deg foveal sigma) and the correction protocol of
:mod:`gaze3d.models.interactive_eval` (each next fixation on the centre of the
largest error region): IoU after k fixations (k = 1, 3, 5, 10), NoF@80/85/90
(fixations to reach that IoU, capped at 20; never reached counts 20), the
fraction of steps whose mask was empty, and the median mask-update time, for

* ``gaze+net``: the network with gaze; ``click+net``: the same network with clicks
  at the fixation centres;
* ``gaze+grow``: attention threshold + region growing (no network);
* ``gaze+graph``: the random walker on a kNN graph (no network).

Leave-one-dataset-out: a dataset is evaluated by a network only with a checkpoint
that never saw it: the first of ``--models`` whose metadata (``"tiles"``) does not
list it. Then every object of the dataset is evaluated. Without one, the network
rows are **not run** for that dataset (say ``--allow-seen`` to run them anyway on
the dataset's test half, marked "SEEN in training"). The shipped checkpoint
trained on the west halves of ign and autzen, so it is never a held-out model
for them. ``procedural``: ``--procedural-scenes`` scenes from a fixed seed that
no training run draws (in-distribution for models trained on procedural scenes).
``validation``: the procedural validation scenes of ``gaze3d train --val-scenes``
(``--validation-scenes`` of them, their validation objects), the set checkpoints are chosen
on; with ``--sessions 1 --max-fix 10`` it repeats the training command's validation.
``--sessions K`` runs every object K times (gaze session ``s`` of object ``o`` uses
``interactive_eval.session_seed(o, s, base=--seed)``, as the training command's validation
repeats do); the tables pool
all sessions (``objects`` then counts object-sessions). One session of 10-20 objects is
noisy: a single object that never reaches 80 % moves a dataset's NoF@80 by about one.

Then the mask-update time after a new fixation on a ~1M-point scene (the IGN tile
repeated on a grid) for the network (the same fixations with its head on the region
of interest, the default, and on the whole scan; their masks must agree) and the
graph baseline, and with ``--semantic`` the gaze-guided vs no-gaze semantic comparison (``semantic_few`` below, one run per
``--semantic-seeds`` training seed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from gaze3d.models.data import load_tile
from gaze3d.models.gaze_sim import GazeModel
from gaze3d.models.interactive import DEFAULT_CHECKPOINT, InteractiveSegmenter
from gaze3d.models.interactive_eval import (METHODS, NET_METHODS, run_object, session_seed, summarise,
                                           tile_graph, validation_score)
from gaze3d.scan import PointCloud



def print_table(rows, title):
    keys = list(rows[0])
    print(f"\n{title}")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k])
                                for k in keys) + " |")


def timing(model_path, n_target: int, repeats: int = 10, graph: bool = True) -> None:
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
    # as for the graph below: like labelling one object, every fixation within 15 m of one
    # point (a network with the graph prior solves the walk around the attended area)
    centre = xyz[rng.integers(len(xyz))]
    around = np.flatnonzero(np.linalg.norm(xyz[:, :2] - centre[:2], axis=1) < 15.0)
    fixations = [xyz[around[rng.integers(len(around))]] for _ in range(repeats)]
    # the same fixations with the head on the region of interest only (the default) and on
    # the whole scan; the masks must agree
    times, probs = {}, {}
    for head_roi in (True, False):
        seg.head_roi = head_roi
        seg._crop = None
        pos = np.zeros(len(xyz), np.float32)
        neg = np.zeros(len(xyz), np.float32)
        times[head_roi], probs[head_roi] = [], []
        for i, c in enumerate(fixations):
            near = np.linalg.norm(xyz - c, axis=1) < 3.0      # a fixation's footprint
            (pos if i % 3 else neg)[near] += 0.1
            t = time.perf_counter()
            p = seg.update(pos, neg)
            times[head_roi].append(time.perf_counter() - t)
            probs[head_roi].append(p)
        if head_roi:
            crop = len(seg._crop[1][1]) if seg._crop is not None else 0
    diff = max(float(np.abs(a - b).max()) for a, b in zip(probs[True], probs[False]))
    print(f"\n# mask update after a new fixation: {len(xyz)} points ({seg.n_voxels} voxels), "
          f"{torch.get_num_threads()} threads, fixations within 15 m; prior: "
          f"{seg.model.config.prior or 'none'} (set_scan builds its graph too)")
    print("| step | ms |")
    print("|---|---|")
    print(f"| set_scan (voxelise + backbone, once per scan) | {t_set * 1e3:.0f} |")
    roi_what = f"head on the region of interest (last crop: {crop} voxels, built by the 2nd)"
    for head_roi, what in ((True, roi_what), (False, "head on the whole scan")):
        print(f"| update, {what}, median of {repeats} | {np.median(times[head_roi]) * 1e3:.1f} |")
        print(f"| update, {what}, max | {np.max(times[head_roi]) * 1e3:.1f} |")
    print("| target | 150 |")
    print(f"max |p(region of interest) - p(whole scan)| over the {repeats} updates: {diff:.2e}")
    if not graph:
        return
    from gaze3d.models.features import height_above_dtm
    from gaze3d.models.segment import GraphSegmenter

    t = time.perf_counter()
    g = GraphSegmenter(xyz, feats[:, 2:5], height=height_above_dtm(xyz))
    t_build = time.perf_counter() - t
    pos[:] = 0
    neg[:] = 0
    times = []
    # the walk is solved around the attended area, so its cost depends on where the
    # fixations are: here, like labelling one object, all within 15 m of one point
    centre = xyz[rng.integers(len(xyz))]
    around = np.flatnonzero(np.linalg.norm(xyz[:, :2] - centre[:2], axis=1) < 15.0)
    for i in range(repeats):
        c = xyz[around[rng.integers(len(around))]]
        near = np.linalg.norm(xyz - c, axis=1) < 3.0
        (pos if i % 3 else neg)[near] += 0.1
        if not pos.any():
            continue
        t = time.perf_counter()
        g.segment(pos, neg)
        times.append(time.perf_counter() - t)
    print(f"\n# graph baseline (random walker) on the same {len(xyz)} points, fixations within 15 m")
    print("| step | ms |")
    print("|---|---|")
    print(f"| build (kNN graph + normals, once per scan) | {t_build * 1e3:.0f} |")
    print(f"| segment, median of {len(times)} | {np.median(times) * 1e3:.1f} |")
    print(f"| segment, max | {np.max(times) * 1e3:.1f} |")


def _print_dataset(name, results, notes, cap) -> None:
    if results:
        n_obj = len({(r.tile, r.object_id) for r in results})
        what = f"{n_obj} objects" + (f" x {len(results) // n_obj} sessions" if len(results) > n_obj else "")
        print_table(summarise(results, cap=cap), f"## {name}: {what}; "
                    + notes.get(name, "no network rows requested"))
        if name == "validation":      # the number checkpoints are chosen by (gaze3d train prints it)
            print("validation score (mean IoU over every fixation): " + ", ".join(
                f"{m} {validation_score(results, m):.4f}" for m in results[0].ious))


def _ground_of(model) -> str:
    """The ground model a checkpoint's features were trained with (its header; old ones: local-min)."""
    from gaze3d.models.checkpoint import load_checkpoint

    return load_checkpoint(model)[1].get("features", "local-min")


def _model_for(dataset: str, models) -> tuple:
    """(path, held_out) of the first checkpoint whose training tiles exclude ``dataset``."""
    from gaze3d.models.checkpoint import load_checkpoint

    for m in models:
        _, meta = load_checkpoint(m)
        if dataset not in meta.get("tiles", ["ign", "autzen"]):   # old headers: both tiles
            return m, True
    return models[0], False


def _datasets(names, n_scenes: int, seed: int, n_val: int = 6, ground: str = "dtm"):
    from gaze3d.models.procedural import TEST_SEED, make_scene, validation_scenes

    for name in names:
        if name == "validation":
            for scene in validation_scenes(n_val, ground=ground):
                yield "validation", scene
        elif name == "procedural":
            rng = np.random.default_rng(TEST_SEED + seed)
            for i in range(n_scenes):
                yield "procedural", make_scene(rng, name=f"test{i}", split="test")
        else:
            yield name, load_tile(name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", "--model", default=str(DEFAULT_CHECKPOINT),
                    help="comma-separated checkpoints; per dataset the first that never saw it is used")
    ap.add_argument("--datasets", "--tiles", default="ign,autzen",
                    help="comma-separated: ign, autzen, procedural, validation")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--allow-seen", action="store_true",
                    help="run the network on datasets its checkpoint trained on (test half only, marked)")
    ap.add_argument("--procedural-scenes", type=int, default=4)
    ap.add_argument("--validation-scenes", type=int, default=6,
                    help="procedural validation scenes (as gaze3d train --val-scenes)")
    ap.add_argument("--sessions", type=int, default=1,
                    help="gaze sessions per object (different views and gaze noise), pooled")
    ap.add_argument("--save-results", metavar="JSONL", default=None,
                    help="also write every object-session's IoU curves (one JSON line each)")
    ap.add_argument("--max-fix", type=int, default=20)
    ap.add_argument("--max-objects", type=int, default=0, help="at most this many objects per dataset (0: all)")
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
    models = [m for m in args.models.split(",") if m]
    methods = tuple(m for m in args.methods.split(",") if m)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        ap.error(f"--methods: expected names from {METHODS}, got {args.methods!r}")
    if args.sessions < 1:
        ap.error(f"--sessions: expected a positive number, got {args.sessions}")
    gaze = GazeModel(accuracy_deg=0.5, precision_deg=0.1, sigma_deg=1.0)
    print(f"# models {models}; methods {methods}; gaze: accuracy offset {gaze.accuracy_deg} deg, "
          f"precision {gaze.precision_deg} deg RMS, foveal sigma {gaze.sigma_deg} deg; "
          f"{args.max_fix} fixations; {torch.get_num_threads()} torch threads")
    names = [] if args.skip_interactive else [d for d in args.datasets.split(",") if d]
    per_dataset = {}
    notes = {}
    t0 = time.perf_counter()
    # written as PATH.partial and renamed when the run ends: a killed run leaves no PATH
    out = open(f"{args.save_results}.partial", "w") if args.save_results else None
    # the validation scenes are made with the ground model the checkpoint was trained with (its header)
    ground = _ground_of(models[0]) if "validation" in names else "dtm"
    for name, tile in _datasets(names, args.procedural_scenes, args.seed, args.validation_scenes, ground):
        want_net = [m for m in methods if m in NET_METHODS]
        run = [m for m in methods if m not in NET_METHODS]
        seg, held = None, True
        if want_net:
            path, held = _model_for(name, models)
            if held or args.allow_seen:
                seg = InteractiveSegmenter(path, voxel_size=tile.voxel_size)
                seg.set_scan(PointCloud(xyz=tile.xyz, colors=tile.feats[:, 2:5], intensity=tile.feats[:, 1]))
                run = [m for m in methods if m in run or m in NET_METHODS]
                notes[name] = f"network: {path} ({'held out' if held else 'SEEN in training: test half only'})"
            else:
                notes[name] = (f"network rows NOT RUN: every checkpoint in --models trained on {name} "
                               "(use --allow-seen to run them on its test half)")
        if not run:
            continue
        # a held-out dataset is evaluated whole; a seen one on its test half only
        ids = (list(range(len(tile.object_class))) if (held or seg is None) and name != "procedural"
               else tile.split_objects("test").tolist())
        if name == "procedural":
            ids = list(range(len(tile.object_class)))
        elif name == "validation":
            ids = tile.split_objects("val").tolist()
        if args.max_objects:
            ids = ids[:args.max_objects]
        graph = tile_graph(tile) if "gaze+graph" in run else None
        for o in ids:
            for s in range(args.sessions):
                seed = session_seed(o, s, base=args.seed)
                r = run_object(seg, tile, o, args.max_fix, gaze, seed=seed, methods=run, graph=graph)
                k = min(5, args.max_fix)
                print(f"  {tile.name} object {r.object_id} session {s} (class {r.object_class}, "
                      f"{r.n_points} pts): " + ", ".join(
                          f"{m} IoU@1/{k}/{args.max_fix} = {r.ious[m][0]:.2f}/{r.ious[m][k - 1]:.2f}/"
                          f"{r.ious[m][-1]:.2f}" for m in run), flush=True)
                per_dataset.setdefault(name, []).append(r)
                if out is not None:
                    out.write(json.dumps({"dataset": name, "tile": r.tile, "object": r.object_id,
                                          "session": s, "seed": seed,
                                          "ious": r.ious, "empty": r.empty}) + "\n")
                    out.flush()
        if name not in ("procedural", "validation"):   # as soon as it is done (scenes: after the last)
            _print_dataset(name, per_dataset.get(name, []), notes, args.max_fix)
    if out is not None:
        out.close()
        os.replace(f"{args.save_results}.partial", args.save_results)
    for name in ("procedural", "validation"):
        if name in per_dataset:
            _print_dataset(name, per_dataset[name], notes, args.max_fix)
    if per_dataset:
        rows = []
        for name, results in per_dataset.items():
            for row in summarise(results, cap=args.max_fix):
                rows.append({"dataset": name, **row})
        print_table(rows, "## leave-one-dataset-out summary (network rows only where held out, "
                          "unless marked SEEN above)")
        print(f"# protocol time {time.perf_counter() - t0:.0f} s")
    if args.timing_points:
        timing(models[0], args.timing_points, graph="gaze+graph" in methods)
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
