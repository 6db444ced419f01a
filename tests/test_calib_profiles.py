"""Profiles in the user config folder, and recordings that replay with the correction they used."""
import json
import time

import numpy as np
import pytest

from gaze3d.calib.correction import Correction, CorrectingSubscriber, correct_sample, fit_from_report
from gaze3d.calib.profiles import (Profile, ProfileNotFoundError, ProfileStore, calibration_event, config_dir,
                                   recording_correction, store_in_recording)
from gaze3d.calib.timeline import replay_samples
from gaze3d.calib.session import presentations_from_samples, simulate_validation
from gaze3d.calib.validation import GazeData, ValidationSettings, validate
from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError

AFFINE = Correction("affine", [[0.004, -0.006], [1.02, 0.01], [-0.01, 0.98]])


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("GAZE3D_CONFIG_DIR", str(tmp_path / "cfg"))
    return ProfileStore()


def test_config_folder_env_and_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("GAZE3D_CONFIG_DIR", str(tmp_path / "a"))
    assert config_dir() == tmp_path / "a"
    assert ProfileStore().root == tmp_path / "a" / "profiles"
    monkeypatch.delenv("GAZE3D_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert ProfileStore().root == tmp_path / "xdg" / "gaze3d" / "profiles"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ProfileStore().root == tmp_path / "home" / ".config" / "gaze3d" / "profiles"


def test_profile_store_save_list_select_delete(store):
    assert store.names() == [] and store.selected() is None
    p = Profile("alice-dell24-tobii", annotator="alice", display="dell24", tracker="tobii",
                correction=AFFINE.to_dict())
    path = store.save(p)
    assert path.parent == store.root and json.loads(path.read_text())["annotator"] == "alice"
    store.save(Profile("bob"))
    assert store.names() == ["alice-dell24-tobii", "bob"]
    assert not list(store.root.glob(".*.tmp"))                 # atomic writes leave no temp files
    back = store.load("alice-dell24-tobii")
    np.testing.assert_array_equal(back.get_correction().apply([[0.2, 0.3]]), AFFINE.apply([[0.2, 0.3]]))
    store.select("bob")
    assert store.selected().name == "bob" and store.resolve(None).name == "bob"
    assert store.resolve("alice-dell24-tobii").annotator == "alice"
    store.delete("bob")
    assert store.names() == ["alice-dell24-tobii"] and store.selected() is None


def test_profile_bad_input(store):
    with pytest.raises(ProfileNotFoundError, match=r"profile 'carol': not found in .*available: none"):
        store.load("carol")
    with pytest.raises(ProfileNotFoundError):
        store.select("carol")
    with pytest.raises(InputError, match="profile name"):
        Profile("../evil")
    store.root.mkdir(parents=True)
    (store.root / "broken.json").write_text("{not json")
    with pytest.raises(InputError, match="broken.json: not a valid profile JSON"):
        store.load("broken")
    with pytest.raises(InputError, match="correction kind"):
        Profile("x", correction={"kind": "spline"})


def test_in_process_recording_replays_with_its_stored_correction(tmp_path, store):
    from gaze3d.recording import Recording, RecordingWriter
    profile = Profile("alice", annotator="alice", correction=AFFINE.to_dict())
    store.save(profile)
    rng = np.random.default_rng(0)
    live = []
    with RecordingWriter(tmp_path / "s.sqlite") as w:
        store_in_recording(w, profile)
        samples = [{"topic": "gaze.2d", "seq": i, "t_device": i / 300, "t_host_ns": 1_000_000 * i,
                    "gaze": rng.uniform(0, 1, 2).tolist(), "valid": True} for i in range(300)]
        samples[17] = {**samples[17], "gaze": [None, None], "valid": False}
        w.add_samples(samples)
        live = [correct_sample(s, profile.get_correction()) for s in samples]
    # the profile is recalibrated afterwards: the replay must still use the recorded one
    store.save(Profile("alice", correction=Correction("affine", [[0.1, 0.1], [1, 0], [0, 1]]).to_dict()))
    with Recording(tmp_path / "s.sqlite") as rec:
        assert rec.meta["calibration"]["profile"] == "alice"
        assert recording_correction(rec) == AFFINE
        cols = replay_samples(rec)
    expect = np.array([s["gaze"] if s["valid"] else [np.nan, np.nan] for s in live], dtype=float)
    np.testing.assert_array_equal(np.c_[cols["x"], cols["y"]], expect)


def _wait_state(control, state, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = control.status()
        if st["state"] == state:
            return st
        time.sleep(0.05)
    raise AssertionError(f"tracker never reached state {state!r}: {st}")


@pytest.mark.timeout(60)
def test_validation_through_a_tracker_process_with_the_sim_source(tmp_path):
    """Real tracker subprocess, sim source with a known offset/noise, recorded, validated from the file."""
    from gaze3d.recording import Recording
    from gaze3d.tracker.client import TrackerControl
    from gaze3d.tracker.process import start_tracker
    path = tmp_path / "sim.sqlite"
    opts = {"rate": 500, "duration": 40, "seed": 3, "offset_deg": "0.6,-0.4", "precision_deg": 0.08,
            "pursuit": 0, "realtime": "false"}
    with start_tracker("sim", opts, record=path) as tracker:
        with TrackerControl(tracker.ctrl_address, timeout_s=5.0) as control:
            _wait_state(control, "ended")
            assert control.stop_recording()["samples"] == 20000
    with Recording(path) as rec:
        cols = rec.samples()
        payloads = list(rec.payloads())
    t_dev = np.array([p["t_device"] for p in payloads])
    target = np.array([p["truth"]["target"] for p in payloads], dtype=float)
    pres = presentations_from_samples(t_dev, target, min_duration_s=0.5)   # the long fixations
    assert len(pres) >= 6
    data = GazeData(t_dev, np.c_[cols["x"], cols["y"]], cols["valid"], rate_hz=500)
    report = validate(data, pres, DisplayGeometry(), ValidationSettings(window_s=(0.15, 1.0)))
    ox, oy = report.offset_deg
    assert abs(ox - 0.6) < 0.1 and abs(oy + 0.4) < 0.1
    assert report.precision_rms_deg == pytest.approx(0.08, rel=0.10)


@pytest.mark.timeout(60)
def test_live_corrected_stream_equals_the_replay_with_the_stored_profile(tmp_path, store):
    """A live session corrects what it receives; replaying its recording gives the same samples."""
    from gaze3d.recording import Recording
    from gaze3d.tracker.client import GazeSubscriber, TrackerControl
    from gaze3d.tracker.process import start_tracker
    data, pres = simulate_validation(9, offset_deg=(0.7, 0.3), precision_rms_deg=0.06, seed=21)
    corr = fit_from_report(validate(data, pres), "affine")
    profile = Profile("alice", annotator="alice", tracker="sim", correction=corr.to_dict())
    store.save(profile)
    path = tmp_path / "live.sqlite"
    opts = {"rate": 250, "seed": 4, "offset_deg": "0.7,0.3", "precision_deg": 0.06}
    live = {}
    with start_tracker("sim", opts, record_dir=tmp_path) as tracker:
        with TrackerControl(tracker.ctrl_address, timeout_s=5.0) as control, \
                GazeSubscriber(tracker.pub_address, topics=("gaze.2d",)) as raw_sub:
            sub = CorrectingSubscriber(raw_sub, store.load("alice").get_correction())
            _wait_state(control, "running")
            control.start_recording(str(path))
            control.send_event(calibration_event(profile))
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                item = sub.recv(0.2)
                if item is not None:
                    live[item[1]["seq"]] = item[1]
            control.stop_recording()
    with Recording(path) as rec:
        cols = replay_samples(rec)
        raw_cols = rec.samples()
    by_seq = {int(s): i for i, s in enumerate(cols["seq"])}
    common = sorted(set(live) & set(by_seq))
    assert len(common) > 300                                     # ~2 s at 250 Hz, both sides
    got = np.array([[cols["x"][by_seq[s]], cols["y"][by_seq[s]]] for s in common])
    want = np.array([live[s]["gaze"] if live[s]["valid"] else [np.nan, np.nan] for s in common], dtype=float)
    np.testing.assert_array_equal(got, want)                      # bit for bit, NaN where invalid
    raw = np.array([[raw_cols["x"][by_seq[s]], raw_cols["y"][by_seq[s]]] for s in common])
    assert np.nanmin(np.abs(raw - got)) > 1e-4                   # the correction really changed them
