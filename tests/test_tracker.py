"""The tracker process over real ZeroMQ sockets on loopback: pub/sub, control, time sync, robustness, CURVE.

Each test runs ``python -m gaze3d tracker`` as a real subprocess serving the
paced ``SyntheticSource`` of ``tracker_helpers`` (a plugin class).
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from gaze3d.protocol import SCHEMA_VERSION, pack
from gaze3d.recording import Recording
from gaze3d.tracker.client import GazeSubscriber, TrackerControl, TrackerError, TrackerTimeout
from gaze3d.tracker.process import start_tracker
from tracker_helpers import PLUGIN, plugin_env

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    with start_tracker(PLUGIN, {"rate_hz": 1000}, env=plugin_env(), extra_args=["--heartbeat-s", "0.1"],
                       record_dir=tmp_path_factory.mktemp("recordings")) as tr:
        yield tr


def _collect(sub, n, timeout_s=5.0, topic="gaze.2d"):
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        msg = sub.recv(0.5)
        if msg and msg[0] == topic:
            out.append(msg[1])
    return out


def test_publish_subscribe_samples_and_heartbeat(tracker):
    with GazeSubscriber(tracker.pub_address, topics=("gaze.", "status")) as sub:
        got = _collect(sub, 300)
        assert len(got) == 300
        seq = np.array([m["seq"] for m in got])
        np.testing.assert_array_equal(np.diff(seq), 1)
        m = got[-1]
        assert m["v"] == SCHEMA_VERSION and m["source"] == "synthetic" and m["session"] == tracker.info["session"]
        assert 0 <= m["gaze"][0] <= 1 and m["valid"] is True and m["left"]["pupil_mm"] == 3.0
        t = np.array([m["t_host_ns"] for m in got])
        assert np.all(np.diff(t) > 0)
        # 1000 Hz over the whole stretch: the mean, not the median, of the host intervals, since a
        # stalled acquisition thread on a busy machine catches up in a burst (a fresh-clone run saw
        # a 0.44 ms median from 2-10 ms stalls followed by microsecond-spaced catch-up samples)
        assert abs((t[-1] - t[0]) / (len(t) - 1) - 1e6) < 2e5
        beat = _collect(sub, 1, topic="status")
        assert beat and beat[0]["state"] == "running"
        assert sub.stats["gaps"] == 0 and sub.stats["malformed"] == 0


def test_time_sync_is_within_1ms_on_loopback(tracker):
    with TrackerControl(tracker.ctrl_address) as ctl:
        sync = ctl.sync_clock(rounds=20)
        offset_ns, rtt_ns, accuracy_ns = sync
        # same host, same CLOCK_MONOTONIC: the true offset is 0
        assert accuracy_ns < 1_000_000 and rtt_ns > 0
        assert abs(offset_ns) <= max(accuracy_ns, 1) and abs(offset_ns) < 1_000_000
        assert abs(ctl.tracker_time_ns() - time.monotonic_ns()) < 1_000_000


def test_control_commands(tracker):
    tmp_path = Path(tracker.info["record_dir"])     # start_recording is confined to --record-dir
    with TrackerControl(tracker.ctrl_address) as ctl, \
            GazeSubscriber(tracker.pub_address, topics=("event", "status")) as sub:
        assert sub.recv(5.0)[0] == "status"  # the subscription is live
        st = ctl.status()
        assert st["state"] == "running" and st["source_info"]["rate_hz"] == 1000.0
        assert st["pid"] == tracker.pid and st["pub"] == tracker.pub_address
        assert isinstance(ctl.list_sources(), list)
        assert ctl.calibrate("collect", point=[0.1, 0.9])["result"]["kw"] == {"point": [0.1, 0.9]}
        with pytest.raises(TrackerError, match="unknown command"):
            ctl.request("frobnicate")
        with pytest.raises(TrackerError, match="not recording"):
            ctl.stop_recording()
        path = tmp_path / "session.sqlite"
        assert ctl.start_recording(path)["path"] == str(path)
        with pytest.raises(TrackerError, match="already recording"):
            ctl.start_recording(tmp_path / "other.sqlite")
        cam = {"position": [0, -5, 2], "focal_point": [0, 0, 0], "view_up": [0, 0, 1], "vfov_deg": 30,
               "width": 640, "height": 480}
        t_cam = ctl.tracker_time_ns()
        assert ctl.send_camera(t_cam, cam)["recorded"] is True
        ctl.send_event({"type": "label", "label": "roof"})
        published = sub.recv(2.0)
        while published is not None and published[0] != "event":
            published = sub.recv(2.0)
        time.sleep(0.3)
        reply = ctl.stop_recording()
        assert reply["samples"] > 100
        with pytest.raises(TrackerError, match="already exists"):
            ctl.start_recording(path)  # one session = one recording
    assert published is not None and published[0] == "event" and published[1]["event"]["label"] == "roof"
    rec = Recording(path)
    s = rec.samples()
    assert len(s["seq"]) == reply["samples"] and np.all(np.diff(s["seq"]) == 1)
    t, cams = rec.camera_frames()
    assert t.tolist() == [t_cam] and cams[0].width == 640
    assert rec.events()[0]["label"] == "roof"
    assert rec.meta["source"] == "synthetic" and rec.meta["session"] == tracker.info["session"]


def test_malformed_and_wrong_version_messages_are_dropped_and_counted():
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    good = {"v": SCHEMA_VERSION, "source": "raw", "session": "s", "seq": 0, "t_device": None, "t_host_ns": 1,
            "gaze": [0.5, 0.5], "valid": True}
    with GazeSubscriber(f"tcp://127.0.0.1:{port}", topics=("",)) as sub:
        deadline = time.monotonic() + 10
        while sub.recv(0.05) is None:  # until the subscription is live (slow joiner)
            assert time.monotonic() < deadline
            pub.send_multipart([b"gaze.2d", pack(good)])
        while sub.recv(0.2) is not None:
            pass
        sub.stats["received"] = 0
        pub.send_multipart([b"gaze.2d", b"\xc1\xc1 not msgpack"])
        pub.send_multipart([b"gaze.2d", msgpack.packb([1, 2])])
        pub.send_multipart([b"gaze.2d"])
        pub.send_multipart([b"gaze.2d", pack({**good, "seq": "x"})])
        pub.send_multipart([b"gaze.2d", pack({**good, "v": SCHEMA_VERSION + 1})])
        pub.send_multipart([b"gaze.2d", pack({**good, "v": 0})])
        pub.send_multipart([b"gaze.2d", pack(good)])
        msg = sub.recv(2.0)
        assert msg is not None and msg[1]["source"] == "raw"
        assert sub.stats["malformed"] == 4 and sub.stats["wrong_version"] == 2 and sub.stats["received"] == 1
    pub.close()


def test_malformed_control_requests_get_errors_not_a_crash(tracker):
    ctx = zmq.Context.instance()
    for raw in (b"\xc1 garbage", msgpack.packb([1, 2]), msgpack.packb({"cmd": "status"}),
                msgpack.packb({"v": 99, "cmd": "status"}), msgpack.packb({"v": SCHEMA_VERSION, "cmd": 5})):
        req = ctx.socket(zmq.REQ)
        req.linger = 0
        req.connect(tracker.ctrl_address)
        req.send(raw)
        assert req.poll(2000)
        reply = msgpack.unpackb(req.recv())
        assert reply["ok"] is False and reply["error"]
        req.close()
    with TrackerControl(tracker.ctrl_address) as ctl:
        st = ctl.status()
    assert st["state"] == "running" and st["bad_requests"] >= 5 and tracker.alive()


def test_stalled_subscriber_never_blocks_publishing():
    # --sndhwm bounds the tracker's queue to every subscriber, the healthy one too: 300 messages (150 ms at
    # 2000 Hz) let the healthy reader's process be descheduled that long on a loaded 2-core machine without
    # a gap (50, 25 ms, failed once so), while the stalled one still keeps under a quarter of the stream
    # (about 600 of 4000 messages, the rest being kernel socket buffers)
    with start_tracker(PLUGIN, {"rate_hz": 2000}, env=plugin_env(), extra_args=["--sndhwm", "300", "--sndbuf", "65536"]) as tr:
        # a subscriber that stops reading, with small queues so the stall shows quickly
        with GazeSubscriber(tr.pub_address, rcvhwm=50, rcvbuf=4096) as stalled, \
                GazeSubscriber(tr.pub_address) as healthy, TrackerControl(tr.ctrl_address) as ctl:
            time.sleep(0.3)
            before = ctl.status()["published"]["gaze.2d"]
            t0 = time.monotonic()
            got = []
            while time.monotonic() - t0 < 2.0:
                got += healthy.drain()
                time.sleep(0.002)
            published = ctl.status()["published"]["gaze.2d"] - before
            got += healthy.drain()
            # the tracker kept publishing at its rate while one subscriber stalled...
            assert published > 0.8 * 2000 * 2.0
            # ...and the healthy subscriber lost nothing
            assert healthy.stats["gaps"] == 0 and healthy.stats["dropped"] == 0
            assert len(got) >= published
            # the stalled one kept a bounded queue; when it reads again it sees the gap, counted
            kept, deadline = [], time.monotonic() + 3.0
            while stalled.stats["gaps"] == 0 and time.monotonic() < deadline:
                msg = stalled.recv(0.5)
                if msg:
                    kept.append(msg)
            assert stalled.stats["gaps"] >= 1 and stalled.stats["dropped"] > published / 2
            assert len(kept) < published / 4
            # the loss is visible on both sides: the client's lost counter beside the tracker's sent count
            comp = stalled.compare(ctl.status())["gaze.2d"]
            assert comp["lost"] == stalled.lost("gaze.2d") == stalled.stats["dropped"]
            last = stalled.per_topic["gaze.2d"]["last_seq"]
            assert comp["before_subscribing"] + comp["received"] + comp["lost"] + comp["not_yet_received"] == \
                max(comp["sent"], last + 1)
            assert healthy.compare(ctl.status())["gaze.2d"]["lost"] == 0


@pytest.mark.slow
def test_curve_refusal(tmp_path):
    keys = tmp_path / "keys"
    out = subprocess.run([sys.executable, "-m", "gaze3d", "keys", str(keys)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert (keys / "server.key_secret").is_file() and (keys / "authorized_clients" / "client.key").is_file()
    wrong = tmp_path / "wrong"
    subprocess.run([sys.executable, "-m", "gaze3d", "keys", str(wrong)], check=True, timeout=60)
    # the real "serve other machines" path: all interfaces, which requires the keys
    with start_tracker(PLUGIN, {"rate_hz": 500}, env=plugin_env(), curve_keys=keys, bind_public=True,
                       pub="tcp://0.0.0.0:*", ctrl="tcp://0.0.0.0:*") as tr:
        assert tr.pub_address.startswith("tcp://0.0.0.0:")
        assert tr.curve_server_key and len(tr.curve_server_key) == 40
        right = GazeSubscriber(tr.pub_address, curve_server_key=keys / "server.key",
                               curve_client_cert=keys / "client.key_secret")
        plain = GazeSubscriber(tr.pub_address)
        wrong_server = GazeSubscriber(tr.pub_address, curve_server_key=wrong / "server.key",
                                      curve_client_cert=keys / "client.key_secret")
        unlisted_client = GazeSubscriber(tr.pub_address, curve_server_key=keys / "server.key",
                                         curve_client_cert=wrong / "client.key_secret")
        try:
            assert len(_collect(right, 50)) == 50
            for refused in (plain, wrong_server, unlisted_client):
                assert refused.recv(1.0) is None and refused.stats["received"] == 0
            with TrackerControl(tr.ctrl_address, curve_server_key=tr.curve_server_key,
                                curve_client_cert=keys) as ctl:
                assert ctl.status()["curve"] is True
            with TrackerControl(tr.ctrl_address, timeout_s=1.0) as ctl:
                with pytest.raises(TrackerTimeout):
                    ctl.status()
        finally:
            for s in (right, plain, wrong_server, unlisted_client):
                s.close()


def _cli(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "gaze3d", "tracker", *args], capture_output=True, text=True,
                          timeout=timeout, env=plugin_env())


def test_cli_refuses_public_binding_without_keys_and_bad_sources(tmp_path):
    r = _cli("--source", PLUGIN, "--pub", "tcp://0.0.0.0:*")
    assert r.returncode == 2 and "--bind-public" in r.stderr and r.stderr.count("\n") == 1
    r = _cli("--source", PLUGIN, "--bind-public")
    assert r.returncode == 2 and "requires --curve-keys" in r.stderr
    r = _cli("--source", "module:no_such_module_xyz:Thing")
    assert r.returncode == 2 and "cannot import" in r.stderr
    r = _cli("--source", "module:json:JSONDecoder")
    assert r.returncode == 2 and "not a GazeSource" in r.stderr
    r = _cli("--source", PLUGIN, "--opt", "novalue")
    assert r.returncode == 2 and "key=value" in r.stderr
    r = _cli("--source", PLUGIN, "--curve-keys", str(tmp_path))
    assert r.returncode == 2 and "server.key_secret" in r.stderr
    r = _cli("--source", "replay", "--opt", f"path={tmp_path / 'missing.sqlite'}")
    assert r.returncode == 2 and "no such file" in r.stderr and r.stderr.count("\n") == 1  # fails fast, no retries


def test_cli_prints_one_json_line_and_stops_on_shutdown():
    proc = subprocess.Popen([sys.executable, "-m", "gaze3d", "tracker", "--source", PLUGIN],
                            stdout=subprocess.PIPE, text=True, env=plugin_env())
    try:
        info = json.loads(proc.stdout.readline())
        assert info["pub"].startswith("tcp://127.0.0.1:") and info["ctrl"].startswith("tcp://127.0.0.1:")
        with TrackerControl(info["ctrl"]) as ctl:
            ctl.request("shutdown")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
