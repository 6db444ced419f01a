"""Attention-seeded region growing on point clouds, meshes and volumes (core: numpy, scipy when called).

Beside the other segmenter strategies of the core (:mod:`gaze3d.volume_regions`);
the viewer (``gaze3d.viewer.regions``) and the volume baselines use it.

The fallback when no interactive model is available: start at the element
with the most attention and grow over neighbours (kNN graph for clouds,
vertex adjacency for meshes, 6-connected voxels for volumes) while the
attention stays above ``rel_threshold * max`` (and, for volumes, the
intensity stays within ``intensity_tol`` of the seed's).
"""
from __future__ import annotations

import threading
import time

import numpy as np

from gaze3d.errors import InputError
from gaze3d.scan import Mesh, PointCloud, Volume


def _check(attention, n: int, name: str = "attention") -> np.ndarray:
    a = np.asarray(attention, dtype=np.float32).reshape(-1)
    if len(a) != n:
        raise InputError(f"{name}: expected {n} values (one per element), got {len(a)}")
    return a


def _bfs(seed: int, allowed: np.ndarray, neighbours) -> np.ndarray:
    """Boolean mask of the elements reachable from ``seed`` through ``allowed`` ones."""
    region = np.zeros(len(allowed), dtype=bool)
    region[seed] = True
    frontier = np.array([seed])
    while len(frontier):
        nb = neighbours(frontier)
        nb = nb[allowed[nb] & ~region[nb]]
        nb = np.unique(nb)
        region[nb] = True
        frontier = nb
    return region


