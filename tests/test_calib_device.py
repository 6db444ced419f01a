"""Device calibration: Tobii screen-based calibration through a real tracker process (fake SDK), Pupil Remote."""
import json
import time

import pytest

from gaze3d.calib.device import (DeviceCalibrationError, PupilRemote, pupil_calibration, tracker_calibration,
                                 tracker_pupil_calibration)
from gaze3d.calib.targets import target_layout
from gaze3d.cli import main

from sources_helpers import env_with_fakes, start_pupil_server, stop_process

pytestmark = pytest.mark.timeout(90)


def _wait_running(ctrl_address, timeout_s=20.0):
    from gaze3d.tracker.client import TrackerControl
    with TrackerControl(ctrl_address, timeout_s=5.0) as c:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = c.status()
            if st["state"] == "running":
                return st
            time.sleep(0.05)
    raise AssertionError(f"tracker not running: {st}")


@pytest.fixture
def tobii_tracker(monkeypatch):
    from gaze3d.tracker.process import start_tracker
    env = env_with_fakes()
    env["FAKE_TOBII_FREQUENCY"] = "120"
    with start_tracker("tobii", {}, env=env) as tracker:
        _wait_running(tracker.ctrl_address)
        yield tracker


def test_tobii_screen_calibration_through_the_tracker_process(tobii_tracker, capsys):
    shown = []
    res = tracker_calibration(tobii_tracker.ctrl_address, target_layout(5), settle_s=0.02,
                              on_target=lambda i, x, y: shown.append((i, x, y)))
    assert res["ok"] and res["compute"]["status"] == "calibration_status_success"
    assert res["compute"]["points"] == 5
    assert [p["collected"] for p in res["points"]] == [True] * 5
    assert [s[0] for s in shown] == [0, 1, 2, 3, 4] and shown[0][1:] == (0.5, 0.5)
    # calibration mode was left: a second calibration can enter it again, here from the CLI
    rc = main(["calibrate", "device", "--tracker", tobii_tracker.ctrl_address, "--points", "9",
               "--settle", "0.01"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"] and out["compute"]["points"] == 9
    from gaze3d.tracker.client import TrackerControl
    with TrackerControl(tobii_tracker.ctrl_address) as c:
        assert c.status()["state"] == "running"                  # gaze keeps flowing afterwards


def test_tobii_failed_calibration_still_leaves_calibration_mode(tobii_tracker):
    res = tracker_calibration(tobii_tracker.ctrl_address, [[0.5, 0.5]], settle_s=0.0)
    assert res["ok"] is False and res["compute"]["status"] == "calibration_status_failure"
    again = tracker_calibration(tobii_tracker.ctrl_address, target_layout(5)[:3], settle_s=0.0)
    assert again["ok"]


def test_source_without_device_calibration_is_a_clear_error(capsys):
    from gaze3d.tracker.process import start_tracker
    with start_tracker("sim", {"rate": 100}) as tracker:
        _wait_running(tracker.ctrl_address)
        rc = main(["calibrate", "device", "--tracker", tracker.ctrl_address, "--settle", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "device calibration start: source 'sim' has no device calibration" in err


def test_pupil_core_calibration_direct_and_through_the_tracker():
    proc, info = start_pupil_server(rate=100.0)
    try:
        addr = f"tcp://127.0.0.1:{info['remote_port']}"
        waited = []
        r = pupil_calibration(addr, duration_s=0.2, wait=waited.append)
        assert r == {"ok": True, "start_reply": "OK", "stop_reply": "OK"} and waited == [0.2]
        from gaze3d.tracker.process import start_tracker
        opts = {"port": info["remote_port"], "probe_s": 0.3, "timeout_s": 1.0}
        with start_tracker("pupil", opts) as tracker:
            _wait_running(tracker.ctrl_address)
            r = tracker_pupil_calibration(tracker.ctrl_address, duration_s=0.05)
            assert r["ok"] and r["start_reply"] == "OK" and r["stop_reply"] == "OK"
    finally:
        stop_process(proc)


def test_pupil_remote_absent_is_a_clear_error():
    import zmq
    ctx = zmq.Context.instance()
    probe = ctx.socket(zmq.REP)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(0)                                            # nothing listens there any more
    remote = PupilRemote(f"tcp://127.0.0.1:{port}", timeout_s=0.3)
    with pytest.raises(DeviceCalibrationError, match=r"did not answer 'C' within 0.3 s \(is Pupil Capture"):
        remote.start_calibration()
    remote.close()
