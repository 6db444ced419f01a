"""Analytic scenes shared by the attention tests."""
from __future__ import annotations

import numpy as np

from gaze3d.camera import Camera


def grid_plane(z: float, half: float = 2.0, n: int = 201) -> np.ndarray:
    """(n*n, 3) points of the square [-half, half]^2 at height z."""
    g = np.stack(np.meshgrid(np.linspace(-half, half, n), np.linspace(-half, half, n)), -1).reshape(-1, 2)
    return np.c_[g, np.full(len(g), z)]


def fibonacci_sphere(n: int, radius: float = 1.0, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(n, 3) nearly uniform points on a sphere."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    p = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    return radius * p + np.asarray(center)


def top_camera(height: float = 10.0, **kw) -> Camera:
    return Camera(position=(0, 0, height), focal_point=(0, 0, 0), view_up=(0, 1, 0), **kw)


def angle_to_ray(points, origin, direction) -> np.ndarray:
    """(n,) exact angle in radians between ``direction`` and ``points - origin``."""
    v = points - origin
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    d = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    return 2 * np.arcsin(np.clip(np.linalg.norm(v - d, axis=1) / 2, 0, 1))


def gaussian(theta, sigma_deg=1.0, cut=3.0):
    s = np.radians(sigma_deg)
    return np.where(theta <= cut * s, np.exp(-0.5 * (theta / s) ** 2), 0.0)
