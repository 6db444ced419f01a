"""Negatives end to end: a rejected fixation removes a wrongly included neighbour.

Accumulator per-fixation records -> a fixation marked negative -> the graph baseline
(no torch) and the viewer's reject key (region growing, offscreen window).
"""
from __future__ import annotations

import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator
from gaze3d.camera import Camera
from gaze3d.events import EventType
from gaze3d.scan import PointCloud

from viewer_helpers import WINDOW

pytestmark = pytest.mark.timeout(180)
RATE = 600.0


def two_boxes(seed=0):
    """(xyz, owner): ground 16 m x 12 m (-1), two 2 m boxes 1.2 m high side by side, 0.15 m apart (0, 1)."""
    rng = np.random.default_rng(seed)
    g = rng.uniform([0, 0], [16, 12], (9000, 2))
    parts, owner = [np.c_[g, rng.normal(0, 0.01, len(g))]], [np.full(len(g), -1)]
    for i, x0 in enumerate((6.0, 8.15)):
        top = np.c_[rng.uniform([x0, 5], [x0 + 2, 7], (1600, 2)), np.full(1600, 1.2)]
        sides = []
        for _ in range(4):
            s = rng.uniform(0, 1, (500, 2))
            sides.append(s)
        walls = np.concatenate([
            np.c_[np.full(500, x0), 5 + 2 * sides[0][:, 0], 1.2 * sides[0][:, 1]],
            np.c_[np.full(500, x0 + 2), 5 + 2 * sides[1][:, 0], 1.2 * sides[1][:, 1]],
            np.c_[x0 + 2 * sides[2][:, 0], np.full(500, 5.0), 1.2 * sides[2][:, 1]],
            np.c_[x0 + 2 * sides[3][:, 0], np.full(500, 7.0), 1.2 * sides[3][:, 1]]])
        parts.append(np.r_[top, walls])
        owner.append(np.full(len(top) + len(walls), i))
    xyz = np.concatenate(parts)
    return xyz + rng.normal(0, 0.005, xyz.shape), np.concatenate(owner)


def camera():
    return Camera.look_at((9.0, -6.0, 14.0), (9.0, 6.0, 0.6), vfov_deg=40, width=640, height=480)


def look(acc, cam, targets, dwell_s=0.5, t0=0.0):
    """Fixations on ``targets`` (k, 3) with saccades between, fed like a viewer (event column)."""
    rng = np.random.default_rng(1)
    t = t0
    for k, p in enumerate(targets):
        xy = cam.pixels_to_normalized(cam.project(np.asarray(p)[None])[0])[0]
        n = int(dwell_s * RATE)
        pts = xy + rng.normal(0, 4e-4, (n, 2))
        ev = np.full(n, int(EventType.FIXATION))
        ev[-6:] = int(EventType.SACCADE)            # leaving for the next target
        ts = t + np.arange(n) / RATE
        acc.add(cam, {"x": pts[:, 0], "y": pts[:, 1], "t_s": ts, "event": ev})
        t = ts[-1] + 1.0 / RATE
    acc.flush()
    return t


def test_graph_baseline_drops_the_neighbour_a_negative_fixation_rejects():
    from gaze3d.models.segment import GraphSegmenter

    xyz, owner = two_boxes()
    cam = camera()
    graph = GraphSegmenter(xyz, height=xyz[:, 2])
    a_edge = np.array([7.7, 6.0, 1.2])        # box A, near the side it shares with B
    b_centre = np.array([9.15, 6.0, 1.2])
    acc = AttentionAccumulator(PointCloud(xyz))
    look(acc, cam, [a_edge, b_centre])
    assert len(acc.fixations()) == 2
    # both fixations positive: B is (wrongly) in the mask
    pos, neg = acc.signed_values()
    both = graph.segment(pos, None)
    assert both.ok, both.reason
    assert both.mask[owner == 1].mean() > 0.3 and both.mask[owner == 0].mean() > 0.5   # its top
    # the second fixation was a rejection ("not that one"): B leaves, A stays
    acc.set_polarity(1, False)
    pos, neg = acc.signed_values()
    assert neg[owner == 1].sum() > 0.8 * neg.sum()
    res = graph.segment(pos, neg)
    assert res.ok, res.reason
    assert res.mask[owner == 1].mean() < 0.1
    top = xyz[:, 2] > 1.15
    assert res.mask[(owner == 0) & top].mean() > 0.95      # A's roof whole
    assert res.mask[owner == 0].mean() > 0.7               # and most of its sides
    assert res.mask[owner == -1].mean() < 0.01


