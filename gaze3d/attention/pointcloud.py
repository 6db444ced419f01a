"""Point-cloud attention: splat depth test for visibility, Gaussian deposition in angle.

For one camera frame and the gaze rays that fall in it:

1. **Cone.** The rays (in time order) are grouped into runs within
   ``group_sigmas`` sigma of each other (a saccade inside one frame becomes a
   few narrow cones instead of one wide one); each group's cone (mean
   direction, widened by the foveal cut-off, the splat footprint and a small
   slack) selects candidate points through the Morton octree
   (:mod:`.spatial`), then exactly per point.
2. **Visibility.** Candidates are projected with the camera; each is drawn as
   a square splat of ``point_size`` pixels (rounded to an odd number, like
   VTK's square points) into a full-resolution depth buffer restricted to the
   cone's pixel window. A point is *visible* if it lies in the viewport and
   its depth is within ``tol = depth * (depth_tolerance + max_slope *
   point_size / focal_px)`` of the nearest splat covering its own pixel: the
   slope term lets a surface seen obliquely (up to ``atan(max_slope)`` from
   face-on) keep all its points while anything behind it by more is hidden.
   Only splats of points inside the cone are needed, since a splat covering a
   pixel in the cone comes from a point within the footprint of it.
3. **Deposition.** Each visible point receives, per ray, ``dwell * exp(-theta^2
   / (2 sigma^2))`` for ``theta <= cut``, theta being the exact angle between
   the ray and the direction from the eye to the point (computed in float32
   from chords about the cone axis, relative error below 1e-6).

Cones are cached (LRU over cameras, up to 8 cones per camera), so the ~20
samples of a 1200 Hz tracker that share a 60 Hz camera frame pay for the cone
query and depth test once.
Everything is sequential numpy with a fixed order of operations: the same
input gives bit-identical output.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from typing import Optional

import numpy as np

from ..errors import InputError
from .foveal import FovealModel, chord2_to_theta2
from .spatial import MortonIndex


def _camera_key(camera) -> bytes:
    return np.concatenate([camera.position, camera.focal_point, camera.view_up,
                           [camera.vfov_deg, camera.width, camera.height, camera.near, camera.far,
                            -1.0 if camera.parallel_scale is None else camera.parallel_scale]]).tobytes()


def _min_filter(z: np.ndarray, h: int) -> np.ndarray:
    """Minimum over the (2h+1) x (2h+1) square around each pixel, for pixels at least h from the border.

    The border of ``z`` (h pixels wide) is left at ``inf`` in the result; callers
    keep their points out of it.
    """
    if h <= 0:
        return z
    H, W = z.shape
    rows = np.full_like(z, np.inf)
    core = rows[:, h:W - h]
    np.minimum(z[:, 0:W - 2 * h], z[:, 1:W - 2 * h + 1], out=core)
    for d in range(2, 2 * h + 1):
        np.minimum(core, z[:, d:W - 2 * h + d], out=core)
    out = np.full_like(z, np.inf)
    core = out[h:H - h]
    np.minimum(rows[0:H - 2 * h], rows[1:H - 2 * h + 1], out=core)
    for d in range(2, 2 * h + 1):
        np.minimum(core, rows[d:H - 2 * h + d], out=core)
    return out


@dataclass
class CameraFrame:
    """One camera and the cones of visible points built for it so far (internal)."""

    camera: object
    key: bytes
    origin: np.ndarray
    cones: list = field(default_factory=list)
    last: Optional[tuple] = None     # (directions array, its cones): skip regrouping the same rays


@dataclass
class PointFrame:
    """Visible points of one camera frame inside a cone (internal)."""

    key: bytes
    camera: object
    origin: np.ndarray          # (3,) float64 world
    axis: np.ndarray            # (3,) float64 unit
    half_angle: float           # radians covered for deposition (cone minus margins)
    index: np.ndarray           # (v,) int64 sorted positions of the visible points
    amat: np.ndarray            # (5, v) float32: q = unit direction - axis (camera frame), |q|^2, 1
    rotation: np.ndarray        # (3, 3) float64 world -> camera
    depth_window: Optional[tuple] = None   # (splat depth buffer (wv, wu), u origin, v origin)


class PointCloudEngine:
    """Occlusion-aware foveal attention on a point cloud (see module docstring).

    Parameters
    ----------
    xyz : (n, 3) float64
    foveal : FovealModel
    point_size : float
        Splat size in pixels (rounded to an odd integer >= 1), default 3.
    depth_tolerance : float
        Relative depth tolerance of the splat test (default 0.005).
    max_slope : float
        Steepest surface (depth change per splat width, in splat widths) kept
        visible, default 3.
    cache_frames : int
        Camera frames kept in the LRU cache.
    leaf_size : int
        Octree cells with at most this many points are not refined (256).
    cone_slack_deg : float
        Extra cone half-angle (camera degrees, 0.25) so that later calls
        within the same camera frame reuse its visibility.
    group_sigmas : float
        Rays of one frame further apart than this (in sigmas) get separate
        cones (default 1).
    """

    def __init__(self, xyz: np.ndarray, foveal: FovealModel, point_size: float = 3.0,
                 depth_tolerance: float = 0.005, max_slope: float = 3.0, cache_frames: int = 16,
                 leaf_size: int = 256, cone_slack_deg: float = 0.25, group_sigmas: float = 1.0):
        if not (np.isfinite(point_size) and point_size > 0):
            raise InputError(f"point_size: expected a positive number of pixels, got {point_size}")
        if not (np.isfinite(depth_tolerance) and depth_tolerance >= 0):
            raise InputError(f"depth_tolerance: expected a number >= 0, got {depth_tolerance}")
        if not (np.isfinite(max_slope) and max_slope >= 0):
            raise InputError(f"max_slope: expected a number >= 0, got {max_slope}")
        self.foveal = foveal
        self.half_splat = int(max(0, round((point_size - 1) / 2.0)))
        self.depth_tolerance = float(depth_tolerance)
        self.max_slope = float(max_slope)
        self.index = MortonIndex(np.asarray(xyz, dtype=np.float64), leaf_size=leaf_size)
        self.n = len(self.index)
        self.acc = np.zeros(self.n, dtype=np.float64)    # in sorted order
        self._frames: "OrderedDict[bytes, list]" = OrderedDict()      # camera -> cones
        self.cache_frames = int(cache_frames)
        self.cone_slack_deg = float(cone_slack_deg)
        self.group_sigmas = float(group_sigmas)
        self._xyz = xyz

    # ------------------------------------------------------------ frames
    def _margin(self, camera) -> float:
        # a splat reaches half_splat pixels from its point; the centre pixel
        # subtends the largest angle, so this bound holds across the viewport
        return (self.half_splat + 1.5) * np.arctan(1.0 / camera.focal_px)

    def frame(self, camera, directions: np.ndarray) -> "CameraFrame":
        """A handle on ``camera``'s visible sets, built now for the rays ``directions (s, 3)``."""
        if camera.is_parallel:
            raise InputError("point-cloud attention: orthographic cameras are not supported; "
                             "use a perspective camera (parallel_scale=None)")
        handle = CameraFrame(camera=camera, key=_camera_key(camera), origin=camera.position.copy())
        self._cones(handle, directions)
        return handle

    def _groups(self, camera, directions: np.ndarray) -> list:
        """Split rays (in time order) into runs within ``group_sigmas`` sigma of the run's first ray.

        A saccade inside one camera frame spreads its rays over degrees; one
        cone around all of them would cover a much larger area than a few
        narrow cones along the path.
        """
        n = len(directions)
        if n <= 1:
            return [np.arange(n)]
        cos_lim = np.cos(self.group_sigmas * self.foveal.camera_sigma_rad(camera))
        dots = directions @ directions.T
        groups, first = [], 0
        for i in range(1, n):
            if dots[first, i] < cos_lim:
                groups.append(np.arange(first, i))
                first = i
        groups.append(np.arange(first, n))
        return groups

    def _cones(self, handle: "CameraFrame", directions: np.ndarray) -> list:
        """[(PointFrame, ray indices)] covering every ray, from the handle, the cache or built."""
        if handle.last is not None and handle.last[0] is directions:
            return handle.last[1]            # the same rays as the previous call (frame, then deposit)
        out = []
        for idx in self._groups(handle.camera, directions):
            dirs = directions[idx]
            fr = self._lookup(handle, dirs)
            if fr is None:
                fr = self._new_cone(handle, dirs)
            out.append((fr, idx))
        handle.last = (directions, out)
        return out

    def _covers(self, fr: PointFrame, dirs: np.ndarray, cut: float) -> bool:
        cosang = np.clip(dirs @ fr.axis, -1.0, 1.0)
        return bool(np.all(np.arccos(cosang) + cut <= fr.half_angle + 1e-12))

    def _lookup(self, handle, dirs):
        cut = self.foveal.cut_rad(handle.camera)
        for fr in reversed(handle.cones):
            if self._covers(fr, dirs, cut):
                return fr
        for fr in reversed(self._frames.get(handle.key, [])):
            if self._covers(fr, dirs, cut):
                self._frames.move_to_end(handle.key)
                handle.cones.append(fr)
                return fr
        return None

    def _new_cone(self, handle, dirs) -> PointFrame:
        camera = handle.camera
        axis = dirs.sum(axis=0)
        axis /= np.linalg.norm(axis)
        spread = float(np.max(np.arccos(np.clip(dirs @ axis, -1.0, 1.0))))
        # a little room so that later calls in the same frame (live, a few samples
        # at a time) reuse the cone while the eye stays within the slack
        slack = np.radians(self.cone_slack_deg)
        half = min(spread + self.foveal.cut_rad(camera) + slack, np.radians(88.0))
        fr = self._build(camera, handle.key, axis, half, half + self._margin(camera))
        handle.cones.append(fr)
        cones = self._frames.setdefault(handle.key, [])
        cones.append(fr)
        del cones[:-8]
        self._frames.move_to_end(handle.key)
        while len(self._frames) > self.cache_frames:
            self._frames.popitem(last=False)
        return fr

    def _build(self, camera, key, axis, half, cone) -> PointFrame:
        idx = self.index
        apex = camera.position - idx.center
        cand = idx.cone_candidates(apex, axis, min(cone, np.radians(89.5)), camera.near)
        R = camera.rotation
        # camera coordinates of the candidates, in float32 rows of one array so
        # that each compression below is a single take
        a = apex.astype(np.float32)
        pts = np.take(idx.cols, cand, axis=1)
        pts -= a[:, None]
        m = np.empty((7, len(cand)), dtype=np.float32)      # cx, cy, cz, |c|^2, u, v, dot
        np.matmul(R.astype(np.float32), pts, out=m[:3])
        del pts
        cx, cy, cz, n2, u, v, dot = m
        ax = (R @ axis).astype(np.float32)               # cone axis in camera coordinates
        np.multiply(cx, ax[0], out=dot)
        dot += cy * ax[1]
        dot += cz * ax[2]
        np.multiply(cx, cx, out=n2)
        n2 += cy * cy
        n2 += cz * cz
        f = np.float32(camera.focal_px)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = f / cz
        np.multiply(cx, inv, out=u)
        u += np.float32(camera.width / 2.0)
        np.multiply(cy, -inv, out=v)
        v += np.float32(camera.height / 2.0)
        h = self.half_splat
        ok = dot > 0
        dot *= dot
        ok &= dot >= np.float32(np.cos(cone) ** 2) * n2
        ok &= (cz >= camera.near) & (cz <= camera.far)
        ok &= (u >= -h) & (u < camera.width + h) & (v >= -h) & (v < camera.height + h)
        keep = np.flatnonzero(ok)
        cand = np.take(cand, keep)
        m = np.take(m[:6], keep, axis=1)
        self._window = None
        if len(cand):
            cx, cy, cz, n2, u, v = m
            visible = self._visibility(camera, cand, (cx, cy, cz), cz, u, v)
            visible &= (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
            keep = np.flatnonzero(visible)
            cand = np.take(cand, keep)
            m = np.take(m[:4], keep, axis=1)
        cx, cy, cz, n2 = m[:4]
        # unit directions minus the axis, as rows of the chord matrix (see _chord2)
        rn = np.float32(1.0) / np.sqrt(n2)
        amat = np.empty((5, len(cand)), dtype=np.float32)
        for i, c in enumerate((cx, cy, cz)):
            np.multiply(c, rn, out=amat[i])
            amat[i] -= ax[i]
        amat[3] = amat[0] * amat[0]
        amat[3] += amat[1] * amat[1]
        amat[3] += amat[2] * amat[2]
        amat[4] = 1.0
        return PointFrame(key=key, camera=camera, origin=camera.position.copy(), axis=axis,
                          half_angle=half, index=cand, amat=amat, rotation=R, depth_window=self._window)

    def _visibility(self, camera, cand, cam_xyz, depth, u, v) -> np.ndarray:
        """(m,) bool: the splat depth test (see the module docstring)."""
        h = self.half_splat
        iu = (u + np.float32(h)).astype(np.int32)     # u, v >= -h: truncation is floor
        iv = (v + np.float32(h)).astype(np.int32)
        u0, v0 = int(iu.min()), int(iv.min())
        # the window has an h-pixel border so the splat filter needs no padding
        wu, wv = int(iu.max()) - u0 + 1 + 2 * h, int(iv.max()) - v0 + 1 + 2 * h
        flat = (iv - (v0 - h)) * wu
        flat += iu - (u0 - h)
        z = np.full(wu * wv, np.inf, dtype=np.float32)
        np.minimum.at(z, flat, depth)
        zs = _min_filter(z.reshape(wv, wu), h)
        self._window = (zs, u0 - h, v0 - h)     # kept for the gaze's own hit points
        zs = zs.ravel()
        tol = depth * np.float32(self.depth_tolerance + self.max_slope * (2 * h + 1) / camera.focal_px)
        tol += np.take(zs, flat)
        return depth <= tol

    # ---------------------------------------------------------- per ray
    def _chord2(self, fr: PointFrame, directions: np.ndarray, cols: slice) -> np.ndarray:
        """(s, v') float32 squared chords between rays and visible points ``cols``.

        ``|d - p|^2 = |q|^2 + |h|^2 - 2 q.h`` with ``q = p - axis`` and
        ``h = d - axis``: all terms are small, so float32 keeps ~1e-7 relative
        accuracy on the chord where ``2 - 2 d.p`` would cancel.
        """
        h = (directions - fr.axis) @ fr.rotation.T
        b = np.empty((len(directions), 5), dtype=np.float32)
        b[:, :3] = -2.0 * h
        b[:, 3] = 1.0
        b[:, 4] = np.einsum("ij,ij->i", h, h)
        c2 = b @ fr.amat[:, cols]
        np.maximum(c2, 0.0, out=c2)
        return c2

    def hit_points(self, handle: CameraFrame, directions: np.ndarray, origins=None) -> np.ndarray:
        """(s, 3) float64 point where each ray meets the visible surface.

        The point on the ray at the depth of the splat depth buffer under the
        gaze pixel, i.e. the surface as drawn (on the ray, so a still camera
        gives exactly the screen-space gaze motion in object space); in a hole
        between splats, at the distance of the visible point nearest in angle;
        NaN where there is none within the foveal cut-off.
        """
        out = np.full((len(directions), 3), np.nan)
        for fr, idx in self._cones(handle, directions):
            out[idx] = self._cone_hits(fr, directions[idx])
        return out

    def _cone_hits(self, fr: PointFrame, directions: np.ndarray) -> np.ndarray:
        """Rays against the splat depth buffer: the rendered surface under each gaze pixel."""
        out = np.full((len(directions), 3), np.nan)
        if fr.depth_window is None or len(directions) == 0:
            return out
        zs, iu0, iv0 = fr.depth_window
        cam = fr.camera
        c = directions @ fr.rotation.T
        with np.errstate(divide="ignore", invalid="ignore"):
            u = cam.width / 2.0 + cam.focal_px * c[:, 0] / c[:, 2]
            v = cam.height / 2.0 - cam.focal_px * c[:, 1] / c[:, 2]
        h = self.half_splat
        ok = (c[:, 2] > 0) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        iu = np.floor(np.where(ok, u, 0.0) + h).astype(np.int64) - iu0
        iv = np.floor(np.where(ok, v, 0.0) + h).astype(np.int64) - iv0
        ok &= (iu >= 0) & (iu < zs.shape[1]) & (iv >= 0) & (iv < zs.shape[0])
        depth = np.full(len(directions), np.inf)
        depth[ok] = zs[iv[ok], iu[ok]]
        hit = ok & np.isfinite(depth)
        out[hit] = fr.origin + directions[hit] * (depth[hit] / c[hit, 2])[:, None]
        miss = np.flatnonzero(~hit)
        if len(miss):               # a hole between splats: the nearest visible point in angle
            out[miss] = self._nearest_hits(fr, directions[miss])
        return out

    def _nearest_hits(self, fr: PointFrame, directions: np.ndarray) -> np.ndarray:
        """The ray at the distance of the visible point nearest in angle (within the cut-off)."""
        out = np.full((len(directions), 3), np.nan)
        v = len(fr.index)
        if v == 0:
            return out
        cut = self.foveal.cut_rad(fr.camera)
        best = np.full(len(directions), np.inf, dtype=np.float32)
        arg = np.zeros(len(directions), dtype=np.int64)
        for s in range(0, v, 65536):
            c2 = self._chord2(fr, directions, slice(s, min(v, s + 65536)))
            j = np.argmin(c2, axis=1)
            m = c2[np.arange(len(directions)), j]
            better = m < best
            best[better], arg[better] = m[better], j[better] + s
        hit = best <= (2 * np.sin(cut / 2)) ** 2
        p = self._xyz[self.index.order[fr.index[arg[hit]]]]
        dist = np.linalg.norm(p - fr.origin, axis=1)
        out[hit] = fr.origin + directions[hit] * dist[:, None]
        return out

    def deposit(self, handle: CameraFrame, directions: np.ndarray, weights: np.ndarray, origins=None) -> None:
        """Add ``weights[i] * gaussian(angle)`` of every ray to the visible points."""
        if len(directions) == 0:
            return
        w = np.asarray(weights, dtype=np.float64)
        for fr, idx in self._cones(handle, directions):
            self._cone_deposit(fr, directions[idx], w[idx])

    def _cone_deposit(self, fr: PointFrame, directions: np.ndarray, weights: np.ndarray) -> None:
        v = len(fr.index)
        if v == 0 or len(directions) == 0:
            return
        sigma = self.foveal.camera_sigma_rad(fr.camera)
        cut = self.foveal.cut_rad(fr.camera)
        c2cut = np.float32((2 * np.sin(cut / 2)) ** 2)
        k = -0.5 / sigma ** 2
        w = np.asarray(weights, dtype=np.float64)
        keep = w > 0
        directions, w = directions[keep], w[keep]
        if len(w) == 0:
            return
        # exp(k theta^2 + ln w) = w * gaussian: the dwell rides in the exponent
        lnw = np.log(w).astype(np.float32)[:, None]
        series3 = cut > np.radians(5.0)       # c2^3/90 matters above ~5 degrees
        exact = cut > np.radians(20.0)
        chunk = max(1024, 262144 // len(w))   # keep the (s, chunk) temporaries in cache
        for s in range(0, v, chunk):
            cols = slice(s, min(v, s + chunk))
            c2 = self._chord2(fr, directions, cols)
            far = c2 > c2cut
            if exact or series3:
                e = chord2_to_theta2(c2, exact=exact)
                e *= np.float32(k)
            else:
                # theta^2 = c2 (1 + c2 / 12) to float32 precision below 5 degrees
                e = c2 * np.float32(k / 12.0)
                e += np.float32(k)
                e *= c2
            e += lnw
            np.copyto(e, -np.inf, where=far)
            np.exp(e, out=e)
            contrib = np.add.reduce(e, axis=0)
            self.acc[fr.index[cols]] += contrib

    # ------------------------------------------------------------ output
    def values(self) -> np.ndarray:
        """(n,) float32 attention in the cloud's point order."""
        out = np.empty(self.n, dtype=np.float32)
        out[self.index.order] = self.acc
        return out

    def reset(self) -> None:
        self.acc[:] = 0.0
