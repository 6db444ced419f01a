"""VR sources: LSL 3D gaze + head-pose join on LSL timestamps (real pylsl outlets), the pose join itself."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from gaze3d.errors import InputError
from gaze3d.tracker.sources import get_source
from gaze3d.vr import frames as F
from gaze3d.vr.posejoin import PoseJoin, interpolate_pose
from sources_helpers import read_for


def _yaw_quat(deg):
    h = np.radians(deg) / 2
    return np.array([0.0, np.sin(h), 0.0, np.cos(h)])


def test_pose_join_interpolates_at_capture_time_and_waits_for_late_poses():
    j = PoseJoin(max_gap_s=0.1, wait_s=0.05)
    j.add_poses([0.0, 0.02], [[0, 0, 0], [0.2, 0, 0]], [_yaw_quat(0), _yaw_quat(20)])
    j.add_sample(0.01, {"id": 1}, now_s=100.0)
    j.add_sample(0.03, {"id": 2}, now_s=100.0)           # newer than the newest pose: waits
    out = j.ready(100.0)
    assert [s["id"] for s in out] == [1] and out[0]["head_join"] == "interpolated"
    T = np.array(out[0]["head_pose"]).reshape(4, 4)
    np.testing.assert_allclose(T[:3, 3], [0.1, 0, 0])
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, -1], F.quat_to_matrix(_yaw_quat(10))[0] @ [0, 0, -1], atol=1e-3)
    j.add_poses([0.04], [[0.4, 0, 0]], [_yaw_quat(40)])   # the pose after it came
    out = j.ready(100.01)
    assert out[0]["id"] == 2 and out[0]["head_join"] == "interpolated"
    np.testing.assert_allclose(np.array(out[0]["head_pose"]).reshape(4, 4)[:3, 3], [0.3, 0, 0])
    # a sample far from any pose: released after the wait, without a pose
    j.add_sample(5.0, {"id": 3}, now_s=100.0)
    assert j.ready(100.01) == []
    out = j.ready(100.06)
    assert out[0]["head_join"] == "none" and "head_pose" not in out[0]
    assert interpolate_pose(0.0, np.zeros(0), np.zeros((0, 3)), np.zeros((0, 4)), 0.1) is None


def test_lsl_head_options_are_checked():
    with pytest.raises(InputError, match="only for 3D"):
        get_source("lsl", name="g", head_name="h")                        # 2D channels
    with pytest.raises(InputError, match="head-pose stream"):
        get_source("lsl", name="g", channels="ox:0,oy:1,oz:2,dx:3,dy:4,dz:5", gaze_frame="head")
    with pytest.raises(InputError, match="head_channels"):
        get_source("lsl", name="g", channels="ox:0,oy:1,oz:2,dx:3,dy:4,dz:5", head_name="h",
                   head_channels="px:0,py:1")


def _run_join(convention: str):
    """A 120 Hz head-relative gaze stream and a 72 Hz head-pose stream (real outlets, separate clocks'
    timestamps); the head turns at 90 deg/s while the eyes hold a world target (VOR)."""
    pylsl = pytest.importorskip("pylsl", reason="pylsl (gaze3d[lsl]) is not installed")
    tag = uuid.uuid4().hex[:8]
    gname, hname = f"g3d-vr-gaze-{tag}", f"g3d-vr-head-{tag}"
    gaze_out = pylsl.StreamOutlet(pylsl.StreamInfo(gname, "Gaze", 7, 120, "float32", gname))
    head_out = pylsl.StreamOutlet(pylsl.StreamInfo(hname, "HeadPose", 7, 72, "float32", hname))
    target = np.array([0.5, 1.6, -3.0])                  # world, right-handed (OpenXR-like)
    src = get_source("lsl", name=gname, channels="ox:0,oy:1,oz:2,dx:3,dy:4,dz:5,confidence:6",
                     head_name=hname, gaze_frame="head", convention=convention, resolve_timeout="5",
                     lsl_config="system", head_wait_s="0.5")
    src.open()
    try:
        t0 = pylsl.local_clock()
        head_pos = lambda t: np.array([0.3 * t, 1.6, 0.0])   # walking along x at 0.3 m/s
        yaw = lambda t: 90.0 * t                             # turning left at 90 deg/s
        # head poses first (72 Hz), over 0.5 s, then gaze (120 Hz) at times in between
        th = np.arange(0, 0.5, 1 / 72)
        for t in th:
            p, q = head_pos(t), _yaw_quat(yaw(t))
            if convention == "unity":                        # what a Unity app would send: z mirrored
                p, q = p * [1, 1, -1], q * [-1, -1, 1, 1]
            head_out.push_sample(list(p) + list(q), t0 + t)
        tg = np.arange(0.01, 0.48, 1 / 120)
        for t in tg:
            R = F.quat_to_matrix(_yaw_quat(yaw(t)))[0]
            d_head = R.T @ (target - head_pos(t))            # the gaze in the head frame (-Z forward)
            if convention == "unity":
                d_head = d_head * [1, 1, -1]                 # Unity head frame: +Z forward
            gaze_out.push_sample([0, 0, 0] + list(d_head) + [0.9], t0 + t)
        got = read_for(src, 0.5, min_samples=len(tg))
    finally:
        src.close()
        del gaze_out, head_out
    return got, tg, target, src


@pytest.mark.timeout(60)
@pytest.mark.parametrize("convention", ["openxr", "unity"])
def test_lsl_gaze_and_head_pose_streams_joined_on_lsl_timestamps(convention):
    got, tg, target, src = _run_join(convention)
    assert len(got) == len(tg)
    assert all(s["topic"] == "gaze.3d" and s["valid"] and s["head_join"] == "interpolated" for s in got)
    o = np.array([s["ray_origin"] for s in got])
    d = np.array([s["ray_direction"] for s in got])
    to = target - o                                  # the world is right-handed for both conventions
    err = np.degrees(np.arctan2(np.linalg.norm(np.cross(d, to), axis=1), np.sum(d * to, axis=1)))
    # interpolating between 72 Hz poses while turning at 90 deg/s: nlerp error well under 0.1 deg
    assert err.max() < 0.1, err.max()
    np.testing.assert_allclose(o[:, 0], 0.3 * tg, atol=1e-3)           # the origin follows the walking head
    # the nearest head sample is up to 1/144 s away: at 90 deg/s its pose would be off by up to 0.6 deg,
    # so the bound above tells interpolation at the capture time from nearest-sample matching
    assert src.counters()["head_joined"] == len(tg)


# ------------------------------------------------------------------ XDF (pyxdf)
def _sim_recording(path, seconds=3.0):
    from gaze3d.recording import RecordingWriter
    from gaze3d.vr.simulate import simulate_vr_session

    rng = np.random.default_rng(0)
    targets = np.c_[rng.uniform(-3, 3, 12), rng.uniform(1, 2.5, 12), rng.uniform(-6, -2, 12)]  # +Y up, -Z ahead
    s = simulate_vr_session(targets, seconds, 90.0, seed=5, waypoints=[[0, 1.6, 0], [1, 1.6, 0]], walk_speed=0.3,
                            up=(0, 1, 0))
    with RecordingWriter(path) as w:
        w.add_samples([s.sample(i, i, 10**9 + int(round(s.t_s[i] * 1e9))) for i in range(len(s))])
    return s


def test_xdf_round_trip_through_pyxdf(tmp_path):
    pytest.importorskip("pyxdf", reason="pyxdf (gaze3d[lsl]) is not installed")
    from gaze3d.recording import Recording
    from gaze3d.vr.xdf import export_xdf, import_xdf

    rec = tmp_path / "a.gaze3d"
    sim = _sim_recording(rec)
    xdf = export_xdf(rec, tmp_path / "a.xdf")
    info = import_xdf(xdf, tmp_path / "b.gaze3d")
    assert info["samples"] == len(sim) and info["valid"] == int(sim.valid.sum()) and info["joined"] == len(sim)
    with Recording(rec) as a, Recording(tmp_path / "b.gaze3d") as b:
        sa, sb = a.samples("gaze.3d"), b.samples("gaze.3d")
        np.testing.assert_array_equal(sa["valid"], sb["valid"])
        v = sa["valid"]
        np.testing.assert_allclose(sb["ray_origin"][v], sa["ray_origin"][v], atol=1e-9)
        np.testing.assert_allclose(sb["ray_direction"][v], sa["ray_direction"][v], atol=1e-9)
        np.testing.assert_allclose(sb["head_pose"], sa["head_pose"], atol=1e-9)   # quaternion and back
        # pyxdf dejitters regular timestamps: times agree to well under a sample period
        dt = np.diff(sb["t_host_ns"]) * 1e-9
        np.testing.assert_allclose(dt, 1 / 90, atol=1e-6)


def test_xdf_head_relative_gaze_joined_to_head_stream(tmp_path):
    pytest.importorskip("pyxdf", reason="pyxdf (gaze3d[lsl]) is not installed")
    from gaze3d.recording import Recording
    from gaze3d.vr.xdf import HEAD_LABELS, import_xdf, write_xdf

    target = np.array([1.0, 1.5, -4.0])
    th = 100.0 + np.arange(0, 1.0, 1 / 60)                   # head poses at 60 Hz
    tg = 100.0 + np.arange(0.005, 0.98, 1 / 200)             # gaze at 200 Hz, other times
    pos = lambda t: np.c_[0.2 * (t - 100), np.full(len(t), 1.6), np.zeros(len(t))]
    yaw = lambda t: 60.0 * (t - 100)
    q = np.array([_yaw_quat(a) for a in yaw(th)])
    R = F.quat_to_matrix(np.array([_yaw_quat(a) for a in yaw(tg)]))
    d_head = np.einsum("nji,nj->ni", R, target - pos(tg))    # R^T (target - head)
    gaze = np.c_[np.zeros((len(tg), 3)), d_head, np.full(len(tg), 0.9)]
    write_xdf(tmp_path / "h.xdf", [
        {"name": "eyes", "type": "Gaze", "labels": ("ox", "oy", "oz", "dx", "dy", "dz", "confidence"), "t": tg,
         "values": gaze, "srate": 200},
        {"name": "hmd", "type": "HeadPose", "labels": HEAD_LABELS, "t": th, "values": np.c_[pos(th), q], "srate": 60}])
    info = import_xdf(tmp_path / "h.xdf", tmp_path / "h.gaze3d", gaze_frame="head")
    assert info["head_stream"] == "hmd" and info["valid"] == len(tg)
    with Recording(tmp_path / "h.gaze3d") as rec:
        s = rec.samples("gaze.3d")
    to = target - s["ray_origin"]
    err = np.degrees(np.arctan2(np.linalg.norm(np.cross(s["ray_direction"], to), axis=1),
                                np.sum(s["ray_direction"] * to, axis=1)))
    assert err.max() < 0.1
    # a file that is not XDF: one line naming it
    bad = tmp_path / "bad.xdf"
    bad.write_bytes(b"nonsense")
    with pytest.raises(InputError, match="bad.xdf"):
        import_xdf(bad, tmp_path / "x.gaze3d")
    assert not (tmp_path / "x.gaze3d").exists()


def test_cli_record_import_xdf(tmp_path):
    pytest.importorskip("pyxdf", reason="pyxdf (gaze3d[lsl]) is not installed")
    import subprocess
    import sys

    from gaze3d.vr.xdf import export_xdf

    rec = tmp_path / "a.gaze3d"
    _sim_recording(rec, 2.0)
    export_xdf(rec, tmp_path / "a.xdf")
    r = subprocess.run([sys.executable, "-m", "gaze3d", "record", "import", "--format", "xdf", str(tmp_path / "a.xdf"),
                        str(tmp_path / "b.gaze3d")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "180 gaze.3d samples" in r.stdout and "gaze3d-head (180 joined)" in r.stdout


# ------------------------------------------------------------------ a VR app streaming over ZeroMQ
@pytest.mark.timeout(90)
@pytest.mark.parametrize("convention", ["unity", "openxr"])
def test_reference_app_client_streams_gaze3d_through_a_tracker_process(tmp_path, convention):
    import subprocess
    import sys
    import time

    import zmq

    from gaze3d.recording import Recording
    from gaze3d.tracker.client import GazeSubscriber, TrackerControl
    from gaze3d.tracker.process import start_tracker
    from gaze3d.vr.reference_client import frames

    rec = tmp_path / "app.gaze3d"
    opts = {"bind": "tcp://127.0.0.1:*", "convention": convention}
    with start_tracker("module:gaze3d.vr.app_source:AppSource", opts, record=str(rec)) as tracker, \
            TrackerControl(tracker.ctrl_address, timeout_s=5.0) as ctl:
        deadline = time.monotonic() + 15
        while ctl.status()["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        endpoint = ctl.status()["source_info"]["bind"]
        sub = GazeSubscriber(tracker.pub_address, topics=("gaze.3d",))
        time.sleep(0.3)                                   # the subscription reaches the PUB side
        # hostile input first: junk bytes, a wrong map, two frames; the source must keep going
        ctx = zmq.Context()
        junk = ctx.socket(zmq.PUSH)
        junk.connect(endpoint)
        junk.send(b"\xc1\xff not msgpack")
        junk.send(b"\x81\xa9t_device\xa3abc")            # {"t_device": "abc"}
        junk.send_multipart([b"a", b"b"])
        junk.close(linger=1000)
        ctx.term()
        r = subprocess.run([sys.executable, "-m", "gaze3d.vr.reference_client", "--connect", endpoint,
                            "--duration", "1.5", "--convention", convention, "--fast"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        got = []
        t_end = time.monotonic() + 10
        while len(got) < 135 and time.monotonic() < t_end:
            m = sub.recv(timeout_s=0.2)
            if m is not None:
                got.append(m[1])
                got += [x for _, x in sub.drain(1000)]
        counters = ctl.status().get("source_counters", {})
        sub.close()
    assert len(got) == 135 and counters.get("malformed") == 3
    _, sim = frames(1.5, 90.0, 0, "openxr")                # what the app looked at, right-handed
    ok = sim.valid
    o = np.array([m["ray_origin"] if m.get("ray_origin") is not None else [np.nan] * 3 for m in got])
    d = np.array([m["ray_direction"] if m.get("ray_direction") is not None else [np.nan] * 3 for m in got])
    np.testing.assert_allclose(o[ok], sim.origin[ok], atol=1e-9)   # Unity's mirror undone on arrival
    np.testing.assert_allclose(d[ok], sim.direction[ok], atol=1e-9)
    pose = np.array([m["head_pose"] for m in got]).reshape(-1, 4, 4)
    np.testing.assert_allclose(pose, sim.head_pose, atol=1e-9)
    assert [m["valid"] for m in got] == ok.tolist()
    with Recording(rec) as r:
        assert r.samples("gaze.3d")["valid"].sum() == ok.sum()


# ------------------------------------------------------------------ OpenXR (fake runtime: none exists here)
@pytest.fixture
def fake_xr(monkeypatch):
    """The fake runtime of tests/fakes/xr imported as pyopenxr's ``xr`` (no OpenXR runtime on these machines)."""
    import sys

    from sources_helpers import FAKES_DIR

    monkeypatch.syspath_prepend(str(FAKES_DIR))
    sys.modules.pop("xr", None)
    import xr
    yield xr
    sys.modules.pop("xr", None)


