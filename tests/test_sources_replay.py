"""The ``replay`` source: real SQLite recordings and BIDS TSV files, at 1x, N x and max speed."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from gaze3d.errors import InputError
from gaze3d.recording import RecordingWriter
from gaze3d.tracker.sources import get_source
from sources_helpers import read_all

pytestmark = pytest.mark.timeout(60)


def _make_recording(path, n=300, rate=500.0):
    """A recording of n samples as the tracker writes them (stamped with v/source/seq, host times at rate)."""
    t0 = 5_000_000_000
    samples = []
    for i in range(n):
        ok = i % 7 != 0
        samples.append({"v": 1, "source": "sim", "session": "s1", "seq": i, "topic": "gaze.2d",
                        "t_device": 100.0 + i / rate, "t_host_ns": t0 + int(i * 1e9 / rate),
                        "gaze": [i / n, 0.5] if ok else [math.nan, math.nan], "valid": ok})
    with RecordingWriter(path) as w:
        w.add_samples(samples)
    return samples


def test_replay_max_speed_reproduces_samples(tmp_path):
    rec = tmp_path / "session.gaze3d"
    orig = _make_recording(rec)
    src = get_source("replay", path=str(rec), speed="max")
    src.open()
    got = read_all(src)
    src.close()
    assert len(got) == len(orig)
    for o, g in zip(orig, got):
        assert g["t_device"] == o["t_device"] and g["valid"] == o["valid"]
        assert g["t_recorded_ns"] == o["t_host_ns"]
        assert "seq" not in g and "v" not in g          # the tracker stamps replayed samples anew
        if o["valid"]:
            assert g["gaze"] == pytest.approx(o["gaze"])
    assert src.info()["samples"] == 300 and src.info()["duration_s"] == pytest.approx(299 / 500.0)


@pytest.mark.parametrize("speed, expected_s", [("1", 0.598), ("4", 0.598 / 4)])
def test_replay_paces_at_speed(tmp_path, speed, expected_s):
    rec = tmp_path / "session.gaze3d"
    _make_recording(rec)
    src = get_source("replay", path=str(rec), speed=speed)
    src.open()
    t0 = time.monotonic()
    got = read_all(src)
    elapsed = time.monotonic() - t0
    assert len(got) == 300
    assert expected_s * 0.9 <= elapsed <= expected_s + 0.5
    # arrival spacing follows the recording: the replayed host times span the scaled duration
    span = (got[-1]["t_host_ns"] - got[0]["t_host_ns"]) / 1e9
    assert span == pytest.approx(expected_s, abs=0.15)


def test_replay_loop(tmp_path):
    rec = tmp_path / "session.gaze3d"
    _make_recording(rec, n=50)
    src = get_source("replay", path=str(rec), speed="max", loop="true")
    src.open()
    got = []
    for _ in range(10):
        got += src.read(0.1)
    assert len(got) >= 150 and got[50]["t_device"] == got[0]["t_device"]


def test_replay_bids_tsv(tmp_path):
    bids = pytest.importorskip("gaze3d.bids")
    rec = tmp_path / "session.gaze3d"
    orig = _make_recording(rec, n=100)
    files = bids.export_bids(rec, tmp_path / "bids", prefix="sub-01_task-look")
    tsv = [p for p in files.values() if str(p).endswith(("_physio.tsv.gz", "_eyetrack.tsv.gz", "_eyetrack.tsv"))][0]
    src = get_source("replay", path=str(tsv), speed="max")
    src.open()
    got = read_all(src)
    assert len(got) == 100
    v = [g["valid"] for g in got]
    assert v == [o["valid"] for o in orig]
    xs = np.array([g["gaze"][0] for g in got if g["valid"]])
    np.testing.assert_allclose(xs, [o["gaze"][0] for o in orig if o["valid"]], atol=1e-5)


def test_replay_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="'path': required"):
        get_source("replay")
    with pytest.raises(InputError, match="no such file"):
        get_source("replay", path=str(tmp_path / "nope.gaze3d")).open()
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    with pytest.raises(InputError, match="expected a gaze3d recording"):
        get_source("replay", path=str(junk)).open()
    with pytest.raises(InputError, match="speed"):
        get_source("replay", path=str(junk), speed="-2")
    rec = tmp_path / "s.gaze3d"
    _make_recording(rec, n=5)
    with pytest.raises(InputError, match="no 'gaze.3d' samples"):
        get_source("replay", path=str(rec), topic="gaze.3d").open()
