"""Validation, correction and drift on simulated gaze with a known offset and noise (issue 7 acceptance)."""
import json

import numpy as np
import pytest

from gaze3d.calib.correction import (Correction, CorrectingSubscriber, correct_columns, correct_sample,
                                     fit_correction, fit_from_report, holdout_accuracy)
from gaze3d.calib.drift import DriftMonitor, check_drift
from gaze3d.calib.session import presentations_from_events, simulate_validation, target_event
from gaze3d.calib.targets import TargetPresentation, inner_ring, target_layout
from gaze3d.calib.validation import GazeData, InsufficientDataError, ValidationSettings, validate
from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError

DISPLAY = DisplayGeometry()


@pytest.mark.parametrize("offset, precision, seed", [((0.8, -0.5), 0.10, 0),
                                                     ((-0.4, 0.6), 0.05, 1),
                                                     ((1.5, 0.0), 0.15, 2)])
def test_validation_recovers_offset_and_precision(offset, precision, seed):
    data, pres = simulate_validation(9, offset_deg=offset, precision_rms_deg=precision, seed=seed)
    report = validate(data, pres, DISPLAY)
    assert not report.failed_targets
    ox, oy = report.offset_deg
    assert abs(ox - offset[0]) < 0.1 and abs(oy - offset[1]) < 0.1
    assert report.precision_rms_deg == pytest.approx(precision, rel=0.10)
    # accuracy is the mean angular offset: close to the offset's length (noise adds a little)
    assert report.accuracy_deg == pytest.approx(np.hypot(*offset), abs=0.15)
    # white noise: SD ~ RMS-S2S / sqrt(2) (plus the slow fixational drift)
    assert 0.55 * precision < report.precision_sd_deg < 1.0 * precision
    assert report.passed == (np.hypot(*offset) < 1.0 and precision <= 0.2)
    for t in report.targets:
        assert 0.0 <= t.data_loss_pct < 40.0


def test_pass_fail_thresholds_are_user_settings():
    data, pres = simulate_validation(5, offset_deg=(0.5, 0.0), precision_rms_deg=0.1, seed=4)
    assert validate(data, pres, DISPLAY).passed
    strict = ValidationSettings(accuracy_max_deg=0.3)
    assert not validate(data, pres, DISPLAY, strict).passed
    assert not validate(data, pres, DISPLAY, ValidationSettings(precision_rms_max_deg=0.05)).passed
    with pytest.raises(InputError, match="window_s"):
        ValidationSettings(window_s=(1.0, 0.5))


def test_data_loss_counts_missing_and_invalid_samples():
    data, pres = simulate_validation(5, precision_rms_deg=0.05, seed=5, blink_rate_hz=0.0, dropout_rate=0.2)
    report = validate(data, pres, DISPLAY)
    assert report.data_loss_pct == pytest.approx(20.0, abs=6.0)
    # samples that never arrived count too, given the nominal rate
    keep = np.ones(len(data), bool)
    keep[::2] = False
    thinned = GazeData(data.t_s[keep], data.xy[keep], data.valid[keep], rate_hz=data.rate_hz)
    assert validate(thinned, pres, DISPLAY).data_loss_pct == pytest.approx(60.0, abs=6.0)


