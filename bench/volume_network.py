"""Benchmark: the gaze-prompted volume network: mask-update time on a 256^3 volume, and Dice on a held-out volume.

    .venv/bin/python bench/volume_network.py --checkpoint CKPT [--size 256] [--repeats 5] [--threads 1]
                                             [--dice totalseg] [--fixations 10] [--sessions 1] [--min-cm3 20]

Timing: a ``size``^3 volume at 1 mm (a synthetic image of random ellipsoids);
one fixation of simulated slice gaze (:class:`gaze3d.models.volume_eval.SliceAnnotator`);
reported: ``set_volume`` (normalisation of the whole volume, once per volume),
the first update, and the median of ``repeats`` later updates (every update:
the checkpoint's walker prior (the shipped model's: the ROI walker on the
native grid) + crop resampling + backbone + head + the correction back onto
the native crop box: the attention is a backbone input, so nothing is
cached), each on ``threads`` torch threads.

Dice (``--dice``): the interactive slice-gaze loop of
:func:`gaze3d.models.volume_eval.run_structure` on every structure of
``--min-cm3`` or more of the named label volume with its real image where it
has one, for the network and the classical baselines side by side; the
checkpoint's training volumes are printed, and a volume the checkpoint trained
on is refused (leave-one-volume-out).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _ellipsoids(n: int, rng) -> np.ndarray:
    g = np.ogrid[:n, :n, :n]
    lab = np.zeros((n, n, n), np.int32)
    for k in range(1, 9):
        c = rng.uniform(0.25 * n, 0.75 * n, 3)
        r = rng.uniform(0.05 * n, 0.15 * n, 3)
        lab[sum(((gi - ci) / ri) ** 2 for gi, ci, ri in zip(g, c, r)) < 1] = k
    return lab


def timing(checkpoint, size: int, repeats: int) -> None:
    from gaze3d.models.volume_data import synthseg_image
    from gaze3d.models.volume_eval import SliceAnnotator, error_target
    from gaze3d.models.volume_net import VolumeSegmenter
    from gaze3d.scan import Volume

    rng = np.random.default_rng(0)
    lab = _ellipsoids(size, rng)
    img = synthseg_image(lab, rng)
    vol = Volume(img, affine=np.eye(4))
    truth = lab == 1
    ann = SliceAnnotator(vol, seed=0)
    voxel, _ = error_target(np.zeros_like(truth), truth, np.ones(3))
    pos = ann.fixation(voxel)
    seg = VolumeSegmenter(checkpoint)
    t0 = time.perf_counter()
    seg.set_volume(img, vol.spacing, "mr")
    t_set = time.perf_counter() - t0
    t0 = time.perf_counter()
    prob = seg.update(pos)
    t_first = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        p2 = pos * (1.0 + 0.1 * i)
        t0 = time.perf_counter()
        seg.update(p2)
        times.append(time.perf_counter() - t0)
    print(f"{size}^3 volume, crop {seg.crop}^3 x {seg.voxel_mm} mm: set_volume {1000 * t_set:.0f} ms (once per "
          f"volume), first update {1000 * t_first:.0f} ms, later updates "
          f"median {1000 * np.median(times):.0f} ms (min {1000 * min(times):.0f}, max {1000 * max(times):.0f}; "
          f"resampling + walker prior + backbone + head); mask voxels {int((prob >= 0.5).sum())}")


def dice_table(checkpoint, name: str, fixations: int, sessions: int, min_cm3: float, baselines: bool) -> None:
    from gaze3d.models.checkpoint import read_meta
    from gaze3d.models.volume_data import load_label_volume
    from gaze3d.models.volume_eval import BASELINES, DICE_TARGETS
    from gaze3d.models.volume_net import network_method
    from gaze3d.models.volume_train import evaluate_volume

    meta = read_meta(checkpoint)
    trained = meta.get("volumes", [])
    print(f"checkpoint trained on {trained}, validated on {meta.get('val_volume')}; testing on {name}")
    if name in trained or name == meta.get("val_volume"):
        sys.exit(f"bench/volume_network.py: {name} was seen in training or validation; pick a held-out volume")
    lv = load_label_volume(name)
    methods = {"network": network_method(checkpoint)}
    if baselines:
        methods.update(BASELINES)
    t0 = time.perf_counter()
    res = evaluate_volume(methods, lv, fixations=fixations, min_cm3=min_cm3, sessions=sessions)
    print(f"{len(res)} structure-sessions (>= {min_cm3} cm3), {fixations} fixations, "
          f"{time.perf_counter() - t0:.0f} s")
    ks = [k for k in (1, 3, 5, 10) if k <= fixations]
    head = ["method"] + [f"Dice@{k}" for k in ks] + [f"NoF@{int(100 * t)}" for t in DICE_TARGETS] + ["update ms"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for m in methods:
        row = [m] + [f"{np.median([r.dice_at(m, k) for r in res]):.3f}" for k in ks]
        row += [f"{np.mean([r.nof(m, t, fixations) for r in res]):.1f}" for t in DICE_TARGETS]
        row += [f"{1000 * np.median(np.concatenate([r.seconds[m] for r in res if r.seconds[m]])):.0f}"]
        print("| " + " | ".join(row) + " |")
    print("(Dice@k: median over structures; NoF@t: mean fixations to reach Dice t, capped at "
          f"{fixations}; update ms: median mask update)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dice", default=None, help="held-out label volume (totalseg, frog, channels, mni)")
    ap.add_argument("--fixations", type=int, default=10)
    ap.add_argument("--sessions", type=int, default=1)
    ap.add_argument("--min-cm3", type=float, default=20.0)
    ap.add_argument("--no-baselines", action="store_true")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.size > 0:
        timing(a.checkpoint, a.size, a.repeats)
    if a.dice:
        dice_table(a.checkpoint, a.dice, a.fixations, a.sessions, a.min_cm3, not a.no_baselines)


if __name__ == "__main__":
    main()
