"""Benchmark: live attention overlay update on a 1M-point cloud.

Target (issue 5): updating the overlay costs <= 5 ms per frame, excluding the
render itself. Baseline, measured in the same run: the naive way of showing new
attention, re-creating the PyVista mesh with the new scalars and calling
``add_mesh`` again (removing the old actor).

Each frame adds a foveal Gaussian blob (sigma ~ 1 % of the cloud's width)
at a gaze point that wanders over the cloud, as a fixation sequence does;
the accumulated attention is what the overlay shows.

Run: ``.venv/bin/python bench/overlay.py [--points 1000000] [--frames 200]``
"""
from __future__ import annotations

import argparse
import gc
import time

import numpy as np


def make_cloud(n: int, seed: int = 0):
    from gaze3d.scan import PointCloud

    rng = np.random.default_rng(seed)
    xy = rng.uniform(0.0, 100.0, (n, 2))
    z = 5.0 * np.sin(xy[:, 0] / 9.0) * np.cos(xy[:, 1] / 13.0) + rng.normal(0, 0.1, n)
    xyz = np.c_[xy + [870000.0, 6618000.0], z + 120.0]
    colors = rng.uniform(0.3, 0.7, (n, 3)).astype(np.float32)
    return PointCloud(xyz, colors=colors)


def attention_frames(cloud, n_frames: int, seed: int = 1):
    """Per frame: (indices, increments) of one foveal blob; the gaze moves in fixations."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    xy = cloud.xyz[:, :2]
    tree = cKDTree(xy)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    sigma = 0.01 * float((hi - lo).max())
    frames, centre = [], lo + (hi - lo) * rng.uniform(0.2, 0.8, 2)
    for f in range(n_frames):
        if f % 15 == 0:   # a new fixation every 15 frames (250 ms at 60 fps)
            centre = lo + (hi - lo) * rng.uniform(0.1, 0.9, 2)
        c = centre + rng.normal(0, 0.1 * sigma, 2)
        idx = np.asarray(tree.query_ball_point(c, 3 * sigma), dtype=np.int64)
        d2 = ((xy[idx] - c) ** 2).sum(axis=1)
        frames.append((idx, np.exp(-0.5 * d2 / sigma ** 2).astype(np.float32) / 60.0))
    return frames


def stats_ms(times):
    t = np.asarray(times) * 1e3
    return float(np.mean(t)), float(np.median(t)), float(np.percentile(t, 95)), float(t.max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--frames", type=int, default=200, help="frames for the in-place overlay")
    ap.add_argument("--baseline-frames", type=int, default=10, help="frames for the naive baseline")
    ap.add_argument("--render-frames", type=int, default=3, help="frames rendered to time the render itself")
    ap.add_argument("--window", default="640x480")
    args = ap.parse_args(argv)

    from gaze3d.viewer._vtk import make_plotter, pv
    from gaze3d.viewer.scene import Scene

    w, h = (int(v) for v in args.window.split("x"))
    cloud = make_cloud(args.points)
    frames = attention_frames(cloud, max(args.frames, args.baseline_frames))
    print(f"cloud: {args.points:,} points; {len(frames)} frames of a foveal blob "
          f"(mean {np.mean([len(f[0]) for f in frames]):,.0f} points touched per frame); window {w}x{h}")

    # ---------------------------------------------------------- in place
    plotter = make_plotter(off_screen=True, window_size=(w, h))
    scene = Scene(plotter, cloud, point_size=1.0)
    scene.default_camera()
    plotter.ren_win.Render()
    values = np.zeros(len(cloud), dtype=np.float32)
    update_t, recoloured, full = [], [], 0
    for f in range(args.frames):
        idx, inc = frames[f]
        values[idx] += inc                 # the accumulator's work, not timed here
        scale_before = scene.overlay.scale
        t0 = time.perf_counter()
        n = scene.update_attention(values)
        update_t.append(time.perf_counter() - t0)
        recoloured.append(n)
        full += scene.overlay.scale != scale_before
    # forced full recolour (the heat scale jumps): worst case of a frame
    full_t = []
    for _ in range(10):
        scene.overlay.scale = 0.0
        t0 = time.perf_counter()
        scene.update_attention(values)
        full_t.append(time.perf_counter() - t0)
    render_t = []
    for _ in range(args.render_frames):
        values[frames[0][0]] += frames[0][1]
        scene.update_attention(values)
        t0 = time.perf_counter()
        plotter.ren_win.Render()
        render_t.append(time.perf_counter() - t0)
    static_t = []
    for _ in range(args.render_frames):
        t0 = time.perf_counter()
        plotter.ren_win.Render()
        static_t.append(time.perf_counter() - t0)
    plotter.close()
    del scene, plotter
    gc.collect()

    # ---------------------------------------------------------- naive baseline
    plotter = make_plotter(off_screen=True, window_size=(w, h))
    xyz = cloud.xyz - np.round(cloud.xyz.mean(axis=0))
    values = np.zeros(len(cloud), dtype=np.float32)
    actor = None
    base_t, base_render_t = [], []
    for f in range(args.baseline_frames):
        idx, inc = frames[f]
        values[idx] += inc
        t0 = time.perf_counter()
        if actor is not None:
            plotter.remove_actor(actor, render=False)
        mesh = pv.PolyData(xyz)
        mesh.point_data["attention"] = values
        actor = plotter.add_mesh(mesh, scalars="attention", cmap="inferno", style="points", point_size=1.0,
                                 show_scalar_bar=False, reset_camera=(f == 0), render=False)
        base_t.append(time.perf_counter() - t0)
        if f < args.render_frames:
            t0 = time.perf_counter()
            plotter.ren_win.Render()
            base_render_t.append(time.perf_counter() - t0)
    plotter.close()
    del plotter
    gc.collect()

    rows = [
        ("in-place overlay update (per frame)", stats_ms(update_t)),
        ("  same, forced full recolour (scale jump)", stats_ms(full_t)),
        ("naive: new PolyData + add_mesh (per frame)", stats_ms(base_t)),
        ("render after in-place update", stats_ms(render_t)),
        ("render after naive add_mesh", stats_ms(base_render_t)),
        ("render with nothing changed (reference)", stats_ms(static_t)),
    ]
    print(f"\n{'what':<46}{'mean ms':>10}{'median':>10}{'p95':>10}{'max':>10}")
    for name, (mean, med, p95, mx) in rows:
        print(f"{name:<46}{mean:>10.2f}{med:>10.2f}{p95:>10.2f}{mx:>10.2f}")
    ratio = np.mean(base_t) / np.mean(update_t)
    print(f"\nframes: {args.frames} in place ({full} with a scale jump, full recolour), "
          f"{args.baseline_frames} naive; mean elements recoloured per frame: {np.mean(recoloured):,.0f}")
    print(f"speed-up of the overlay update over the naive baseline (mean): {ratio:.0f}x")
    print(f"render-inclusive speed-up (update + render, mean): "
          f"{(np.mean(base_t) + np.mean(base_render_t)) / (np.mean(update_t) + np.mean(render_t)):.1f}x")
    ok = float(np.mean(update_t) * 1e3) <= 5.0
    print(f"target <= 5 ms per frame (mean, excluding render): {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
