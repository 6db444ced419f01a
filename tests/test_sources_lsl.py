"""The ``lsl`` source with real pylsl outlets on this machine (in-process and in another process)."""
from __future__ import annotations

import math
import time
import uuid

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
    for bad, word in (("x:0", "required"), ("x:0,y:one", "integer"), ("x:0,y:1,z:2", "unknown field"),
                      ("x0,y1", "field:index")):
        with pytest.raises(InputError, match=word):
            parse_channels(bad)


def test_lsl_maps_channels_validity_and_time():
    name = _name()
    info = pylsl.StreamInfo(name, "Gaze", 5, 250, "float32", name)
    outlet = pylsl.StreamOutlet(info)
    # pixels on a 1000x500 screen, y up; channels: conf, pupil, y, x, spare
    src = get_source("lsl", name=name, channels="x:3,y:2,confidence:0,pupil:1", threshold="0.7",
                     scale="1000,500", flip_y="true", resolve_timeout="5")
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
        # LSL local_clock -> this host's monotonic clock: before arrival, within a second
        assert -5e6 <= s["t_host_ns"] - s["t_capture_ns"] < 1e9


def test_lsl_resolve_by_type_and_missing_stream():
    with pytest.raises(SourceError, match="no stream"):
        get_source("lsl", name=_name(), resolve_timeout="0.3").open()
    name = _name()
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Gaze", 2, 100, "float32", name))
    try:
        src = get_source("lsl", type="Gaze", source_id=name, resolve_timeout="5")
        src.open()
        outlet.push_sample([0.25, 0.75])
        got = read_for(src, 0.1, min_samples=1)
        src.close()
        assert got[0]["gaze"] == pytest.approx([0.25, 0.75]) and got[0]["valid"]
        with pytest.raises(InputError, match="out of range"):
            get_source("lsl", name=name, channels="x:0,y:5", resolve_timeout="5").open()
    finally:
        del outlet


def test_lsl_outlet_process_killed_raises_and_reopen_works():
    name = _name()
    proc, _ = start_helper("lsl-outlet", "--name", name, "--rate", "200")
    src = get_source("lsl", name=name, channels="x:0,y:1,valid:2", resolve_timeout="5")
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
