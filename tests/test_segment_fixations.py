"""Per-fixation attention of the live accumulator: records, event intervals, negative marks."""
import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator
from gaze3d.attention.accumulator import FixationRecord
from gaze3d.errors import InputError
from gaze3d.events import EventType
from gaze3d.scan import PointCloud

from attention_helpers import grid_plane, top_camera

RATE = 1200.0


def _two_fixations(acc, cam, a, b, per_frame=20, dwell_s=0.4, saccade_s=0.03, events=False):
    """Fixate ``a``, saccade, fixate ``b``; fed in frames of ``per_frame`` samples like a viewer."""
    rng = np.random.default_rng(0)
    xa = cam.pixels_to_normalized(cam.project(a[None])[0])[0]
    xb = cam.pixels_to_normalized(cam.project(b[None])[0])[0]
    n_fix, n_sac = int(dwell_s * RATE), int(saccade_s * RATE)
    ramp = np.linspace(0, 1, n_sac)[:, None]
    xy = np.concatenate([np.repeat(xa[None], n_fix, 0), xa + ramp * (xb - xa), np.repeat(xb[None], n_fix, 0)])
    xy += rng.normal(0, 0.0003, xy.shape)
    ev = np.concatenate([np.full(n_fix, int(EventType.FIXATION)), np.full(n_sac, int(EventType.SACCADE)),
                         np.full(n_fix, int(EventType.FIXATION))])
    t = np.arange(len(xy)) / RATE
    for s in range(0, len(xy), per_frame):
        cols = {"x": xy[s:s + per_frame, 0], "y": xy[s:s + per_frame, 1], "t_s": t[s:s + per_frame]}
        if events:
            cols["event"] = ev[s:s + per_frame]
        acc.add(cam, cols)
    acc.flush()
    return n_fix, n_sac


@pytest.mark.parametrize("events", [False, True], ids=["online-classifier", "event-column"])
def test_each_fixation_is_recorded_with_its_interval_and_attention(events):
    pts = grid_plane(0.0, half=4.0, n=161)
    cam = top_camera(10.0)
    a, b = np.array([-2.0, 0.0, 0.0]), np.array([2.0, 1.0, 0.0])
    acc = AttentionAccumulator(PointCloud(pts))
    n_fix, n_sac = _two_fixations(acc, cam, a, b, events=events)
    fx = acc.fixations()
    assert len(fx) == 2 and all(isinstance(f, FixationRecord) for f in fx)
    # intervals: the first ends before the saccade, the second starts after it
    assert fx[0].t_start_s < 0.05 and fx[0].t_end_s < (n_fix + n_sac) / RATE
    assert fx[1].t_start_s >= n_fix / RATE and fx[1].t_end_s > fx[1].t_start_s + 0.3
    for f, target in zip(fx, (a, b)):
        assert f.positive and f.n_samples > 0.8 * n_fix
        peak = f.index[np.argmax(f.attention)]
        assert np.linalg.norm(pts[peak, :2] - target[:2]) < 0.15
    # the records add up to the total attention
    total = np.zeros(len(pts), np.float32)
    for f in fx:
        total[f.index] += f.attention
    np.testing.assert_allclose(total, acc.values, rtol=1e-4, atol=1e-6)


def test_a_fixation_marked_negative_moves_its_attention_to_the_negative_map():
    pts = grid_plane(0.0, half=4.0, n=161)
    cam = top_camera(10.0)
    a, b = np.array([-2.0, 0.0, 0.0]), np.array([2.0, 1.0, 0.0])
    acc = AttentionAccumulator(PointCloud(pts))
    _two_fixations(acc, cam, a, b)
    before = acc.values.copy()
    pos, neg = acc.signed_values()
    assert not neg.any()
    np.testing.assert_allclose(pos, before, rtol=1e-6)
    rec = acc.set_polarity(-1, False)              # the last one: "not that"
    assert rec.positive is False
    pos, neg = acc.signed_values()
    np.testing.assert_allclose(pos + neg, before, rtol=1e-4, atol=1e-6)
    assert np.linalg.norm(pts[np.argmax(neg), :2] - b[:2]) < 0.15
    assert np.linalg.norm(pts[np.argmax(pos), :2] - a[:2]) < 0.15
    np.testing.assert_array_equal(acc.values, before)      # the total does not depend on marks
    acc.set_polarity(1, True)
    assert not acc.signed_values()[1].any()
    with pytest.raises(InputError, match="fixation index"):
        acc.set_polarity(2, False)
    acc.reset()
    assert acc.fixations() == [] and not acc.signed_values()[1].any()


def test_fixation_records_are_bounded():
    pts = grid_plane(0.0, half=4.0, n=81)
    cam = top_camera(10.0)
    acc = AttentionAccumulator(PointCloud(pts), max_fixation_records=1)
    _two_fixations(acc, cam, np.array([-2.0, 0.0, 0.0]), np.array([2.0, 1.0, 0.0]))
    assert len(acc.fixations()) == 1 and acc.fixations()[0].t_start_s > 0.3
    with pytest.raises(InputError, match="max_fixation_records"):
        AttentionAccumulator(PointCloud(pts), max_fixation_records=-1)


def test_records_off_leave_the_attention_unchanged():
    pts = grid_plane(0.0, half=4.0, n=81)
    cam = top_camera(10.0)
    on = AttentionAccumulator(PointCloud(pts))
    off = AttentionAccumulator(PointCloud(pts), max_fixation_records=0)
    for acc in (on, off):
        _two_fixations(acc, cam, np.array([-2.0, 0.0, 0.0]), np.array([2.0, 1.0, 0.0]))
    np.testing.assert_array_equal(on.values, off.values)
    assert on.n_used == off.n_used and off.fixations() == [] and len(on.fixations()) == 2


def test_an_invalid_stretch_ends_a_fixation():
    """Looking at one spot through a blink: two fixations, not one."""
    pts = grid_plane(0.0, half=4.0, n=81)
    cam = top_camera(10.0)
    acc = AttentionAccumulator(PointCloud(pts))
    xy = cam.pixels_to_normalized(cam.project(np.array([[1.0, 1.0, 0.0]]))[0])[0]
    fix = int(EventType.FIXATION)
    for k, valid in enumerate([True] * 10 + [False] * 3 + [True] * 10):   # 20-sample frames
        ts = k * 20 / RATE + np.arange(20) / RATE
        acc.add(cam, {"x": np.full(20, xy[0] if valid else np.nan), "y": np.full(20, xy[1]),
                      "t_s": ts, "event": np.full(20, fix)})
    acc.flush()
    fx = acc.fixations()
    assert len(fx) == 2 and fx[0].t_end_s < 200 / RATE <= fx[1].t_start_s
    assert fx[0].n_samples == fx[1].n_samples == 200