class CloudNeighbours:
    """The kNN graph of a whole point cloud, built once per scan, for :func:`grow_cloud` without a tree per call.

    Region growing needs, for each candidate point (attention above the
    threshold), its ``k + 1`` nearest *candidates*. Today's answer builds a
    k-d tree over the candidates on every call (~0.1 s for 80,000 candidates
    on a quiet 2-core machine, up to 1 s loaded). This structure holds what
    does not depend on the attention: a k-d tree over every point, each
    point's ``k + 1`` nearest points, the distance to the last of them, and
    whether that set is unique (no tie at its edge). For a candidate whose
    ``k + 1`` nearest points are all candidates (the inside of the attended
    blob) they *are* its nearest candidates; the few others (the blob's rim)
    ask the tree for more points. A tie in distance at the edge of a set
    (quantised LAS coordinates) leaves which of the tied points a tree over
    the candidates keeps to that tree's internals: the region is then grown
    with none and with all of them, and when both agree (the tied points are
    inside the region anyway) that is the region. Where the answer could
    still differ (the two disagree, or a candidate's nearest candidates lie
    far beyond its nearest points), :func:`grow_cloud` builds the tree over
    the candidates as before: the region is bit-identical either way
    (``tests/test_regions_neighbours.py``).

    Parameters
    ----------
    xyz : (n, 3) float
        The cloud's points (copied as float64).
    k : int
        Neighbours per point of the growing graph (``grow_cloud``'s ``k``).
    background : bool
        Build in a daemon thread started now (a viewer: the scan shows while it
        builds); :attr:`ready` says when it is done. False: build now.
    chunk : int
        Points per k-d tree query while building (bounds the memory of a step
        and lets :meth:`close` stop a build between steps).

    Attributes
    ----------
    ready : bool
        The graph is built (before that, :func:`grow_cloud` builds a tree per call).
    error : str or None
        Why the build failed (the thread survives any input; grow_cloud then
        builds a tree per call as before).
    last_path : str
        What the last :func:`grow_cloud` with this structure used: ``"graph"``,
        or ``"tree: <why>"`` when it built a tree over the candidates.
    seconds : float
        How long the build took.

    Notes
    -----
    Memory: about 70 bytes per point (1M points: ~70 MB). Thread-safety: the
    builder thread only publishes finished arrays; readers check
    :attr:`ready` first.
    """

    def __init__(self, xyz, k: int = 8, *, background: bool = False, chunk: int = 65536):
        if not (isinstance(k, (int, np.integer)) and k >= 1):
            raise InputError(f"k: expected an int >= 1, got {k!r}")
        self.xyz = np.array(xyz, dtype=np.float64).reshape(-1, 3)
        self.n = len(self.xyz)
        self.k = int(k)
        self.chunk = max(1, int(chunk))
        self.error: str | None = None
        self.last_path = ""
        self.seconds = 0.0
        self.tree = None
        self.nbr = self.dk = self.unique = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._build_safe, name="gaze3d-neighbours", daemon=True)
            self._thread.start()
        else:
            self._build()

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self.error is None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the build (at most ``timeout`` s); returns :attr:`ready`."""
        self._done.wait(timeout)
        return self.ready

    def close(self) -> None:
        """Stop a build in progress (between two chunks) and wait for its thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _build_safe(self) -> None:
        try:
            self._build()
        except BaseException as exc:     # the builder thread survives any input: grow_cloud builds trees
            self.error = f"{type(exc).__name__}: {exc}"
            self._done.set()

    def _build(self) -> None:
        from scipy.spatial import cKDTree

        t0 = time.perf_counter()
        kk = self.k + 1
        if self.n <= kk + 1:
            raise InputError(f"CloudNeighbours: expected more than {kk + 1} points, got {self.n}")
        if not np.isfinite(self.xyz).all():
            raise InputError("CloudNeighbours xyz: expected finite coordinates")
        tree = cKDTree(self.xyz)
        nbr = np.empty((self.n, kk), dtype=np.int32 if self.n < 2**31 else np.int64)
        dk = np.empty(self.n, dtype=np.float64)
        unique = np.empty(self.n, dtype=bool)
        for lo in range(0, self.n, self.chunk):
            if self._stop.is_set():
                self.error = "stopped"
                self._done.set()
                return
            hi = min(lo + self.chunk, self.n)
            # one more than the set: a tie with the next point means the set is not unique
            d, i = tree.query(self.xyz[lo:hi], k=kk + 1)
            nbr[lo:hi] = i[:, :kk]
            dk[lo:hi] = d[:, kk - 1]
            unique[lo:hi] = d[:, kk] > d[:, kk - 1]
        self.tree, self.nbr, self.dk, self.unique = tree, nbr, dk, unique
        self.seconds = time.perf_counter() - t0
        self._done.set()

    def candidate_graph(self, cand: np.ndarray, kk: int):
        """The ``kk`` nearest candidates of each candidate, exactly as a tree over the candidates finds them.

        Parameters
        ----------
        cand : (m,) int64, ascending
            The candidate points.
        kk : int
            Set size (``k + 1``: the point itself and its ``k`` neighbours).

        Returns
        -------
        (nbr (m, kk) int64, dist (m, kk) float64, exact (m,) bool, tied) or None
            ``nbr`` as positions in ``cand``; ``dist`` their distances where
            ``exact``, else only the last column is exact (the others are no
            larger: the caller asks :meth:`exact_rows` if it needs them).
            The last column of ``dist`` is always the ``kk``-th candidate's
            distance. ``tied``: None, or ``(rows (t,), cols (t,))`` where rows
            have a tie at the edge of their set: their ``nbr`` holds only the
            candidates nearer than the edge (padded with the row itself, no
            edge) and ``cols`` the tied candidates, of which a tree over the
            candidates would keep some. None (and :attr:`last_path` says why):
            not answerable without a tree over the candidates.
        """
        if not self.ready:
            self.last_path = "tree: neighbour graph not built yet" if self.error is None else \
                f"tree: neighbour graph failed ({self.error})"
            return None
        if kk != self.k + 1:
            self.last_path = f"tree: graph built for k={self.k}, asked for k={kk - 1}"
            return None
        m = len(cand)
        is_c = np.zeros(self.n, dtype=bool)
        is_c[cand] = True
        loc = np.empty(self.n, dtype=np.int64)
        loc[cand] = np.arange(m)
        g = self.nbr[cand]
        inner = is_c[g].all(axis=1) & self.unique[cand]
        nbr = np.empty((m, kk), dtype=np.int64)
        dist = np.empty((m, kk), dtype=np.float64)
        exact = np.zeros(m, dtype=bool)
        tied_r, tied_c = [], []
        nbr[inner] = loc[g[inner]]
        dist[inner] = self.dk[cand[inner], None]        # the last column exact, the others <= it
        rim = np.flatnonzero(~inner)
        kq = 4 * kk
        while len(rim):
            if kq >= self.n:
                self.last_path = "tree: a candidate's nearest candidates are farther than the graph reaches"
                return None
            d, i = self.tree.query(self.xyz[cand[rim]], k=kq)
            c = is_c[i]
            cs = np.cumsum(c, axis=1)
            enough = cs[:, -1] >= kk
            p = np.argmax(cs >= kk, axis=1)
            dstar = d[np.arange(len(rim)), p]
            # every point nearer than the last one returned is returned: the kk-th candidate is
            # known when it is nearer than that, and the set is unique when no other candidate ties it
            known = enough & (dstar < d[:, -1])
            tie = known & ((c & (d <= dstar[:, None])).sum(axis=1) != kk)
            plain = known & ~tie
            if plain.any():
                r = rim[plain]
                sel = c[plain] & (cs[plain] <= kk)
                nbr[r] = loc[i[plain][sel]].reshape(-1, kk)
                dist[r] = d[plain][sel].reshape(-1, kk)
                exact[r] = True
            for j in np.flatnonzero(tie):       # few rows: the nearer candidates, and the tied ones apart
                row, cj, dj = rim[j], c[j], d[j]
                near = loc[i[j][cj & (dj < dstar[j])]]
                nbr[row] = row
                nbr[row, :len(near)] = near
                dist[row] = dstar[j]
                dist[row, :len(near)] = dj[cj & (dj < dstar[j])]
                exact[row] = True
                ties = loc[i[j][cj & (dj == dstar[j])]]
                tied_r.append(np.full(len(ties), row))
                tied_c.append(ties)
            rim = rim[~known]
            kq *= 4
        self.last_path = "graph"
        tied = (np.concatenate(tied_r), np.concatenate(tied_c)) if tied_r else None
        return nbr, dist, exact, tied

    def exact_rows(self, cand: np.ndarray, rows: np.ndarray, kk: int):
        """(nbr (r, kk) positions in ``cand``, dist (r, kk)) of candidates ``rows`` whose ``kk`` nearest
        points are all candidates (the inner rows of :meth:`candidate_graph`), with every distance exact."""
        d, i = self.tree.query(self.xyz[cand[rows]], k=kk)
        return np.searchsorted(cand, i.reshape(len(rows), kk)), d.reshape(len(rows), kk)


