"""Benchmark: attention through walls of 1-15 px point pitch, and what spacing-sized footprints cost.

Issue 17: with 3 px splats, a wall of 3.6 px pitch sent most of the attention
to the plane behind it. Prints, per pitch (regular grid / jittered by +-0.4
pitch), the share of the attention that lands behind a wall 10 m away
(``spacing`` = occluding footprints from the local point spacing, the default;
``splat`` = the drawn splat only, ``spacing_footprint=False``), then the time
of one ``AttentionAccumulator.add`` (20 samples, a moving camera) on the
bundled 70 k point demo tile with and without spacing footprints.

Run: ``.venv/bin/python bench/occlusion.py``
"""
from __future__ import annotations

import time

import numpy as np

from gaze3d.attention import AttentionAccumulator
from gaze3d.camera import Camera

CAM = Camera(position=[0, 0, 0], focal_point=[0, 0, -1], view_up=[0, 1, 0], vfov_deg=40, width=800, height=600)


def _grid(pitch, half, z, jitter=0.0, seed=0):
    g = np.arange(-half, half + 1e-9, pitch)
    X, Y = np.meshgrid(g, g)
    pts = np.c_[X.ravel(), Y.ravel(), np.full(X.size, z)]
    pts[:, :2] += np.random.default_rng(seed).uniform(-jitter, jitter, (len(pts), 2)) * pitch
    return pts


def leak(pitch_px, jitter=0.0, **opts) -> float:
    wall = _grid(pitch_px * 10.0 / CAM.focal_px, 1.5, -10.0, jitter)
    xyz = np.r_[wall, _grid(0.02, 3.0, -12.0)]
    acc = AttentionAccumulator(xyz, fixations_only=False, **opts)
    n = 50
    acc.add(CAM, {"x": np.full(n, 0.5), "y": np.full(n, 0.5), "valid": np.ones(n, bool),
                  "t_host_ns": 1 + np.arange(n) * 1_000_000})
    acc.flush()
    v = acc.values
    return float(v[len(wall):].sum() / v.sum())


def add_cost(spacing_footprint: bool, frames: int = 20) -> list:
    import gaze3d
    from gaze3d.demo import bundled_tile

    cloud = gaze3d.load_scan(bundled_tile())
    c = cloud.xyz.mean(0)
    acc = AttentionAccumulator(cloud, fixations_only=False, spacing_footprint=spacing_footprint)
    rng = np.random.default_rng(0)
    out = []
    for k in range(frames):
        cam = Camera(position=c + [-60 + k * 0.5, -80, 60], focal_point=c, view_up=[0, 0, 1], width=1280, height=800)
        xy = 0.5 + rng.normal(0, 0.05, (20, 2))
        t = time.perf_counter()
        acc.add(cam, {"x": xy[:, 0], "y": xy[:, 1], "valid": np.ones(20, bool),
                      "t_host_ns": 1 + (k * 20 + np.arange(20)) * 833_333})
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    pitches = (1, 2, 2.5, 3.6, 5, 8, 12, 15)
    print("share of the attention behind the wall (grid / jittered):")
    print("  pitch px  " + "  ".join(f"{p:>11}" for p in pitches))
    for name, opts in (("spacing", {}), ("splat", {"spacing_footprint": False})):
        cells = [f"{leak(p, **opts):5.1%}/{leak(p, 0.4, **opts):5.1%}" for p in pitches]
        print(f"  {name:8s}  " + "  ".join(f"{c:>11}" for c in cells))
    for sf in (False, True):
        t = np.asarray(add_cost(sf)) * 1e3
        print(f"demo tile, add(20 samples), spacing_footprint={sf}: median {np.median(t):.1f} ms, "
              f"p90 {np.percentile(t, 90):.1f} ms")


if __name__ == "__main__":
    main()
