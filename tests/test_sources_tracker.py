"""The sources served by a real ``gaze3d tracker`` process, read by a real subscriber over loopback ZMQ."""
from __future__ import annotations

import math
import time

import pytest

from sources_helpers import env_with_fakes, start_pupil_server, stop_process

tracker_process = pytest.importorskip("gaze3d.tracker.process", reason="tracker process module not available")
client = pytest.importorskip("gaze3d.tracker.client", reason="tracker client not available")
pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


def _collect(sub, seconds, until=None):
    out = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        got = sub.recv(0.05)
        if got is not None:
            out.append(got)
            if until is not None and until(out):
                break
    return out


def test_tracker_serves_sim_with_truth():
    with tracker_process.start_tracker("sim", {"rate": 1200, "seed": 3}) as tp:
        with client.GazeSubscriber(tp.pub_address, topics=("gaze.",)) as sub:
            msgs = _collect(sub, 1.5, until=lambda m: len(m) >= 600)
    assert len(msgs) >= 600
    topics = {t for t, _ in msgs}
    assert topics == {"gaze.2d"}
    payloads = [p for _, p in msgs]
    assert all(p["source"] == "sim" and "truth" in p for p in payloads)
    seqs = [p["seq"] for p in payloads]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))         # no gaps
    dt = [b["t_device"] - a["t_device"] for a, b in zip(payloads, payloads[1:])]
    assert max(abs(d - 1 / 1200) for d in dt) < 1e-9


def test_tracker_serves_fake_tobii_and_reconnects_after_disconnect():
    env = env_with_fakes()
    env.update(FAKE_TOBII_FREQUENCY="300", FAKE_TOBII_DISCONNECT_AFTER_S="0.6")
    with tracker_process.start_tracker("tobii", {}, env=env) as tp:
        with client.GazeSubscriber(tp.pub_address, topics=("gaze.",)) as sub, \
                client.TrackerControl(tp.ctrl_address) as ctl:
            msgs = _collect(sub, 6.0, until=lambda m: ctl.status()["reconnects"] >= 1 and len(m) > 250)
            status = ctl.status()
    payloads = [p for _, p in msgs]
    assert status["reconnects"] >= 1 and status["source_info"]["model"] == "Fake Spectrum"
    assert len(payloads) > 150
    assert all("left" in p and "right" in p for p in payloads)
    # the subscriber sees the gap: device time jumps (a re-plugged device restarts its clock)
    t = [p["t_device"] for p in payloads]
    assert any(b <= a for a, b in zip(t, t[1:])) or max(b - a for a, b in zip(t, t[1:])) > 0.05


def test_tracker_serves_pupil_test_server():
    proc, info = start_pupil_server(rate=200.0)
    try:
        with tracker_process.start_tracker("pupil", {"port": info["remote_port"]}) as tp:
            with client.GazeSubscriber(tp.pub_address, topics=("gaze.",)) as sub:
                msgs = _collect(sub, 3.0, until=lambda m: len(m) >= 100)
    finally:
        stop_process(proc)
    payloads = [p for _, p in msgs]
    assert len(payloads) >= 100
    valid = [p for p in payloads if p["valid"]]
    assert valid and all(0.3 - 1e-9 <= p["gaze"][1] <= 0.7 + 1e-9 for p in valid)
    assert all(math.isnan(p["gaze"][0]) for p in payloads if not p["valid"])