@pytest.mark.timeout(60)
def test_openxr_source_locates_gaze_and_head_with_vor(fake_xr):
    from gaze3d.vr.openxr_source import OpenXRSource

    src = OpenXRSource(space="stage")
    src.open()
    try:
        got = read_for(src, 0.8, min_samples=60)
        fake_xr.fake_exit()                             # the runtime ends the session: SourceError, retried
        from gaze3d.tracker.sources.base import SourceError
        with pytest.raises(SourceError, match="exiting"):
            for _ in range(50):
                src.read(0.05)
    finally:
        src.close()
    assert len(got) >= 60 and all(s["topic"] == "gaze.3d" for s in got)
    valid = [s for s in got if s["valid"]]
    assert len(got) - len(valid) >= 1 and src.counters()["gaze_untracked"] >= 1   # closed eyes every 30th frame
    o = np.array([s["ray_origin"] for s in valid])
    d = np.array([s["ray_direction"] for s in valid])
    to = np.array(fake_xr.TARGET) - o
    err = np.degrees(np.arctan2(np.linalg.norm(np.cross(d, to), axis=1), np.sum(d * to, axis=1)))
    assert err.max() < 1e-6                                      # the gaze pose's -Z axis, in STAGE space
    # the head turns (30 deg/s) while the gaze holds the target: eye-in-head moves, world gaze does not
    pose = np.array([s["head_pose"] for s in got]).reshape(-1, 4, 4)
    fwd = -pose[:, :3, 2]
    turned = np.degrees(np.arccos(np.clip(np.dot(fwd[0], fwd[-1]), -1, 1)))
    assert turned > 10
    np.testing.assert_allclose(pose[:, 1, 3], 1.6, atol=1e-9)    # STAGE: floor at 0, eyes at 1.6 m


