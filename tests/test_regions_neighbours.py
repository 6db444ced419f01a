"""Region growing with the cloud's precomputed kNN graph (``gaze3d.regions.CloudNeighbours``): the same regions.

The label key at 1M points must not build a k-d tree over every candidate on
each press; the graph built once per scan (a background thread in the viewer)
answers the inner candidates, a tree over the candidates the rest. The labels
must stay bit-identical to the ones grown before the graph existed: the
reference below is ``grow_cloud`` as it was (gaze3d/regions.py at 4502c02).
"""
from __future__ import annotations

import numpy as np
import pytest

from viewer_helpers import box_scene, fixate, scene_camera

pytestmark = pytest.mark.timeout(120)


def _reference_grow_cloud(xyz, attention, rel_threshold, k=8, max_radius=None):
    """grow_cloud before the neighbour graph: a tree over the candidates, breadth first in numpy."""
    from scipy.spatial import cKDTree

    xyz = np.asarray(xyz, dtype=np.float64)
    a = np.asarray(attention, dtype=np.float32).reshape(-1)
    peak = float(a.max())
    if not peak > 0:
        return np.zeros(len(xyz), dtype=bool)
    cand = np.flatnonzero(a >= rel_threshold * peak)
    kk = min(k + 1, len(cand))
    dist, nbr = cKDTree(xyz[cand]).query(xyz[cand], k=kk)
    dist, nbr = dist.reshape(len(cand), kk), nbr.reshape(len(cand), kk)
    if max_radius is None:
        med = np.median(dist[:, -1]) if kk > 1 else 0.0
        max_radius = 4.0 * med if med > 0 else np.inf
    nbr = np.where(dist <= max_radius, nbr, np.arange(len(cand))[:, None])
    local = np.zeros(len(cand), dtype=bool)
    seed = int(np.argmax(a[cand]))
    local[seed] = True
    front = np.array([seed])
    while len(front):
        nb = nbr[front].ravel()
        nb = np.unique(nb[~local[nb]])
        local[nb] = True
        front = nb
    region = np.zeros(len(xyz), dtype=bool)
    region[cand[local]] = True
    return region


def _terrain(n, quantum, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, (n, 2))
    xyz = np.c_[xy, 3 * np.sin(xy[:, 0] / 7) + rng.normal(0, 0.05, n)]
    if quantum:                       # LAS-like quantised coordinates: many ties in distance
        xyz = np.round(xyz / quantum) * quantum
    return xyz


def _blob(xyz, rng, speckle):
    c = rng.uniform(15, 45, 2)
    r = rng.uniform(2, 7)
    a = np.exp(-((xyz[:, :2] - c) ** 2).sum(axis=1) / (2 * r * r)).astype(np.float32)
    a[a < 0.02] = 0
    if speckle:                       # holes, like occlusion on a rough surface: a long rim
        a *= (rng.uniform(0, 1, len(a)) > 0.3).astype(np.float32)
    return a


@pytest.mark.parametrize("quantum", [None, 0.05, 0.25])
def test_graph_regions_are_bit_identical_to_a_tree_per_call(quantum):
    from gaze3d.regions import CloudNeighbours, grow_cloud, grow_cloud_sparse

    xyz = _terrain(60_000, quantum, seed=1)
    nb = CloudNeighbours(xyz)
    assert nb.ready and nb.error is None
    rng = np.random.default_rng(2)
    for trial in range(6):
        a = _blob(xyz, rng, speckle=trial % 2 == 1)
        max_radius = 0.4 if trial == 4 else None      # about the k-th neighbour: many rows need every distance
        ref = _reference_grow_cloud(xyz, a, 0.25, max_radius=max_radius)
        assert ref.sum() > 50
        nb.last_path = ""
        got = grow_cloud(xyz, a, 0.25, max_radius=max_radius, neighbours=nb)
        assert nb.last_path == "graph"                 # the precomputed graph answered
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(grow_cloud(xyz, a, 0.25, max_radius=max_radius), ref)
        idx = np.flatnonzero(a)
        sparse = grow_cloud_sparse(xyz, idx, a[idx], 0.25, max_radius=max_radius, neighbours=nb)
        np.testing.assert_array_equal(sparse, np.flatnonzero(ref))
    # a graph built for another k is not used, and says so: the same region from a tree
    a = _blob(xyz, rng, speckle=False)
    np.testing.assert_array_equal(grow_cloud(xyz, a, 0.25, k=5, neighbours=nb),
                                  _reference_grow_cloud(xyz, a, 0.25, k=5))
    assert nb.last_path.startswith("tree: graph built for k=8")


