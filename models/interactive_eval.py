"""Interactive-segmentation protocol with simulated gaze (used by ``bench/interactive.py``).

Per object, fixations are added one at a time as an annotator would correct
the current mask: the first on the visible object point nearest the
object's visible centre, each next one on the centre of the larger error
region (missed object points -> a positive fixation, wrongly included points
-> a negative one), "centre" being the error point farthest from any correct
point. After every fixation the mask is recomputed and its IoU with the
object recorded. Three methods run on the same fixation targets:

* ``gaze+net``: the network given accumulated simulated gaze attention;
* ``click+net``: the same network given click maps at the exact fixation
  targets (a Gaussian of the 3D distance with the foveal sigma's footprint
  at that viewing distance: no tracker noise, no visibility spread);
* ``gaze+grow``: no network: attention threshold (>= half the max) as seeds,
  region growing over the 3D neighbour graph (edges shorter than
  ``grow_radius`` with height step <= ``grow_dz``) within the seeds' layer
  (points more than 1 m above the local ground proxy, or the others, as
  the majority of seeds), negatively attended points blocked;
* ``gaze+graph``: no network: the random walker of
  :class:`~gaze3d.models.segment.GraphSegmenter` (kNN graph with normals and
  colour) seeded by the same attention.

Every mask is checked (:func:`~gaze3d.models.segment.check_mask`); the steps
where a method's mask was empty are counted (``ObjectResult.empty``), and the
time of every mask update is kept (``ObjectResult.seconds``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from .features import height_above_local_min
from .gaze_sim import AnnotatorSimulator, GazeModel, click_map

METHODS = ("gaze+net", "click+net", "gaze+grow", "gaze+graph")
NET_METHODS = ("gaze+net", "click+net")


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    u = np.count_nonzero(pred | truth)
    return np.count_nonzero(pred & truth) / u if u else 1.0


def _centre_of(points_idx: np.ndarray, others_idx: np.ndarray, xyz: np.ndarray) -> int:
    from scipy.spatial import cKDTree

    if len(others_idx) == 0:
        return int(points_idx[len(points_idx) // 2])
    d, _ = cKDTree(xyz[others_idx]).query(xyz[points_idx], k=1)
    return int(points_idx[int(np.argmax(d))])


class RegionGrower:
    """Attention-seeded region growing on a radius graph of the local points."""

    def __init__(self, xyz: np.ndarray, radius: float, max_dz: float, elevated=None):
        from scipy.sparse import coo_matrix
        from scipy.spatial import cKDTree

        pairs = cKDTree(xyz).query_pairs(radius, output_type="ndarray")
        keep = np.abs(xyz[pairs[:, 0], 2] - xyz[pairs[:, 1], 2]) <= max_dz
        self.pairs = pairs[keep]
        self.n = len(xyz)
        self._coo = coo_matrix
        self.elevated = np.zeros(self.n, bool) if elevated is None else np.asarray(elevated, bool)

    def grow(self, pos: np.ndarray, neg: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        from scipy.sparse.csgraph import connected_components

        mask = np.zeros(self.n, dtype=bool)
        if pos.max() <= 0:
            return mask
        seeds = pos >= threshold * pos.max()
        layer = self.elevated if self.elevated[seeds].mean() >= 0.5 else ~self.elevated
        seeds &= layer
        blocked = (neg >= threshold * neg.max()) & ~seeds if neg.max() > 0 else np.zeros_like(seeds)
        blocked |= ~layer
        ok = ~blocked[self.pairs[:, 0]] & ~blocked[self.pairs[:, 1]]
        p = self.pairs[ok]
        g = self._coo((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(self.n, self.n))
        _, comp = connected_components(g, directed=False)
        return np.isin(comp, np.unique(comp[seeds])) & ~blocked


@dataclass
class ObjectResult:
    tile: str
    object_id: int
    object_class: int
    n_points: int
    ious: Dict[str, List[float]] = field(default_factory=dict)
    empty: Dict[str, int] = field(default_factory=dict)       # steps with an empty mask
    seconds: Dict[str, List[float]] = field(default_factory=dict)   # per mask update


def run_object(segmenter, tile, obj_id: int, max_fix: int = 20, gaze: GazeModel = None,
               seed: int = 0, margin: float = 15.0, grow_radius: float = None,
               grow_dz: float = 0.5, methods=METHODS, graph=None) -> ObjectResult:
    """Run the protocol on one object; ``segmenter.set_scan`` must hold ``tile``'s points
    (``segmenter`` may be None when no ``*+net`` method runs).

    ``methods`` : subset of :data:`METHODS` to run (each follows its own corrections).
    ``graph`` : a :class:`~gaze3d.models.segment.GraphSegmenter` on ``tile``'s points
    (built here when ``gaze+graph`` runs and none is given).
    """
    import time

    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods: expected a non-empty subset of {METHODS}, got {methods!r}")
    if segmenter is None and any(m in NET_METHODS for m in methods):
        raise ValueError(f"segmenter: needed for {NET_METHODS}")
    xyz = tile.xyz
    if "gaze+graph" in methods and graph is None:
        graph = tile_graph(tile)
    truth = tile.objects == obj_id
    obj = np.flatnonzero(truth)
    sim = AnnotatorSimulator(xyz, gaze, seed=seed)
    cam, vis = sim.view(obj)
    # one gaze-noise stream per method, all from the same state: a method's numbers do not
    # depend on which other methods run beside it, and equal targets get equal gaze
    state = sim.rng.bit_generator.state
    sims = {}
    for m in methods:
        sims[m] = AnnotatorSimulator(xyz, gaze, seed=seed)
        sims[m].rng.bit_generator.state = state
        sims[m]._offset_dir = sim._offset_dir
    lo = xyz[obj, :2].min(0) - margin
    hi = xyz[obj, :2].max(0) + margin
    local = np.flatnonzero(np.all((xyz[:, :2] >= lo) & (xyz[:, :2] <= hi), axis=1))
    # the radius graph costs seconds per object: only where region growing runs
    grower = None
    if "gaze+grow" in methods:
        grower = RegionGrower(xyz[local], grow_radius or 2.0 * tile.voxel_size, grow_dz,
                              elevated=height_above_local_min(xyz, 10.0)[local] > 1.0)
    sigma = np.radians(sim.model.sigma_deg)

    n = len(xyz)
    acc = {m: (np.zeros(n, np.float32), np.zeros(n, np.float32)) for m in methods}
    res = ObjectResult(tile.name, obj_id, int(tile.object_class[obj_id]), len(obj),
                       {m: [] for m in methods}, {m: 0 for m in methods}, {m: [] for m in methods})
    preds = {m: np.zeros(n, dtype=bool) for m in methods}
    vis_obj = obj[vis[obj]] if vis[obj].any() else obj
    first = vis_obj[np.argmin(np.linalg.norm(xyz[vis_obj] - xyz[vis_obj].mean(0), axis=1))]
    for k in range(max_fix):
        for m in methods:
            if k == 0:
                target, positive = int(first), True
            else:
                pred = preds[m]
                fn = np.flatnonzero(truth & ~pred & vis)
                fp = np.flatnonzero(~truth & pred & vis)
                if len(fn) == 0 and len(fp) == 0:   # perfect: keep looking at the object
                    fn = vis_obj
                positive = len(fn) >= len(fp)
                err = fn if positive else fp
                correct = np.flatnonzero(~(truth ^ pred))
                correct = np.intersect1d(correct, local, assume_unique=False)
                target = _centre_of(err, correct, xyz)
            pos, neg = acc[m]
            if m == "click+net":
                dist = float(np.linalg.norm(xyz[target] - cam.position))
                cm = click_map(xyz[local], xyz[target], radius=dist * np.tan(sigma))
                dst = pos if positive else neg
                dst[local] = np.maximum(dst[local], cm)
            else:
                a = sims[m].attention(cam, vis, xyz[[target]])
                (pos if positive else neg)[:] += a
            t0 = time.perf_counter()
            if m == "gaze+grow":
                pred = np.zeros(n, dtype=bool)
                pred[local] = grower.grow(pos[local], neg[local])
            elif m == "gaze+graph":
                pred = graph.segment(pos, neg if neg.max() > 0 else None).mask
            else:
                pred = segmenter.update(pos, neg if neg.max() > 0 else None) >= 0.5
            res.seconds[m].append(time.perf_counter() - t0)
            preds[m] = pred
            res.empty[m] += int(not pred.any())
            res.ious[m].append(iou(pred, truth))
    return res


def tile_graph(tile):
    """The graph baseline on ``tile`` (colour when the tile has any, heights above a terrain model)."""
    from .features import height_above_dtm
    from .segment import GraphSegmenter

    return GraphSegmenter(tile.xyz, tile.feats[:, 2:5], height=height_above_dtm(tile.xyz))


def summarise(results: List[ObjectResult], ks=(1, 3, 5, 10), thresholds=(0.80, 0.85, 0.90),
              cap: int = 20) -> List[dict]:
    """One row per method: mean IoU@k and mean NoF@t (capped; failures count as ``cap``),
    the fraction of steps whose mask was empty and the median mask-update time. A ``k``
    beyond the curves (fewer fixations were run) has no column."""
    rows = []
    for m in [m for m in METHODS if m in results[0].ious]:
        curves = np.array([r.ious[m] for r in results])
        row = {"method": m, "objects": len(results)}
        for k in [k for k in ks if k <= curves.shape[1]]:
            row[f"IoU@{k}"] = float(curves[:, k - 1].mean())
        for t in thresholds:
            reach = curves >= t
            nof = np.where(reach.any(1), reach.argmax(1) + 1, cap)
            row[f"NoF@{int(t * 100)}"] = float(nof.mean())
            row[f"fail@{int(t * 100)}"] = int((~reach.any(1)).sum())
        if results[0].empty:
            row["empty"] = float(sum(r.empty[m] for r in results) / curves.size)
            row["ms/update"] = float(np.median(np.concatenate([r.seconds[m] for r in results])) * 1e3)
        rows.append(row)
    return rows


def session_seed(obj_id: int, session: int, base: int = 0) -> int:
    """Seed of gaze session ``session`` on object ``obj_id`` (view and gaze noise); session 0 of
    base 0 is the first repeat of :func:`evaluate_split`, so benches can repeat a validation."""
    return base + 1000 * session + int(obj_id)


def validation_score(results: List[ObjectResult], method: str = "gaze+net") -> float:
    """Mean IoU over all objects and all fixations of ``method``: the area under the
    IoU-vs-fixations curve, the number used to choose between trained models."""
    return float(np.mean([r.ious[method] for r in results]))


def evaluate_split(segmenter, tiles, split: str = "val", max_fix: int = 10, repeats: int = 2,
                   gaze: GazeModel = None, methods=("gaze+net",), log=print) -> List[ObjectResult]:
    """Run the protocol on every object of ``split`` in ``tiles``, ``repeats`` times each
    (different simulated views and noise), with ``segmenter`` (an ``InteractiveSegmenter``)."""
    from gaze3d.scan import PointCloud

    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive int, got {repeats!r}")
    gaze = gaze or GazeModel(accuracy_deg=0.5, precision_deg=0.1, sigma_deg=1.0)
    results = []
    for tile in tiles:
        segmenter.voxel_size = tile.voxel_size
        segmenter.set_scan(PointCloud(xyz=tile.xyz, colors=tile.feats[:, 2:5],
                                      intensity=tile.feats[:, 1]))
        for o in tile.split_objects(split):
            for r in range(repeats):
                res = run_object(segmenter, tile, int(o), max_fix, gaze, seed=session_seed(o, r),
                                 methods=methods)
                results.append(res)
                if log:
                    log(f"  {split} {tile.name} object {o} repeat {r}: " + ", ".join(
                        f"{m} IoU@1/{max_fix} = {res.ious[m][0]:.2f}/{res.ious[m][-1]:.2f}"
                        for m in methods))
    if not results:
        raise ValueError(f"tiles: no objects in the {split} split")
    return results
