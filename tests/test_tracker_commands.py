"""Tracker options and control commands added for clients: --wait-subscriber, meta (real processes, loopback)."""
from __future__ import annotations

import time

import pytest

from gaze3d.tracker.client import GazeSubscriber, TrackerControl
from gaze3d.tracker.process import start_tracker

pytestmark = pytest.mark.timeout(60)


def test_late_subscriber_sees_the_whole_scripted_session():
    rate, duration = 500, 1.0
    with start_tracker("sim", {"rate": rate, "duration": duration, "seed": 1},
                       extra_args=["--wait-subscriber"]) as tracker:
        with TrackerControl(tracker.ctrl_address) as control:
            time.sleep(0.5)  # a subscriber that joins late
            assert control.status()["state"] == "waiting for a subscriber"
            with GazeSubscriber(tracker.pub_address, topics=("gaze.2d",)) as sub:
                first = sub.recv(timeout_s=10)
                assert first is not None
                got = [first] + [m for m in iter(lambda: sub.recv(timeout_s=2), None)]
    seqs = [m["seq"] for _, m in got]
    assert seqs[0] == 0, "the first sample of the session was published before anyone listened"
    assert seqs == list(range(len(seqs)))
    assert len(seqs) == pytest.approx(rate * duration, abs=2)


def test_without_the_flag_a_late_subscriber_misses_the_start():
    with start_tracker("sim", {"rate": 500, "duration": 3, "seed": 1}) as tracker:
        time.sleep(0.5)
        with GazeSubscriber(tracker.pub_address, topics=("gaze.2d",)) as sub:
            first = sub.recv(timeout_s=10)
    assert first is not None and first[1]["seq"] > 0


def test_meta_command_lands_in_the_recording(tmp_path):
    from gaze3d.recording import Recording

    path = tmp_path / "s.gaze3d"
    with start_tracker("sim", {"rate": 200, "seed": 2}, record=path) as tracker:
        with TrackerControl(tracker.ctrl_address) as control:
            assert control.set_meta("calibration", {"profile": "alice", "kind": "affine"})["recorded"]
            with pytest.raises(Exception, match="key"):
                control.request("meta", value=1)
            assert control.status()["state"] == "running"
    assert Recording(path).meta["calibration"] == {"profile": "alice", "kind": "affine"}
