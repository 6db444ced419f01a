"""Mesh attention: Embree ray casts (Open3D ``RaycastingScene``) decide vertex visibility.

A vertex inside the foveal cone and the viewport is visible when the ray from
the eye towards it first hits the mesh no nearer than the vertex itself
(within ``depth_tolerance``, relative). Visible vertices then receive the
same foveal Gaussian as points (see :mod:`.pointcloud`). The gaze's own hit
point (for object-space fixation detection) is the first hit of the gaze ray.
No triangle intersection is written here: Open3D/Embree does all of it.
"""
from __future__ import annotations

import numpy as np

from .._optional import optional_import
from ..errors import InputError
from .foveal import FovealModel
from .pointcloud import CameraFrame, PointCloudEngine


class MeshEngine(PointCloudEngine):
    """Occlusion-aware foveal attention on mesh vertices.

    Parameters
    ----------
    mesh : gaze3d.scan.Mesh
    foveal : FovealModel
    depth_tolerance : float
        A hit closer than ``(1 - depth_tolerance)`` times the vertex distance
        hides the vertex (default 1e-3: float32 ray casting).
    nthreads : int
        Embree threads (0: all cores; results do not depend on it).
    """

    def __init__(self, mesh, foveal: FovealModel, depth_tolerance: float = 1e-3, nthreads: int = 0,
                 cache_frames: int = 16, leaf_size: int = 256):
        if not (np.isfinite(depth_tolerance) and 0 <= depth_tolerance < 1):
            raise InputError(f"depth_tolerance: expected a number in [0, 1), got {depth_tolerance}")
        super().__init__(mesh.vertices, foveal, point_size=1.0, depth_tolerance=depth_tolerance,
                         max_slope=0.0, cache_frames=cache_frames, leaf_size=leaf_size,
                         spacing_footprint=False)     # visibility by ray casting, not footprints
        o3d = optional_import("open3d", extra="io")
        self._o3c = o3d.core
        self.nthreads = int(nthreads)
        self.scene = o3d.t.geometry.RaycastingScene()
        verts = (mesh.vertices - self.index.center).astype(np.float32)
        self.scene.add_triangles(o3d.core.Tensor(verts), o3d.core.Tensor(mesh.faces.astype(np.uint32)))

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """(n,) float32 ``t_hit`` of world rays (in units of ``directions``; inf on a miss)."""
        rays = np.empty((len(origins), 6), dtype=np.float32)
        rays[:, :3] = origins - self.index.center
        rays[:, 3:] = directions
        out = self.scene.cast_rays(self._o3c.Tensor(rays), nthreads=self.nthreads)
        return out["t_hit"].numpy()

    def _visibility(self, camera, cand, cam_xyz, depth, u, v) -> np.ndarray:
        rel = np.stack(cam_xyz, axis=1).astype(np.float64) @ camera.rotation   # back to world axes
        t = self.cast(np.repeat(camera.position[None], len(rel), axis=0), rel)
        return t >= np.float32(1.0 - self.depth_tolerance)

    def hit_points(self, fr: CameraFrame, directions: np.ndarray, origins=None) -> np.ndarray:
        """(s, 3) float64 first hits of the gaze rays on the mesh (NaN on a miss)."""
        t = self.cast(np.repeat(fr.origin[None], len(directions), axis=0), directions).astype(np.float64)
        out = fr.origin + directions * t[:, None]
        out[~np.isfinite(t)] = np.nan
        return out
