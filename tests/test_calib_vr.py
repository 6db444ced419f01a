"""VR validation: 3D targets, angular error from the eye origin; the real EDVAM VR session."""
from pathlib import Path

import numpy as np
import pytest

from gaze3d.calib.vr import (angle_between_deg, edvam_quality, head_relative_gaze_deg, load_edvam,
                             validate_vr)
from gaze3d.errors import InputError

EDVAM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vr_gaze" / "edvam" / "1.csv"


def _rotate_small(v, ax_deg, ay_deg):
    """Rotate unit vectors (n, 3) by small angles about two axes orthogonal to each."""
    up = np.array([0.0, 1.0, 0.0])
    right = np.cross(v, up)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    true_up = np.cross(right, v)
    out = v + np.tan(np.radians(ax_deg))[:, None] * right + np.tan(np.radians(ay_deg))[:, None] * true_up
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def simulate_vr(offset_deg=(0.6, -0.3), noise_deg=0.04, n_per_target=300, seed=0):
    """A walking, head-turning VR user fixating 6 world targets with a constant angular error and noise."""
    rng = np.random.default_rng(seed)
    targets = np.array([[2, 1.6, 3], [-1, 1.2, 4], [0, 2.5, 5], [3, 0.5, 2], [-2, 1.8, 2.5], [0.5, 1.0, 6]],
                       dtype=float)
    origins, dirs, index = [], [], []
    head = np.array([0.0, 1.6, 0.0])
    for k, t in enumerate(targets):
        walk = head + np.cumsum(rng.normal(0, 0.0005, (n_per_target, 3)), axis=0)   # the head moves
        true = t - walk
        true /= np.linalg.norm(true, axis=1, keepdims=True)
        d = _rotate_small(true, np.full(n_per_target, offset_deg[0]), np.full(n_per_target, offset_deg[1]))
        d = _rotate_small(d, rng.normal(0, noise_deg, n_per_target), rng.normal(0, noise_deg, n_per_target))
        origins.append(walk)
        dirs.append(d)
        index.append(np.full(n_per_target, k))
        head = walk[-1] + [0.15, 0.0, 0.1]                # and walks on to the next target
    return targets, np.vstack(origins), np.vstack(dirs), np.concatenate(index)


def test_vr_validation_recovers_angular_error_from_the_eye_origin():
    targets, o, d, idx = simulate_vr()
    report = validate_vr(o, d, idx, targets)
    assert report.accuracy_deg == pytest.approx(np.hypot(0.6, 0.3), abs=0.05)
    # white angular noise of sigma per axis: RMS sample-to-sample = 2 sigma
    assert report.precision_rms_deg == pytest.approx(2 * 0.04, rel=0.1)
    assert report.passed
    # measured from a fixed head position instead, the head motion would leak into the error
    fixed = validate_vr(np.broadcast_to(o[0], o.shape), d, idx, targets)
    assert abs(fixed.accuracy_deg - np.hypot(0.6, 0.3)) > abs(report.accuracy_deg - np.hypot(0.6, 0.3))


def test_vr_validation_bad_input_and_missing_data():
    targets, o, d, idx = simulate_vr(n_per_target=50)
    d = d.copy()
    d[idx == 2] = np.nan
    r = validate_vr(o, d, idx, targets)
    bad = [t for t in r.targets if t.error]
    assert len(bad) == 1 and bad[0].index == 2 and bad[0].data_loss_pct == 100.0
    assert "0 valid samples" in bad[0].error and not r.passed
    with pytest.raises(InputError, match="rows differ"):
        validate_vr(o[:10], d, idx, targets)
    with pytest.raises(InputError, match="target_index: 9 out of range"):
        validate_vr(o, d, np.full(len(o), 9), targets)


def test_angle_between_is_accurate_for_tiny_angles():
    a = np.array([[0.0, 0.0, 1.0]])
    b = np.array([[np.tan(np.radians(1e-4)), 0.0, 1.0]])
    assert angle_between_deg(a, b)[0] == pytest.approx(1e-4, rel=1e-6)
    assert np.isnan(angle_between_deg(a, [[0, 0, 0]])[0])


def test_edvam_real_vr_session():
    if not EDVAM.is_file():
        pytest.skip(f"EDVAM data not found at {EDVAM} (shared data folder beside the repo)")
    s = load_edvam(EDVAM)
    assert len(s["t_s"]) == 4475
    np.testing.assert_allclose(np.linalg.norm(s["forward"], axis=1), 1.0)
    ang = head_relative_gaze_deg(s)
    assert np.isfinite(ang).all() and (ang >= 0).all() and (ang <= 180).all()
    q = edvam_quality(s)
    assert 10 < q["rate_hz"] < 40                          # ~30 Hz with 32/68 ms steps
    assert 50 < q["data_loss_pct"] < 85                    # "confidence often low"
    conf = q["eccentricity_deg_p25_p50_p75_p95_confident"]
    low = q["eccentricity_deg_p25_p50_p75_p95_low_confidence"]
    # where the pupil detector is confident the gaze sits nearer the head's forward direction
    assert 2.0 < conf[1] < 25.0 and conf[1] < low[1] and conf[3] < low[3]


def test_edvam_bad_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not an EDVAM CSV"):
        load_edvam(p)
    with pytest.raises(FileNotFoundError):
        load_edvam(tmp_path / "none.csv")