def test_graph_regions_on_a_real_las_tile(shared_data):
    from gaze3d.io import load_scan
    from gaze3d.regions import CloudNeighbours, grow_cloud_sparse

    cloud = load_scan(shared_data / "pointcloud/ign_lidarhd/870000_6618000.subset.50mx100m.las")
    xyz = cloud.xyz
    nb = CloudNeighbours(xyz)
    rng = np.random.default_rng(3)
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    for trial in range(4):
        c = lo[:2] + rng.uniform(0.2, 0.8, 2) * (hi - lo)[:2]
        a = np.exp(-((xyz[:, :2] - c) ** 2).sum(axis=1) / (2 * 6.0 ** 2)).astype(np.float32)
        a[a < 0.02] = 0
        if trial % 2:
            a *= (rng.uniform(0, 1, len(a)) > 0.3).astype(np.float32)
        idx = np.flatnonzero(a)
        ref = np.flatnonzero(_reference_grow_cloud(xyz, a, 0.25))
        assert len(ref) > 50
        np.testing.assert_array_equal(grow_cloud_sparse(xyz, idx, a[idx], 0.25, neighbours=nb), ref)
        assert nb.last_path == "graph"


def test_sparse_growing_checks_its_input():
    from gaze3d.errors import InputError
    from gaze3d.regions import grow_cloud_sparse

    xyz = _terrain(500, None, seed=4)
    with pytest.raises(InputError, match="strictly ascending"):
        grow_cloud_sparse(xyz, [5, 3], [1.0, 1.0])
    with pytest.raises(InputError, match="expected 2 values"):
        grow_cloud_sparse(xyz, [3, 5], [1.0])
    assert len(grow_cloud_sparse(xyz, [], [])) == 0
    assert len(grow_cloud_sparse(xyz, [3, 5], [0.0, -1.0])) == 0


def test_a_failed_or_stopped_build_leaves_growing_as_it_was():
    from gaze3d.errors import InputError
    from gaze3d.regions import CloudNeighbours, grow_cloud

    nb = CloudNeighbours(np.zeros((5, 3)), background=True)     # too few points: the thread fails, survives
    assert nb.wait(30) is False and "more than" in nb.error
    xyz = _terrain(5000, None, seed=5)
    a = _blob(xyz, np.random.default_rng(6), speckle=False)
    with pytest.raises(InputError, match="more than 10 points"):
        CloudNeighbours(xyz[:5])                                # built now: the error is raised
    with pytest.raises(InputError, match="built for 5 points"):
        grow_cloud(xyz, a, 0.25, neighbours=nb)
    bad = CloudNeighbours(np.r_[xyz[:100], [[np.nan, 0, 0]]], background=True)
    assert bad.wait(30) is False and "finite" in bad.error
    big = CloudNeighbours(_terrain(200_000, None, seed=7), background=True, chunk=500)
    big.close()                                                 # stops between chunks
    assert not big._thread.is_alive()
    assert big.ready or big.error == "stopped"
    if not big.ready:
        region = grow_cloud(big.xyz, _blob(big.xyz, np.random.default_rng(8), False), 0.25, neighbours=big)
        assert big.last_path == "tree: neighbour graph failed (stopped)" and region.any()


def test_session_label_uses_the_graph_and_labels_what_a_tree_per_label_did():
    """The label key's path (sparse attention, the graph) against the dense arrays and the old growing."""
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.session import LabelingSession

    xyz, truth = box_scene(6000, 1500)
    xyz = np.round(xyz / 0.01) * 0.01                  # centimetre LAS coordinates: ties
    cam = scene_camera()
    s = LabelingSession(PointCloud(xyz), camera=cam, segmenter="grow", annotator="t")
    try:
        assert s.neighbours is not None and s.neighbours.wait(60)
        px, _ = cam.project(xyz[truth == 6].mean(axis=0, keepdims=True))
        gx, _ = cam.project(xyz[truth == 2][:1])
        t = fixate(s, px[0] / [cam.width, cam.height], 0.6, t0_ns=s.now_ns())
        t = fixate(s, gx[0] / [cam.width, cam.height], 0.6, seed=1, t0_ns=t + 300_000_000)
        assert s.reject_last_fixation()                # negative attention in play
        fixate(s, (px[0] + [8, 4]) / [cam.width, cam.height], 0.6, seed=2, t0_ns=t + 300_000_000)
        s.accumulator.flush()
        index, pos, neg = s.accumulator.nonzero_signed_values()
        dpos, dneg = s.accumulator.signed_values()
        assert neg.any() and len(index) < len(xyz)
        np.testing.assert_array_equal(index, np.flatnonzero(s.attention))
        for sparse, dense in ((pos, dpos), (neg, dneg)):
            assert sparse.dtype == np.float32 and sparse.tobytes() == dense[index].tobytes()
            rest = np.ones(len(xyz), dtype=bool)
            rest[index] = False
            assert not dense[rest].any()
        ref = _reference_grow_cloud(xyz, np.where(dneg > dpos, 0.0, dpos).astype(np.float32), s.rel_threshold)
        got, method = s._attended_index()
        assert method == "grow" and s.neighbours.last_path == "graph"
        np.testing.assert_array_equal(got, np.flatnonzero(ref))
        action = s.label_key("1")
        np.testing.assert_array_equal(action.index, np.flatnonzero(ref))
        assert (s.labels[ref] == action.label.id).all() and "still building" not in s.message
    finally:
        s.close()
