"""The ``sim`` source and the source registry."""
from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest

from gaze3d.camera import CameraPath
from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError
from gaze3d.simulate import simulate_gaze
from gaze3d.tracker.sources import SOURCE_NAMES, GazeSource, get_source, source_class
from sources_helpers import read_all

pytestmark = pytest.mark.timeout(60)


def test_registry_lists_all_sources_and_rejects_unknown():
    assert SOURCE_NAMES == ("sim", "mouse", "replay", "tobii", "pupil", "lsl")
    for name in SOURCE_NAMES:
        cls = source_class(name)
        assert issubclass(cls, GazeSource) and cls.name == name
    with pytest.raises(InputError, match="unknown; expected one of sim, mouse"):
        get_source("eyelink")


def test_sim_options_parsed_from_strings_and_validated():
    s = get_source("sim", rate="2000", duration="1.5", seed="7", offset_deg="0.5,-0.25", precision_deg="0.1",
                   realtime="false")
    assert s.rate == 2000.0 and s.duration == 1.5 and s.seed == 7 and s.offset == (0.5, -0.25)
    assert s.precision == 0.1 and s.realtime is False
    for opts, word in ((dict(rate="2500"), "rate"), (dict(rate="fast"), "rate"), (dict(offset_deg="1"), "offset_deg"),
                       (dict(realtime="maybe"), "realtime"), (dict(rat="5"), "unknown option"),
                       (dict(scene="x.las"), "camera_path"), (dict(label="6"), "label")):
        with pytest.raises(InputError, match=word):
            get_source("sim", **opts)


def test_sim_finite_equals_simulator_output():
    src = get_source("sim", rate=500, duration=4, seed=3, offset_deg="0.3,0.1", realtime=False)
    src.open()
    got = read_all(src)
    src.close()
    g = simulate_gaze(4.0, 500.0, seed=3, accuracy_offset_deg=(0.3, 0.1), precision_rms_deg=0.05,
                      blink_rate_hz=0.2, pursuit_fraction=0.2)
    assert len(got) == len(g) == 2000
    xy = DisplayGeometry().deg_to_norm(np.nan_to_num(np.c_[g.x_deg, g.y_deg]))
    for i in (0, 1, 777, 1999):
        s = got[i]
        assert s["topic"] == "gaze.2d" and s["t_device"] == pytest.approx(g.t_s[i])
        assert s["valid"] == bool(g.valid[i]) and s["truth"]["code"] == int(g.truth[i])
        if g.valid[i]:
            assert s["gaze"] == pytest.approx(xy[i].tolist())
        else:
            assert all(math.isnan(v) for v in s["gaze"])
    events = {s["truth"]["event"] for s in got}
    assert {"fixation", "saccade"} <= events
    assert events <= {"fixation", "saccade", "pursuit", "blink", "gap"}


def test_sim_realtime_paces_at_rate():
    src = get_source("sim", rate=1000, seed=1)          # infinite, real time
    src.open()
    got = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.5:
        got += src.read(0.02)
    src.close()
    assert 450 <= len(got) <= 520
    dt = np.diff([s["t_device"] for s in got])
    np.testing.assert_allclose(dt, 1e-3, atol=1e-9)
    # samples are handed out no earlier than due, and at most a few ms late
    lag = np.array([s["t_host_ns"] for s in got]) / 1e9 - (np.array([s["t_device"] for s in got]) + t0)
    assert np.median(lag) < 0.02


def test_sim_infinite_continues_across_chunks():
    src = get_source("sim", rate=200, seed=2, realtime="false")
    src.open()
    got = []
    while len(got) < 200 * 25:                 # 25 s: three generated chunks
        got += src.read(0.1)
    src.close()
    t = np.array([s["t_device"] for s in got])
    np.testing.assert_allclose(np.diff(t), 1 / 200.0, atol=1e-9)
    xy = np.array([s["gaze"] for s in got])
    ok = np.isfinite(xy).all(axis=1)
    assert ok.mean() > 0.85 and np.all((xy[ok] > -0.2) & (xy[ok] < 1.2))
    # no jump where a new 10 s chunk starts: the eye goes on from where it was
    deg = DisplayGeometry().norm_to_deg(np.nan_to_num(xy))
    for i in (2000, 4000):
        if ok[i - 1] and ok[i] and got[i - 1]["truth"]["event"] != "blink":
            assert np.linalg.norm(deg[i] - deg[i - 1]) < 0.5


