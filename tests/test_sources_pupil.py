"""The ``pupil`` source against a real test server process speaking the Pupil Core network API."""
from __future__ import annotations

import math
import threading
import time

import msgpack
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


# ---------------------------------------------------------------- Pupil's real message shapes (issue 13)
def _shape_of(sample) -> str:
    """Which Pupil shape a converted sample came from, by the per-eye fields it carries."""
    eyes = tuple(side for side in ("right", "left") if side in sample)
    has_3d = "gaze_point_3d_mm" in sample
    if has_3d:
        return {("right", "left"): "gaze.3d.01.", ("right",): "gaze.3d.0.", ("left",): "gaze.3d.1."}[eyes]
    return {(): "gaze.2d.01.", ("left",): "gaze.2d.1."}[eyes]


def test_pupil_decodes_every_shape_with_integer_keys_and_counts_bad_messages():
    from sources_helpers import PUPIL_EYE_CENTERS, PUPIL_NORMALS, pupil_shape

    rate = 400.0
    proc, info = start_pupil_server(offset=OFFSET, rate=rate, shapes="mixed")
    src = _source(info)
    try:
        src.open()
        samples = read_for(src, 1.0, min_samples=300)
        counters = src.counters()
    finally:
        src.close()
        stop_process(proc)
    assert len(samples) >= 300
    steps = [round((s["t_device"] - samples[0]["t_device"]) * rate) for s in samples]
    assert steps == list(range(len(samples))), "a datum was lost between the server and the source"
    shapes = [_shape_of(s) for s in samples]
    assert any(all(pupil_shape(k0 + d) == sh for d, sh in enumerate(shapes)) for k0 in range(10)), \
        "samples do not follow the server's sequence of shapes"
    assert shapes.count("gaze.3d.01.") > 0.5 * len(samples)       # binocular 3D: the bulk, none lost
    for s, sh in zip(samples, shapes):
        if sh == "gaze.3d.01.":
            assert s["right"]["origin_mm"] == PUPIL_EYE_CENTERS[0] and s["left"]["origin_mm"] == PUPIL_EYE_CENTERS[1]
            assert s["right"]["direction"] == PUPIL_NORMALS[0] and s["left"]["direction"] == PUPIL_NORMALS[1]
        elif sh in ("gaze.3d.0.", "gaze.3d.1."):
            eye = int(sh[-2])
            side = "right" if eye == 0 else "left"
            assert s[side]["origin_mm"] == PUPIL_EYE_CENTERS[eye] and s[side]["direction"] == PUPIL_NORMALS[eye]
    # every message is accounted for: the server's malformed one per 100 datums is counted, not swallowed
    assert counters["samples"] >= len(samples) and counters["convert_errors"] == 0
    assert counters["messages"] == counters["samples"] + counters["decode_errors"]
    assert counters["decode_errors"] >= 2 and "decode error" in counters["last_error"]


def test_convert_gaze_datum_errors_are_raised_for_counting():
    from gaze3d.tracker.sources.pupil import convert_gaze_datum, decode_pupil

    datum = decode_pupil(msgpack.packb({"norm_pos": [0.2, 0.3], "confidence": 0.9, "timestamp": 1.0,
                                        "eye_centers_3d": {0: [1, 2, 3], 1: [4, 5, 6]},
                                        "gaze_normals_3d": {0: [0, 0, 1], 1: [0, 0, 1]}}))
    s = convert_gaze_datum(datum, 0.6, 0.0)
    assert s["right"]["origin_mm"] == [1.0, 2.0, 3.0] and s["left"]["origin_mm"] == [4.0, 5.0, 6.0]
    assert s["gaze"] == pytest.approx([0.2, 0.7])
    for bad in ({"norm_pos": "ab", "confidence": 0.9}, {"norm_pos": [0.1, 0.2], "confidence": "high"},
                {"norm_pos": [0.1, 0.2, 0.3], "confidence": 0.9},
                {"norm_pos": [0.1, 0.2], "confidence": 0.9, "eye_centers_3d": {0: [1, 2]}}):
        with pytest.raises((ValueError, TypeError)):
            convert_gaze_datum(bad, 0.6, 0.0)
    with pytest.raises(ValueError, match="expected a map"):
        decode_pupil(msgpack.packb([1, 2]))


def test_best_offset_keeps_the_shortest_round_trip():
    from gaze3d.tracker.sources.pupil import best_offset

    # (send, pupil time, receive): the true offset is 100; slow exchanges are off by up to half their RTT
    exchanges = [(0.0, 100.5, 2.0), (10.0, 110.0005, 10.001), (20.0, 120.9, 21.0)]
    offset, rtt = best_offset(exchanges)
    assert rtt == pytest.approx(0.001) and offset == pytest.approx(100.0, abs=0.0005)


def test_pupil_clock_offset_is_re_estimated_from_the_best_round_trip():
    # every second 't' reply leaves 30 ms late: a single exchange may be off by 15 ms, the best of 6 is not
    proc, info = start_pupil_server(offset=OFFSET, rate=100.0, t_delay_s=0.03)
    src = get_source("pupil", port=str(info["remote_port"]), probe_s="0.3", timeout_s="1.0", clock_rounds="6",
                     clock_every_s="0.4")
    try:
        src.open()
        first = src.counters()
        read_for(src, 1.5, min_samples=50)
        later = src.counters()
    finally:
        src.close()
        stop_process(proc)
    assert first["clock_updates"] == 1 and later["clock_updates"] >= 3            # periodic, not only at open
    for c in (first, later):
        # same host, Pupil time = monotonic + OFFSET: the estimate is within half the kept round trip
        assert c["clock_rtt_s"] < 0.01
        assert abs(c["clock_offset_s"] - OFFSET) <= c["clock_rtt_s"] / 2 + 1e-4


def test_tracker_status_reports_pupil_decode_failures(tmp_path):
    from gaze3d.tracker.client import TrackerControl
    from gaze3d.tracker.process import start_tracker

    proc, info = start_pupil_server(offset=OFFSET, rate=300.0, shapes="mixed")
    try:
        with start_tracker("pupil", {"port": info["remote_port"], "probe_s": 0.3}) as tracker, \
                TrackerControl(tracker.ctrl_address, timeout_s=5.0) as ctl:
            deadline = time.monotonic() + 15
            st = ctl.status()
            while time.monotonic() < deadline and st["source_counters"].get("decode_errors", 0) < 2:
                time.sleep(0.2)
                st = ctl.status()
    finally:
        stop_process(proc)
    counters = st["source_counters"]
    assert st["state"] == "running" and counters["decode_errors"] >= 2 and counters["convert_errors"] == 0
    # everything decoded was published: the tracker's count matches the source's
    assert abs(st["published"]["gaze.2d"] - counters["samples"]) <= 300 * 0.25