def grow_cloud(xyz, attention, rel_threshold: float = 0.2, k: int = 8, max_radius: float | None = None,
               neighbours: CloudNeighbours | None = None) -> np.ndarray:
    """Region of a point cloud grown from the attention peak over a kNN graph.

    Parameters
    ----------
    xyz : (n, 3) float
    attention : (n,) float
    rel_threshold : float
        Points join while their attention is at least this fraction of the peak.
    k : int
        Neighbours per point in the graph.
    max_radius : float, optional
        Ignore neighbours farther than this (world units); default 4x the median kNN distance.
    neighbours : CloudNeighbours, optional
        The cloud's precomputed kNN graph (same ``xyz``): no tree is built per
        call where it answers; the region is the same.

    Returns
    -------
    region : (n,) bool
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    a = _check(attention, len(xyz))
    if not 0 < rel_threshold <= 1:
        raise InputError(f"rel_threshold: expected a value in (0, 1], got {rel_threshold}")
    peak = float(a.max())
    if not peak > 0:
        return np.zeros(len(xyz), dtype=bool)
    cand = np.flatnonzero(a >= rel_threshold * peak)
    region = np.zeros(len(xyz), dtype=bool)
    region[cand[_grow_candidates(xyz, cand, a[cand], k, max_radius, neighbours)]] = True
    return region


def grow_cloud_sparse(xyz, index, attention, rel_threshold: float = 0.2, k: int = 8,
                      max_radius: float | None = None, neighbours: CloudNeighbours | None = None) -> np.ndarray:
    """:func:`grow_cloud` from the nonzero attention only (no array over the whole cloud).

    Parameters
    ----------
    xyz : (n, 3) float
    index : (m,) int, strictly ascending
        The points with nonzero attention (every other point has none).
    attention : (m,) float
        Their attention.
    rel_threshold, k, max_radius, neighbours
        As :func:`grow_cloud`.

    Returns
    -------
    region : (r,) int64 ascending
        The points of the region: ``np.flatnonzero(grow_cloud(...))`` of the
        same attention spread over the cloud, bit for bit.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    a = _check(attention, len(index))
    if len(index) and (index[0] < 0 or index[-1] >= len(xyz) or np.any(np.diff(index) <= 0)):
        raise InputError(f"index: expected strictly ascending point indices in [0, {len(xyz)})")
    if not 0 < rel_threshold <= 1:
        raise InputError(f"rel_threshold: expected a value in (0, 1], got {rel_threshold}")
    peak = float(a.max()) if len(a) else 0.0
    if not peak > 0:
        return np.zeros(0, dtype=np.int64)
    allowed = a >= rel_threshold * peak
    cand = index[allowed]
    return cand[_grow_candidates(xyz, cand, a[allowed], k, max_radius, neighbours)]


