"""Scene generators for the attention benchmark (the benchmark itself follows)."""
from __future__ import annotations

import numpy as np


def synthetic_city(n_points: int, density_per_m2: float = 20.0, seed: int = 0) -> np.ndarray:
    """(n, 3) float64 terrain (rolling hills) plus box buildings, at a fixed ground density.

    About 70% of the points are ground and 30% building roofs and walls, so the
    area grows with ``n_points`` (1M points: ~220 m square; 10M: ~700 m).
    """
    rng = np.random.default_rng(seed)
    side = float(np.sqrt(n_points * 0.7 / density_per_m2))
    n_ground = int(n_points * 0.7)
    g = rng.uniform(0, side, (n_ground, 2))
    gz = 3.0 * np.sin(g[:, 0] / 37.0) * np.cos(g[:, 1] / 53.0)
    n_build = n_points - n_ground
    n_boxes = max(1, int(side * side / 900.0))              # one building per 30 m x 30 m
    centres = rng.uniform(10, side - 10, (n_boxes, 2))
    half = rng.uniform(4, 10, (n_boxes, 2))
    height = rng.uniform(6, 30, n_boxes)
    which = rng.integers(0, n_boxes, n_build)
    face = rng.integers(0, 5, n_build)                     # 0 roof, 1-4 walls
    u = rng.uniform(-1, 1, (n_build, 2))
    c, h, hz = centres[which], half[which], height[which]
    x = c[:, 0] + np.where(face == 1, h[:, 0], np.where(face == 2, -h[:, 0], u[:, 0] * h[:, 0]))
    y = c[:, 1] + np.where(face == 3, h[:, 1], np.where(face == 4, -h[:, 1], u[:, 1] * h[:, 1]))
    z = np.where(face == 0, hz, (u[:, 1] * 0.5 + 0.5) * hz)
    y = np.where((face == 1) | (face == 2), c[:, 1] + u[:, 1] * h[:, 1], y)
    z = np.where((face == 1) | (face == 2), (u[:, 0] * 0.5 + 0.5) * hz, z)
    base = 3.0 * np.sin(x / 37.0) * np.cos(y / 53.0)
    b = np.c_[x, y, z + base]
    return np.r_[np.c_[g, gz], b] + [870000.0, 6617000.0, 150.0]


def bench_path(xyz: np.ndarray, duration_s: float = 60.0):
    """An oblique camera 150 m from the centre, turning 6 degrees per second."""
    from gaze3d.camera import CameraPath

    centre = np.median(xyz, axis=0)
    return CameraPath.orbit(centre, radius=150.0, elevation_deg=35.0, duration_s=duration_s,
                            turns=duration_s * 6.0 / 360.0, n_keys=int(duration_s * 4) + 2,
                            width=1024, height=768, vfov_deg=30.0)


def bench_gaze(duration_s: float, seed: int = 0):
    """1200 Hz simulated screen gaze: (t_s, xy normalised (n, 2), valid (n,))."""
    from gaze3d.display import DisplayGeometry
    from gaze3d.simulate import simulate_gaze

    sig = simulate_gaze(duration_s, 1200.0, seed=seed, field_deg=(12.0, 8.0))
    xy = DisplayGeometry().deg_to_norm(np.c_[np.nan_to_num(sig.x_deg), np.nan_to_num(sig.y_deg)])
    valid = sig.valid & (xy >= 0).all(axis=1) & (xy < 1).all(axis=1)
    return sig.t_s, xy, valid
