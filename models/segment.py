"""Segmenter strategies beside the network: the result type every strategy returns, the
empty/collapsed-mask check, and a classical gaze-seeded graph baseline.

numpy/scipy only (no torch), so the viewer can always fall back on it.

* :class:`SegmentResult`: mask, per-point score, method and a ``status``
  (``"ok"``, ``"empty"``, ``"collapsed"``, ``"flooded"``, ``"no-attention"``)
  with a one-line ``reason``: a strategy never hands back a silent empty mask.
* :func:`check_mask`: the status of a mask against the attention that made it.
* :class:`GraphSegmenter`: random walker (Grady 2006) on a kNN graph of the
  points, edge weights from normals, colour and distance; foreground seeds from
  the positive attention's core, background seeds from negative fixations, the
  edge of the region of interest and (outdoors) the ground under elevated
  seeds. scikit-image's ``random_walker`` works on grids only, so the
  Laplacian solve is a preconditioned conjugate gradient from scipy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATUSES = ("ok", "empty", "collapsed", "flooded", "no-attention")


@dataclass
class SegmentResult:
    """One segmentation answer.

    Attributes
    ----------
    mask : (n,) bool
        One value per point; on a volume (``VolumeSegmenter.segment``) the
        voxel grid's shape, ``(I, J, K)``.
    score : (n,) float32
        Object probability (network) or random-walk potential (graph), in [0, 1];
        ``(I, J, K)`` on a volume, like ``mask``.
    method : str
        ``"net"``, ``"graph"``, ``"grow"``.
    status : str
        One of :data:`STATUSES`; anything but ``"ok"`` means the caller should
        not use ``mask`` as it stands (fall back, or ask for more gaze).
    reason : str
        Empty when ``status == "ok"``, else one line saying what went wrong.
    """

    mask: np.ndarray
    score: np.ndarray
    method: str
    status: str = "ok"
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def check_mask(mask: np.ndarray, positive: np.ndarray, core: float = 0.5,
               min_core_fraction: float = 0.1, max_fraction: float = 0.5) -> tuple:
    """(status, reason) of ``mask`` (n,) bool made from ``positive`` attention (n,).

    ``"no-attention"``: nothing positively attended. ``"empty"``: no point in the
    mask. ``"collapsed"``: the mask holds less than ``min_core_fraction`` of the
    attention's core (points >= ``core`` x its maximum), i.e. it is not where the
    annotator looked. ``"flooded"``: more than ``max_fraction`` of all points.
    """
    pos = np.asarray(positive, dtype=np.float32).reshape(-1)
    n = len(pos)
    peak = float(pos.max()) if n else 0.0
    if not peak > 0:
        return "no-attention", "nothing has been looked at (positive attention is all zero)"
    k = int(np.count_nonzero(mask))
    if k == 0:
        return "empty", "the mask is empty although the attention is not"
    hot = pos >= core * peak
    inside = float(np.count_nonzero(mask & hot)) / max(1, int(np.count_nonzero(hot)))
    if inside < min_core_fraction:
        return "collapsed", (f"the mask ({k} points) holds {inside:.0%} of the most-looked-at points "
                             f"(< {min_core_fraction:.0%})")
    if k > max_fraction * n:
        return "flooded", f"the mask holds {k / n:.0%} of all points (> {max_fraction:.0%})"
    return "ok", ""


def estimate_normals(xyz: np.ndarray, nbr: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """Unit normals ``(n, 3)``: smallest-eigenvalue direction of each point's ``nbr`` (n, k)
    neighbourhood (in chunks: the ``(chunk, k, 3)`` gathers stay small)."""
    out = np.empty((len(nbr), 3))
    for s in range(0, len(nbr), chunk):
        q = xyz[nbr[s:s + chunk]]
        q = q - q.mean(1, keepdims=True)
        _, vec = np.linalg.eigh(np.einsum("nki,nkj->nij", q, q))
        out[s:s + chunk] = vec[:, :, 0]
    return out


class GraphSegmenter:
    """Gaze-seeded random walker on a kNN graph of a point cloud.

    Parameters
    ----------
    xyz : (n, 3) float
        Points (metres, or give ``metres_per_unit``).
    colors : (n, 3) float in [0, 1], optional
    height : (n,) float, optional
        Height above the local ground (metres). With it, when a quarter of the
        foreground seeds stand above ``elevated_m``, seeds below ``ground_m`` are
        dropped and the near-horizontal points below ``ground_m`` in the region
        of interest become background seeds (outdoor scans).
    k : int
        Neighbours per point.
    roi_margin : float
        Metres around the xy box of the attended points (>= 5 % of the peak)
        where the walk is solved; its edge is background.
    normal_scale, color_scale : float
        Edge weight ``exp(-(1 - |n_i . n_j|) / normal_scale - |c_i - c_j|^2 / (2 color_scale^2)
        - (d_ij / (2 d_med))^2)``.

    Thread-safety: read-only after construction; :meth:`segment` may run in any thread.
    """

    def __init__(self, xyz, colors=None, height=None, k: int = 10, roi_margin: float = 10.0,
                 metres_per_unit: float = 1.0, normal_scale: float = 0.15, color_scale: float = 0.1,
                 elevated_m: float = 1.0, ground_m: float = 0.3):
        from scipy.sparse import coo_matrix
        from scipy.spatial import cKDTree

        xyz = np.asarray(xyz, dtype=np.float64) * metres_per_unit
        if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) < k + 1:
            raise ValueError(f"xyz: expected (n, 3) with n > {k}, got {xyz.shape}")
        self.xyz = xyz
        self.n = len(xyz)
        self.height = None if height is None else np.asarray(height, dtype=np.float64).reshape(-1)
        if self.height is not None and len(self.height) != self.n:
            raise ValueError(f"height: expected {self.n} values, got {len(self.height)}")
        self.roi_margin = float(roi_margin)
        self.elevated_m, self.ground_m = float(elevated_m), float(ground_m)
        dist, nbr = cKDTree(xyz).query(xyz, k=k + 1)
        dist, nbr = dist[:, 1:], nbr[:, 1:]
        normals = estimate_normals(xyz, np.concatenate([np.arange(self.n)[:, None], nbr], 1))
        self.flat = np.abs(normals[:, 2]) > 0.8      # horizontal surface (ground candidates)
        i = np.repeat(np.arange(self.n), k)
        j = nbr.ravel()
        d = dist.ravel()
        med = float(np.median(dist[:, 0])) or 1e-3
        e = (1.0 - np.abs(np.einsum("ij,ij->i", normals[i], normals[j]))) / normal_scale
        e += (d / (2.0 * med)) ** 2
        if colors is not None:
            c = np.asarray(colors, dtype=np.float64).reshape(self.n, -1)
            if np.ptp(c) > 0:       # missing colour (all zero) says nothing
                e += ((c[i] - c[j]) ** 2).sum(1) / (2.0 * color_scale ** 2)
        w = np.exp(-e) + 1e-6
        g = coo_matrix((w, (i, j)), shape=(self.n, self.n)).tocsr()
        self.W = (g + g.T).tocsr() * 0.5            # symmetric: kNN is not
        self.degree = np.asarray(self.W.sum(1)).ravel()

    def segment(self, positive, negative=None, core: float = 0.5) -> SegmentResult:
        """Mask ``(n,)`` from positive (and negative) attention ``(n,)`` (any scale)."""
        from scipy.sparse import diags
        from scipy.sparse.linalg import LinearOperator, cg

        pos = np.asarray(positive, dtype=np.float64).reshape(-1)
        if len(pos) != self.n:
            raise ValueError(f"positive: expected {self.n} values, got {len(pos)}")
        neg = np.zeros(self.n) if negative is None else np.asarray(negative, dtype=np.float64).reshape(-1)
        if len(neg) != self.n:
            raise ValueError(f"negative: expected {self.n} values, got {len(neg)}")
        score = np.zeros(self.n, dtype=np.float32)
        if not pos.max() > 0:
            st, why = check_mask(np.zeros(self.n, bool), pos)
            return SegmentResult(np.zeros(self.n, bool), score, "graph", st, why)
        nmax, pmax = float(neg.max()), float(pos.max())
        # a point belongs to the side that looked at it more (each relative to its maximum):
        # a rejecting fixation next to the object must not seed background on it
        # (ties go to the rejection: looked at as much to reject as to accept)
        rejected = ((neg / nmax >= pos / pmax) & (neg > 0)) if nmax > 0 else np.zeros(self.n, bool)
        bg = (neg >= core * nmax) & rejected if nmax > 0 else np.zeros(self.n, bool)
        fg = (pos >= core * pmax) & ~rejected
        # region of interest: the xy box of the attended points plus a margin
        seen = pos >= 0.05 * pos.max()
        lo = self.xyz[seen, :2].min(0) - self.roi_margin
        hi = self.xyz[seen, :2].max(0) + self.roi_margin
        roi = np.all((self.xyz[:, :2] >= lo) & (self.xyz[:, :2] <= hi), axis=1)
        idx = np.flatnonzero(roi)
        W = self.W[idx][:, idx]
        # background: ROI points with a neighbour outside it
        edge = np.asarray(W.sum(1)).ravel() < self.degree[idx] - 1e-9
        bg_l = bg[idx] | edge
        fg_l = fg[idx]
        if self.height is not None and fg.any():
            h = self.height[idx]
            # elevated object: a quarter of the seeds stand above elevated_m (the rest
            # can be the gaze's spill onto the ground around it)
            if np.mean(self.height[fg] > self.elevated_m) >= 0.25:
                # an elevated object: the gaze's spill onto the ground below seeds nothing,
                # and low *flat* points are background (the foot of a wall is not ground)
                fg_l = fg_l & (h >= self.ground_m)
                bg_l |= (h < self.ground_m) & self.flat[idx]
        fg_l &= ~bg_l
        if not fg_l.any():
            st, why = "empty", "no foreground seed left after the background seeds"
            return SegmentResult(np.zeros(self.n, bool), score, "graph", st, why)
        seeds = fg_l | bg_l
        u = np.flatnonzero(~seeds)
        x = np.zeros(len(idx))
        x[fg_l] = 1.0
        if len(u):
            deg = np.asarray(W.sum(1)).ravel()
            Wu = W[u]
            # L_uu x_u = W_us x_s; a small ridge pulls points cut off from every seed to 0
            A = (diags(deg[u] * (1 + 1e-6) + 1e-9) - Wu[:, u]).tocsr()
            b = Wu[:, np.flatnonzero(fg_l)].sum(1).A.ravel()
            dinv = 1.0 / A.diagonal()
            M = LinearOperator(A.shape, lambda v: dinv * v)
            xu, _ = cg(A, b, rtol=1e-4, maxiter=400, M=M)
            x[u] = np.clip(xu, 0.0, 1.0)
        score[idx] = x
        mask = score >= 0.5
        st, why = check_mask(mask, pos)
        return SegmentResult(mask, score, "graph", st, why)
