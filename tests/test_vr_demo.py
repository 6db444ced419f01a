"""VR end to end: the sim source's headset mode, ``gaze3d demo --vr`` (tracker process -> ZMQ -> attention),
and the head path / gaze rays drawn by ``render_scan``."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gaze3d.demo import bundled_tile
from gaze3d.errors import InputError
from gaze3d.tracker.sources import get_source


def test_sim_source_vr_mode_streams_gaze3d_rays():
    src = get_source("sim", scene=str(bundled_tile()), vr=True, label=6, duration=4, rate=90, realtime=False,
                     seed=2, precision_deg=0.1)
    src.open()
    got = []
    while True:
        batch = src.read(0.1)
        if batch is None:
            break
        got += batch
    src.close()
    assert len(got) == 360
    assert {s["topic"] for s in got} == {"gaze.3d"}
    ok = [s for s in got if s["valid"]]
    assert len(ok) > 0.7 * len(got)
    o = np.array([s["ray_origin"] for s in ok])
    d = np.array([s["ray_direction"] for s in ok])
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    pose = np.array([s["head_pose"] for s in ok]).reshape(-1, 4, 4)
    np.testing.assert_allclose(pose[:, :3, 3], o)                    # the eye rides on the head
    assert np.all(np.diff([s["t_host_ns"] for s in got]) > 0)
    # fixations hold scan points of class 6 (buildings)
    assert {s["truth"]["event"] for s in got} >= {"fixation", "saccade"}


def test_sim_source_vr_options_are_checked():
    with pytest.raises(InputError, match="vr"):
        get_source("sim", vr=True)                                     # no scene
    with pytest.raises(InputError, match="walk"):
        get_source("sim", scene=str(bundled_tile()), vr=True, walk="1,2")
    with pytest.raises(InputError, match="walk"):
        get_source("sim", walk="1,2,3")                                 # walk without vr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_vr_attention_lands_on_looked_at_buildings(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gaze3d", "demo", "--vr", "--out", str(tmp_path), "--duration", "8",
                           "--no-render"], capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["samples_received"] >= 0.95 * 8 * 90 and summary["samples_lost"] == 0
    assert abs(summary["point_share"]["building"] - 6931 / 70840) < 1e-6
    # the simulated annotator fixates buildings: their attention share far above their point share
    assert summary["attention_share"]["building"] > 0.5, summary
    assert summary["kappa"]["fixation"] > 0.3
    from gaze3d.recording import Recording

    with Recording(tmp_path / "session.gaze3d") as rec:
        assert rec.topics().get("gaze.3d", 0) == summary["samples_received"]
        assert rec.samples("gaze.3d")["valid"].sum() == summary["samples_valid"]


@pytest.mark.render
def test_render_draws_head_path_and_rays():
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.render import render_scan

    rng = np.random.default_rng(0)
    xyz = np.c_[rng.uniform(0, 10, 4000), rng.uniform(0, 10, 4000), np.zeros(4000)] + [1000.0, 2000.0, 50.0]
    cloud = PointCloud(xyz)
    head = np.c_[np.linspace(1001, 1009, 50), np.full(50, 2005.0), np.full(50, 51.7)]
    dirs = np.tile([0.0, 0.3, -1.0], (50, 1))
    plain = render_scan(cloud, window_size=(320, 240))
    img = render_scan(cloud, window_size=(320, 240), head_path=head, gaze_rays=(head, dirs, np.full(50, 1.5)))
    blue = (img[..., 2] > 180) & (img[..., 0] < 90)
    i = img.astype(int)
    green = i[..., 1] - np.maximum(i[..., 0], i[..., 2]) > 40     # rays are drawn half transparent
    assert blue.sum() > 20 and green.sum() > 20
    assert ((plain[..., 2] > 180) & (plain[..., 0] < 90)).sum() < 5


def _wall_session(tmp_path):
    """A wall of points at y = 5 (Z up) and a recording whose head walks along x looking at two spots on it."""
    from gaze3d.io import save_scan
    from gaze3d.recording import RecordingWriter
    from gaze3d.scan import PointCloud
    from gaze3d.vr.simulate import simulate_vr_session

    g = np.linspace(0, 10, 80)
    xx, zz = np.meshgrid(g, np.linspace(0, 4, 32))
    wall = np.c_[xx.ravel(), np.full(xx.size, 5.0), zz.ravel()]
    scan = tmp_path / "wall.ply"
    save_scan(PointCloud(wall), scan)
    s = simulate_vr_session(np.array([[3.0, 5.0, 2.0], [7.0, 5.0, 1.0]]), 4.0, 90.0, seed=1,
                            waypoints=[[2, 0, 1.7], [8, 0, 1.7]], walk_speed=1.0, noise_deg=0.1, blink_rate_hz=0.0)
    rec = tmp_path / "vr.gaze3d"
    with RecordingWriter(rec) as w:
        w.add_samples([s.sample(i, i, 10**9 + int(round(s.t_s[i] * 1e9))) for i in range(len(s))])
    return scan, rec, s


@pytest.mark.render
def test_view_replay_shows_ray_and_growing_attention(tmp_path):
    from gaze3d.io import load_scan
    from gaze3d.viewer.vr import VRReplay

    scan_path, rec, s = _wall_session(tmp_path)
    r = VRReplay(load_scan(scan_path), rec, off_screen=True, window_size=(320, 240))
    try:
        sums = [float(x.sum()) for x in r.snapshots]
        assert sums[0] == 0.0 and sums[-1] > 0 and all(b >= a for a, b in zip(sums, sums[1:]))
        r.set_time(2.0)
        i = r.sample_at(2.0)
        assert s.t_s[i] <= 2.0 < s.t_s[i] + 1 / 90 + 1e-9
        pts = np.asarray(r._ray.points) + r.scene.offset
        np.testing.assert_allclose(pts[0], s.origin[i], atol=1e-6)
        np.testing.assert_allclose(pts[1], s.gaze_point[i], atol=1e-6)      # the ray ends on its point of regard
        img_mid = r.screenshot()
        r.set_time(r.duration)
        img_end = r.screenshot()
        assert not np.array_equal(img_mid, img_end)
    finally:
        r.close()


@pytest.mark.render
def test_cli_view_replay_smoke_and_refusals(tmp_path):
    scan_path, rec, _ = _wall_session(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "gaze3d", "view", str(scan_path), "--replay", str(rec), "--off-screen",
                         "--window", "320x240"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    from gaze3d.recording import RecordingWriter

    flat = tmp_path / "flat.gaze3d"
    with RecordingWriter(flat) as w:
        w.add_samples([{"topic": "gaze.2d", "t_host_ns": 1 + i, "gaze": [0.5, 0.5]} for i in range(5)])
    bad = subprocess.run([sys.executable, "-m", "gaze3d", "view", str(scan_path), "--replay", str(flat),
                          "--off-screen"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no gaze.3d samples" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
