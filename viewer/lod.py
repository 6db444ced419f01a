"""Level of detail for large point clouds: a nested drawing order and an adaptive point budget.

What the field does (Potree's point budget, VTK's interactive / still update
rates, CloudCompare's LOD): while the user interacts, draw a spatially even
subset sized so that a frame fits a time target; once idle, draw everything
(a *still* frame). Only the picture changes: attention, labels and recordings
always use the whole cloud.

* :func:`nested_order` orders the points once at load so that every prefix is
  spatially even (one point per occupied cell of an octree level, then the
  next level...): a budget of ``m`` points is ``order[:m]``, and a smaller
  budget is a prefix of a larger one (changing the budget is cheap, and what
  stays drawn does not jump around).
* :class:`PointBudget` sizes the budget from measured render times (cost per
  drawn point, so a frame of the budget takes ``target_s``) and says when a
  frame is interactive or still. Where drawing the whole cloud already fits
  the target (a GPU desktop), the budget is the whole cloud.

numpy only: no VTK here (the scene draws, this module decides what).
"""
from __future__ import annotations

import time
from typing import Optional, Union

import numpy as np

from gaze3d.errors import InputError

#: bits per axis of the finest octree level (3 x 21 = 63 bits: a Morton code fits an int64)
MAX_LEVEL = 21
#: the most extreme points (smallest, largest on each axis) that open :func:`nested_order`
N_EXTREMES = 6


