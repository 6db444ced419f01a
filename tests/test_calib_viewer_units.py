"""Calibration in the labeling session without a tracker: timeline rules, local recordings, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from viewer_helpers import box_scene, scene_camera

pytestmark = pytest.mark.timeout(60)


def _store(tmp_path):
    from gaze3d.calib.profiles import Profile, ProfileStore

    store = ProfileStore(tmp_path / "config")
    store.save(Profile("alice", correction={"kind": "affine", "coef": [[0.02, -0.01], [1.0, 0.0], [0.0, 1.0]]}))
    return store


def _session(tmp_path, **kw):
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.session import LabelingSession

    xyz, _ = box_scene(2000, 400)
    return LabelingSession(PointCloud(xyz), camera=scene_camera(), segmenter="grow", annotator="t", **kw)


def test_timeline_corrects_each_sample_by_its_own_time():
    from gaze3d.calib.correction import Correction
    from gaze3d.calib.timeline import CorrectionTimeline
    from gaze3d.errors import InputError

    a = Correction("affine", [[0.1, 0.0], [1.0, 0.0], [0.0, 1.0]])
    b = Correction("affine", [[0.0, 0.2], [1.0, 0.0], [0.0, 1.0]])
    tl = CorrectionTimeline()
    tl.set(100, None, a)
    tl.set(200, None, b)
    t = np.array([50, 100, 199, 200, 300])
    xy = np.full((5, 2), 0.5)
    out = tl.apply(t, xy)
    np.testing.assert_allclose(out[:, 0], [0.6, 0.6, 0.6, 0.5, 0.5])
    np.testing.assert_allclose(out[:, 1], [0.5, 0.5, 0.5, 0.7, 0.7])
    # stored and read back: the same rule
    back = CorrectionTimeline.from_meta_and_events({"calibration": tl.to_meta()})
    assert np.array_equal(back.apply(t, xy), out)
    with pytest.raises(InputError, match="before the previous entry"):
        tl.set(150, None, a)


def test_local_recording_keeps_profile_names_and_mouse_is_not_corrected(tmp_path):
    from gaze3d.recording import Recording

    store = _store(tmp_path)
    rec = tmp_path / "local.sqlite"
    s = _session(tmp_path, record=rec, profile="alice", profile_store=store)
    assert "profile alice (affine), mouse not corrected" in s.status_line()
    t0 = s.now_ns()
    s.add_samples([s.mouse_sample(0.25, 0.5, t_ns=t0 + i * 1_000_000) for i in range(5)])
    assert np.allclose(s.recent_gaze()["x"], 0.25)            # the mouse is where it is
    # a tracker-like sample (not the mouse) gets the profile's correction
    s.add_samples([{"topic": "gaze.2d", "source": "sim", "t_host_ns": t0 + 10_000_000,
                    "gaze": [0.25, 0.5], "valid": True}])
    assert s.recent_gaze()["x"][-1] == pytest.approx(0.27)
    assert s.cycle_profile() is None and "no profile" in s.status_line()
    s.close()
    meta = Recording(rec).meta["calibration"]
    assert [h["profile"] for h in meta["history"]] == ["alice", None]
    assert all(h["correction"]["kind"] == "identity" for h in meta["history"])


def test_drift_check_without_gaze_says_so_and_keeps_going(tmp_path):
    s = _session(tmp_path, profile_store=_store(tmp_path), drift_dwell_s=0.35)
    d = s.start_drift_check()
    assert (d["x"], d["y"]) == (0.5, 0.5)
    import time
    time.sleep(0.5)
    s.tick()
    assert s.calibration.drift is None
    assert s.message.startswith("drift check failed") and "valid samples" in s.message
    from gaze3d.errors import InputError
    with pytest.raises(InputError, match="drift target"):
        s.start_drift_check(1.5, 0.5)


def test_missing_profile_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from gaze3d.calib.profiles import ProfileNotFoundError
    from gaze3d.cli import main

    _store(tmp_path)
    monkeypatch.setenv("GAZE3D_CONFIG_DIR", str(tmp_path / "config"))
    with pytest.raises(ProfileNotFoundError, match="available: alice"):
        _session(tmp_path, profile="bob")
    rc = main(["view", str(tmp_path / "nothing.ply"), "--profile", "bob", "--off-screen"])
    err = capsys.readouterr().err
    assert rc == 2 and "profile 'bob': not found" in err and "available: alice" in err
    rc = main(["calibrate", "validate", "--tracker", "tcp://127.0.0.1:9", "--window", "big"])
    assert rc == 2 and "--window" in capsys.readouterr().err