@pytest.mark.timeout(60)
def test_openxr_source_local_space_and_world_placement(fake_xr):
    from gaze3d.vr.openxr_source import OpenXRSource

    W = F.Y_UP_TO_Z_UP.copy()
    W[:3, 3] = [100.0, 200.0, 1.6]                     # LOCAL origin at eye height above a Z-up scan's point
    src = OpenXRSource(space="local", world_from_tracking=",".join(str(v) for v in W.ravel()))
    src.open()
    try:
        got = [s for s in read_for(src, 0.3, min_samples=20) if s["valid"]]
    finally:
        src.close()
    target_stage = np.array(fake_xr.TARGET)
    target_world = (W @ np.r_[target_stage - [0, 1.6, 0], 1.0])[:3]   # STAGE -> LOCAL (down 1.6 m) -> world
    o = np.array([s["ray_origin"] for s in got])
    d = np.array([s["ray_direction"] for s in got])
    to = target_world - o
    err = np.degrees(np.arctan2(np.linalg.norm(np.cross(d, to), axis=1), np.sum(d * to, axis=1)))
    assert err.max() < 1e-6
    np.testing.assert_allclose(o[:, 2], 1.6, atol=1e-9)          # eye height above the scan's point, Z up


def test_openxr_source_without_pyopenxr_says_how_to_install(monkeypatch):
    import sys

    from gaze3d.errors import OptionalDependencyError
    from gaze3d.vr.openxr_source import OpenXRSource

    monkeypatch.setitem(sys.modules, "xr", None)       # import xr -> ImportError
    with pytest.raises(OptionalDependencyError, match="pip install pyopenxr"):
        OpenXRSource().open()
    with pytest.raises(InputError, match="space"):
        OpenXRSource(space="room")
