"""A label's region grown in a worker thread (``LabelingSession.begin_label``): the same label, keys in order.

The window keeps drawing while the region grows; the gaze that arrives
meanwhile goes to the next label, exactly as if the label had been made at
once; undo (or any key that reads labels or attention) during a pending label
first applies it.
"""
from __future__ import annotations

import time

import numpy as np

import pytest

from viewer_helpers import WINDOW, box_scene, scene_camera

pytestmark = pytest.mark.timeout(120)


def _samples(session, xy_norm, t0_ns, n=120, rate=200, seed=0):
    rng = np.random.default_rng(seed)
    return [session.mouse_sample(xy_norm[0] + rng.normal(0, 5e-4), xy_norm[1] + rng.normal(0, 5e-4),
                                 t_ns=t0_ns + int(i * 1e9 / rate)) for i in range(n)]


def _session():
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.session import LabelingSession

    xyz, truth = box_scene(5000, 1200)
    s = LabelingSession(PointCloud(xyz), camera=scene_camera(), segmenter="grow", annotator="t")
    assert s.neighbours.wait(60)
    return s, xyz, truth


def _targets(xyz, truth):
    cam = scene_camera()
    box, _ = cam.project(xyz[truth == 6].mean(axis=0, keepdims=True))
    ground, _ = cam.project(xyz[truth == 2][:1])
    return box[0] / [cam.width, cam.height], ground[0] / [cam.width, cam.height]


def test_worker_label_equals_the_label_made_at_once_and_gaze_meanwhile_is_the_next_labels():
    sync, xyz, truth = _session()
    work, _, _ = _session()
    try:
        box, ground = _targets(xyz, truth)
        t0 = 10**12
        first = _samples(sync, box, t0)
        later = _samples(sync, ground, t0 + 2 * 10**9, seed=1)
        for s in (sync, work):
            for i in range(0, len(first), 10):
                s.tick(local_samples=first[i:i + 10])
        a = sync.label_key("1")
        for i in range(0, len(later), 10):
            sync.tick(local_samples=later[i:i + 10])
        work.begin_label("1")
        assert work.label_pending
        for i in range(0, len(later), 10):             # frames go on while the region grows
            work.tick(local_samples=later[i:i + 10])
        b = work.finish_label()
        assert not work.label_pending and b is not None
        np.testing.assert_array_equal(a.index, b.index)
        np.testing.assert_array_equal(sync.labels, work.labels)
        assert sync.message == work.message and (truth[b.index] == 6).mean() > 0.95
        # the gaze that came during the label is the next label's attention, as with the label made at once
        for s in (sync, work):
            s.accumulator.flush()
        assert sync.attention.tobytes() == work.attention.tobytes() and work.attention.max() > 0
        assert work.finish_label() is None                 # nothing pending any more
    finally:
        sync.close()
        work.close()


def test_undo_during_a_pending_label_undoes_that_label():
    s, xyz, truth = _session()
    try:
        box, ground = _targets(xyz, truth)
        smp = _samples(s, box, 10**12)
        for i in range(0, len(smp), 10):
            s.tick(local_samples=smp[i:i + 10])
        before = s.labels.copy()
        s.begin_label("2")
        assert s.undo()                            # the label first, then its undo: keys in order
        assert not s.label_pending
        np.testing.assert_array_equal(s.labels, before)
        assert len(s.undo_stack) == 0 and len(s.redo_stack) == 1 and s.redo_stack[0].label.id == 2
        assert s.redo() and (s.labels[s.undo_stack[-1].index] == 2).all()
        # a bad label name fails at once, nothing pending
        from gaze3d.errors import InputError

        with pytest.raises(InputError, match="did you mean"):
            s.begin_label("clas1")
        assert not s.label_pending
        # nothing looked at: the worker says so when applied
        s.begin_label("1")
        assert s.finish_label() is None and "nothing attended" in s.message
    finally:
        s.close()


def test_close_applies_a_pending_label(tmp_path):
    from gaze3d.recording import Recording
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.session import LabelingSession

    xyz, truth = box_scene(5000, 1200)
    s = LabelingSession(PointCloud(xyz), camera=scene_camera(), segmenter="grow", annotator="t",
                        record=tmp_path / "rec.sqlite")
    box, _ = _targets(xyz, truth)
    smp = _samples(s, box, s.now_ns())
    for i in range(0, len(smp), 10):
        s.tick(local_samples=smp[i:i + 10])
    s.begin_label("1")
    s.close()
    assert (s.labels == 1).sum() > 30
    rec = Recording(tmp_path / "rec.sqlite")
    try:
        types = [e["type"] for e in rec.events()]
        assert "label" in types and types[-1] == "session_end"
    finally:
        rec.close()


def _window_looking_at_the_box(ack_delay_s=None):
    """An offscreen window (label worker on) whose session has looked at the box: (app, truth, box)."""
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.app import ViewerApp

    xyz, truth = box_scene(5000, 1200)
    app = ViewerApp(PointCloud(xyz), off_screen=True, window_size=WINDOW, segmenter="grow", annotator="t",
                    label_worker=True)
    s = app.session
    if ack_delay_s is not None:
        app.label_ack_delay_s = ack_delay_s
    app.scene.set_camera(scene_camera())
    assert s.neighbours.wait(60)
    box, _ = _targets(xyz, truth)
    smp = _samples(s, box, s.now_ns())
    for i in range(0, len(smp), 10):
        s.tick(local_samples=smp[i:i + 10])
    return app, truth, box


@pytest.mark.render
def test_window_keeps_drawing_and_applies_the_label_in_a_frame():
    app, truth, box = _window_looking_at_the_box()
    try:
        s = app.session
        work = s._label_work

        def slow_work():                          # a label slower than the acknowledgement delay
            time.sleep(0.3)                       # (as 1M points on a loaded CPU)
            return work()

        s._label_work = slow_work
        app.press("1")
        assert s.label_pending and "labelling as class1" in s.message
        app._mouse_xy = tuple(box)
        for _ in range(200):                      # the window's frames: one of them applies the label
            app.frame()
            if not s.label_pending:
                break
            s._pending["done"].wait(0.05)
        assert not s.label_pending and s.message.startswith("labelled")
        assert (s.labels == 1).sum() > 30 and (truth[s.labels == 1] == 6).mean() > 0.95
        app.press("u")
        assert (s.labels == 0).all()
    finally:
        app.close()


@pytest.mark.render
def test_a_quick_label_is_shown_by_the_keys_own_frame():
    """A region grown within the acknowledgement delay is applied and drawn by the key itself:
    no "labelling as" frame first (one render, not two)."""
    # generous delay here: the test must not depend on CPU load
    app, truth, box = _window_looking_at_the_box(ack_delay_s=30.0)
    try:
        s = app.session
        draws = []
        draw = app.draw
        app.draw = lambda still=False: draws.append(s.message) or draw(still)
        app.press("1")
        assert not s.label_pending and s.message.startswith("labelled")
        assert draws and all(not m.startswith("labelling as") for m in draws)
        assert (s.labels == 1).sum() > 30 and (truth[s.labels == 1] == 6).mean() > 0.95
    finally:
        app.close()