def test_graph_baseline_reports_empty_and_missing_attention():
    from gaze3d.models.segment import GraphSegmenter, check_mask

    xyz, owner = two_boxes()
    graph = GraphSegmenter(xyz)
    res = graph.segment(np.zeros(len(xyz)))
    assert res.status == "no-attention" and not res.mask.any() and res.reason
    pos = (owner == 0).astype(np.float32)
    res = graph.segment(pos, negative=pos)          # everything looked at was rejected
    assert res.status == "empty" and not res.mask.any() and res.reason
    # a mask away from where the annotator looked is "collapsed", not "ok"
    assert check_mask(owner == 1, pos)[0] == "collapsed"
    assert check_mask(owner >= -1, pos)[0] == "flooded"
    assert check_mask(owner == 0, pos) == ("ok", "")


def test_viewer_reject_key_leaves_the_rejected_neighbour_out(tmp_path):
    """Look at A, then at B, press n (B was wrongly included), label: B is left out, A labelled.

    Region growing (the viewer's fallback) grows from the attention peak, so without the
    rejection the later, longer look at B makes B the label."""
    from gaze3d.viewer.app import ViewerApp

    xyz, owner = two_boxes()
    cam = camera()
    results = {}
    for reject in (False, True):
        app = ViewerApp(PointCloud(xyz), off_screen=True, window_size=WINDOW, segmenter="grow")
        try:
            s = app.session
            look(s.accumulator, cam, [np.array([7.0, 6.0, 1.2])])
            look(s.accumulator, cam, [np.array([9.15, 6.0, 1.2])], t0=10.0)
            if reject:
                app.press("n")
                assert "rejected" in s.message
            app.press("1")
            lab = s.labels == 1
            assert lab[owner == -1].mean() < 0.01
            results[reject] = (lab[owner == 0].mean(), lab[owner == 1].mean())
        finally:
            app.close()
    assert results[False][1] > 0.1 and results[False][0] < 0.01     # B taken
    assert results[True][1] < 0.01 and results[True][0] > 0.1       # B rejected, A taken


def test_reject_with_nothing_looked_at_says_so():
    from gaze3d.viewer.session import LabelingSession

    xyz, _ = two_boxes()
    s = LabelingSession(PointCloud(xyz), camera=camera(), segmenter="grow")
    assert s.reject_last_fixation() is False and "nothing to reject" in s.message
    s.close()


def test_network_segmenter_says_when_its_mask_is_empty_or_collapsed(bundled_tile):
    """A network that answers "nothing" is reported, not handed back as a silent empty mask."""
    torch = pytest.importorskip("torch", reason="the interactive network needs torch (gaze3d[models])")
    from gaze3d.io import load_scan
    from gaze3d.models.interactive import InteractiveSegmenter
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.train import default_interactive_config

    cloud = load_scan(bundled_tile)
    building = np.flatnonzero(cloud.labels == 6)
    pos = np.zeros(len(cloud), np.float32)
    pos[building[:200]] = 1.0
    torch.manual_seed(0)
    net = GazeSegNet(default_interactive_config(base_channels=8))
    with torch.no_grad():
        net.classifier.bias.fill_(-50.0)         # a collapsed network: every logit very negative
    seg = InteractiveSegmenter(net)
    seg.set_scan(PointCloud(cloud.xyz, colors=cloud.colors))
    res = seg.segment(pos)
    assert res.status == "empty" and not res.ok and "network" in res.reason and not res.mask.any()
    assert seg.segment(np.zeros(len(cloud), np.float32)).status == "no-attention"
    with torch.no_grad():
        net.classifier.bias.fill_(50.0)          # ... or one that takes everything near the gaze
    res = seg.segment(pos)
    assert res.status in ("ok", "flooded") and res.mask[building[:200]].all()


def test_cli_segment_warns_about_an_empty_mask(tmp_path, bundled_tile):
    pytest.importorskip("torch", reason="gaze3d segment needs torch (gaze3d[models])")
    import subprocess
    import sys

    from gaze3d.io import load_scan

    cloud = load_scan(bundled_tile)
    att = np.zeros(len(cloud), np.float32)
    att[0] = 1.0     # one point in a corner: the shipped model keeps nothing of it
    np.save(tmp_path / "a.npy", att)
    r = subprocess.run([sys.executable, "-m", "gaze3d", "segment", str(bundled_tile), "--attention",
                        str(tmp_path / "a.npy"), "--threshold", "0.9999", "-o", str(tmp_path / "m.ply")],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert "warning: mask empty" in r.stderr and " 0 of " in r.stdout
