"""Volume attention: slice views, front-to-back volume rendering and MIP, at voxel resolution.

Three viewing modes, matching what the viewer draws:

``"slice"``
    One or more opaque slice planes, each a slice ``index`` along voxel axis
    ``axis`` (0 = i, 1 = j, 2 = k) spanning the volume, as the viewer draws
    them (three orthogonal planes through one voxel: :meth:`set_slices`).
    Every voxel of every plane within the foveal cone gets the Gaussian of
    the angle between the gaze ray and the direction from the eye to the
    voxel centre, unless the straight line from the eye to it crosses
    another plane first (planes occlude each other). The gaze hit point is
    the nearest plane the ray meets inside the volume.
``"render"``
    Direct volume rendering. A grid of rays (spacing ``sigma /
    bundle_density``) covers the foveal cones of the call's samples; each
    sample spreads its dwell over the grid rays by the Gaussian of their angle
    from its gaze ray, normalised to sum 1, so the rays of one camera frame
    are marched once for all its samples. Each ray is marched
    front to back with step ``step_mm`` through the trilinearly interpolated
    volume; the viewer's opacity transfer function ``opacity`` gives alpha
    (corrected to the step length, per ``reference_step_mm``), the
    compositing weight of step ``s`` is ``w_s = alpha_s * prod_{r<s}(1 -
    alpha_r)``, marching stops once the transmittance drops below ``1 -
    early_termination``, and ``dwell * ray_weight * w_s`` goes to the voxel
    nearest the step's position. So a sample deposits exactly ``dwell`` times
    the bundle's mean accumulated opacity.
``"mip"``
    Maximum intensity projection: each bundle ray deposits ``dwell *
    ray_weight * b`` at the voxel nearest its maximum, where ``b`` in [0, 1]
    is how bright that maximum is drawn: the opacity transfer function at
    the maximum divided by the function's largest alpha (the display window).
    A ray whose maximum is empty background (below the window) is seen as
    black and deposits nothing.

Attention is a float64 accumulator on the volume's grid (``values`` float32,
shape ``(I, J, K)``). Perspective and orthographic cameras are both handled:
an orthographic viewport ``2 * parallel_scale`` high is taken to span
``vfov_deg`` camera degrees, angles become offsets from the (parallel) gaze
ray and bundles are parallel rays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import InputError
from .foveal import FovealModel, chord2_to_theta2

MODES = ("slice", "render", "mip")
#: render-mode deposits march this many steps at a time, then stop where every ray has terminated
RENDER_CHUNK_STEPS = 64


def make_opacity(opacity) -> Callable[[np.ndarray], np.ndarray]:
    """Opacity transfer function from a callable or piecewise-linear ``(values, alphas)`` points."""
    if opacity is None:
        return None
    if callable(opacity):
        return opacity
    pts = np.asarray(opacity, dtype=np.float64)
    if pts.ndim != 2 or 2 not in pts.shape:
        raise InputError("opacity: expected a callable or (values, alphas) control points, "
                         f"got an array of shape {pts.shape}")
    if pts.shape[0] != 2:
        pts = pts.T
    xs, ys = pts
    if np.any(np.diff(xs) < 0) or np.any((ys < 0) | (ys > 1)):
        raise InputError("opacity: control values must increase and alphas lie in [0, 1]")
    return lambda v: np.interp(v, xs, ys)


@dataclass
class VolumeFrame:
    """Per-call state (a volume needs no visibility cache)."""

    camera: object
    origin: np.ndarray


class VolumeEngine:
    """Attention on a :class:`~gaze3d.scan.Volume` (see the module docstring).

    Parameters
    ----------
    volume : gaze3d.scan.Volume
    foveal : FovealModel
    mode : {"slice", "render", "mip"}
    axis, index : int
        One slice shown in ``"slice"`` mode (``index`` defaults to the middle).
    slices : (3,) int, optional
        Instead of ``axis``/``index``: the voxel ``(i, j, k)`` that three
        orthogonal slice planes pass through (the viewer's slice view).
    opacity : callable or (2, m) control points
        Scalar -> alpha in [0, 1] for ``"render"`` (default: linear ramp
        from the volume's 1st to 99th percentile, alpha 0 to 0.05).
    step_mm : float
        Ray-marching step (default half the smallest voxel spacing).
    reference_step_mm : float
        The step the opacities are defined for (default ``step_mm``).
    early_termination : float
        Stop a ray once this much opacity is accumulated (default 0.99).
    bundle_density : float
        Rays per sigma across the foveal cone (default 2: 113 rays at cut 3).

    Implements :class:`~.engine.AttentionEngine`.
    """

    deposit_rows = False    # deposit takes the rays to use, not a row mask

    def __init__(self, volume, foveal: FovealModel, mode: str = "render", axis: int = 2,
                 index: Optional[int] = None, opacity=None, step_mm: Optional[float] = None,
                 reference_step_mm: Optional[float] = None, early_termination: float = 0.99,
                 bundle_density: float = 2.0, slices=None):
        if mode not in MODES:
            raise InputError(f"volume mode: expected one of {', '.join(MODES)}, got {mode!r}")
        self.volume = volume
        self.foveal = foveal
        self.mode = mode
        self.shape = tuple(volume.array.shape)
        self.n = int(np.prod(self.shape))
        self.affine = volume.affine
        self.inv = np.linalg.inv(volume.affine)
        if slices is not None:
            self.set_slices(slices)
        else:
            self.set_slice(axis, self.shape[axis] // 2 if index is None and 0 <= axis <= 2 else index)
        spacing = volume.spacing
        self.step_mm = float(step_mm) if step_mm is not None else float(spacing.min() / 2.0)
        self.reference_step_mm = float(reference_step_mm) if reference_step_mm is not None else self.step_mm
        if not (self.step_mm > 0 and self.reference_step_mm > 0):
            raise InputError(f"step_mm: expected a positive length, got {step_mm}")
        if not 0 < early_termination <= 1:
            raise InputError(f"early_termination: expected a value in (0, 1], got {early_termination}")
        if not bundle_density > 0:
            raise InputError(f"bundle_density: expected a positive number, got {bundle_density}")
        self.early_termination = float(early_termination)
        self.bundle_density = float(bundle_density)
        if opacity is None:
            lo, hi = np.percentile(volume.array[::2, ::2, ::2], [1, 99])
            opacity = [[lo, hi if hi > lo else lo + 1], [0.0, 0.05]]
        self.opacity = make_opacity(opacity)
        self.acc = np.zeros(self.n, dtype=np.float64)
        # per-fixation journal (journal_start): voxels touched since it started and their float32 value then
        self._jseen = None          # (n,) bool, allocated on the first journal
        self._jidx = None           # list of (k,) int64 flat indices, None while no journal runs
        self._jbase = None

    # --------------------------------------------------------------- setup
    def _check_plane(self, axis, index) -> tuple:
        if axis not in (0, 1, 2):
            raise InputError(f"slice axis: expected 0, 1 or 2 (i, j, k), got {axis}")
        if not (0 <= int(index) < self.shape[axis]):
            raise InputError(f"slice index: expected 0..{self.shape[axis] - 1} along axis {axis}, got {index}")
        return int(axis), int(index)

    def set_slice(self, axis: int, index: int) -> None:
        """Show the one slice ``index`` along voxel axis ``axis`` (slice mode)."""
        self.planes = [self._check_plane(axis, index)]

    def set_slices(self, index_ijk) -> None:
        """Show three orthogonal slice planes through voxel ``index_ijk`` (3,) (slice mode)."""
        index_ijk = list(index_ijk)
        if len(index_ijk) != 3:
            raise InputError(f"slices: expected the voxel (i, j, k) the three planes pass through, got {index_ijk}")
        self.planes = [self._check_plane(a, i) for a, i in enumerate(index_ijk)]

    @property
    def axis(self) -> int:
        """Voxel axis of the first slice plane."""
        return self.planes[0][0]

    @property
    def index(self) -> int:
        """Index of the first slice plane along :attr:`axis`."""
        return self.planes[0][1]

    def world_to_index(self, xyz) -> np.ndarray:
        """(n, 3) world (LPS mm) -> (n, 3) continuous voxel indices (inverse affine)."""
        p = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        return p @ self.inv[:3, :3].T + self.inv[:3, 3]

    def index_to_world(self, ijk) -> np.ndarray:
        p = np.asarray(ijk, dtype=np.float64).reshape(-1, 3)
        return p @ self.affine[:3, :3].T + self.affine[:3, 3]

    def frame(self, camera, directions) -> VolumeFrame:
        return VolumeFrame(camera=camera, origin=np.asarray(camera.position, dtype=np.float64))

    @staticmethod
    def _origins(fr: VolumeFrame, directions: np.ndarray, origins=None) -> np.ndarray:
        if origins is not None:
            return np.asarray(origins, dtype=np.float64).reshape(-1, 3)
        return np.repeat(fr.origin[None], len(directions), axis=0)

    @staticmethod
    def _ortho_scale(camera) -> float:
        """World units per camera radian for an orthographic camera (0 for perspective).

        An orthographic viewport ``2 * parallel_scale`` high is taken to span
        ``vfov_deg`` camera degrees (then mapped to visual degrees as usual).
        """
        if not getattr(camera, "is_parallel", False):
            return 0.0
        return 2.0 * camera.parallel_scale / np.radians(camera.vfov_deg)

    # ------------------------------------------------------------ slice mode
    def _slice_normal(self, axis: int) -> np.ndarray:
        n_idx = np.zeros(3)
        n_idx[axis] = 1.0
        return self.inv[:3, :3].T @ n_idx           # plane normal in world (gradient of the index)

    def _plane_hits(self, axis: int, index: int, origins: np.ndarray, directions: np.ndarray):
        """Rays against the infinite plane ``index`` along ``axis``: ((s, 3) world points, (s,) t).

        NaN point / inf t where the ray is parallel to the plane or meets it behind the origin.
        """
        normal = self._slice_normal(axis)
        point = self.index_to_world([np.where(np.arange(3) == axis, index, 0)])[0]
        denom = directions @ normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((point - origins) @ normal) / denom
        ok = np.isfinite(t) & (t > 0)
        out = origins + directions * np.where(ok, t, 0.0)[:, None]
        out[~ok] = np.nan
        return out, np.where(ok, t, np.inf)

    def _inside_box(self, ijk: np.ndarray, skip_axis: int) -> np.ndarray:
        """(n,) bool: continuous indices within the voxel-centre box on the axes other than ``skip_axis``."""
        ok = np.ones(len(ijk), dtype=bool)
        for a in range(3):
            if a != skip_axis:
                ok &= (ijk[:, a] >= -0.5) & (ijk[:, a] <= self.shape[a] - 0.5)
        return ok

    def slice_hits(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """(s, 3) world points where rays first meet a shown slice plane inside the volume (NaN if none)."""
        best_t = np.full(len(directions), np.inf)
        out = np.full((len(directions), 3), np.nan)
        for axis, index in self.planes:
            hits, t = self._plane_hits(axis, index, origins, directions)
            inside = np.isfinite(t)
            if len(self.planes) > 1:          # one plane: the plane itself (the cone may reach the slice)
                inside &= self._inside_box(self.world_to_index(np.nan_to_num(hits)), axis)
            nearer = inside & (t < best_t)
            best_t[nearer] = t[nearer]
            out[nearer] = hits[nearer]
        return out

    def _occluded(self, eye_idx: np.ndarray, ijk: np.ndarray, own_axis: int) -> np.ndarray:
        """(n,) bool: the segment from ``eye_idx`` (n, 3) to voxel ``ijk`` (n, 3) crosses another shown plane.

        Works in continuous index coordinates: the affine maps straight lines to
        straight lines and keeps the segment parameter, so a plane is simply
        ``index`` along its axis, bounded by the voxel-centre box on the others.
        """
        hidden = np.zeros(len(ijk), dtype=bool)
        delta = ijk - eye_idx
        for axis, index in self.planes:
            if axis == own_axis:
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (index - eye_idx[:, axis]) / delta[:, axis]
            # strictly before the voxel: a voxel on the planes' common line is not hidden
            cross = np.isfinite(t) & (t > 1e-9) & (t < 1.0 - 1e-9)
            p = eye_idx + delta * np.where(cross, t, 0.0)[:, None]
            hidden |= cross & self._inside_box(p, axis)
        return hidden

    def _slice_deposit(self, fr, directions, weights, origins):
        for axis, index in self.planes:
            self._plane_deposit(fr, axis, index, directions, weights, origins)

    def _plane_deposit(self, fr, axis, index, directions, weights, origins):
        hits, _ = self._plane_hits(axis, index, origins, directions)
        cut = self.foveal.cut_rad(fr.camera)
        sigma = self.foveal.camera_sigma_rad(fr.camera)
        normal = self._slice_normal(axis)
        ortho = self._ortho_scale(fr.camera)
        ax = axis
        others = [a for a in range(3) if a != ax]
        for o, d, hit, w in zip(origins, directions, hits, weights):
            if not np.isfinite(hit).all():
                continue
            # the cut-off cone meets the plane within R of the hit (phi: incidence angle)
            phi = np.arccos(min(1.0, abs(d @ normal) / np.linalg.norm(normal)))
            if ortho:
                R = cut * ortho / max(np.cos(phi), 1e-6) * 1.01 + 1e-9
            elif phi + cut < np.radians(89.0):
                R = np.linalg.norm(hit - o) * np.sin(cut) / np.cos(phi + cut) * 1.01 + 1e-9
            else:
                R = np.inf
            c = self.world_to_index(hit[None])[0]
            span = np.minimum(R / self.volume.spacing.min(), np.array(self.shape, dtype=np.float64))
            lo = np.maximum(np.floor(c - span), 0).astype(int)
            hi = np.minimum(np.ceil(c + span), np.array(self.shape) - 1).astype(int)
            if np.any(hi[others] < lo[others]):
                continue
            ii, jj = np.meshgrid(np.arange(lo[others[0]], hi[others[0]] + 1),
                                 np.arange(lo[others[1]], hi[others[1]] + 1), indexing="ij")
            ijk = np.empty((ii.size, 3), dtype=np.int64)
            ijk[:, ax] = index
            ijk[:, others[0]], ijk[:, others[1]] = ii.ravel(), jj.ravel()
            v = self.index_to_world(ijk) - o
            if ortho:
                # parallel rays: the offset from the gaze ray, in camera radians
                along = v @ d
                off = v - np.outer(along, d)
                theta2 = np.einsum("ij,ij->i", off, off) / ortho ** 2
                # each voxel is seen along its own ray parallel to d, from the camera plane
                eyes = self.world_to_index(self.index_to_world(ijk) - np.outer(along, d))
            else:
                v /= np.linalg.norm(v, axis=1, keepdims=True)
                c2 = np.sum((v - d) ** 2, axis=1)
                theta2 = chord2_to_theta2(c2, exact=True)
                eyes = np.repeat(self.world_to_index(o[None]), len(ijk), axis=0)
            g = np.where(theta2 <= cut * cut, np.exp(-0.5 * theta2 / sigma ** 2), 0.0)
            if len(self.planes) > 1:
                lit = g > 0
                g[lit] *= ~self._occluded(eyes[lit], ijk[lit].astype(np.float64), ax)
            self._add(np.ravel_multi_index(ijk.T, self.shape), w * g)     # one plane's voxels: unique

    # ------------------------------------------------------ render / MIP
    def _grid(self, axis: np.ndarray, half_angle: float, spacing: float) -> np.ndarray:
        """(r, 3) unit directions on a square grid of angular ``spacing`` within ``half_angle`` of ``axis``."""
        k = np.arange(-np.floor(half_angle / spacing + 1e-9), np.floor(half_angle / spacing + 1e-9) + 1) * spacing
        a, b = np.meshgrid(k, k, indexing="ij")
        a, b = a.ravel(), b.ravel()
        keep = a * a + b * b <= half_angle * half_angle * (1 + 1e-12)
        a, b = a[keep], b[keep]
        up = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
        e1 = np.cross(axis, up)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(e1, axis)
        theta = np.hypot(a, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            ca, cb = np.where(theta > 0, a / theta, 0.0), np.where(theta > 0, b / theta, 0.0)
        return np.cos(theta)[:, None] * axis + np.sin(theta)[:, None] * (ca[:, None] * e1 + cb[:, None] * e2)

    def _ray_weights(self, grid: np.ndarray, directions: np.ndarray, weights: np.ndarray, camera) -> np.ndarray:
        """(r,) weight of each grid ray: sum over samples of dwell * its normalised Gaussian."""
        sigma = self.foveal.camera_sigma_rad(camera)
        cut = self.foveal.cut_rad(camera)
        c2 = np.sum((grid[None, :, :] - directions[:, None, :]) ** 2, axis=2)       # (s, r)
        theta2 = chord2_to_theta2(c2, exact=True)
        g = np.where(theta2 <= cut * cut * (1 + 1e-9), np.exp(-0.5 * theta2 / sigma ** 2), 0.0)
        total = g.sum(axis=1, keepdims=True)
        g = np.divide(g, total, out=np.zeros_like(g), where=total > 0)
        return weights @ g

    def bundle(self, direction: np.ndarray, camera) -> tuple:
        """Ray bundle over the foveal cone of one gaze ray.

        Returns
        -------
        directions : (r, 3) float64 unit
        weights : (r,) float64, Gaussian in angle, summing to 1
        """
        sigma = self.foveal.camera_sigma_rad(camera)
        direction = np.asarray(direction, dtype=np.float64)
        grid = self._grid(direction, self.foveal.cut_rad(camera), sigma / self.bundle_density)
        return grid, self._ray_weights(grid, direction[None], np.ones(1), camera)

    def _enter_exit(self, o_idx, d_idx):
        """Slab test against the voxel-centre box [-0.5, dim - 0.5]: (t0, t1) per ray (world mm)."""
        lo = -0.5 - o_idx
        hi = np.array(self.shape) - 0.5 - o_idx
        with np.errstate(divide="ignore", invalid="ignore"):
            ta, tb = lo / d_idx, hi / d_idx
        tmin = np.where(d_idx == 0, np.where((lo <= 0) & (hi >= 0), -np.inf, np.inf), np.minimum(ta, tb))
        tmax = np.where(d_idx == 0, np.where((lo <= 0) & (hi >= 0), np.inf, -np.inf), np.maximum(ta, tb))
        return np.maximum(tmin.max(axis=1), 0.0), tmax.min(axis=1)

    def _trilinear(self, p: np.ndarray) -> np.ndarray:
        arr = self.volume.array
        shape = np.array(self.shape)
        p = np.clip(p, 0.0, shape - 1.0)
        i0 = np.minimum(np.floor(p).astype(np.int64), shape - 2).clip(0)
        f = p - i0
        out = np.zeros(len(p))
        for dx in (0, 1):
            wx = f[:, 0] if dx else 1 - f[:, 0]
            for dy in (0, 1):
                wy = f[:, 1] if dy else 1 - f[:, 1]
                for dz in (0, 1):
                    wz = f[:, 2] if dz else 1 - f[:, 2]
                    idx = np.minimum(i0 + [dx, dy, dz], shape - 1)
                    out += wx * wy * wz * arr[idx[:, 0], idx[:, 1], idx[:, 2]]
        return out

    def march(self, origins: np.ndarray, directions: np.ndarray):
        """Sample rays through the volume.

        Returns
        -------
        flat : (r, m) int64 nearest-voxel flat index per step (-1 outside)
        values : (r, m) float64 trilinear values (NaN outside)
        ts : (r, m) float64 distance of each step from the origin (world units)
        """
        rays = self._rays(origins, directions)
        m = rays[-1]
        if m == 0:
            return (np.full((len(origins), 0), -1, np.int64), np.full((len(origins), 0), np.nan),
                    np.zeros((len(origins), 0)))
        return self._steps(rays, 0, m)

    def _rays(self, origins: np.ndarray, directions: np.ndarray):
        """(origins and directions in index units, entry and exit distances, steps of the longest ray)."""
        o_idx = self.world_to_index(origins)
        d_idx = directions @ self.inv[:3, :3].T
        t0, t1 = self._enter_exit(o_idx, d_idx)
        length = np.where(t1 > t0, t1 - t0, 0.0)
        m = int(np.ceil(length.max() / self.step_mm)) if len(length) else 0
        return o_idx, d_idx, t0, t1, m

    def _steps(self, rays, k0: int, k1: int):
        """:meth:`march`'s arrays for steps ``k0 .. k1 - 1`` of every ray (each element as the whole
        march computes it)."""
        o_idx, d_idx, t0, t1, _ = rays
        ts = t0[:, None] + (np.arange(k0, k1)[None, :] + 0.5) * self.step_mm
        inside = ts < t1[:, None]
        p = o_idx[:, None, :] + ts[..., None] * d_idx[:, None, :]
        pf = p.reshape(-1, 3)
        values = self._trilinear(pf).reshape(len(o_idx), k1 - k0)
        near = np.clip(np.rint(pf).astype(np.int64), 0, np.array(self.shape) - 1)
        flat = np.ravel_multi_index(near.T, self.shape).reshape(len(o_idx), k1 - k0)
        values[~inside] = np.nan
        flat[~inside] = -1
        return flat, values, ts

    def compositing_weights(self, values: np.ndarray, trans0: Optional[np.ndarray] = None):
        """(r, m) front-to-back compositing weights with early termination.

        ``trans0`` (r,): the transmittance before the first of these steps (the steps continue
        earlier ones); then returns ``(weights, transmittance after the last step)``, the running
        product carried on exactly as one product over all the steps would be.
        """
        alpha = np.nan_to_num(np.clip(self.opacity(np.nan_to_num(values, nan=-np.inf)), 0.0, 1.0))
        alpha = np.where(np.isfinite(values), alpha, 0.0)
        alpha = 1.0 - np.power(1.0 - alpha, self.step_mm / self.reference_step_mm)
        first = np.ones((len(alpha), 1)) if trans0 is None else trans0[:, None]
        trans = np.cumprod(np.concatenate([first, 1.0 - alpha[:, :-1]], axis=1), axis=1)
        w = trans * alpha
        w[trans < 1.0 - self.early_termination] = 0.0
        if trans0 is None:
            return w
        return w, trans[:, -1] * (1.0 - alpha[:, -1])

    def _render_weights(self, origins: np.ndarray, directions: np.ndarray):
        """(flat (r, k) int64, weights (r, k)): :meth:`march` then :meth:`compositing_weights`, marched
        :data:`RENDER_CHUNK_STEPS` steps at a time and stopped once every ray is past early termination
        or out of the volume (its later weights are 0). Every weight is the one of the whole march, bit
        for bit; a 256^3 CT at 0.18 mm steps has ~2,000 steps a ray, and rays through tissue end early."""
        rays = self._rays(origins, directions)
        _, _, t0, t1, m = rays
        flats, weights = [], []
        trans = np.ones(len(origins))
        stop = 1.0 - self.early_termination
        k0 = 0
        while k0 < m:
            k1 = min(m, k0 + RENDER_CHUNK_STEPS)
            flat, values, _ = self._steps(rays, k0, k1)
            w, trans = self.compositing_weights(values, trans)
            flats.append(flat)
            weights.append(w)
            k0 = k1
            if np.all((trans < stop) | (t0 + (k0 + 0.5) * self.step_mm >= t1)):
                break
        if not flats:
            return np.full((len(origins), 0), -1, np.int64), np.zeros((len(origins), 0))
        # ray-major order, as one march: the deposit's per-voxel sums add in the same order
        return np.concatenate(flats, axis=1), np.concatenate(weights, axis=1)

    def _march_deposit(self, origins, dirs, ray_w):
        keep = ray_w > 0
        origins, dirs, ray_w = origins[keep], dirs[keep], ray_w[keep]
        if len(dirs) == 0:
            return
        if self.mode == "render":
            flat, w = self._render_weights(origins, dirs)
            cw = w * ray_w[:, None]
            ok = (flat >= 0) & (cw > 0)
            self._add_repeated(flat[ok], cw[ok])
            return
        # MIP: each ray's maximum needs every step
        flat, values, _ = self.march(origins, dirs)
        if flat.shape[1] == 0:
            return
        filled = np.where(np.isfinite(values), values, -np.inf)
        j = np.argmax(filled, axis=1)
        top = filled[np.arange(len(j)), j]
        hit = np.isfinite(top)
        f = flat[np.arange(len(j)), j][hit]
        self._add_repeated(f, ray_w[hit] * self.mip_brightness(top[hit]))

    def _add(self, flat: np.ndarray, w: np.ndarray) -> None:
        """``acc[flat] += w`` for unique voxel indices ``flat`` (k,), seen by the journal."""
        if self._jidx is not None:
            new = flat[~self._jseen[flat]]
            if len(new):
                self._jseen[new] = True
                self._jidx.append(new.astype(np.int64))
                self._jbase.append(self.acc[new].astype(np.float32))   # what values() showed before
        self.acc[flat] += w

    def _add_repeated(self, flat: np.ndarray, w: np.ndarray) -> None:
        """``acc[flat] += w`` where ``flat`` (m,) may repeat: the sums of a whole-grid ``bincount`` (the same
        additions in the same order per voxel, so bit-identical), over the voxels touched only."""
        if not len(flat):
            return
        touched, inv = np.unique(flat, return_inverse=True)
        self._add(touched, np.bincount(inv.reshape(-1), weights=w, minlength=len(touched)))

    def mip_brightness(self, values: np.ndarray) -> np.ndarray:
        """(r,) in [0, 1]: how bright MIP draws a ray whose maximum is ``values`` (r,).

        The opacity transfer function over its largest alpha: 0 below the
        display window (empty background is black), 1 above it.
        """
        peak = self._opacity_peak()
        if peak <= 0:
            return np.zeros(len(values))
        return np.clip(np.nan_to_num(self.opacity(values)) / peak, 0.0, 1.0)

    def _opacity_peak(self) -> float:
        """The transfer function's largest alpha over the volume's value range."""
        if getattr(self, "_peak_for", None) is not self.opacity:
            lo, hi = float(self.volume.array.min()), float(self.volume.array.max())
            probe = np.linspace(lo, hi, 1025)
            self._peak = float(np.max(np.nan_to_num(self.opacity(probe)), initial=0.0))
            self._peak_for = self.opacity
        return self._peak

    def _ray_deposit(self, fr, directions, weights, origins):
        sigma = self.foveal.camera_sigma_rad(fr.camera)
        spacing = sigma / self.bundle_density
        if np.all(origins == origins[0]):
            # one grid of rays over the union of the samples' cones, marched once:
            # each sample spreads its dwell over the grid rays by its normalised
            # Gaussian, so the rays are shared by all samples of the frame
            axis = directions.sum(axis=0)
            axis /= np.linalg.norm(axis)
            spread = float(np.max(np.arccos(np.clip(directions @ axis, -1.0, 1.0))))
            half = spread + self.foveal.cut_rad(fr.camera) + spacing
            grid = self._grid(axis, half, spacing)
            ray_w = self._ray_weights(grid, directions, np.asarray(weights, dtype=np.float64), fr.camera)
            self._march_deposit(np.repeat(origins[:1], len(grid), axis=0), grid, ray_w)
            return
        ortho = self._ortho_scale(fr.camera)
        for o, d, w in zip(origins, directions, weights):     # a bundle per sample
            dirs, rw = self.bundle(d, fr.camera)
            if ortho:
                # orthographic: parallel rays, offset on the camera plane by angle * scale
                offsets = (dirs - np.outer(dirs @ d, d)) / np.maximum(dirs @ d, 1e-12)[:, None]
                self._march_deposit(o + offsets * ortho, np.repeat(d[None], len(dirs), axis=0), w * rw)
            else:
                self._march_deposit(np.repeat(o[None], len(dirs), axis=0), dirs, w * rw)

    # ------------------------------------------------------------- engine API
    def deposit(self, fr: VolumeFrame, directions: np.ndarray, weights: np.ndarray, origins=None) -> None:
        """Add the attention of gaze rays ``directions (s, 3)`` with dwell ``weights (s,)``."""
        if len(directions) == 0:
            return
        origins = self._origins(fr, directions, origins)
        if self.mode == "slice":
            self._slice_deposit(fr, directions, weights, origins)
        else:
            self._ray_deposit(fr, directions, weights, origins)

    def hit_points(self, fr: VolumeFrame, directions: np.ndarray, origins=None) -> np.ndarray:
        """(s, 3) world point looked at: slice-plane hit, where the central ray's
        accumulated opacity passes 0.5 (render), or its maximum (MIP); NaN if none."""
        origins = self._origins(fr, directions, origins)
        if self.mode == "slice":
            return self.slice_hits(origins, directions)
        out = np.full((len(directions), 3), np.nan)
        flat, values, ts = self.march(origins, directions)
        if flat.shape[1] == 0:
            return out
        if self.mode == "render":
            acc = np.cumsum(self.compositing_weights(values), axis=1)
            j = np.argmax(acc >= 0.5, axis=1)
            hit = acc[np.arange(len(j)), j] >= 0.5
        else:
            filled = np.where(np.isfinite(values), values, -np.inf)
            j = np.argmax(filled, axis=1)
            hit = np.isfinite(filled[np.arange(len(j)), j])
        # the point on the ray (not the voxel centre), so that a still camera
        # gives exactly the screen-space motion in object space
        t = ts[np.arange(len(j)), j][hit]
        out[hit] = origins[hit] + directions[hit] * t[:, None]
        return out

    def values(self) -> np.ndarray:
        """(I, J, K) float32 attention per voxel."""
        return self.acc.reshape(self.shape).astype(np.float32)

    # ------------------------------------------------------ per-fixation journal
    def journal_start(self) -> None:
        """Start recording which voxels the next deposits touch (one fixation), see :meth:`journal_take`.

        A fixation's record then costs the voxels it touched, not two copies of the whole grid
        (64 MB each at 256^3)."""
        self.journal_stop()
        if self._jseen is None:
            self._jseen = np.zeros(self.n, dtype=bool)
        self._jidx, self._jbase = [], []

    def journal_take(self):
        """What the deposits since :meth:`journal_start` added, as :meth:`values` shows it.

        Returns
        -------
        index : (k,) int64 ascending, flat (C-order) voxel indices whose float32 value grew
        attention : (k,) float32 ``values().ravel()[index]`` now minus before the journal started
            (bit-identical to differencing two whole :meth:`values` arrays)
        """
        if not self._jidx:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        ix = np.concatenate(self._jidx)
        d = self.acc[ix].astype(np.float32)
        d -= np.concatenate(self._jbase)
        keep = np.flatnonzero(d > 0)
        o = np.argsort(ix[keep])
        return ix[keep][o], d[keep][o]

    def journal_stop(self) -> None:
        """Stop the journal and forget it (O(voxels touched))."""
        if self._jidx:
            self._jseen[np.concatenate(self._jidx)] = False
        self._jidx = self._jbase = None

    def reset(self) -> None:
        self.journal_stop()
        self.acc[:] = 0.0
