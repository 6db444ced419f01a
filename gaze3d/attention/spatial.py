"""A Morton-ordered octree over points, queried with cones (the gaze's foveal cone).

Points are sorted by the Morton (Z-order) code of a ``2**bits`` grid over
their bounding cube, so every octree cell is one contiguous range of the
sorted arrays; the tree is never stored, cells are found by binary search of
the codes. A cone query walks the tree level by level (vectorised), keeping
the cells whose bounding sphere meets the cone and refining only those on the
cone's boundary, so its cost grows with the points near the cone, not with N.

Memory per point: float32 x, y, z relative to the cloud centre (12 bytes),
the uint32 code (4) and the int32 permutation (4; int64 past 2**31 points).
"""
from __future__ import annotations

import numpy as np

_U = np.uint64


def _part1by2(x: np.ndarray) -> np.ndarray:
    """Spread the low 21 bits of uint64 ``x`` to every third bit."""
    x = x.astype(np.uint64) & _U(0x1FFFFF)
    x = (x | (x << _U(32))) & _U(0x1F00000000FFFF)
    x = (x | (x << _U(16))) & _U(0x1F0000FF0000FF)
    x = (x | (x << _U(8))) & _U(0x100F00F00F00F00F)
    x = (x | (x << _U(4))) & _U(0x10C30C30C30C30C3)
    x = (x | (x << _U(2))) & _U(0x1249249249249249)
    return x


