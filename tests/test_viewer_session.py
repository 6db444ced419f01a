"""A scripted labeling session, offscreen, with a simulated tracker process over ZeroMQ.

sim tracker (real subprocess, PUB/REP on loopback) -> viewer session -> the
attention overlay turns hot where the simulated eye looked (pixel check) ->
a key press through VTK's interactor labels the region -> undo restores ->
the saved annotation reloads identical; the recording holds the cameras and
the label's provenance.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from viewer_helpers import WINDOW, box_scene, hot_mask, scene_camera, screen_box, write_sim_scene

pytestmark = [pytest.mark.render, pytest.mark.slow, pytest.mark.timeout(120)]


def _sim_options(scene, path, duration=2.5, rate=250):
    return {"scene": str(scene), "camera_path": str(path), "label": 6, "n_targets": 4, "rate": rate,
            "seed": 3, "blink_rate": 0, "duration": duration}


def _run_frames(app, seconds: float, period_s: float = 0.02) -> int:
    used, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        used += app.frame(render=False)["samples"]
        time.sleep(period_s)
    return used


def test_scripted_session_with_sim_tracker(tmp_path, vtk_freed):
    from gaze3d.io import load_scan
    from gaze3d.recording import Recording
    from gaze3d.scan import PointCloud
    from gaze3d.tracker.process import start_tracker
    from gaze3d.viewer.app import ViewerApp
    from gaze3d.viewer.labels import Label, LabelSet
    from gaze3d.viewer.tracker_link import TrackerLink

    scene_file, path_file = write_sim_scene(tmp_path)
    xyz, truth = box_scene()
    is_box = truth == 6
    cloud = PointCloud(xyz)                 # what the annotator sees: no labels yet
    labels = LabelSet([Label(6, "building", (214, 39, 40)), Label(2, "ground", (140, 86, 75))])
    record = tmp_path / "session.sqlite"
    cam = scene_camera()
    # the sim runs long enough that a viewer slow to start on a loaded machine still records
    # its 3 s of frames (it starts recording only once it is up)
    with start_tracker("sim", _sim_options(scene_file, path_file, duration=8.0), record_dir=tmp_path) as tracker:
        link = TrackerLink(tracker.pub_address, tracker.ctrl_address)
        app = ViewerApp(cloud, labels, tracker=link, record=record, off_screen=True, window_size=WINDOW,
                        segmenter="grow", annotator="tester")
        vtk_freed.watch_plotter(app.plotter)
        try:
            app.scene.set_camera(cam)
            before = app.screenshot()
            used = _run_frames(app, 3.0)
            assert used > 200, f"only {used} gaze samples arrived from the sim tracker"
            st = app.session.status()
            assert st["source"] == "sim" and st["lost"] == 0
            app.session.commit_attention()
            att = app.session.attention
            # attention sits on the box and its foot, not on the rest of the ground
            assert att[is_box].sum() > 0.5 * att.sum()
            far = np.any((xyz[:, :2] - [870012.0, 6618012.0] < -4.0)
                         | (xyz[:, :2] - [870015.0, 6618015.0] > 4.0), axis=1)
            assert att[far].max() < 0.02 * att.max()
            after = app.screenshot(tmp_path / "heat.png")

            # pixel check: new hot pixels lie on the box the eye visited, none elsewhere
            new_hot = hot_mask(after) & ~hot_mask(before)
            u0, v0, u1, v1 = screen_box(cam, xyz[is_box])
            inside = np.zeros_like(new_hot)
            inside[v0:v1, u0:u1] = True
            assert new_hot[inside].sum() >= 40, f"only {new_hot[inside].sum()} hot pixels on the box"
            assert new_hot[~inside].sum() <= 0.02 * new_hot.sum() + 2
            assert "tracker sim" in app.session.status_line()

            # key "1" (the first label: building) through VTK's key event
            app.press("1")
            got = app.session.labels
            assert (got == 6).sum() >= 50, app.session.message
            precision = is_box[got == 6].mean()
            assert precision >= 0.95, f"labelled region precision {precision:.2f}"
            labelled = app.screenshot()
            assert not np.array_equal(labelled, after)

            # undo (ctrl+z) restores exactly, redo (r) re-applies
            app.press("z", ctrl=True)
            assert (app.session.labels == 0).all()
            app.press("r")
            assert np.array_equal(app.session.labels, got)

            # save (ctrl+s) -> reload identical, in two formats
            app.annotations = tmp_path / "labels.ply"
            app.press("s", ctrl=True)
            assert np.array_equal(load_scan(tmp_path / "labels.ply").labels, got)
            app.session.save_annotations(tmp_path / "labels.las")
            app.session.undo()
            app.session.load_annotations(tmp_path / "labels.las")
            assert np.array_equal(app.session.labels, got)
            app.session.load_annotations(tmp_path / "labels.ply")
            assert np.array_equal(app.session.labels, got)
        finally:
            app.close()
        del app
    rec = Recording(record)
    try:
        times, cams = rec.camera_frames()
        assert len(cams) >= 20 and np.all(np.diff(times) >= 0)
        assert np.allclose(cams[-1].position, cam.position, atol=1e-6)
        events = rec.events()
        kinds = [e.get("type") for e in events]
        assert "label" in kinds and "undo" in kinds and "save_annotations" in kinds
        label_event = next(e for e in events if e.get("type") == "label")
        assert label_event["annotator"] == "tester" and label_event["label_name"] == "building"
        assert len(label_event["fixations"]) >= 1
        assert len(rec.samples()["t_host_ns"]) > 200
    finally:
        rec.close()


def test_session_survives_tracker_death_and_restart(tmp_path):
    from gaze3d.scan import PointCloud
    from gaze3d.tracker.process import start_tracker
    from gaze3d.viewer.app import ViewerApp
    from gaze3d.viewer.tracker_link import TrackerLink

    xyz, _ = box_scene(3000, 600)
    opts = {"rate": 200, "seed": 1}
    first = start_tracker("sim", opts)
    pub, ctrl = first.pub_address, first.ctrl_address
    link = TrackerLink(None, ctrl)                       # the PUB address is asked from the tracker
    assert link.pub_address == pub
    app = ViewerApp(PointCloud(xyz), tracker=link, off_screen=True, window_size=WINDOW, segmenter="grow")
    second = None
    try:
        app.scene.set_camera(scene_camera())
        assert _run_frames(app, 1.0) > 50
        first.kill()                                     # the tracker dies
        time.sleep(1.2)
        app.frame(render=False)
        assert not link.alive
        assert "LOST" in app.session.status_line()
        # meanwhile the mouse is the gaze
        app._mouse_xy = (0.6, 0.4)
        n0 = app.session.n_samples
        _run_frames(app, 0.3)
        assert app.session.n_samples > n0
        second = start_tracker("sim", opts, pub=pub, ctrl=ctrl)   # it comes back at the same addresses
        n1 = app.session.n_samples
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not link.alive:
            app.frame(render=False)
            time.sleep(0.05)
        assert link.alive
        assert _run_frames(app, 0.8) > 50 and app.session.n_samples > n1
        assert link.stats()["restarts"] >= 1
        assert link.flush(5.0) and link.ctrl_ok
    finally:
        app.close()
        first.stop()
        if second is not None:
            second.stop()


def test_cli_view_connects_to_a_tracker_by_its_control_address(tmp_path):
    from gaze3d.cli import main
    from gaze3d.io import save_scan
    from gaze3d.scan import PointCloud
    from gaze3d.tracker.process import start_tracker
    from gaze3d.viewer.tracker_link import parse_tracker_address
    from gaze3d.errors import InputError

    assert parse_tracker_address("tcp://a:1, tcp://a:2") == ("tcp://a:1", "tcp://a:2")
    assert parse_tracker_address("tcp://a:2") == (None, "tcp://a:2")
    with pytest.raises(InputError, match="--tracker"):
        parse_tracker_address("a,b,c")
    xyz, _ = box_scene(1500, 300)
    save_scan(PointCloud(xyz), tmp_path / "scan.ply")
    with start_tracker("sim", {"rate": 100}) as tracker:
        assert main(["view", str(tmp_path / "scan.ply"), "--tracker", tracker.ctrl_address,
                     "--window", "160x120", "--off-screen"]) == 0
