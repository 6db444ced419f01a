"""Point-cloud attention: splat depth test for visibility, Gaussian deposition in angle.

For one camera frame and the gaze rays that fall in it:

1. **Cone.** The rays (in time order) are grouped into runs within
   ``group_sigmas`` sigma of each other (a saccade inside one frame becomes a
   few narrow cones instead of one wide one); each group's cone (mean
   direction, widened by the foveal cut-off, the splat footprint and a small
   slack) selects candidate points through the Morton octree
   (:mod:`.spatial`), then exactly per point.
2. **Visibility.** Candidates are projected with the camera; each is drawn as
   a square *occluding footprint* into a full-resolution depth buffer
   restricted to the cone's pixel window. The footprint is the drawn splat
   (``point_size`` pixels, rounded to an odd number like VTK's square points)
   or, where the cloud is sparser than that on screen, the point's local
   spacing (:func:`local_spacing`) seen at its depth, up to
   ``2 * MAX_OCCLUDER_HALF + 1`` pixels: a wall is a wall at any point pitch,
   not a sieve whose holes let the attention through to what is behind it.
   A point is *visible* if it lies in the viewport and its depth is within
   ``tol = depth * depth_tolerance + max_slope * w`` of the nearest footprint
   covering its own pixel, ``w`` being how far (world, at its depth) a
   neighbour whose footprint covers that pixel can be: ``half + 1`` pixels
   for a footprint of ``2 * half + 1``. The slope term lets a surface seen
   obliquely (up to ``atan(max_slope)`` from face-on along the pixel axes)
   keep its points; it scales with the point spacing (or the splat), not
   with depth alone, so a layer 10 cm behind a dense surface 10 m away is
   hidden (``depth_tolerance`` 0.001 covers float32 rounding).
   Only footprints of points inside the cone (widened by the largest
   footprint) are needed.
3. **Deposition.** Each visible point receives, per ray, ``dwell * exp(-theta^2
   / (2 sigma^2))`` for ``theta <= cut``, theta being the exact angle between
   the ray and the direction from the eye to the point (computed in float32
   from chords about the cone axis, relative error below 1e-6).

Cones are cached (LRU over cameras, up to 8 cones per camera), so the ~20
samples of a 1200 Hz tracker that share a 60 Hz camera frame pay for the cone
query and depth test once. Across frames of a moving camera, the points of a
slightly larger cone are kept (:class:`_ConeStore`): a new cone inside it is
cut from them exactly instead of walking the octree again, with the same result.
Everything is sequential numpy with a fixed order of operations: the same
input gives bit-identical output. With numba (extra ``fast``) the per-cone
pass after the camera product runs compiled (:mod:`._numba_cone`), with the
same float32 operations in the same order: bit-identical to the numpy path,
which stays the reference (``compiled=False``). A caller can hand in another
kernel with the same interface (``kernel=``): the torch one,
``gaze3d.models.attention_torch.TorchConeKernel`` (CPU or CUDA; the same
visible points, attention within 1e-6), which the core never imports itself.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

from typing import Optional

import numpy as np

from .._optional import optional_import
from ..errors import InputError
from .foveal import FovealModel, chord2_to_theta2
from .spatial import MortonIndex


_RAD5, _RAD20 = np.radians(5.0), np.radians(20.0)

#: largest occluding footprint, half-width in pixels (a 29 px square): sparser than that on screen,
#: points are not taken for a surface
MAX_OCCLUDER_HALF = 14
#: a point's footprint is this many times its local spacing: gaps of jittered sampling are wider
#: than the mean spacing
FOOTPRINT_PER_SPACING = 1.8
#: footprint half-widths are rounded up to one of these (fewer depth buffers per cone)
_HALF_LEVELS = np.array([0, 1, 2, 3, 4, 6, 8, 11, 14], dtype=np.int32)
#: the level each half-width 0..MAX_OCCLUDER_HALF rounds up to (a lookup instead of a searchsorted)
_HALF_LEVEL_OF = _HALF_LEVELS[np.searchsorted(_HALF_LEVELS, np.arange(MAX_OCCLUDER_HALF + 1))]
_NO_SPACING = np.zeros(0, dtype=np.float32)      # the compiled pass's spacing when footprints are the splat


#: what the engine calls on every cone-pass kernel (``store_points`` and ``cone_ranges`` are optional:
#: without them it keeps its cone's points with numpy); the deposit needs ``gauss_columns`` from a
#: kernel with ``gauss_on_device``, else ``chord2_exponent`` and ``add_columns``
_KERNEL_CALLS = ("work_sizes", "cone_pass", "chord2")
_KERNEL_DEPOSIT = {True: ("gauss_columns",), False: ("chord2_exponent", "add_columns")}


def _check_kernel(kernel) -> None:
    """Raise :class:`InputError` unless ``kernel`` has the calls the engine makes on it."""
    need = _KERNEL_CALLS + _KERNEL_DEPOSIT[bool(getattr(kernel, "gauss_on_device", False))]
    if not all(callable(getattr(kernel, name, None)) for name in need):
        raise InputError(f"kernel: expected a cone-pass kernel (e.g. TorchConeKernel), got {kernel!r}")


def _compiled_kernel(compiled: Optional[bool]):
    """The compiled pass (:mod:`._numba_cone`) or None (the numpy reference).

    ``compiled`` True: numba is required (extra ``fast``) and compiles on first use if its disk
    cache is cold (~10 s of CPU, once per install). False: never. None: numba when installed
    *and* its disk cache is warm; when it is cold, the numpy path runs while a separate process
    compiles and fills the cache (:class:`_WarmUp`), and engines switch to the compiled
    pass once it has (the two give bit-identical results, so the switch changes nothing but the
    speed): a live viewer never stalls on a compile.
    """
    if compiled is False:
        return None
    if compiled:
        optional_import("numba", extra="fast")
        from . import _numba_cone
        return _numba_cone
    try:
        import numba  # noqa: F401  (probe: the kernel module imports it)
    except ImportError:
        return None
    from . import _numba_cone
    if _numba_cone.cached():
        return _numba_cone
    _WARM_UP.start()
    return None


class _WarmUp:
    """The one process that fills numba's disk cache for this process, and the switch-over it gives.

    :func:`_compiled_kernel` starts it (:meth:`start`) when the cache is cold; engines made
    meanwhile run numpy and ask :meth:`poll` before each cone until it answers: the compiled
    module once the process has ended with the cache filled, or, after one look at a cache that
    did not fill, never (:attr:`done`, the numpy path stays). All the state of the switch is here.
    """

    def __init__(self):
        self.started = False      # start() was called (an engine made now polls)
        self.proc = None          # the process (None: not started, or it could not be)
        self.done = False         # the process ended and the cache was looked at once
        self.kernel = None        # the compiled module once the cache is filled

    def start(self) -> None:
        """Start ``python -m gaze3d.attention._numba_cone`` once per process."""
        import subprocess
        import sys

        if self.started:
            return
        self.started = True
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "gaze3d.attention._numba_cone"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        except OSError:
            self.proc = None      # cannot start it: the numpy path stays

    def poll(self):
        """The compiled module once the process has filled the cache, else None (cheap while it runs)."""
        if self.done or self.proc is None or self.proc.poll() is None:
            return self.kernel
        # one look after it ends (a cache that did not fill stays numpy); the kernel is set before
        # done, so a thread that sees done=True also sees the kernel
        from . import _numba_cone
        k = _numba_cone if _numba_cone.cached() else None
        self.kernel = k
        self.done = True
        return k


_WARM_UP = _WarmUp()


def local_spacing(index: MortonIndex, min_points: int = 12) -> np.ndarray:
    """``(n,)`` float32 distance between neighbouring points around each point, in sorted order.

    Estimated per cell of the Morton grid (no neighbour search): each point
    takes the finest cell holding at least ``min_points`` points; the points
    of a cell are taken for a piece of surface with the area of their
    bounding box's two longest sides (a plane, ``sqrt(area) / (sqrt(k) - 1)``
    for ``k`` points on a grid) or for a curve (``longest side / (k - 1)``),
    whichever spacing is larger. Exact on regular grids; a cell that holds
    two surfaces overestimates (larger footprints: more occlusion, never
    less). Cost: one pass over the sorted points per octree level.
    """
    n = len(index)
    out = np.full(n, np.nan, dtype=np.float32)
    if n == 0:
        return out
    todo = np.ones(n, dtype=bool)
    for level in range(index.bits, -1, -1):
        pref = index.codes >> np.uint32(3 * (index.bits - level))
        starts = np.flatnonzero(np.r_[True, pref[1:] != pref[:-1]])
        counts = np.diff(np.r_[starts, n])
        if level > 0 and not (counts >= min_points).any():
            continue
        lo = np.minimum.reduceat(index.cols, starts, axis=1)
        hi = np.maximum.reduceat(index.cols, starts, axis=1)
        ext = np.sort(hi - lo, axis=0).astype(np.float64)          # ascending: e3 <= e2 <= e1
        k = counts.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            plane = np.sqrt(ext[2] * ext[1]) / (np.sqrt(k) - 1.0)
            curve = ext[2] / (k - 1.0)
        sp = np.fmax(plane, curve).astype(np.float32)
        good = (counts >= min_points) if level > 0 else (counts >= 2)
        per_point = np.repeat(good, counts) & todo
        out[per_point] = np.repeat(sp, counts)[per_point]
        todo &= ~per_point
        if not todo.any():
            break
    out[~np.isfinite(out)] = 0.0                  # a single point, or all points in one place
    return out


def _camera_key(camera) -> bytes:
    return np.concatenate([camera.position, camera.focal_point, camera.view_up,
                           [camera.vfov_deg, camera.width, camera.height, camera.near, camera.far,
                            -1.0 if camera.parallel_scale is None else camera.parallel_scale]]).tobytes()


def _min_filter(z: np.ndarray, h: int, rows: Optional[np.ndarray] = None) -> np.ndarray:
    """Minimum over the (2h+1) x (2h+1) square around each pixel, for pixels at least h from the border.

    The border of ``z`` (h pixels wide) is left at ``inf`` in the result; callers
    keep their points out of it. ``rows`` (like ``z``) is a work array to reuse.
    """
    if h <= 0:
        return z.copy()
    H, W = z.shape
    if rows is None:
        rows = np.empty_like(z)
    rows[:, :h] = np.inf
    rows[:, W - h:] = np.inf
    _window_min(z, 2 * h + 1, rows[:, h:W - h], axis=1)
    out = np.empty_like(z)
    out[:h] = np.inf
    out[H - h:] = np.inf
    _window_min(rows, 2 * h + 1, out[h:H - h], axis=0)
    return out


def _window_min(a: np.ndarray, w: int, out: np.ndarray, axis: int) -> None:
    """``out[i] = min(a[i : i + w])`` along ``axis`` (``out`` has ``len - w + 1`` there).

    Minima of windows of 1, 2, 4... samples, then two overlapping windows of the
    largest power of two cover ``w``: ``O(log w)`` passes instead of ``w``, the
    same values (a minimum does not depend on the order it is taken in).
    """
    def cut(x, lo, hi):
        return x[:, lo:hi] if axis == 1 else x[lo:hi]

    n = a.shape[axis]
    if w <= 3:                      # the usual 3 px splat: direct
        np.minimum(cut(a, 0, n - w + 1), cut(a, 1, n - w + 2), out=out)
        if w == 3:
            np.minimum(out, cut(a, 2, n), out=out)
        return
    m, span = a, 1
    while span * 2 <= w:            # m[i] = min(a[i : i + 2 * span])
        m = np.minimum(cut(m, 0, n - 2 * span + 1), cut(m, span, n - span + 1))
        span *= 2
    np.minimum(cut(m, 0, n - w + 1), cut(m, w - span, n - span + 1), out=out)


def _footprint_depth(flat, half, depth, wu: int, wv: int, sizes, scratch):
    """The depth buffer of square footprints of several sizes: ``(wv, wu)`` float32 and the band data.

    ``flat (m,)``: each point's pixel in the window (row * wu + col, at least
    ``h = max(half)`` from its edge), ``half (m,)`` its footprint half-width,
    ``depth (m,)`` float32. Bit-identical to :func:`_footprint_depth_per_size`
    (a depth buffer and a square minimum filter per size, the way before issue
    15) at every pixel at least ``h`` from the window's edge, where every
    point's own pixel is. The sizes go largest first through one buffer
    padded by ``h``: a ``(2a+1)`` square minimum after a ``(2b+1)`` one is the
    ``(2(a+b)+1)`` one, and a minimum filter distributes over ``min``, so
    ``min_s F_s(z_s) = F_sk(... F_(s1-s2)(z_s1) min z_s2 ...)``: one filter of
    the size steps per size over the window, without a buffer per size. In
    the outer ``h`` pixels the old buffer kept a size's footprints only at
    least that size from the edge; ``band`` (the points within ``2 h`` of the
    edge: rows, cols, halves, depths) lets :func:`_band_depth` give the old
    value there for the gaze pixels that need it.
    """
    h = int(max(sizes))
    hp, wp = wv + 2 * h, wu + 2 * h
    row, col = np.divmod(flat, wu)
    pflat = (row + h) * wp + (col + h)
    acc = scratch((hp, wp), 3)
    acc.fill(np.inf)
    prev = None
    for s in sorted((int(x) for x in sizes), reverse=True):
        if prev is not None:
            acc = _min_filter(acc, prev - s, rows=scratch((hp, wp), 4))
        sel = np.flatnonzero(half == s)
        np.minimum.at(acc.reshape(-1), pflat[sel], depth[sel])
        prev = s
    acc = _min_filter(acc, prev, rows=scratch((hp, wp), 4))
    zs = np.ascontiguousarray(acc[h:h + wv, h:h + wu])
    edge = np.minimum(np.minimum(row, wv - 1 - row), np.minimum(col, wu - 1 - col))
    near = np.flatnonzero(edge < 2 * h)
    band = (row[near], col[near], half[near], depth[near])
    return zs, band


def _band_depth(band, shape, h: int, iv, iu, ok, depth) -> None:
    """Old footprint depth at the gaze pixels within ``h`` of the window's edge (see :func:`_footprint_depth`).

    ``shape``: the window's (wv, wu), ``h`` its border; ``iv, iu (s,)`` window pixels,
    ``ok (s,)`` which are in the window, ``depth (s,)`` updated in place: there a
    size's footprints count only at least that size from the edge.
    """
    row, col, half, dep = band
    wv, wu = shape
    e = np.minimum(np.minimum(iv, wv - 1 - iv), np.minimum(iu, wu - 1 - iu))
    for i in np.flatnonzero(ok & (e < h)):
        m = (half <= e[i]) & (np.abs(row - iv[i]) <= half) & (np.abs(col - iu[i]) <= half)
        depth[i] = dep[m].min() if m.any() else np.inf


def _footprint_depth_per_size(flat, half, depth, wu: int, wv: int) -> np.ndarray:
    """Reference for :func:`_footprint_depth`: ``(wv, wu)`` float32, one buffer and one filter per size
    (the code before issue 15; tests compare against it)."""
    zs = np.full((wv, wu), np.inf, dtype=np.float32)
    for s in np.flatnonzero(np.bincount(half)):
        s = int(s)
        sel = np.flatnonzero(half == s)
        row, col = np.divmod(flat[sel], wu)
        # 2 s of border: the filter leaves s at inf, the s inside are reached by the splats
        r0, c0 = max(0, int(row.min()) - 2 * s), max(0, int(col.min()) - 2 * s)
        r1, c1 = min(wv, int(row.max()) + 2 * s + 1), min(wu, int(col.max()) + 2 * s + 1)
        z = np.full((r1 - r0, c1 - c0), np.inf, dtype=np.float32)
        np.minimum.at(z.reshape(-1), (row - r0) * (c1 - c0) + (col - c0), depth[sel])
        sub = zs[r0:r1, c0:c1]
        np.minimum(sub, _min_filter(z, s), out=sub)
    return zs


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
    amat: np.ndarray            # (5, v) float32: q = unit direction - axis (camera frame), |q|^2, 1;
                                # a torch tensor on the kernel's device with TorchConeKernel
    rotation: np.ndarray        # (3, 3) float64 world -> camera
    depth_window: Optional[tuple] = None   # (footprint depth buffer (wv, wu), u origin, v origin, border)


@dataclass
class _ConeStore:
    """The points of a cone a little larger than the one asked for, kept for the next frames (internal).

    A moving camera asks for a slightly different cone every frame; any cone
    inside this one is answered from ``pts`` without touching the octree.
    """

    apex: np.ndarray            # (3,) float64, relative to the index centre
    axis: np.ndarray            # (3,) float64 unit
    half_angle: float           # radians
    cand: np.ndarray            # (m,) int64 ascending sorted positions of the points in the cone
    pts: np.ndarray             # (3, m) float32 their coordinates relative to the index centre

    def contains(self, apex: np.ndarray, axis: np.ndarray, half_angle: float) -> bool:
        """Whether the cone (apex, axis, half_angle) lies inside this one.

        Cones are convex: a cone whose apex is inside this one and whose
        directions all are (``angle(axis, self.axis) + half_angle <=
        self.half_angle``) lies inside it.
        """
        slack = self.half_angle - 1e-6
        if np.arccos(min(1.0, float(axis @ self.axis))) + half_angle > slack:
            return False
        v = apex - self.apex
        nv = float(np.linalg.norm(v))
        return nv == 0.0 or np.arccos(min(1.0, float(v @ self.axis) / nv)) <= slack


class PointCloudEngine:
    """Occlusion-aware foveal attention on a point cloud (see module docstring).

    Parameters
    ----------
    xyz : (n, 3) float64
    foveal : FovealModel
    point_size : float
        Splat size in pixels (rounded to an odd integer >= 1), default 3.
    depth_tolerance : float
        Relative depth tolerance of the footprint test (default 0.001: float32
        and projection rounding; the slope term does the rest).
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
    spacing_footprint : bool
        Size occluding footprints from the local point spacing (default True);
        False: the drawn splat only (the behaviour before issue 17).
    group_sigmas : float
        Rays of one frame further apart than this (in sigmas) get separate
        cones (default 1).
    compiled : bool, optional
        Run each cone's visibility pass, the kept cone's query and the
        small-angle deposit compiled with numba (extra ``fast``; bit-identical
        to the numpy path, ~1.5x faster replays at 1M points). None (default):
        when numba is installed and its disk cache is warm (a cold cache is
        filled by a separate process meanwhile, see :func:`_compiled_kernel`);
        True: require numba (compiling here if needed); False: numpy only.
    kernel : object, optional
        A cone-pass kernel with the interface of :mod:`._numba_cone`, used
        instead of the one ``compiled`` picks: ``TorchConeKernel`` of
        ``gaze3d.models.attention_torch`` (torch, CPU or CUDA; the core never
        imports torch, so the caller builds it). Its ``gauss_on_device`` says
        it sums the deposit itself (``gauss_columns``). Anything without the
        calls the engine makes (:data:`_KERNEL_CALLS`) is an :class:`InputError`.

    Not thread-safe: one thread per engine (its work arrays, ``_scratch``
    slots, are reused by every cone, and the accumulator is updated in place).

    Implements :class:`~.engine.AttentionEngine`.
    """

    deposit_rows = True     # deposit(..., use=) reuses the frame's cones (MeshEngine inherits it)

    def __init__(self, xyz: np.ndarray, foveal: FovealModel, point_size: float = 3.0,
                 depth_tolerance: float = 0.001, max_slope: float = 3.0, cache_frames: int = 16,
                 leaf_size: int = 256, cone_slack_deg: float = 0.25, group_sigmas: float = 1.0,
                 store_widen_deg: float = 0.75, store_pullback: float = 0.15, spacing_footprint: bool = True,
                 compiled: Optional[bool] = None, kernel=None):
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
        if not (np.isfinite(store_widen_deg) and store_widen_deg >= 0):
            raise InputError(f"store_widen_deg: expected a number of degrees >= 0, got {store_widen_deg}")
        if not (np.isfinite(store_pullback) and store_pullback >= 0):
            raise InputError(f"store_pullback: expected a number >= 0, got {store_pullback}")
        self.store_widen_deg = float(store_widen_deg)
        self.store_pullback = float(store_pullback)
        self.store_min_rays = 8
        self._xyz = xyz
        self._store: Optional[_ConeStore] = None
        self._buffers: dict = {}
        self._depth_hint = 0.0          # nearest point in the last cone (sizes the next store)
        # occluding footprints from the local point spacing (see the module docstring); the
        # spacing is estimated on first use (meshes test visibility by ray casting: never)
        self.spacing_footprint = bool(spacing_footprint)
        self._spacing: Optional[np.ndarray] = None
        # per-fixation journal (see journal_start): float32 value of each touched point before
        # the fixation (NaN: untouched), and the touched positions, so that a fixation's record
        # costs the points it touched instead of copies of the whole accumulator
        self._jbase: Optional[np.ndarray] = None
        self._jtouched: Optional[list] = None
        # the compiled cone pass replaces the footprint depth test only (engines that test
        # visibility otherwise, meshes by ray casting, keep the numpy pass)
        own = type(self)._visibility is PointCloudEngine._visibility
        if kernel is not None:
            _check_kernel(kernel)
        self._kernel = kernel if kernel is not None else (_compiled_kernel(compiled) if own else None)
        self._gauss_on_device = bool(getattr(self._kernel, "gauss_on_device", False))
        self._auto = own and kernel is None and compiled is None and self._kernel is None and _WARM_UP.started

    # ------------------------------------------------------------ frames
    @property
    def max_occluder_half(self) -> int:
        """Largest occluding footprint, half-width in pixels."""
        return max(self.half_splat, MAX_OCCLUDER_HALF) if self.spacing_footprint else self.half_splat

    def _margin(self, camera) -> float:
        # a footprint reaches max_occluder_half pixels from its point; the centre
        # pixel subtends the largest angle, so this bound holds across the viewport
        return (self.max_occluder_half + 1.5) * np.arctan(1.0 / camera.focal_px)

    @property
    def spacing(self) -> np.ndarray:
        """``(n,)`` float32 local point spacing, in the index's sorted order (:func:`local_spacing`)."""
        if self._spacing is None:
            self._spacing = local_spacing(self.index)
        return self._spacing

    def _occluder_half(self, camera, cand: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``(m,)`` int32 half-width in pixels of each candidate's occluding footprint (>= the splat's)."""
        h = self.half_splat
        if not self.spacing_footprint:
            return np.full(len(cand), h, dtype=np.int32)
        px = np.take(self.spacing, cand) * np.float32(FOOTPRINT_PER_SPACING * camera.focal_px)
        with np.errstate(divide="ignore", invalid="ignore"):
            px /= depth
        # a square of side 2 * half + 1 pixels at least as wide as the footprint, half on a few levels
        half = np.ceil((np.nan_to_num(px, nan=0.0, posinf=0.0) - np.float32(1.0)) / np.float32(2.0))
        np.clip(half, 0, MAX_OCCLUDER_HALF, out=half)
        half = _HALF_LEVEL_OF[half.astype(np.int32)]
        return np.maximum(half, h)

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
        if np.all(directions @ directions[0] >= cos_lim):
            return [np.arange(n)]            # one run (a fixation): no pairwise products needed
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
        fr = self._build(camera, handle.key, axis, half, half + self._margin(camera),
                         lasting=len(dirs) >= self.store_min_rays)
        handle.cones.append(fr)
        cones = self._frames.setdefault(handle.key, [])
        cones.append(fr)
        del cones[:-8]
        self._frames.move_to_end(handle.key)
        while len(self._frames) > self.cache_frames:
            self._frames.popitem(last=False)
        return fr

    def _build(self, camera, key, axis, half, cone, lasting: bool = True) -> PointFrame:
        if self._auto:                      # numba's cache was cold: compiled once it is filled
            self._kernel = _WARM_UP.poll()
            self._auto = self._kernel is None and not _WARM_UP.done
        idx = self.index
        apex = camera.position - idx.center
        cand, pts = self._candidates(apex, axis, cone, camera.near, lasting)
        # coordinates relative to the eye, in float32 rows of one array so that
        # each compression below is a single take
        # (work arrays kept by the engine: fresh ones of this size cost their page faults every frame)
        a = apex.astype(np.float32)
        pts = np.subtract(pts, a[:, None], out=self._scratch(pts.shape, 13))
        # camera coordinates and the distance along the cone axis in one product;
        # the exact cone test then drops the store's (or the octree cells') extra points
        R = camera.rotation
        proj = np.empty((4, 3), dtype=np.float32)
        proj[0] = axis
        proj[1:] = R
        full = self._scratch((5, len(cand)), 14)     # dot, cx, cy, cz, |c|^2
        np.matmul(proj, pts, out=full[:4])
        del pts
        if self._kernel is not None:
            return self._build_compiled(camera, key, axis, half, cone, cand, full, R)
        dot, cx, cy, cz, n2 = full
        np.einsum("ij,ij->j", full[1:4], full[1:4], out=n2)     # cx^2 + cy^2 + cz^2
        ok = dot > 0
        dot *= dot
        ok &= dot >= np.float32(np.cos(cone) ** 2) * n2
        keep = np.flatnonzero(ok)
        cand = np.take(cand, keep)
        m = np.empty((6, len(cand)), dtype=np.float32)       # cx, cy, cz, |c|^2, u, v
        np.take(full[1:], keep, axis=1, out=m[:4], mode="clip")   # "raise" would buffer `out`
        del full, dot, cx, cy, cz, n2
        if len(cand):
            self._depth_hint = float(np.sqrt(m[3].min()))
        ax = (R @ axis).astype(np.float32)               # cone axis in camera coordinates
        cx, cy, cz, n2, u, v = m
        f = np.float32(camera.focal_px)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = f / cz
        np.multiply(cx, inv, out=u)
        u += np.float32(camera.width / 2.0)
        np.multiply(cy, -inv, out=v)
        v += np.float32(camera.height / 2.0)
        h = self.max_occluder_half        # points just off screen may still cover pixels on it
        ok = (cz >= camera.near) & (cz <= camera.far)
        ok &= (u >= -h) & (u < camera.width + h) & (v >= -h) & (v < camera.height + h)
        if not ok.all():
            keep = np.flatnonzero(ok)
            cand = np.take(cand, keep)
            m = np.take(m, keep, axis=1)
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

    def _build_compiled(self, camera, key, axis, half, cone, cand, full, R) -> PointFrame:
        """The rest of :meth:`_build` in one compiled pass (:mod:`._numba_cone`), bit-identical to it."""
        f32 = np.float32
        focal = camera.focal_px
        nf, ni = self._kernel.work_sizes(len(cand), camera.width, camera.height, self.max_occluder_half)
        (index, amat, min_n2, zs, iu0, iv0, h, band, brow, bcol, bhalf, bdep) = self._kernel.cone_pass(
            full[:4], cand, f32(np.cos(cone) ** 2), f32(focal), f32(camera.width / 2.0), f32(camera.height / 2.0),
            f32(camera.width), f32(camera.height), f32(camera.near), f32(camera.far), self.max_occluder_half,
            self.spacing if self.spacing_footprint else _NO_SPACING, self.spacing_footprint,
            f32(FOOTPRINT_PER_SPACING * focal), _HALF_LEVEL_OF, self.half_splat, f32(self.max_slope / focal),
            f32(self.depth_tolerance), (R @ axis).astype(np.float32), self._scratch((nf,), 10),
            self._scratch((ni,), 11, np.int64))
        if np.isfinite(min_n2):
            self._depth_hint = float(np.sqrt(min_n2))
        window = None
        if zs.size:
            window = (zs, int(iu0), int(iv0), int(h), (brow, bcol, bhalf, bdep) if len(band) else None)
        self._window = window
        return PointFrame(key=key, camera=camera, origin=camera.position.copy(), axis=axis,
                          half_angle=half, index=index, amat=amat, rotation=R, depth_window=window)

    def _candidates(self, apex, axis, cone, near, lasting: bool = True):
        """(m,) int64 ascending sorted positions and (3, m) float32 coordinates of a superset of the cone's points.

        The octree is asked for a cone ``store_widen_deg`` wider whose apex is
        pulled back along the axis by ``store_pullback`` times the distance of
        the nearest point seen last; the points in it are kept, and the next
        frames' cones that lie inside it (a camera moving a little, an eye
        fixating) are answered from them. The exact cone test that follows
        gives the same points either way. A cone that is not ``lasting`` (a
        few rays of a saccade) does not replace the kept points.
        """
        idx = self.index
        widen = np.radians(self.store_widen_deg)
        st = self._store
        if st is not None and st.contains(apex, axis, cone):
            return st.cand, st.pts
        if not (lasting and widen > 0 and cone + widen < np.radians(89.0)):
            cand = idx.cone_candidates(apex, axis, min(cone, np.radians(89.5)), near)
            return cand, np.take(idx.cols, cand, axis=1)
        big = cone + widen
        back = apex - axis * (self.store_pullback * self._depth_hint)
        lim = np.cos(min(big + 1e-3, np.radians(89.9)))
        tiny = np.float32((1e-4 * idx.size) ** 2)
        # a kernel with store_points (numba): the same test over the octree's ranges, without a gather
        # of them all; one without (torch) keeps the numpy path below
        store = getattr(self._kernel, "store_points", None)
        if store is not None:
            walk = getattr(self._kernel, "cone_ranges", None)     # the octree walk compiled (numba)
            starts, ends = walk(idx, back, axis, big, 0.0) if walk is not None else idx.cone_ranges(back, axis, big, 0.0)
            cand, pts = store(idx.cols, starts, ends, back.astype(np.float32), axis.astype(np.float32),
                              np.float32(lim), tiny, self._scratch((int((ends - starts).sum()),), 12, np.int64))
            st = self._store = _ConeStore(apex=back, axis=axis.copy(), half_angle=big, cand=cand, pts=pts)
            return st.cand, st.pts
        cand = idx.cone_candidates(back, axis, big, 0.0)
        pts = np.take(idx.cols, cand, axis=1)
        # keep the points inside the big cone (with a margin for float32 rounding)
        d = pts - back.astype(np.float32)[:, None]
        dot = axis.astype(np.float32) @ d
        n2 = np.einsum("ij,ij->j", d, d)
        del d
        ok = (dot >= np.float32(lim) * np.sqrt(n2)) | (n2 <= tiny)
        keep = np.flatnonzero(ok)
        st = self._store = _ConeStore(apex=back, axis=axis.copy(), half_angle=big, cand=np.take(cand, keep),
                                      pts=np.take(pts, keep, axis=1))
        return st.cand, st.pts

    def _visibility(self, camera, cand, cam_xyz, depth, u, v) -> np.ndarray:
        """(m,) bool: the footprint depth test (see the module docstring)."""
        half = self._occluder_half(camera, cand, depth)
        h = int(half.max())
        iu = (u + np.float32(h)).astype(np.int32)     # u, v >= -h: truncation is floor
        iv = (v + np.float32(h)).astype(np.int32)
        u0, v0 = int(iu.min()), int(iv.min())
        # the window has an h-pixel border so the footprint filter needs no padding
        wu, wv = int(iu.max()) - u0 + 1 + 2 * h, int(iv.max()) - v0 + 1 + 2 * h
        flat = (iv - (v0 - h)) * wu
        flat += iu - (u0 - h)
        sizes = np.flatnonzero(np.bincount(half))     # = np.unique(half): small ints, no sort
        if len(sizes) == 1:                 # one footprint size (a dense cloud: the splat)
            z = self._scratch((wv, wu), 3)  # reused: a fresh buffer costs its page faults
            z.fill(np.inf)
            np.minimum.at(z.reshape(-1), flat, depth)
            zs = _min_filter(z, h, rows=self._scratch((wv, wu), 4))
            band = None
        else:
            zs, band = _footprint_depth(flat, half, depth, wu, wv, sizes, self._scratch)
        self._window = (zs, u0 - h, v0 - h, h, band)    # kept for the gaze's own hit points
        zs = zs.ravel()
        # tolerance: the depth a surface up to max_slope gains from a neighbour whose footprint (like
        # the point's own) covers its pixel: at most half + 1 pixels away along a pixel axis
        reach = (half.astype(np.float32) + np.float32(1.0)) * np.float32(self.max_slope / camera.focal_px)
        reach += np.float32(self.depth_tolerance)
        tol = depth * reach
        tol += np.take(zs, flat)
        return depth <= tol

    # ---------------------------------------------------------- per ray
    @staticmethod
    def _ray_rows(fr: PointFrame, directions: np.ndarray) -> np.ndarray:
        """``(s, 5)`` float32 rays' side of the chord matrix: ``-2 h, 1, |h|^2``, ``h = d - axis`` (camera frame)."""
        h = (directions - fr.axis) @ fr.rotation.T
        b = np.empty((len(directions), 5), dtype=np.float32)
        b[:, :3] = -2.0 * h
        b[:, 3] = 1.0
        b[:, 4] = np.einsum("ij,ij->i", h, h)
        return b

    def _chord2(self, fr: PointFrame, directions: np.ndarray, cols: slice, out=None,
                clamp: bool = True) -> np.ndarray:
        """(s, v') float32 squared chords between rays and visible points ``cols``.

        ``|d - p|^2 = |q|^2 + |h|^2 - 2 q.h`` with ``q = p - axis`` and
        ``h = d - axis``: all terms are small, so float32 keeps ~1e-7 relative
        accuracy on the chord where ``2 - 2 d.p`` would cancel.
        """
        b = self._ray_rows(fr, directions)
        a = fr.amat[:, cols]
        shape = (len(b), a.shape[1])
        c2 = np.empty(shape, dtype=np.float32) if out is None else out
        # not a BLAS product: its bits depend on the BLAS thread count, and a threaded product of
        # (s, 5) x (5, v) waits on its spinning threads (8 ms instead of 0.1 on a loaded 2-core
        # machine). The terms in a fixed order instead, each rounded (no fused multiply-add):
        # ((-2 h0 q0 + -2 h1 q1) + -2 h2 q2) + |q|^2 + |h|^2; the compiled kernel does the same.
        if self._kernel is not None:
            self._kernel.chord2(b, fr.amat, cols.indices(fr.amat.shape[1])[0], c2)
        else:
            t = self._scratch(shape, 3)
            np.multiply(b[:, 0:1], a[0], out=c2)
            np.multiply(b[:, 1:2], a[1], out=t)
            c2 += t
            np.multiply(b[:, 2:3], a[2], out=t)
            c2 += t
            c2 += a[3]
            c2 += b[:, 4:5]
        if clamp:
            np.maximum(c2, 0.0, out=c2)
        return c2

    def _scratch(self, shape, slot: int, dtype=np.float32) -> np.ndarray:
        """A reused work array (the deposit's (s, v) temporaries: no fresh pages every frame)."""
        size = math.prod(shape)
        key = (slot, dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = self._buffers[key] = np.empty(max(size, 1 << 16), dtype=dtype)
        return buf[:size].reshape(shape)

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
        zs, iu0, iv0, h, band = fr.depth_window
        cam = fr.camera
        c = directions @ fr.rotation.T
        with np.errstate(divide="ignore", invalid="ignore"):
            u = cam.width / 2.0 + cam.focal_px * c[:, 0] / c[:, 2]
            v = cam.height / 2.0 - cam.focal_px * c[:, 1] / c[:, 2]
        ok = (c[:, 2] > 0) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        every = bool(ok.all())
        iu = np.floor((u if every else np.where(ok, u, 0.0)) + h).astype(np.int64) - iu0
        iv = np.floor((v if every else np.where(ok, v, 0.0)) + h).astype(np.int64) - iv0
        if every and iu.min() >= 0 and iv.min() >= 0 and iu.max() < zs.shape[1] and iv.max() < zs.shape[0]:
            depth = zs[iv, iu].astype(np.float64)         # the usual case: every gaze pixel in the window
        else:
            ok &= (iu >= 0) & (iu < zs.shape[1]) & (iv >= 0) & (iv < zs.shape[0])
            depth = np.full(len(directions), np.inf)
            depth[ok] = zs[iv[ok], iu[ok]]
        if band is not None:
            _band_depth(band, zs.shape, h, iv, iu, ok, depth)
        hit = np.isfinite(depth)
        if hit.all():
            return fr.origin + directions * (depth / c[:, 2])[:, None]
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

    def deposit(self, handle: CameraFrame, directions: np.ndarray, weights: np.ndarray, origins=None,
                use: Optional[np.ndarray] = None) -> None:
        """Add ``weights[i] * gaussian(angle)`` of every ray (or of the rays where ``use`` (s,) bool) to the visible points.

        With ``use``, ``directions`` can be the very array the frame was built
        for: its cones are then reused as they are, without regrouping.
        """
        if len(directions) == 0:
            return
        w = np.asarray(weights, dtype=np.float64)
        for fr, idx in self._cones(handle, directions):
            if use is not None:
                idx = idx[use[idx]]
                if len(idx) == 0:
                    continue
            self._cone_deposit(fr, directions[idx], w[idx])

    def _cone_deposit(self, fr: PointFrame, directions: np.ndarray, weights: np.ndarray) -> None:
        v = len(fr.index)
        if v == 0 or len(directions) == 0:
            return
        sigma = self.foveal.camera_sigma_rad(fr.camera)
        cut = self.foveal.cut_sigmas * sigma          # = foveal.cut_rad(camera)
        c2cut = np.float32((2 * np.sin(cut / 2)) ** 2)
        k = -0.5 / sigma ** 2
        w = np.asarray(weights, dtype=np.float64)
        if not w.min() > 0:
            keep = w > 0
            directions, w = directions[keep], w[keep]
            if len(w) == 0:
                return
        # exp(k theta^2 + ln w) = w * gaussian: the dwell rides in the exponent
        lnw = np.log(w).astype(np.float32)[:, None]
        series3 = cut > _RAD5                 # c2^3/90 matters above ~5 degrees
        exact = cut > _RAD20
        chunk = max(1024, 262144 // len(w))   # keep the (s, chunk) temporaries in cache
        b = None                              # the rays' rows of the chord matrix (compiled path)
        for s in range(0, v, chunk):
            cols = slice(s, min(v, s + chunk))
            shape = (len(w), cols.stop - cols.start)
            # no clamp at 0: a rounding-negative c2 (|c2| < ~1e-9, a point on the ray)
            # gives exp(-k |c2|), as close to 1 as the clamped value
            ix = fr.index[cols]
            if self._kernel is not None and not (exact or series3):
                # the chords and the exponent (the same float32 operations as below, in their
                # order) in one compiled pass; numpy's exp: bit-identical to the numpy path
                if b is None:
                    b = self._ray_rows(fr, directions)
                if self._gauss_on_device:     # a device kernel (torch) sums the rays itself
                    contrib = self._kernel.gauss_columns(b, fr.amat, cols.start, cols.stop, c2cut,
                                                         np.float32(k / 12.0), np.float32(k), lnw[:, 0])
                    if self._jtouched is not None:
                        self._journal(ix)
                    self.acc[ix] += contrib
                    continue
                c2 = self._scratch(shape, 0)
                self._kernel.chord2_exponent(b, fr.amat, cols.start, c2, c2cut, np.float32(k / 12.0),
                                             np.float32(k), lnw[:, 0])
                np.exp(c2, out=c2)
                if self._jtouched is not None:
                    self._journal(ix)
                self._kernel.add_columns(c2, ix, self.acc)
                continue
            c2 = self._chord2(fr, directions, cols, out=self._scratch(shape, 0), clamp=False)
            far = np.greater(c2, c2cut, out=self._scratch(shape, 2, bool))
            if exact or series3:
                e = chord2_to_theta2(c2, exact=exact)
                e *= np.float32(k)
            else:
                # theta^2 = c2 (1 + c2 / 12) to float32 precision below 5 degrees
                e = np.multiply(c2, np.float32(k / 12.0), out=self._scratch(shape, 1))
                e += np.float32(k)
                e *= c2
            e += lnw
            np.copyto(e, -np.inf, where=far)
            np.exp(e, out=e)
            contrib = np.add.reduce(e, axis=0)
            if self._jtouched is not None:
                self._journal(ix)
            self.acc[ix] += contrib

    # ------------------------------------------------------------ output
    def values(self) -> np.ndarray:
        """(n,) float32 attention in the cloud's point order."""
        out = np.empty(self.n, dtype=np.float32)
        out[self.index.order] = self.acc
        return out

    # ------------------------------------------------------ per-fixation journal
    def journal_start(self) -> None:
        """Start recording which points the next deposits touch (one fixation), see :meth:`journal_take`."""
        self.journal_stop()
        if self._jbase is None:
            self._jbase = np.full(self.n, np.nan, dtype=np.float32)
        self._jtouched = []

    def _journal(self, ix: np.ndarray) -> None:
        new = ix[np.isnan(self._jbase[ix])]
        if len(new):
            self._jbase[new] = self.acc[new]          # float32: what values() showed before
            self._jtouched.append(new)

    def journal_take(self):
        """What the deposits since :meth:`journal_start` added, as :meth:`values` shows it.

        Returns
        -------
        index : (k,) int64 ascending, point indices (the cloud's order) whose float32 value grew
        attention : (k,) float32 ``values()[index]`` now minus before the journal started
            (bit-identical to differencing two whole :meth:`values` arrays)
        """
        if not self._jtouched:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        ix = np.concatenate(self._jtouched)
        d = self.acc[ix].astype(np.float32)
        d -= self._jbase[ix]
        keep = np.flatnonzero(d > 0)
        flat = self.index.order[ix[keep]].astype(np.int64)
        o = np.argsort(flat)
        return flat[o], d[keep][o]

    def journal_stop(self) -> None:
        """Stop the journal and forget it (O(points touched))."""
        if self._jtouched:
            self._jbase[np.concatenate(self._jtouched)] = np.nan
        self._jtouched = None

    def reset(self) -> None:
        self.journal_stop()
        self.acc[:] = 0.0
        self._store, self._depth_hint = None, 0.0