def _reach(seed: int, m: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(m,) bool: the nodes reachable from ``seed`` over the directed edges ``rows -> cols`` (what
    :func:`_bfs` finds, breadth first in scipy's C instead of a numpy step per ring)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    g = csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(m, m))
    out = np.zeros(m, dtype=bool)
    out[breadth_first_order(g, seed, directed=True, return_predecessors=False)] = True
    return out


def _grow_candidates(xyz, cand, a_cand, k, max_radius, neighbours) -> np.ndarray:
    """Positions in ``cand`` (m,) of the region grown from the largest ``a_cand`` over the candidates' kNN graph."""
    max_radius_arg = max_radius
    kk = min(k + 1, len(cand))
    got = None
    if neighbours is not None:
        if neighbours.n != len(xyz):
            raise InputError(f"neighbours: built for {neighbours.n} points, the cloud has {len(xyz)}")
        got = neighbours.candidate_graph(cand, kk)
    if got is None:
        # graph only over the candidate points: the region cannot leave them
        from scipy.spatial import cKDTree

        tree = cKDTree(xyz[cand])
        dist, nbr = tree.query(xyz[cand], k=kk)
        dist, nbr = dist.reshape(len(cand), kk), nbr.reshape(len(cand), kk)
        exact = tied = None
    else:
        nbr, dist, exact, tied = got
    if max_radius is None:
        med = np.median(dist[:, -1]) if kk > 1 else 0.0
        max_radius = 4.0 * med if med > 0 else np.inf
    if exact is not None:
        # inner rows know their last distance only: where it is beyond max_radius, ask for all of them
        far = np.flatnonzero(~exact & (dist[:, -1] > max_radius))
        if len(far):
            nbr[far], dist[far] = neighbours.exact_rows(cand, far, kk)
    nbr = np.where(dist <= max_radius, nbr, np.arange(len(cand))[:, None])
    seed = int(np.argmax(a_cand))
    m = len(cand)
    rows = np.repeat(np.arange(m), nbr.shape[1])
    sub = _reach(seed, m, rows, nbr.ravel())
    if tied is not None:
        # a tree over the candidates keeps some of the tied points (its internals say which): the
        # region grown without any of them (sub) and with all of them bound it; equal bounds are it
        t_rows, t_cols = tied
        keep = dist[t_rows, -1] <= max_radius
        if keep.any() and not np.array_equal(
                sub, _reach(seed, m, np.r_[rows, t_rows[keep]], np.r_[nbr.ravel(), t_cols[keep]])):
            neighbours.last_path = "tree: a tie in distance at the edge of a candidate's neighbour set decides"
            return _grow_candidates(xyz, cand, a_cand, k, max_radius_arg, None)
    return np.flatnonzero(sub)


def grow_mesh(vertices, faces, attention, rel_threshold: float = 0.2) -> np.ndarray:
    """Region of mesh vertices grown from the attention peak over edges. Returns (n,) bool."""
    from scipy.sparse import coo_matrix

    n = len(vertices)
    a = _check(attention, n)
    peak = float(a.max())
    if not peak > 0:
        return np.zeros(n, dtype=bool)
    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    indptr, indices = adj.indptr, adj.indices

    def neighbours(front):
        return np.concatenate([indices[indptr[v]:indptr[v + 1]] for v in front]) if len(front) else front

    return _bfs(int(np.argmax(a)), a >= rel_threshold * peak, neighbours)


def grow_volume(array, attention, rel_threshold: float = 0.2, intensity_tol: float | None = None,
                spacing=(1.0, 1.0, 1.0), reach_mm: float = 15.0) -> np.ndarray:
    """Flood fill (6-connected) from the voxel with the highest attention, by intensity.

    Volume attention concentrates where the gaze rays enter a structure, so the
    fill is led by intensity: voxels join while their intensity stays within
    ``intensity_tol`` of the seed's, inside the looked-at zone (voxels with
    attention >= 1 % of the peak) grown by ``reach_mm``, which keeps the fill
    from leaking into distant tissue of the same intensity.

    Parameters
    ----------
    array : (I, J, K) image intensities
    attention : (I, J, K) float
    rel_threshold : float
        The attended core (attention >= this fraction of the peak) always belongs
        to the candidates; it also sets the seed intensity.
    intensity_tol : float, optional
        Default: 3 robust standard deviations (1.4826 MAD) of the intensities of
        the attended core, at least 5 % of the image's 2nd-98th percentile range.
    spacing : (3,) float
        Voxel size in mm (for ``reach_mm``).
    reach_mm : float
        How far beyond the looked-at zone the fill may go.

    Returns
    -------
    region : (I, J, K) bool
    """
    from scipy import ndimage

    img = np.asarray(array, dtype=np.float32)
    att = np.asarray(attention, dtype=np.float32)
    if att.shape != img.shape:
        raise InputError(f"attention: expected shape {img.shape} (the volume grid), got {att.shape}")
    if not 0 < rel_threshold <= 1:
        raise InputError(f"rel_threshold: expected a value in (0, 1], got {rel_threshold}")
    peak = float(att.max())
    if not peak > 0:
        return np.zeros(img.shape, dtype=bool)
    seed = np.unravel_index(int(np.argmax(att)), att.shape)
    # intensity statistics of the attended core, robust (median, MAD): the core sits
    # where rays enter the structure, so a block around the seed would straddle its border
    core_vals = img[att >= max(rel_threshold, 0.8) * peak]
    seed_val = float(np.median(core_vals))
    if intensity_tol is None:
        lo, hi = np.percentile(img[::2, ::2, ::2], [2, 98])
        mad = float(np.median(np.abs(core_vals - seed_val)))
        intensity_tol = max(3.0 * 1.4826 * mad, 0.05 * float(hi - lo), 1e-6)
    steps = int(np.ceil(reach_mm / max(float(np.min(spacing)), 1e-6)))
    zone = att >= 0.01 * peak
    if steps > 0:
        zone = ndimage.binary_dilation(zone, iterations=steps)
    allowed = zone & (np.abs(img - seed_val) <= intensity_tol)
    allowed[seed] = True
    comp, _ = ndimage.label(allowed)
    return comp == comp[seed]


def grow_region(scan, attention, rel_threshold: float = 0.2, **kw) -> np.ndarray:
    """Attention-seeded region of any scan: (n,) bool for clouds/meshes, (I, J, K) bool for volumes."""
    if isinstance(scan, PointCloud):
        return grow_cloud(scan.xyz, attention, rel_threshold, **kw)
    if isinstance(scan, Mesh):
        return grow_mesh(scan.vertices, scan.faces, attention, rel_threshold)
    if isinstance(scan, Volume):
        kw.setdefault("spacing", scan.spacing)
        return grow_volume(scan.array, np.asarray(attention).reshape(scan.shape), rel_threshold, **kw)
    raise InputError(f"scan: expected a PointCloud, Mesh or Volume, got {type(scan).__name__}")
