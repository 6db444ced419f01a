"""Recording store: write/read round trip, cameras, events, meta, crash safety of committed rows."""
import sqlite3

import numpy as np
import pytest

from gaze3d.camera import Camera
from gaze3d.errors import InputError
from gaze3d.recording import FORMAT_VERSION, Recording, RecordingWriter, is_recording

from recording_helpers import kill_writer_mid_stream


def _samples(n, start=0, topic="gaze.2d"):
    out = []
    for i in range(start, start + n):
        valid = i % 5 != 4
        out.append({"topic": topic, "seq": i, "t_host_ns": 1_000_000 * i, "t_device": i / 1000.0,
                    "gaze": [0.1 + i * 1e-3, 0.2] if valid else [float("nan"), float("nan")], "valid": valid,
                    "left": {"valid": valid, "pupil_mm": 3.0}, "right": {"valid": valid, "pupil_mm": 4.0}})
    return out


def test_roundtrip_samples_cameras_events_meta(tmp_path):
    path = tmp_path / "rec.gaze3d"
    cam = Camera(position=[0, -10, 5], focal_point=[0, 0, 0], view_up=[0, 0, 1], vfov_deg=40, width=800, height=600)
    with RecordingWriter(path) as w:
        w.add_samples(_samples(10))
        w.add_camera(2_000_000, cam)
        w.add_camera(1_000_000, cam.to_dict())
        w.add_event(5_000_000, {"type": "label", "label": "roof"})
        w.set_meta("display", {"width_mm": 520})
    assert is_recording(path)
    with Recording(path) as r:
        s = r.samples()
        assert len(r) == 10 and r.topics() == {"gaze.2d": 10}
        np.testing.assert_array_equal(s["seq"], np.arange(10))
        assert s["t_host_ns"].dtype == np.int64 and s["t_host_ns"][3] == 3_000_000
        assert s["valid"].tolist() == [i % 5 != 4 for i in range(10)]
        assert np.isnan(s["x"][4]) and s["x"][3] == pytest.approx(0.103)
        assert s["pupil_mm"][0] == pytest.approx(3.5) and np.isnan(s["pupil_mm"][4])
        assert s["t_device"][2] == pytest.approx(0.002)
        t, cams = r.camera_frames()
        assert t.tolist() == [1_000_000, 2_000_000]
        np.testing.assert_allclose(cams[0].position, cam.position)
        assert cams[0].width == 800 and cams[0].vfov_deg == 40
        assert r.events() == [{"type": "label", "label": "roof", "t_host_ns": 5_000_000}]
        assert r.meta["display"] == {"width_mm": 520} and r.meta["format_version"] == FORMAT_VERSION
        payloads = list(r.payloads())
        assert payloads[1]["left"]["pupil_mm"] == 3.0


def test_gaze3d_rays_and_head_pose(tmp_path):
    path = tmp_path / "vr.gaze3d"
    with RecordingWriter(path) as w:
        w.add_samples([{"topic": "gaze.3d", "t_host_ns": 5, "t_device": None, "valid": True,
                        "ray_origin": [1, 2, 3], "ray_direction": [0, 0, -1],
                        "head_pose": np.eye(4).ravel().tolist()}])
    s = Recording(path).samples("gaze.3d")
    assert s["ray_origin"].tolist() == [[1, 2, 3]] and s["head_pose"].shape == (1, 4, 4)
    assert np.isnan(s["t_device"][0]) and np.isnan(s["x"][0])


def test_empty_topic_gives_empty_columns(tmp_path):
    path = tmp_path / "e.gaze3d"
    RecordingWriter(path).close()
    s = Recording(path).samples()
    assert s["t_host_ns"].shape == (0,) and s["t_host_ns"].dtype == np.int64


def test_one_session_one_recording_never_overwrites(tmp_path):
    path = tmp_path / "r.gaze3d"
    with RecordingWriter(path) as w:
        w.add_samples(_samples(3))
    with pytest.raises(InputError, match="already exists"):
        RecordingWriter(path)
    assert len(Recording(path)) == 3


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        RecordingWriter(tmp_path / "nope" / "r.gaze3d")
    with pytest.raises(FileNotFoundError):
        Recording(tmp_path / "missing.gaze3d")
    other = tmp_path / "other.gaze3d"
    sqlite3.connect(other).execute("CREATE TABLE t (a)").connection.commit()
    with pytest.raises(InputError, match="not a gaze3d recording"):
        Recording(other)
    junk = tmp_path / "junk.gaze3d"
    junk.write_bytes(b"hello" * 100)
    with pytest.raises(InputError, match="not a gaze3d recording"):
        Recording(junk)
    with RecordingWriter(tmp_path / "w.gaze3d") as w:
        with pytest.raises(InputError, match="t_host_ns"):
            w.add_samples([{"gaze": [0, 0]}])
        with pytest.raises(InputError, match="JSON"):
            w.set_meta("x", object())
        with pytest.raises(InputError, match="event"):
            w.add_event(0, ["not", "a", "dict"])


def test_reader_sees_committed_rows_while_writer_is_open(tmp_path):
    path = tmp_path / "live.gaze3d"
    w = RecordingWriter(path, commit_interval_s=10.0)
    w.add_samples(_samples(5))
    assert len(Recording(path)) == 0  # not committed yet
    w.commit()
    assert len(Recording(path)) == 5
    w.close()


def test_sigkill_during_writing_leaves_a_readable_prefix(tmp_path):
    path = tmp_path / "crash.gaze3d"
    t_kill = kill_writer_mid_stream(path, ready_after=200, run_s=0.3, commit_interval_s=0.02)
    s = Recording(path).samples()
    n = len(s["seq"])
    assert n >= 200
    np.testing.assert_array_equal(s["seq"], np.arange(n))  # a gap-free prefix
    assert (t_kill - s["t_host_ns"][-1]) < 100e6  # at most the last 100 ms lost


def test_newer_format_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "future.gaze3d"
    RecordingWriter(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(InputError, match="recording format 99, this gaze3d reads formats 1, 2"):
        Recording(path)