def test_sim_close_from_other_thread_wakes_read():
    src = get_source("sim", rate=1, seed=0)
    src.open()
    src.read(0.0)
    threading.Timer(0.1, src.close).start()
    t0 = time.monotonic()
    src.read(5.0)
    assert time.monotonic() - t0 < 1.0


def test_sim_scene_driven_on_ign_buildings(tmp_path, shared_data):
    pytest.importorskip("gaze3d.io", reason="gaze3d.io (scan loading) not available")
    las = shared_data / "pointcloud" / "ign_lidarhd" / "870000_6618000.subset.50mx100m.las"
    from gaze3d.io import load_scan
    center = load_scan(las).xyz.mean(axis=0)
    path = CameraPath.orbit(center, 120.0, elevation_deg=45, duration_s=3.0, turns=0.1,
                            width=1024, height=768, vfov_deg=50)
    cam_file = tmp_path / "path.json"
    cam_file.write_text(json.dumps(path.to_dict()))
    src = get_source("sim", scene=str(las), camera_path=str(cam_file), label="6", n_targets="20",
                     rate="600", realtime="false")
    src.open()
    got = read_all(src)
    assert len(got) == 1800                     # the camera path's 3 s
    idx = {s["truth"].get("target_index", -1) for s in got}
    assert len(idx - {-1}) >= 3
    fix = [s for s in got if s["truth"]["event"] == "fixation" and s["truth"]["target_index"] >= 0 and s["valid"]]
    assert len(fix) > 600
    # the fixated points really are buildings (label 6) and the gaze lands on their projection
    scan = load_scan(las)
    targets = src._targets_world
    buildings = scan.xyz[scan.labels == 6]
    assert len(targets) == 20 and all(np.any(np.all(buildings == p, axis=1)) for p in targets)
    s = fix[len(fix) // 2]
    cam = path.at(s["t_device"])
    px, _ = cam.project(targets[s["truth"]["target_index"]][None])
    assert np.linalg.norm(np.array(s["gaze"]) - cam.pixels_to_normalized(px)[0]) < 0.02
    with pytest.raises(InputError, match="label"):
        bad = get_source("sim", scene=str(las), camera_path=str(cam_file), label="42")
        bad.open()


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_sim_target_script(tmp_path, fmt):
    targets = [(0.5, 0.5, 0.4), (0.2, 0.3, 0.3), (0.2, 0.3, 0.2), (0.8, 0.7, 0.5)]
    if fmt == "json":
        path = tmp_path / "script.json"
        path.write_text(json.dumps({"units": "norm", "targets": [list(t) for t in targets]}))
    else:
        path = tmp_path / "script.csv"
        path.write_text("x,y,dwell_s\n# calibration targets\n" + "\n".join(",".join(map(str, t)) for t in targets))
    src = get_source("sim", script=str(path), rate="500", realtime="false", blink_rate="0", offset_deg="1,0")
    src.open()
    got = read_all(src)
    src.close()
    # the script's length: 1.4 s of dwell + two saccades (the repeated target is no saccade)
    assert 1.4 + 0.04 < len(got) / 500 < 1.4 + 0.2
    rows = [s["truth"]["target_index"] for s in got]
    assert rows[0] == 0 and rows[-1] == 3 and set(rows) == {0, 1, 3}
    deg = DisplayGeometry()
    for k in (0, 1, 3):
        fix = [s for s in got if s["truth"]["target_index"] == k and s["truth"]["event"] == "fixation"]
        assert fix[0]["truth"]["target"] == pytest.approx(list(targets[k][:2]))
        # measured = target + 1 deg to the right (the accuracy offset)
        d = deg.norm_to_deg(np.array([s["gaze"] for s in fix])) - deg.norm_to_deg([targets[k][:2]])
        assert np.mean(d[:, 0]) == pytest.approx(1.0, abs=0.1) and abs(np.mean(d[:, 1])) < 0.1


def test_sim_script_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("0.5 0.5 0.3\n0.1 oops 0.2\n")
    with pytest.raises(InputError, match="bad line"):
        get_source("sim", script=str(bad), realtime="false").open()
    with pytest.raises(InputError, match="no such file"):
        get_source("sim", script=str(tmp_path / "none.json")).open()
    neg = tmp_path / "neg.json"
    neg.write_text("[[0.5, 0.5, -1]]")
    with pytest.raises(InputError, match="dwell_s > 0"):
        get_source("sim", script=str(neg)).open()
    with pytest.raises(InputError, match="script' and 'scene'"):
        get_source("sim", script=str(neg), scene="a.las", camera_path="p.json")
