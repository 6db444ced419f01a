"""Calibration in the viewer, offscreen, against a real tracker process (loopback ZMQ).

The tracker runs ``calib_helpers.FollowerSource``: a simulated person who looks
at whatever target the test shows (a JSON file it polls) with a known
systematic error of (+0.5°, -0.3°) and white noise. Everything else is real:
the tracker subprocess, its sockets, clock sync and recording, VTK offscreen
rendering of the targets (pixel checks on the screenshots).

* the validation window shows the 5 targets one at a time (bullseye at the
  expected pixel) and measures the configured offset within 0.1°, from Python
  and through ``gaze3d calibrate validate --tracker``;
* a labeling session with a profile corrects live gaze, ``p`` cycles profiles,
  ``d`` runs a drift check (alert without the correction, none with it), and
  the tracker's recording replays to the very same corrected samples.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from calib_helpers import show_on_screen
from tracker_helpers import plugin_env
from viewer_helpers import WINDOW, box_scene, scene_camera

pytestmark = [pytest.mark.render, pytest.mark.timeout(90)]

OFFSET_DEG = (0.5, -0.3)
RATE_HZ = 300


@pytest.fixture(scope="module")
def follower(tmp_path_factory):
    """(tracker process, screen file): a person looking at what the screen file shows."""
    from gaze3d.tracker.process import start_tracker

    screen = tmp_path_factory.mktemp("follower") / "screen.json"
    opts = {"screen": screen, "rate_hz": RATE_HZ, "offset_deg": ",".join(map(str, OFFSET_DEG)),
            "noise_deg": 0.03, "seed": 1}
    with start_tracker("module:calib_helpers:FollowerSource", opts, env=plugin_env(),
                       record_dir=tmp_path_factory.getbasetemp()) as tracker:
        yield tracker, screen


def _is_bullseye(img: np.ndarray, u: float, v: float, radius: float) -> bool:
    """Black centre dot and white disc around it at pixel (u, v) (top-left origin)."""
    u, v = int(round(u)), int(round(v))
    h, w = img.shape[:2]
    centre = img[max(v - 2, 0):v + 2, max(u - 2, 0):u + 2].reshape(-1, 3)        # the dot spans ~4 px
    ring = []
    for du, dv in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        uu, vv = u + int(round(du * 0.65 * radius)), v + int(round(dv * 0.65 * radius))
        if 0 <= uu < w and 0 <= vv < h:
            ring.append(img[vv, uu])
    n_black = int((centre.max(axis=1) < 40).sum())
    return bool(n_black >= 4 and len(ring) >= 2 and np.min(ring) > 220)


def _offset_affine(dx_deg: float, dy_deg: float):
    """A correction removing a (dx, dy) degree shift at the display centre (a pure shift in display units)."""
    from gaze3d.calib.correction import Correction
    from gaze3d.display import DisplayGeometry

    d = DisplayGeometry()
    shift = d.deg_to_norm(np.array([[dx_deg, dy_deg]]))[0] - d.deg_to_norm(np.zeros((1, 2)))[0]
    return Correction("affine", [[-shift[0], -shift[1]], [1.0, 0.0], [0.0, 1.0]])


def test_validation_window_shows_targets_and_measures_the_offset(follower, vtk_freed):
    from gaze3d.calib.targets import target_layout
    from gaze3d.calib.validation import ValidationSettings
    from gaze3d.tracker.client import GazeSubscriber, TrackerControl
    from gaze3d.viewer.targets import ValidationWindow, run_window_validation

    tracker, screen = follower
    checks = []

    def on_shown(i, x, y):
        img = window.screenshot()
        u, v = window.to_px(x, y)
        others = [window.to_px(*p) for j, p in enumerate(target_layout(5)) if j != i]
        checks.append((i, _is_bullseye(img, u, v, window.radius_px),
                       any(_is_bullseye(img, ou, ov, window.radius_px) for ou, ov in others)))
        show_on_screen(screen, x, y)         # the person sees it

    with TrackerControl(tracker.ctrl_address, timeout_s=5.0) as control, \
            GazeSubscriber(tracker.pub_address, topics=("gaze.2d",)) as sub:
        assert sub.recv(10.0) is not None
        window = ValidationWindow(off_screen=True, window_size=WINDOW, on_shown=on_shown)
        vtk_freed.watch_render_window("validation render window", window.plotter.ren_win)
        try:
            report, data, pres = run_window_validation(
                window, control, sub, target_layout(5), dwell_s=0.9, seed=3, rate_hz=RATE_HZ,
                settings=ValidationSettings(window_s=(0.35, 0.9)))
            result_img = window.screenshot()
        finally:
            window.close()
    assert [c[0] for c in checks] == [p.index for p in pres] and sorted(c[0] for c in checks) == [0, 1, 2, 3, 4]
    assert all(c[1] for c in checks), f"bullseye missing at its pixel: {checks}"
    assert not any(c[2] for c in checks), "more than one target on screen"
    ox, oy = report.offset_deg
    assert abs(ox - OFFSET_DEG[0]) < 0.1 and abs(oy - OFFSET_DEG[1]) < 0.1, report.summary()
    assert report.passed and not report.failed_targets
    # the result screen: targets as rings (no black centre dot), mean gaze as green dots beside them
    green = (result_img[..., 1] > 150) & (result_img[..., 0] < 100) & (result_img[..., 2] < 120)
    assert green.sum() > 5 * 10


def test_cli_validate_with_tracker_opens_the_target_window(follower, tmp_path, capsys):
    from gaze3d.cli import main
    from gaze3d.recording import Recording

    tracker, screen = follower
    out = tmp_path / "out"
    rec = tmp_path / "validation.sqlite"
    rc = main(["calibrate", "validate", "--tracker", tracker.ctrl_address, "--points", "5", "--dwell", "0.9",
               "--window-s", "0.35,0.9", "--seed", "4", "--off-screen", "--window", "320x240",
               "--show-file", str(screen), "--record", str(rec), "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "targets on screen" in text and "PASS" in text
    summary = json.loads((out / "validation.json").read_text())["summary"]
    assert abs(summary["offset_x_deg"] - OFFSET_DEG[0]) < 0.1
    assert abs(summary["offset_y_deg"] - OFFSET_DEG[1]) < 0.1
    assert (out / "validation.png").stat().st_size > 1000
    events = [e for e in Recording(rec).events() if e.get("type") == "calib.target"]
    assert sorted(e["index"] for e in events) == [0, 1, 2, 3, 4]


def test_profile_correction_drift_check_and_replay_through_the_tracker(follower, tmp_path, vtk_freed):
    from gaze3d.calib.profiles import Profile, ProfileStore
    from gaze3d.calib.timeline import replay_samples
    from gaze3d.recording import Recording
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.app import ViewerApp
    from gaze3d.viewer.tracker_link import TrackerLink

    tracker, screen = follower
    store = ProfileStore(tmp_path / "config")
    fix = _offset_affine(*OFFSET_DEG)
    store.save(Profile("fix", annotator="tester", correction=fix.to_dict()))
    store.save(Profile("other", annotator="tester", correction=_offset_affine(2.0, 2.0).to_dict()))
    show_on_screen(screen, 0.5, 0.5)
    record = tmp_path / "session.sqlite"
    xyz, _ = box_scene(3000, 600)
    link = TrackerLink(tracker.pub_address, tracker.ctrl_address)
    app = ViewerApp(PointCloud(xyz), tracker=link, record=record, off_screen=True, window_size=WINDOW,
                    segmenter="grow", annotator="tester", profile="fix", profile_store=store,
                    drift_threshold_deg=0.3, drift_dwell_s=1.0)
    vtk_freed.watch_plotter(app.plotter)
    s = app.session

    def run_until(cond, timeout_s=5.0):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not cond():
            app.frame(render=False)
            time.sleep(0.02)
        return cond()

    def drift_check():
        app.press("d")
        d = s.calibration.drift
        show_on_screen(screen, d["x"], d["y"])        # the person looks at the drift target
        img = app.screenshot()
        w, h = app.plotter.window_size
        shown = _is_bullseye(img, d["x"] * w, d["y"] * h, app.drift_target.radius_px)
        assert run_until(lambda: s.calibration.drift is None), "drift check did not finish"
        gone = not _is_bullseye(app.screenshot(), d["x"] * w, d["y"] * h, app.drift_target.radius_px)
        return shown, gone, s.calibration.last_drift

    try:
        app.scene.set_camera(scene_camera())
        assert run_until(lambda: s.n_samples > 100), "no gaze from the tracker"
        assert "profile fix (affine)" in s.status_line()
        shown, gone, ok = drift_check()
        assert shown and gone
        assert ok is not None and not ok.alert and ok.accuracy_deg < 0.15, ok
        assert "DRIFT" not in s.status_line()
        app.press("p")
        assert s.calibration.profile.name == "other" and "profile other (affine)" in s.status_line()
        run_until(lambda: False, 0.3)
        app.press("p")
        assert s.calibration.profile is None and "no profile" in s.status_line()
        _, _, bad = drift_check()
        assert bad.alert and "DRIFT ALERT" in s.status_line()
        assert abs(bad.offset_x_deg - OFFSET_DEG[0]) < 0.1 and abs(bad.offset_y_deg - OFFSET_DEG[1]) < 0.1
        live = s.recent_gaze()
    finally:
        app.close()
    rec = Recording(record)
    meta = rec.meta["calibration"]
    assert [h["profile"] for h in meta["history"]] == ["fix", "other", None]
    assert meta["history"][0]["profile_snapshot"]["correction"] == fix.to_dict()
    kinds = [e["type"] for e in rec.events()]
    assert kinds.count("calib.target") == 2 and kinds.count("drift_check") == 2
    replay = replay_samples(rec)
    raw = rec.samples()
    common, li, ri = np.intersect1d(live["t_host_ns"], replay["t_host_ns"], return_indices=True)
    recorded_span = live["t_host_ns"] >= replay["t_host_ns"][0]     # gaze before the recording started
    assert len(common) >= 0.98 * recorded_span.sum() and recorded_span.sum() > 300
    ok_rows = np.isfinite(live["x"][li])
    assert ok_rows.sum() > 300
    # bit for bit: the replay corrects each sample exactly as the live session did
    assert np.array_equal(live["x"][li][ok_rows], replay["x"][ri][ok_rows])
    assert np.array_equal(live["y"][li][ok_rows], replay["y"][ri][ok_rows])
    # and the correction was really applied (raw differs by the profile's shift while "fix" was active)
    first_change = meta["history"][1]["t_host_ns"]
    fixed = ok_rows & (common < first_change)
    assert fixed.sum() > 50
    dx = replay["x"][ri][fixed] - raw["x"][ri][fixed]
    assert np.allclose(dx, fix.coef[0][0], atol=1e-9)
    print(f"drift with profile: {ok.message}\ndrift without: {bad.message}\n"
          f"replayed == live for {int(ok_rows.sum())} samples")
