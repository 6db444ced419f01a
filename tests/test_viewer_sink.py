"""The session's one sink: a tracker process or the viewer's own recording, same calls, same record."""
from __future__ import annotations

import time

import pytest

from gaze3d.camera import Camera
from gaze3d.recording import Recording

pytestmark = pytest.mark.timeout(60)

CAM = Camera(position=[0, -10, 5], focal_point=[0, 0, 0], view_up=[0, 0, 1])


def _drive(sink, t0):
    sink.camera(t0, CAM)
    sink.event(t0 + 1_000, {"type": "label", "label_id": 6})
    sink.meta("calibration", {"profile": None})
    sink.samples([{"topic": "gaze.2d", "source": "mouse", "t_host_ns": t0 + 2_000, "gaze": [0.5, 0.5],
                   "valid": True}])
    sink.commit()
    sink.close()
    sink.close()                                # idempotent


def test_local_sink_writes_the_recording_and_nothing_without_one(tmp_path):
    from gaze3d.viewer.sink import LocalSink

    sink = LocalSink(tmp_path / "s.gaze3d", annotator="ann", scan_source=None)
    assert sink.recording and not sink.from_tracker
    t0 = sink.now_ns()
    _drive(sink, t0)
    with Recording(tmp_path / "s.gaze3d") as rec:
        assert len(rec.camera_frames()[1]) == 1 and rec.events()[0]["label_id"] == 6
        assert rec.meta["annotator"] == "ann" and rec.meta["calibration"] == {"profile": None}
        assert len(rec.samples()["t_host_ns"]) == 1
    quiet = LocalSink(None)
    assert not quiet.recording
    _drive(quiet, quiet.now_ns())               # no recording: every call is a no-op
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.gaze3d"]


def test_tracker_sink_has_the_tracker_record_it(tmp_path):
    from gaze3d.tracker.process import start_tracker
    from gaze3d.viewer.sink import TrackerSink
    from gaze3d.viewer.tracker_link import TrackerLink

    with start_tracker("sim", {"rate": 200, "duration": 30, "seed": 1}, record_dir=tmp_path) as tracker:
        link = TrackerLink(tracker.pub_address, tracker.ctrl_address)
        sink = TrackerSink(link, tmp_path / "t.gaze3d")
        assert sink.recording and sink.from_tracker
        t0 = sink.now_ns()
        deadline = time.monotonic() + 5
        got = []
        while not got and time.monotonic() < deadline:
            got = sink.poll()
            time.sleep(0.05)
        assert got and got[0]["topic"] == "gaze.2d"           # gaze comes from the tracker
        _drive(sink, t0)                                        # closing stops the tracker's recording
        link.close()
    with Recording(tmp_path / "t.gaze3d") as rec:
        assert len(rec.camera_frames()[1]) == 1
        assert any(e.get("label_id") == 6 for e in rec.events())
        assert rec.meta["calibration"] == {"profile": None}
        assert len(rec.samples()["t_host_ns"]) > 0               # the tracker's own samples, not the mouse's
