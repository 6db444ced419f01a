"""The ``lsl`` source with real pylsl outlets on this machine (in-process and in another process)."""
from __future__ import annotations

import json
import math
import os
import time
import uuid

import numpy as np
import pytest

from gaze3d.errors import InputError
from gaze3d.tracker.sources import get_source
from gaze3d.tracker.sources.base import SourceError
from gaze3d.tracker.sources.lsl import parse_channels
from sources_helpers import read_for, start_helper, stop_process

pylsl = pytest.importorskip("pylsl", reason="pylsl (gaze3d[lsl]) is not installed")
pytestmark = pytest.mark.timeout(60)


def _name():
    return f"g3d-test-{uuid.uuid4().hex[:8]}"


def test_parse_channels():
    assert parse_channels("x:0,y:1,valid:2") == {"x": 0, "y": 1, "valid": 2}
    assert parse_channels({"x": 3, "y": 4}) == {"x": 3, "y": 4}
    assert parse_channels("ox:0,oy:1,oz:2,dx:3,dy:4,dz:5")["dz"] == 5         # a 3D ray alone is enough
    for bad, word in (("x:0", "required"), ("x:0,y:one", "integer"), ("x:0,y:1,z:2", "unknown field"),
                      ("x0,y1", "field:index"), ("x:0,y:1,ox:2,oy:3", "all six"),
                      ("left_ox:0,left_oy:1,left_oz:2,left_dx:3,left_dy:4", "left_dz")):
        with pytest.raises(InputError, match=word):
            parse_channels(bad)


def test_lsl_maps_channels_validity_and_time():
    name = _name()
    info = pylsl.StreamInfo(name, "Gaze", 5, 250, "float32", name)
    outlet = pylsl.StreamOutlet(info)
    # pixels on a 1000x500 screen, y up; channels: conf, pupil, y, x, spare
    src = get_source("lsl", name=name, channels="x:3,y:2,confidence:0,pupil:1", threshold="0.7",
                     scale="1000,500", flip_y="true", resolve_timeout="5", lsl_config="system")
    src.open()
    try:
        assert src.info()["channels"] == 5 and src.info()["stream"] == name
        sent = []
        for k in range(60):
            conf = 0.5 if k % 3 == 0 else 0.9
            row = [conf, 3.0 + k / 100, 100.0 + k, 200.0 + 2 * k, -1.0]
            t = pylsl.local_clock()
            outlet.push_sample(row, t)
            sent.append((row, t))
        got = read_for(src, 0.3, min_samples=60)
    finally:
        src.close()
        del outlet
    assert len(got) == 60
    for (row, t), s in zip(sent, got):
        assert s["t_device"] == pytest.approx(t, abs=1e-6)
        assert s["confidence"] == pytest.approx(row[0])
        if row[0] >= 0.7:
            assert s["valid"] and s["gaze"] == pytest.approx([row[3] / 1000, 1 - row[2] / 500], abs=1e-6)
            assert s["pupil_mm"] == pytest.approx(row[1], abs=1e-6)
        else:
            assert not s["valid"] and all(math.isnan(v) for v in s["gaze"])
        # t_host_ns is the capture time on this host's monotonic clock: before arrival, within a second
        assert s["t_host_ns"] == s["t_capture_ns"]
        assert -5e6 <= s["t_arrival_ns"] - s["t_host_ns"] < 1e9


def test_lsl_resolve_by_type_and_missing_stream():
    with pytest.raises(SourceError, match="no stream"):
        get_source("lsl", name=_name(), resolve_timeout="0.3", lsl_config="system").open()
    name = _name()
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Gaze", 2, 100, "float32", name))
    try:
        src = get_source("lsl", type="Gaze", source_id=name, resolve_timeout="5", lsl_config="system")
        src.open()
        outlet.push_sample([0.25, 0.75])
        got = read_for(src, 0.1, min_samples=1)
        src.close()
        assert got[0]["gaze"] == pytest.approx([0.25, 0.75]) and got[0]["valid"]
        with pytest.raises(InputError, match="out of range"):
            get_source("lsl", name=name, channels="x:0,y:5", resolve_timeout="5", lsl_config="system").open()
    finally:
        del outlet


def test_lsl_outlet_process_killed_raises_and_reopen_works():
    name = _name()
    proc, _ = start_helper("lsl-outlet", "--name", name, "--rate", "200")
    src = get_source("lsl", name=name, channels="x:0,y:1,valid:2", resolve_timeout="5", lsl_config="system")
    try:
        src.open()
        got = read_for(src, 0.3, min_samples=40)
        assert len(got) >= 40
        valid = [s["valid"] for s in got]
        assert 0.6 < sum(valid) / len(valid) < 0.9             # every 4th sample is flagged invalid
        assert all(s["gaze"][1] == pytest.approx(0.25) for s in got if s["valid"])
        proc.kill()
        proc.wait(5)
        with pytest.raises(SourceError, match="lost"):
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20:
                src.read(0.1)
    finally:
        src.close()
        stop_process(proc)
    proc2, _ = start_helper("lsl-outlet", "--name", name, "--rate", "200")
    try:
        src.open()
        assert len(read_for(src, 0.2, min_samples=10)) >= 10
        src.close()
    finally:
        stop_process(proc2)


