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


# CloudNeighbours.last_path when a label came before the background build finished
NOT_BUILT = "tree: neighbour graph not built yet"


class CloudNeighbours:
    """The kNN graph of a whole point cloud, built once per scan, for :func:`grow_cloud` without a tree per call.

    Region growing needs, for each candidate point (attention above the
    threshold), its ``k + 1`` nearest *candidates*. Without this structure
    grow_cloud builds a k-d tree over the candidates and asks it for every
    candidate (~0.1 s for 80,000 candidates on a quiet 2-core machine, up to
    1 s loaded). This structure holds what does not depend on the attention:
    each point's ``k + 1`` nearest points (a k-d tree over the whole cloud,
    once), the distance to the last of them, and whether that set is unique
    (no tie at its edge). For a candidate whose
    ``k + 1`` nearest points are all candidates (the inside of the attended
    blob) they *are* its nearest candidates (the set is unique). Only the
    others (the rim of the attended blob and its holes) are asked of a tree
    over the candidates, the very tree the graph-less path builds (same
    points, same construction): the region is bit-identical to the one grown
    without this structure, ties in distance included
    (``tests/test_regions_neighbours.py``).

    Parameters
    ----------
    xyz : (n, 3) float
        The cloud's points (float64; not copied if they are).
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
    Memory: about 45 bytes per point (1M points: ~45 MB; the build's tree is
    dropped once the graph is built). Thread-safety: the
    builder thread only publishes finished arrays; readers check
    :attr:`ready` first.
    """

    def __init__(self, xyz, k: int = 8, *, background: bool = False, chunk: int = 65536):
        if not (isinstance(k, (int, np.integer)) and k >= 1):
            raise InputError(f"k: expected an int >= 1, got {k!r}")
        self.xyz = np.ascontiguousarray(xyz, dtype=np.float64).reshape(-1, 3)
        self.n = len(self.xyz)
        self.k = int(k)
        self.chunk = max(1, int(chunk))
        self.error: str | None = None
        self.last_path = ""
        self.seconds = 0.0
        self.nbr = self.dk = self.unique = None
        self._is_c = self._loc = None         # inner_rows' work arrays (made by the build)
        self._lock = threading.Lock()
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
        # what the first label would otherwise pay for: the growing's BFS module and inner_rows' work arrays
        import scipy.sparse.csgraph  # noqa: F401
        # inner_rows' two (n,) work arrays, kept between labels (fresh ones cost a page fault per touched
        # page on every key); no reader sees them before _done is set
        self._is_c, self._loc = np.zeros(self.n, dtype=bool), np.zeros(self.n, dtype=np.int64)
        self.nbr, self.dk, self.unique = nbr, dk, unique
        self.seconds = time.perf_counter() - t0
        self._done.set()

    def inner_rows(self, cand: np.ndarray, kk: int):
        """The candidates whose ``kk`` nearest points are all candidates, and those points.

        Such a set (unique: no tie at its edge) is also the candidate's ``kk``
        nearest candidates, exactly what a tree over the candidates finds.

        Parameters
        ----------
        cand : (m,) int64, ascending
            The candidate points.
        kk : int
            Set size (``k + 1``: the point itself and its ``k`` neighbours).

        Returns
        -------
        (inner (m,) bool, nbr (i, kk) int64, dist_last (i,) float64) or None
            ``nbr``: the inner rows' sets as positions in ``cand``;
            ``dist_last``: the distance to the farthest of each set. None (and
            :attr:`last_path` says why) when the graph cannot answer.
        """
        if not self.ready:
            self.last_path = NOT_BUILT if self.error is None else \
                f"tree: neighbour graph failed ({self.error})"
            return None
        if kk != self.k + 1:
            self.last_path = f"tree: graph built for k={self.k}, asked for k={kk - 1}"
            return None
        with self._lock:                     # two labels at once share the work arrays
            # is_c is all False between calls, loc is read only where written
            is_c, loc = self._is_c, self._loc
            is_c[cand] = True
            try:
                g = self.nbr[cand]
                inner = is_c[g].all(axis=1) & self.unique[cand]
            finally:
                is_c[cand] = False
            loc[cand] = np.arange(len(cand))
            out = loc[g[inner]]
        self.last_path = "graph"
        return inner, out, self.dk[cand[inner]]


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


def _reach(seed: int, nbr: np.ndarray) -> np.ndarray:
    """(m,) bool: the nodes reachable from ``seed`` over the directed edges ``i -> nbr[i, j]`` of
    ``nbr (m, kk)`` (what :func:`_bfs` finds, breadth first in scipy's C instead of a numpy step per ring)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    m, kk = nbr.shape
    # kk edges per node in node order: the CSR arrays as they are, without a COO conversion's
    # sort and duplicate sum (the reachable set does not depend on either)
    g = csr_matrix((np.ones(m * kk, dtype=np.int8), nbr.ravel(), np.arange(0, m * kk + 1, kk)), shape=(m, m))
    out = np.zeros(m, dtype=bool)
    out[breadth_first_order(g, seed, directed=True, return_predecessors=False)] = True
    return out


def _grow_candidates(xyz, cand, a_cand, k, max_radius, neighbours) -> np.ndarray:
    """Positions in ``cand`` (m,) of the region grown from the largest ``a_cand`` over the candidates' kNN graph."""
    from scipy.spatial import cKDTree

    m = len(cand)
    kk = min(k + 1, m)
    got = None
    if neighbours is not None:
        if neighbours.n != len(xyz):
            raise InputError(f"neighbours: built for {neighbours.n} points, the cloud has {len(xyz)}")
        got = neighbours.inner_rows(cand, kk)
    tree = None

    def ask_tree(rows):
        # the graph only over the candidate points (the region cannot leave them); with the
        # precomputed graph only for the rows it cannot answer, on the same tree as without it
        nonlocal tree
        if tree is None:
            tree = cKDTree(xyz[cand])
        # rows are answered independently: every core gives the same answers, bit for bit, sooner
        # (the label key waits on this query; the graph build keeps to one core, it runs beside renders)
        d, i = tree.query(xyz[cand[rows]], k=kk, workers=-1)
        return d.reshape(len(rows), kk), i.reshape(len(rows), kk)

    if got is None:
        dist, nbr = ask_tree(np.arange(m))
        exact = np.ones(m, dtype=bool)
    else:
        inner, nbr_in, d_last = got
        nbr = np.empty((m, kk), dtype=np.int64)
        dist = np.empty((m, kk), dtype=np.float64)
        nbr[inner] = nbr_in
        dist[inner] = d_last[:, None]         # the last exact, the others no larger (asked if needed)
        rim = np.flatnonzero(~inner)
        if len(rim):
            dist[rim], nbr[rim] = ask_tree(rim)
        exact = ~inner
    if max_radius is None:
        med = np.median(dist[:, -1]) if kk > 1 else 0.0
        max_radius = 4.0 * med if med > 0 else np.inf
    far = np.flatnonzero(~exact & (dist[:, -1] > max_radius))
    if len(far):                              # inner rows with a neighbour beyond max_radius: every distance
        dist[far], nbr[far] = ask_tree(far)
    nbr = np.where(dist <= max_radius, nbr, np.arange(m)[:, None])
    sub = _reach(int(np.argmax(a_cand)), nbr)
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
