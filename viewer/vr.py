"""VR sessions drawn over a scan: the head path and gaze rays (used by ``gaze3d render`` and the viewer's replay).

Geometry is built in the scene's render coordinates (world minus
:attr:`Scene.offset`, OpenGL works in float32).
"""
from __future__ import annotations

import numpy as np

from ._vtk import pv

HEAD_PATH_COLOR = (0.10, 0.45, 0.95)
RAY_COLOR = (0.05, 0.75, 0.35)
CURRENT_RAY_COLOR = (0.95, 0.15, 0.15)


def head_path_polydata(scene, positions) -> "pv.PolyData | None":
    """(n, 3) world head positions -> a polyline (None if fewer than two finite positions)."""
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < 2:
        return None
    return pv.lines_from_points(p - scene.offset)


def rays_polydata(scene, origins, directions, length=None, max_rays: int = 400) -> "pv.PolyData | None":
    """Segments along (n, 3) world rays, at most ``max_rays`` evenly picked (None if none is finite).

    ``length`` (scene units, scalar or (n,)) defaults to 15 % of the scan's diagonal.
    """
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    if length is None:
        b = scene.dataset.bounds
        length = 0.15 * float(np.linalg.norm([b[1] - b[0], b[3] - b[2], b[5] - b[4]]))
    ln = np.broadcast_to(np.asarray(length, dtype=np.float64), (len(o),))
    ok = np.flatnonzero(np.isfinite(o).all(1) & np.isfinite(d).all(1) & np.isfinite(ln))
    if len(ok) == 0:
        return None
    if len(ok) > max_rays:
        ok = ok[np.linspace(0, len(ok) - 1, max_rays).round().astype(int)]
    dn = d[ok] / np.linalg.norm(d[ok], axis=1, keepdims=True)
    a = o[ok] - scene.offset
    b = a + dn * ln[ok, None]
    pts = np.empty((2 * len(ok), 3))
    pts[0::2], pts[1::2] = a, b
    lines = np.c_[np.full(len(ok), 2), np.arange(0, 2 * len(ok), 2), np.arange(1, 2 * len(ok), 2)].ravel()
    return pv.PolyData(pts, lines=lines)


def add_vr_overlay(plotter, scene, head_path=None, gaze_rays=None, line_px: float = 3.0) -> list:
    """Add the head path (blue polyline) and gaze rays (green segments) to ``plotter``; returns the actors."""
    actors = []
    if head_path is not None:
        poly = head_path_polydata(scene, head_path)
        if poly is not None:
            actors.append(plotter.add_mesh(poly, color=HEAD_PATH_COLOR, line_width=line_px, lighting=False,
                                           reset_camera=False))
    if gaze_rays is not None:
        poly = rays_polydata(scene, *gaze_rays)
        if poly is not None:
            actors.append(plotter.add_mesh(poly, color=RAY_COLOR, line_width=max(1.0, line_px / 2), opacity=0.6,
                                           lighting=False, reset_camera=False))
    return actors