def _compact1by2(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_part1by2`."""
    x = x.astype(np.uint64) & _U(0x1249249249249249)
    x = (x ^ (x >> _U(2))) & _U(0x10C30C30C30C30C3)
    x = (x ^ (x >> _U(4))) & _U(0x100F00F00F00F00F)
    x = (x ^ (x >> _U(8))) & _U(0x1F0000FF0000FF)
    x = (x ^ (x >> _U(16))) & _U(0x1F00000000FFFF)
    x = (x ^ (x >> _U(32))) & _U(0x1FFFFF)
    return x


def ranges_to_indices(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, e)`` for each pair, in order, without a Python loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


class MortonIndex:
    """Sorted points with an implicit octree.

    Parameters
    ----------
    xyz : (n, 3) float64
        Points in world coordinates.
    bits : int
        Grid resolution per axis (``2**bits`` cells), at most 10.
    leaf_size : int
        A boundary cell with at most this many points is not refined further.
    chunk : int
        Points processed at once while building (bounds temporary memory).

    Attributes
    ----------
    center : (3,) float64
        World position subtracted from the stored coordinates.
    cols : (3, n) float32
        Sorted points relative to ``center``, one row per axis.
    order : (n,) int
        ``order[k]`` is the original index of the k-th sorted point.
    codes : (n,) uint32
        Sorted Morton codes.
    """

    def __init__(self, xyz: np.ndarray, bits: int = 10, leaf_size: int = 128, chunk: int = 1 << 18):
        if not 1 <= bits <= 10:
            raise ValueError(f"bits: expected 1..10, got {bits}")
        n = len(xyz)
        self.bits, self.leaf_size = int(bits), int(leaf_size)
        lo, hi = xyz.min(axis=0), xyz.max(axis=0)
        self.center = (lo + hi) / 2.0
        self.size = float(max((hi - lo).max(), 1e-9)) * (1.0 + 1e-6)
        self.lo = self.center - self.size / 2.0           # the cube's min corner, world
        cells = 1 << self.bits
        codes = np.empty(n, dtype=np.uint32)
        for s in range(0, n, chunk):
            q = np.floor((xyz[s:s + chunk] - self.lo) * (cells / self.size)).astype(np.int64)
            np.clip(q, 0, cells - 1, out=q)
            codes[s:s + chunk] = (_part1by2(q[:, 0]) | (_part1by2(q[:, 1]) << _U(1))
                                  | (_part1by2(q[:, 2]) << _U(2))).astype(np.uint32)
        order = np.argsort(codes, kind="stable")
        self.order = order.astype(np.int32) if n < 2**31 else order
        del order
        self.codes = codes[self.order]
        del codes
        # structure of arrays: gathering and arithmetic on 1D columns is several
        # times faster in numpy than on (n, 3) rows
        self.cols = np.empty((3, n), dtype=np.float32)
        for s in range(0, n, chunk):
            self.cols[:, s:s + chunk] = (xyz[self.order[s:s + chunk]] - self.center).T

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        return self.cols.nbytes + self.codes.nbytes + self.order.nbytes

    def _start_level(self):
        """Non-empty cells of the first level with >= 512 of them (cached): prefix, ijk, start, end."""
        if getattr(self, "_start", None) is None:
            level = min(self.bits, 3)
            while True:
                pref = self.codes >> np.uint32(3 * (self.bits - level))
                change = np.flatnonzero(np.diff(pref)) + 1
                starts = np.concatenate([[0], change]).astype(np.int64)
                if len(starts) >= 512 or level == self.bits:
                    break
                level += 1
            ends = np.concatenate([starts[1:], [len(self)]]).astype(np.int64)
            p = pref[starts].astype(np.uint64)
            ijk = np.stack([_compact1by2(p), _compact1by2(p >> _U(1)), _compact1by2(p >> _U(2))],
                           axis=1).astype(np.int64)
            self._start = (level, p, ijk, starts, ends)
        return self._start

    def cone_ranges(self, apex, axis, half_angle: float, near: float = 0.0):
        """Sorted-index ranges of the cells that may hold points inside a cone.

        Parameters
        ----------
        apex : (3,) float64
            Cone apex relative to ``center``.
        axis : (3,) float64
            Unit axis.
        half_angle : float
            Radians, below pi/2.
        near : float
            Points closer than this along the axis are not wanted.

        Returns
        -------
        starts, ends : (k,) int64
            Ranges ``[start, end)`` into the sorted arrays, ascending.
        """
        apex = np.asarray(apex, dtype=np.float64)
        axis = np.asarray(axis, dtype=np.float64)
        level0, prefix, ijk, starts, ends = self._start_level()
        corner = self.lo - self.center - apex
        octant = np.array([[k & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], dtype=np.int64)
        nine = np.arange(9, dtype=np.uint64)
        cos_a, sin_a = np.cos(half_angle), np.sin(half_angle)
        keep_s, keep_e = [], []
        for level in range(level0, self.bits + 1):
            if len(prefix) == 0:
                break
            size = self.size / (1 << level)
            r = size * np.sqrt(3.0) / 2.0
            v = (ijk + 0.5) * size
            v += corner
            along = v @ axis
            d2 = np.einsum("ij,ij->i", v, v)
            perp = np.sqrt(np.maximum(d2 - along * along, 0.0))
            # signed distance from the cell centre to the cone's surface (exact in
            # front of the apex, an underestimate behind it: conservative)
            sd = perp * cos_a - along * sin_a
            near_apex = d2 <= r * r
            meets = (near_apex | (sd <= r)) & (along + r >= near)
            whole = (sd <= -r) & (along > r)
            final = meets & (whole | ((ends - starts) <= self.leaf_size) | (level == self.bits))
            keep_s.append(starts[final])
            keep_e.append(ends[final])
            refine = meets & ~final
            if not refine.any():
                break
            shift = _U(3 * (self.bits - level - 1))
            parents = prefix[refine]
            # the 9 boundaries of each parent's 8 children in one search
            # (codes < 2**30 so the bounds fit uint32: no copy of the codes)
            bounds = ((parents[:, None] * _U(8) + nine[None, :]) << shift).astype(np.uint32)
            found = np.searchsorted(self.codes, bounds.ravel(), side="left").reshape(-1, 9)
            s = found[:, :8].ravel()
            e = found[:, 1:].ravel()
            nonempty = e > s
            child = (parents[:, None] * _U(8) + nine[None, :8]).ravel()
            cijk = (2 * ijk[refine][:, None, :] + octant[None]).reshape(-1, 3)
            prefix, ijk = child[nonempty], cijk[nonempty]
            starts, ends = s[nonempty].astype(np.int64), e[nonempty].astype(np.int64)
        if not keep_s:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        s = np.concatenate(keep_s)
        e = np.concatenate(keep_e)
        o = np.argsort(s, kind="stable")
        return s[o], e[o]

    def cone_candidates(self, apex, axis, half_angle: float, near: float = 0.0) -> np.ndarray:
        """(m,) int64 sorted positions of the points in the cells meeting the cone, ascending."""
        return ranges_to_indices(*self.cone_ranges(apex, axis, half_angle, near))