def _spread_bits(q: np.ndarray) -> np.ndarray:
    """(n,) uint64 with the low 21 bits of ``q`` spread to every third bit (Morton interleave)."""
    x = q.astype(np.uint64) & np.uint64(0x1FFFFF)
    x = (x | (x << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    x = (x | (x << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    x = (x | (x << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    x = (x | (x << np.uint64(2))) & np.uint64(0x1249249249249249)
    return x


def point_levels(xyz: np.ndarray, seed: int = 0) -> tuple:
    """Octree level of each point: the coarsest level at which it represents its cell.

    Cells are cubes (the largest extent halved ``k`` times at level ``k``). In
    each occupied cell of each level one point is chosen, the first in a random
    order fixed by ``seed``; the point chosen for a cell is also the one chosen
    for the child cell it lies in, so the levels nest.

    Parameters
    ----------
    xyz : (n, 3) float
    seed : int

    Returns
    -------
    level : (n,) int16
        0 for the one point of the root cell, ``depth + 1`` for points never chosen.
    priority : (n,) int64
        The random order (a permutation of ``0..n-1``): ties within a level are broken by it.
    point_of_priority : (n,) int64
        Its inverse: the points in that random order.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError(f"point_levels: expected (n, 3) coordinates, got shape {xyz.shape}")
    n = len(xyz)
    priority = np.random.default_rng(seed).permutation(n).astype(np.int64)
    if n == 0:
        return np.zeros(0, np.int16), priority, priority
    # deep enough for ~1 point per cell at the finest level (8x more cells per level)
    depth = int(min(MAX_LEVEL, max(1, np.ceil(np.log2(max(n, 2)) / 3.0) + 3)))
    lo = xyz.min(axis=0)
    ext = float((xyz.max(axis=0) - lo).max()) or 1.0
    q = np.clip(((xyz - lo) / ext * (1 << depth)).astype(np.int64), 0, (1 << depth) - 1)
    code = (_spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << np.uint64(1))
            | (_spread_bits(q[:, 2]) << np.uint64(2))).view(np.int64)
    by_code = np.argsort(code)
    code_s, prio_s = code[by_code], priority[by_code]
    point_of_priority = np.empty(n, dtype=np.int64)
    point_of_priority[priority] = np.arange(n)
    level = np.full(n, depth + 1, dtype=np.int16)
    # finest level first: a coarser level overwrites with its smaller number
    for k in range(depth, -1, -1):
        cell = code_s >> np.int64(3 * (depth - k))
        starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        first = np.minimum.reduceat(prio_s, starts)          # the cell's first point in the random order
        level[point_of_priority[first]] = k
    return level, priority, point_of_priority


def nested_order(xyz: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n,) int64: a drawing order whose every prefix is spatially even.

    Points sorted by :func:`point_levels` (coarse levels first, randomly within a
    level), except that the points with the smallest and largest coordinate on
    each axis come first: every prefix of at least :data:`N_EXTREMES` points then
    has the whole cloud's bounding box,
    so a subset drawn in its place gives the renderer the same bounds (and the
    camera the same clipping range) as the whole cloud.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    level, _, by_priority = point_levels(xyz, seed)
    # a stable sort of 16-bit keys (a radix sort in numpy) of the points in random order
    order = by_priority[np.argsort(level[by_priority], kind="stable")]
    if len(xyz) == 0:
        return order
    extremes = np.unique(np.r_[xyz.argmin(axis=0), xyz.argmax(axis=0)])
    rest = order[~np.isin(order, extremes)]
    return np.r_[extremes, rest].astype(np.int64)


class PointBudget:
    """How many points to draw in an interactive frame, and when to draw a still frame.

    Parameters
    ----------
    n_points : int
        Points in the cloud.
    budget : "auto" or int
        ``"auto"``: sized from measured render times; ``0``: always draw every
        point (no budget); ``m > 0``: draw ``m`` points while interacting.
    target_s : float
        Render time an interactive frame should take (auto).
    minimum : int
        Never fewer points than this (auto): below it the picture stops being a cloud.
    still_delay_s : float
        Idle time (no key, no camera motion) after which a still (full) frame is drawn.
    still_period_s : float
        While idle, draw full frames (new heat) at most this often, and at most
        a third of the time: the render thread stays free for keys.

    Notes
    -----
    Not thread-safe; the render thread owns it.
    """

    def __init__(self, n_points: int, budget: Union[str, int] = "auto", target_s: float = 0.04,
                 minimum: int = 20_000, still_delay_s: float = 0.4, still_period_s: float = 0.25):
        self.n_points = int(n_points)
        fixed = parse_budget(budget)
        self.auto = fixed is None
        if not target_s > 0:
            raise InputError(f"point budget target: expected a positive time in seconds, got {target_s}")
        self.target_s = float(target_s)
        self.minimum = int(minimum)
        self.still_delay_s = float(still_delay_s)
        self.still_period_s = float(still_period_s)
        #: seconds per drawn point (exponential mean of measured renders); None until measured
        self.cost_s: Optional[float] = None
        self._fixed = None if fixed is None else (self.n_points if fixed == 0 else min(fixed, self.n_points))
        self.last_interaction = -np.inf
        self.last_still = -np.inf
        self.last_full_s = 0.0

    @property
    def size(self) -> int:
        """Points drawn in an interactive frame (``n_points``: no budget)."""
        if self._fixed is not None:
            return self._fixed
        if self.cost_s is None:
            return self.n_points
        m = int(self.target_s / self.cost_s)
        if m >= 0.9 * self.n_points:       # nearly everything fits: draw everything
            return self.n_points
        return int(min(self.n_points, max(self.minimum, m)))

    @property
    def active(self) -> bool:
        """Whether interactive frames draw fewer points than the cloud has."""
        return self.size < self.n_points

    def note_render(self, drawn: int, seconds: float) -> None:
        """Take in one measured render (``drawn`` points in ``seconds``)."""
        if drawn <= 0 or not seconds > 0:
            return
        c = seconds / drawn
        if drawn >= self.n_points:
            self.last_full_s = float(seconds)
            # whole-cloud frames decide whether a budget is needed at all (first frame; no budget
            # yet; or the whole cloud now fits, e.g. a GPU once warm): they do not size a budget
            if self.cost_s is None or not self.active or seconds <= self.target_s:
                self.cost_s = c
            return
        # budget frames: the per-point cost includes the frame's fixed cost, too high for small
        # budgets, which makes the budget converge to where a frame takes target_s
        # (m = target / (fixed / m + per point))
        self.cost_s = 0.5 * (self.cost_s + c) if self.cost_s is not None else c

    def interact(self, now: Optional[float] = None) -> None:
        """A key, or the camera moving: the next frames are interactive."""
        self.last_interaction = time.monotonic() if now is None else float(now)

    def interactive(self, now: Optional[float] = None) -> bool:
        """Whether a frame now should draw the budget (within ``still_delay_s`` of an interaction)."""
        now = time.monotonic() if now is None else float(now)
        return self.active and now - self.last_interaction < self.still_delay_s

    def still_due(self, now: Optional[float] = None) -> bool:
        """Whether a still frame with new heat may be drawn now (rate-limited while idle)."""
        now = time.monotonic() if now is None else float(now)
        return now - self.last_still >= max(self.still_period_s, 3.0 * self.last_full_s)


def parse_budget(value) -> Optional[int]:
    """``"auto"`` -> None; ``"0"``/``0`` -> 0 (draw everything); ``"200000"`` -> 200000. Else InputError."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return None
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise InputError(f"point budget: expected 'auto' or a number of points (0: all), got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"point budget: expected 'auto' or a number of points >= 0 (0: all), got {value!r}")
    return int(value)
