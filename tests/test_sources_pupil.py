"""The ``pupil`` source against a real test server process speaking the Pupil Core network API."""
from __future__ import annotations

import math
import threading
import time

import pytest

from gaze3d.tracker.sources import get_source
from gaze3d.tracker.sources.base import SourceError
from sources_helpers import pupil_confidence, pupil_norm_pos, read_for, start_pupil_server, stop_process

pytestmark = pytest.mark.timeout(60)
OFFSET = 12345.0


@pytest.fixture
def server():
    proc, info = start_pupil_server(offset=OFFSET, rate=200.0)
    yield proc, info
    stop_process(proc)


def _source(info, **kw):
    return get_source("pupil", port=str(info["remote_port"]), probe_s="0.3", timeout_s="0.5", **kw)


def test_pupil_flips_y_thresholds_confidence_and_converts_time(server):
    proc, info = server
    src = _source(info)
    src.open()
    try:
        assert src.info()["sub_port"] == info["sub_port"] and src.info()["version"] == "3.5.0-test"
        samples = read_for(src, 0.6, min_samples=60)
    finally:
        src.close()
    assert len(samples) >= 60
    period = 1 / 200.0
    # the server's datum k has timestamp start + k/200 + OFFSET: recover k from consecutive timestamps
    t_first = samples[0]["t_device"]
    n_valid = n_invalid = 0
    ks = []
    for s in samples:
        assert s["topic"] == "gaze.2d"
        ks.append(s["t_device"])
        if s["valid"]:
            n_valid += 1
            assert s["confidence"] >= 0.6
            x, y = s["gaze"]
            assert 0.2 - 1e-9 <= x <= 0.8 + 1e-9 and 0.3 - 1e-9 <= y <= 0.7 + 1e-9
            assert s["right"]["origin_mm"] == [20.0, 15.0, -20.0] and s["left"]["origin_mm"] == [-40.0, 15.0, -20.0]
        else:
            n_invalid += 1
            assert s["confidence"] < 0.6 and all(math.isnan(v) for v in s["gaze"])
        # Pupil time -> this host's monotonic clock: captured shortly before it arrived here
        assert -5e6 <= s["t_host_ns"] - s["t_capture_ns"] < 1e9
    lags = sorted(s["t_host_ns"] - s["t_capture_ns"] for s in samples)
    assert lags[len(lags) // 2] < 20e6                 # typically well under 1 ms on loopback
    assert n_invalid >= n_valid / 8 and n_valid > n_invalid     # every 5th datum has low confidence
    # exact mapping: find k of the first sample from the pattern, then check flip y (origin bottom-left -> top-left)
    steps = [round((t - t_first) / period) for t in ks]
    for k0 in range(400):
        if all(not s["valid"] or (abs(s["gaze"][0] - pupil_norm_pos(k0 + d)[0]) < 1e-9
                                  and abs(s["gaze"][1] - (1 - pupil_norm_pos(k0 + d)[1])) < 1e-9)
               for s, d in zip(samples, steps)):
            break
    else:
        pytest.fail("samples do not match the server's gaze pattern with y flipped")
    assert all(s["valid"] == (pupil_confidence(k0 + d) >= 0.6) for s, d in zip(samples, steps))


def test_pupil_confidence_option(server):
    proc, info = server
    src = _source(info, confidence="0.2")
    src.open()
    try:
        samples = read_for(src, 0.3, min_samples=20)
    finally:
        src.close()
    assert all(s["valid"] for s in samples)


def test_pupil_calibration_hooks(server):
    proc, info = server
    src = _source(info)
    src.open()
    try:
        assert src.calibrate("start") == {"ok": True, "reply": "OK"}
        time.sleep(0.1)
        assert src.calibrate("stop")["ok"]
        assert src.calibrate("explode")["ok"] is False
    finally:
        src.close()


def test_pupil_server_killed_raises_and_reopen_works():
    proc, info = start_pupil_server(offset=OFFSET)
    src = _source(info)
    try:
        src.open()
        assert read_for(src, 0.1, min_samples=5)
        proc.kill()
        proc.wait(5)
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="did not answer"):
            for _ in range(100):
                src.read(0.1)
        assert time.monotonic() - t0 < 3.0
        with pytest.raises(SourceError):          # nobody there: open fails cleanly
            src.open()
    finally:
        stop_process(proc)
    proc2, info2 = start_pupil_server(offset=OFFSET)
    try:
        src = _source(info2)
        src.open()                                # a fresh server: reopen works
        assert len(read_for(src, 0.2, min_samples=10)) >= 10
        src.close()
    finally:
        stop_process(proc2)


def test_pupil_close_from_another_thread_wakes_read(server):
    proc, info = server
    src = get_source("pupil", port=str(info["remote_port"]), topic="nothing.")   # subscribed to a silent topic
    src.open()
    threading.Timer(0.2, src.close).start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5 and src.read(0.5) == [] and src._sub is not None:
        pass
    assert time.monotonic() - t0 < 2.0
    assert src._sub is None and src._req is None


def test_pupil_bad_options():
    from gaze3d.errors import InputError
    with pytest.raises(InputError, match="confidence"):
        get_source("pupil", confidence="1.5")
    with pytest.raises(InputError, match="port"):
        get_source("pupil", port="http")