def test_too_few_valid_samples_on_a_target_is_a_clear_error_and_the_report_still_writes(tmp_path):
    data, pres = simulate_validation(5, seed=6, blink_rate_hz=0.0)
    victim = pres[2]
    lost = (data.t_s >= victim.onset_s + 0.3) & (data.t_s < victim.offset_s)
    xy = data.xy.copy()
    xy[lost] = np.nan
    report = validate(GazeData(data.t_s, xy, rate_hz=data.rate_hz), pres, DISPLAY)
    assert len(report.failed_targets) == 1 and not report.passed
    with pytest.raises(InsufficientDataError, match=rf"target {victim.index} at .* 0 usable valid samples"):
        report.raise_for_insufficient()
    d = json.loads(report.save_json(tmp_path / "r.json").read_text())
    bad = [t for t in d["targets"] if t["error"]]
    assert len(bad) == 1 and bad[0]["accuracy_deg"] is None
    png = report.plot(tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_json_and_plot(tmp_path):
    data, pres = simulate_validation(13, offset_deg=(0.6, -0.4), precision_rms_deg=0.08, seed=7)
    report = validate(data, pres, DISPLAY)
    d = json.loads(report.save_json(tmp_path / "v.json").read_text())
    assert d["summary"]["offset_x_deg"] == pytest.approx(0.6, abs=0.1)
    assert len(d["targets"]) == 13 and d["settings"]["accuracy_max_deg"] == 1.0
    from PIL import Image
    img = Image.open(report.plot(tmp_path / "v.png"))
    assert img.size[0] > 600 and img.size[1] > 300
    arr = np.asarray(img.convert("L"))
    assert arr.std() > 10                                 # something drawn, not a blank canvas


def test_correction_brings_held_out_accuracy_under_0_2_deg():
    data, pres = simulate_validation(13, offset_deg=(0.9, -0.6), precision_rms_deg=0.08, seed=8)
    report = validate(data, pres, DISPLAY)
    for kind in ("affine", "poly2"):
        ev = holdout_accuracy(report, kind, inner_ring(13))
        assert ev["before_deg"] > 0.9
        assert ev["after_deg"] < 0.2, ev
    loo = holdout_accuracy(report, "affine")                 # leave-one-target-out over all 13
    assert len(loo["targets"]) == 13 and loo["after_deg"] < 0.2


def _distort(xy):
    """A smooth non-linear tracker error: scale, shear and a quadratic bow (tracker coordinates)."""
    x, y = xy[:, 0] - 0.5, xy[:, 1] - 0.5
    return np.c_[0.5 + 1.03 * x + 0.01 * y + 0.012 + 0.15 * x * x,
                 0.5 + 0.97 * y - 0.008 + 0.10 * x * x - 0.08 * y * y]


def test_poly2_removes_a_nonlinear_distortion_that_affine_cannot():
    data, pres = simulate_validation(13, precision_rms_deg=0.05, seed=9, blink_rate_hz=0.0)
    data = GazeData(data.t_s, _distort(data.xy), data.valid, rate_hz=data.rate_hz)
    report = validate(data, pres, DISPLAY)
    aff = holdout_accuracy(report, "affine", inner_ring(13))
    quad = holdout_accuracy(report, "poly2", inner_ring(13))
    assert aff["before_deg"] > 0.5
    assert quad["after_deg"] < 0.2 < aff["after_deg"]


def test_robust_fit_ignores_samples_where_the_annotator_looked_away():
    rng = np.random.default_rng(0)
    lay = target_layout(9)
    true = np.repeat(lay, 200, axis=0)
    groups = np.repeat(np.arange(9), 200)
    measured = true + [0.02, -0.01] + rng.normal(0, 0.002, true.shape)
    looked_away = rng.random(len(true)) < 0.15
    measured[looked_away] = rng.uniform(0, 1, (looked_away.sum(), 2))
    robust = fit_correction(measured, true, "affine", groups)
    plain = fit_correction(measured, true, "affine", groups, huber_k=1e9)   # = least squares
    probe = lay + [0.02, -0.01]
    err_robust = np.abs(robust.apply(probe) - lay).max()
    err_plain = np.abs(plain.apply(probe) - lay).max()
    assert err_robust < 0.003 < err_plain


def test_correction_roundtrip_and_bad_input():
    c = fit_correction(target_layout(9) + 0.01, target_layout(9), "affine")
    back = Correction.from_dict(json.loads(json.dumps(c.to_dict())))
    np.testing.assert_array_equal(back.apply([[0.3, 0.7]]), c.apply([[0.3, 0.7]]))
    np.testing.assert_allclose(c.apply([[0.31, 0.71]]), [[0.3, 0.7]], atol=1e-12)
    assert np.isnan(c.apply([[np.nan, np.nan]])).all()
    with pytest.raises(InputError, match="poly2: needs at least 6 targets"):
        fit_correction(target_layout(5), target_layout(5), "poly2")
    with pytest.raises(InputError, match="correction kind"):
        Correction("cubic")
    with pytest.raises(InputError, match="coef"):
        Correction("affine", [[1, 2]])


def test_same_correction_on_live_samples_and_columns():
    c = Correction("affine", [[0.01, -0.02], [1.01, 0.0], [0.0, 0.99]])
    sample = {"topic": "gaze.2d", "gaze": [0.4, 0.6], "valid": True,
              "left": {"gaze": [0.41, 0.6], "valid": True}, "right": {"gaze": None, "valid": False}}
    fixed = correct_sample(sample, c)
    assert sample["gaze"] == [0.4, 0.6]                          # input untouched
    np.testing.assert_allclose(fixed["gaze"], c.apply([[0.4, 0.6]])[0])
    np.testing.assert_allclose(fixed["left"]["gaze"], c.apply([[0.41, 0.6]])[0])
    assert fixed["right"]["gaze"] is None
    cols = correct_columns({"x": np.array([0.4, np.nan]), "y": np.array([0.6, np.nan]),
                            "t_host_ns": np.array([1, 2])}, c)
    np.testing.assert_allclose([cols["x"][0], cols["y"][0]], fixed["gaze"])
    assert np.isnan(cols["x"][1])

    class Sub:                                                   # a recorded stream of (topic, dict)
        items = [("gaze.2d", sample), ("event", {"event": {"type": "x"}})]

        def recv(self, timeout_s):
            return self.items[0]

        def drain(self, max_n):
            return list(self.items)
    wrapped = CorrectingSubscriber(Sub(), c)
    assert wrapped.recv(0.1)[1]["gaze"] == fixed["gaze"]
    out = wrapped.drain()
    assert out[0][1]["gaze"] == fixed["gaze"] and out[1] == Sub.items[1]


def test_drift_check_alerts_above_threshold():
    alerts = []
    monitor = DriftMonitor(threshold_deg=1.0, on_alert=alerts.append, display=DISPLAY)
    for offset, expect in (((0.3, 0.2), False), ((1.2, -0.4), True)):
        data, pres = simulate_validation(1, offset_deg=offset, precision_rms_deg=0.05, seed=11,
                                         layout=np.array([[0.5, 0.5]]), blink_rate_hz=0.0)
        r = monitor.check(data, pres[0])
        assert r.alert is expect
        assert r.offset_x_deg == pytest.approx(offset[0], abs=0.1)
        assert ("DRIFT ALERT" in r.message) is expect
    assert len(alerts) == 1 and len(monitor.history) == 2
    # with the session's correction, only the drift left after it counts
    data, pres = simulate_validation(1, offset_deg=(1.2, -0.4), seed=12, layout=np.array([[0.5, 0.5]]))
    shift = DISPLAY.deg_to_norm([[1.2, -0.4]])[0] - 0.5
    corr = Correction("affine", [[-shift[0], -shift[1]], [1, 0], [0, 1]])
    assert not check_drift(data, pres[0], DISPLAY, 1.0, correction=corr).alert
    empty = GazeData(data.t_s, np.full_like(data.xy, np.nan))
    with pytest.raises(InsufficientDataError, match="0 usable valid samples"):
        check_drift(empty, pres[0], DISPLAY)


def test_target_events_roundtrip():
    pres = [TargetPresentation(3, 0.1, 0.9, 0.0, 1.5), TargetPresentation(0, 0.5, 0.5, 1.5, 3.0)]
    t0 = 10_000_000_000
    events = [{**target_event(p), "t_host_ns": t0 + int(p.onset_s * 1e9)} for p in pres]
    events.append({"type": "calib.end", "t_host_ns": t0 + 3_000_000_000})
    events.insert(1, {"type": "label", "t_host_ns": t0 + 5})
    assert presentations_from_events(events, t0) == pres
    with pytest.raises(InputError, match="no following target"):
        presentations_from_events(events[:2], t0)
    with pytest.raises(InputError, match="no 'calib.target' events"):
        presentations_from_events([], t0)


def test_angles_from_the_3d_gaze_origin_and_unsorted_samples():
    from gaze3d.calib.geometry import TrackerDisplayArea
    area = TrackerDisplayArea.below_screen(527.0, 296.0)
    t = np.arange(600) / 300.0
    target = TargetPresentation(0, 0.5, 0.5, 0.0, 2.0)
    xy = np.tile([0.5 + 5.0 / 527.0, 0.5], (600, 1))           # 5 mm right of the target
    eye = area.norm_to_3d([[0.5, 0.5]])[0] + [0, 0, 500.0]      # 500 mm in front of it
    data = GazeData(t, xy, origin_mm=np.tile(eye, (600, 1)), rate_hz=300)
    seen = validate(data, [target], DISPLAY, area=area)         # from the eye: atan(5 / 500)
    assert seen.accuracy_deg == pytest.approx(np.degrees(np.arctan(5 / 500)), rel=1e-9)
    fixed = validate(data, [target], DISPLAY)                   # configured 650 mm
    assert fixed.accuracy_deg == pytest.approx(np.degrees(np.arctan(5 / 650)), rel=1e-9)
    rev = GazeData(t[::-1], xy[::-1], rate_hz=300)              # arrival order reversed
    assert np.all(np.diff(rev.t_s) >= 0)
    assert validate(rev, [target], DISPLAY).accuracy_deg == pytest.approx(fixed.accuracy_deg)