# ------------------------------------------------------------------ issue 13: time, rate, 3D, network
def test_lsl_chunked_stream_rate_and_export_follow_capture_time(tmp_path):
    """250 Hz sent in 100 ms chunks: the recording's rate and BIDS SamplingFrequency are 250, not the chunk burst."""
    from gaze3d.bids import export_bids
    from gaze3d.cli.record import summary
    from gaze3d.recording import Recording
    from gaze3d.tracker.client import TrackerControl
    from gaze3d.tracker.process import start_tracker

    name = _name()
    proc, _ = start_helper("lsl-outlet", "--name", name, "--rate", "250", "--chunk", "25")
    try:
        with start_tracker("lsl", {"name": name, "channels": "x:0,y:1,valid:2", "resolve_timeout": 5},
                           record_dir=tmp_path) as tracker, \
                TrackerControl(tracker.ctrl_address, timeout_s=5.0) as ctl:
            deadline = time.monotonic() + 15
            while ctl.status()["state"] != "running" and time.monotonic() < deadline:
                time.sleep(0.1)
            info = ctl.status()["source_info"]
            ctl.start_recording("lsl.sqlite")
            time.sleep(2.0)
            ctl.stop_recording()
    finally:
        stop_process(proc)
    assert info["lsl_config"].endswith("lsl_api_loopback.cfg") and info["rate_hz"] == 250
    rec = Recording(tmp_path / "lsl.sqlite")
    payloads = list(rec.payloads("gaze.2d"))
    assert len(payloads) >= 300
    t_host = np.array([p["t_host_ns"] for p in payloads])
    t_arrival = np.array([p["t_arrival_ns"] for p in payloads])
    assert np.median(np.diff(t_host)) == pytest.approx(4e6, rel=0.01)     # capture: every 4 ms
    assert np.median(np.diff(t_arrival)) < 1e5                            # arrival: bursts of 25
    assert np.all(t_arrival - t_host >= -5e6) and np.all(t_arrival - t_host < 1e9)
    assert summary(tmp_path / "lsl.sqlite")["topics"]["gaze.2d"]["rate_hz"] == pytest.approx(250, rel=0.01)
    sidecar = json.loads(export_bids(rec, tmp_path / "bids")["sidecar"].read_text())
    assert sidecar["SamplingFrequency"] == pytest.approx(250, rel=0.01)


def test_lsl_3d_rays_are_published_on_gaze_3d():
    from gaze3d.protocol import decode, encode
    from sources_helpers import lsl_row

    name = _name()
    proc, _ = start_helper("lsl-outlet", "--name", name, "--rate", "200", "--rays")
    src = get_source("lsl", name=name, resolve_timeout="5", lsl_config="system",
                     channels="x:0,y:1,valid:2,ox:3,oy:4,oz:5,dx:6,dy:7,dz:8")
    try:
        src.open()
        got = read_for(src, 0.3, min_samples=40)
    finally:
        src.close()
        stop_process(proc)
    assert len(got) >= 40 and src.info()["topic"] == "gaze.3d"
    for s in got:
        assert s["topic"] == "gaze.3d"
        assert s["ray_direction"] == pytest.approx([0.6, 0.0, 0.8], abs=1e-6)       # normalised
        k = round(s["ray_origin"][0] / 0.01)
        assert s["ray_origin"] == pytest.approx(lsl_row(k, rays=True)[3:6], abs=1e-4)
        assert s["valid"] == (k % 4 != 0)          # the stream's valid channel, with a finite ray
        header = {"v": 1, "source": "lsl", "session": "s", "seq": 0, "t_device": s["t_device"]}
        topic, payload = decode(encode("gaze.3d", {**s, **header}))
        assert payload["ray_origin"] == s["ray_origin"]


def _lsl_sockets_while_resolving(config: str, env=None):
    """Sockets of a tracker process whose lsl source keeps resolving a stream that does not exist."""
    from gaze3d.tracker.process import start_tracker
    from sources_helpers import process_sockets

    seen = []
    with start_tracker("lsl", {"name": _name(), "resolve_timeout": 1.0, "lsl_config": config}, env=env,
                       extra_args=["--backoff-s", "0.05", "0.1"]) as tracker:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            seen += process_sockets(tracker.pid)
            time.sleep(0.05)
    return seen


@pytest.mark.skipif(not os.path.exists("/proc/self/net/udp"), reason="socket inspection needs Linux /proc/net")
def test_lsl_loopback_config_keeps_liblsl_on_this_machine():
    from gaze3d.tracker.sources.lsl import LOOPBACK_CONFIG, loopback_config_path

    path = loopback_config_path()
    assert open(path).read() == LOOPBACK_CONFIG and (os.stat(os.path.dirname(path)).st_mode & 0o077) == 0
    env = {k: v for k, v in os.environ.items() if k != "LSLAPICFG"}
    seen = _lsl_sockets_while_resolving("loopback", env)
    assert seen, "the tracker process had no sockets at all"
    # no IPv6 at all, and no TCP socket listening beyond loopback (the tracker's own binds are 127.0.0.1)
    assert not [s for s in seen if s["proto"].endswith("6")], seen
    assert all(s["local"].startswith("127.") for s in seen if s["proto"] == "tcp" and s["listening"]), seen
    # what liblsl cannot restrict (documented in docs/sources.md): unconnected UDP sockets on 0.0.0.0
    assert all(s["local"] in ("127.0.0.1", "0.0.0.0") for s in seen if s["proto"] == "udp"), seen
    if os.path.exists("/proc/self/net/udp6"):
        # the same tracker on liblsl's own defaults opens IPv6 sockets on all interfaces: the setting matters
        system = _lsl_sockets_while_resolving("system", env)
        assert [s for s in system if s["proto"] == "udp6" and s["local"] == "::"], system
