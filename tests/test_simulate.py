"""The gaze simulator: main sequence, precision, accuracy, event mix, determinism, scene gaze."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gaze3d.camera import Camera, CameraPath
from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError
from gaze3d.events import EventType
from gaze3d.simulate import (GazeSignal, SceneGaze, project_on_path, saccade_duration_s, saccade_peak_velocity,
                             simulate_gaze, simulate_scene_gaze)

FIX, SAC, PUR, GAP = (int(EventType.FIXATION), int(EventType.SACCADE), int(EventType.PURSUIT),
                      int(EventType.GAP))
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def rms_s2s(x, y, truth, valid):
    """RMS sample-to-sample distance over consecutive valid fixation samples (the usual precision)."""
    ok = (truth == FIX) & valid
    pair = ok[1:] & ok[:-1]
    d = np.diff(np.c_[x, y], axis=0)[pair]
    return float(np.sqrt(np.mean(np.sum(d * d, axis=1))))


def runs(mask):
    """(start, stop) index pairs of the True runs of a bool array."""
    m = np.r_[False, mask, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(m))
    return list(zip(edges[::2], edges[1::2]))


def test_signal_shapes_and_types():
    g = simulate_gaze(3.0, 500.0, seed=1)
    assert isinstance(g, GazeSignal) and len(g) == 1500
    for name in ("t_s", "x_deg", "y_deg", "target_x_deg", "target_y_deg"):
        assert getattr(g, name).dtype == np.float64 and getattr(g, name).shape == (1500,)
    assert g.valid.dtype == bool and g.truth.dtype == np.int8
    assert set(np.unique(g.truth)) <= {FIX, SAC, PUR, GAP}
    np.testing.assert_allclose(np.diff(g.t_s), 1 / 500.0)
    assert np.isnan(g.x_deg[~g.valid]).all() and np.isfinite(g.x_deg[g.valid]).all()


def test_main_sequence_duration_peak_velocity_and_skew():
    rate = 1200.0
    g = simulate_gaze(60.0, rate, seed=3, precision_rms_deg=0.0, blink_rate_hz=0.0, pursuit_fraction=0.0)
    assert len(g.saccades) > 100
    xy = np.c_[g.x_deg, g.y_deg]
    speed = np.r_[np.linalg.norm(np.diff(xy, axis=0), axis=1) * rate, 0.0]   # speed[i]: i -> i+1
    amps, peaks, checked = [], [], 0
    for t0, dur, amp, vplan, i0 in g.saccades:
        i0 = int(i0)
        k = int(np.sum(g.truth[i0:i0 + int(round(dur * rate)) + 2] == SAC))
        if i0 + k >= len(g) - 1:
            continue
        # duration from the labels: 2.2 ms/deg + 21 ms within one sample period
        assert abs(k / rate - saccade_duration_s(amp)) <= 1.0 / rate + 1e-9
        v = speed[i0 - 1:i0 + k]
        vpeak = v.max()
        assert vpeak == pytest.approx(saccade_peak_velocity(amp), rel=0.10)
        if amp > 8:            # asymmetric profile: the peak comes before mid-saccade
            assert np.argmax(v) / len(v) < 0.5
        amps.append(amp)
        peaks.append(vpeak)
        checked += 1
    assert checked > 100
    amps, peaks = np.array(amps), np.array(peaks)
    # a saturating main sequence: documented fit 675 * (1 - exp(-A / 9.25)) within 12 %
    fit = 675.0 * (1 - np.exp(-amps / 9.25))
    assert np.all(np.abs(peaks - fit) / fit < 0.12)
    big, small = peaks[amps > 15], peaks[amps < 3]
    assert big.min() > 450 and small.max() < 200


@pytest.mark.parametrize("rate", [250.0, 1200.0, 2000.0])
@pytest.mark.parametrize("precision", [0.02, 0.05, 0.2])
def test_rms_precision_within_10_percent(rate, precision):
    g = simulate_gaze(40.0, rate, seed=int(rate) + int(precision * 1000), precision_rms_deg=precision)
    measured = rms_s2s(g.x_deg, g.y_deg, g.truth, g.valid)
    assert measured == pytest.approx(precision, rel=0.10)


def test_accuracy_offset_is_constant_and_recovered():
    off = (0.7, -0.4)
    g = simulate_gaze(60.0, 600.0, seed=5, accuracy_offset_deg=off, precision_rms_deg=0.05)
    ok = (g.truth == FIX) & g.valid
    dx = g.x_deg[ok] - g.target_x_deg[ok]
    dy = g.y_deg[ok] - g.target_y_deg[ok]
    assert np.mean(dx) == pytest.approx(off[0], abs=0.05)
    assert np.mean(dy) == pytest.approx(off[1], abs=0.05)
    # without offset the mean error is ~0 (drift and noise average out)
    g0 = simulate_gaze(60.0, 600.0, seed=5, precision_rms_deg=0.05)
    ok0 = (g0.truth == FIX) & g0.valid
    assert abs(np.mean(g0.x_deg[ok0] - g0.target_x_deg[ok0])) < 0.05


def test_event_proportions():
    g = simulate_gaze(120.0, 500.0, seed=11, pursuit_fraction=0.2, blink_rate_hz=0.2)
    frac = {c: float(np.mean(g.truth == c)) for c in (FIX, SAC, PUR, GAP)}
    assert 0.15 <= frac[PUR] <= 0.25
    assert 0.03 <= frac[SAC] <= 0.15
    assert frac[FIX] > 0.5
    # blinks: Poisson at 0.2/s of 100-300 ms (+40 ms artefact): about 4.8 % of the time
    assert 0.02 <= frac[GAP] <= 0.09
    blink_runs = [(a, b) for a, b in runs(~g.valid)]
    durations = np.array([(b - a) / 500.0 for a, b in blink_runs])
    assert 10 <= len(durations) <= 45
    assert durations.min() >= 0.098 and durations.max() <= 0.62     # two blinks may overlap
    # no pursuit asked: none produced
    g2 = simulate_gaze(30.0, 500.0, seed=11, pursuit_fraction=0.0)
    assert not np.any(g2.truth == PUR)


def test_dropouts_fraction():
    g = simulate_gaze(60.0, 1000.0, seed=2, blink_rate_hz=0.0, dropout_rate=0.05)
    lost = np.mean(~g.valid)
    assert lost == pytest.approx(0.05, abs=0.012)
    assert np.all(g.truth[~g.valid] == GAP)
    assert np.mean([b - a for a, b in runs(~g.valid)]) < 10      # short bursts


def test_pursuit_speeds_in_range_and_followed():
    rate = 1000.0
    g = simulate_gaze(60.0, rate, seed=4, pursuit_fraction=0.3, precision_rms_deg=0.01, blink_rate_hz=0.0)
    segs = runs(g.truth == PUR)
    assert len(segs) >= 10
    for a, b in segs:
        if b - a < 300:
            continue
        s = slice(a + 120, b)       # after the 100 ms velocity ramp
        tv = np.hypot(np.diff(g.target_x_deg[s]), np.diff(g.target_y_deg[s])) * rate
        assert 5.0 - 1e-6 <= np.median(tv) <= 30.0 + 1e-6
        # the eye moves with the target (smoothed over 20 samples against noise)
        ex = (g.x_deg[s][20:] - g.x_deg[s][:-20]) * rate / 20
        tx = (g.target_x_deg[s][20:] - g.target_x_deg[s][:-20]) * rate / 20
        assert np.median(np.abs(ex - tx)) < 1.0


def test_blink_artefact_goes_down_before_blinks():
    g = simulate_gaze(60.0, 500.0, seed=8, blink_rate_hz=0.5, blink_artefact=True, pursuit_fraction=0.0)
    ups = 0
    for a, b in runs(g.blink):
        if a < 5:
            continue
        inval = np.flatnonzero(~g.valid[a:b])
        if len(inval) == 0 or inval[0] < 5:
            continue
        pre = a + inval[0] - 1                       # last valid sample before the lid closes
        assert g.valid[pre] and g.truth[pre] == GAP
        ups += (g.y_deg[pre] - g.target_y_deg[pre]) > 1.0   # y grows downward
    assert ups >= 10


def test_deterministic_with_seed():
    a = simulate_gaze(5.0, 1200.0, seed=42, dropout_rate=0.01)
    b = simulate_gaze(5.0, 1200.0, seed=42, dropout_rate=0.01)
    c = simulate_gaze(5.0, 1200.0, seed=43, dropout_rate=0.01)
    for name in ("x_deg", "y_deg", "valid", "truth", "target_x_deg"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.truth, c.truth) or not np.allclose(np.nan_to_num(a.x_deg), np.nan_to_num(c.x_deg))


def test_scripted_targets():
    targets = [(0.0, 0.0, 0.5), (10.0, 0.0, 0.4), (10.0, 8.0, 0.6)]
    g = simulate_gaze(None, 1000.0, seed=0, targets=targets, blink_rate_hz=0.0, precision_rms_deg=0.02)
    expected = 1.5 + float(saccade_duration_s(10.0) + saccade_duration_s(8.0))
    assert len(g) / 1000.0 == pytest.approx(expected, abs=0.005)
    assert len(g.saccades) == 2
    np.testing.assert_allclose(g.saccades[:, 2], [10.0, 8.0], atol=1e-9)
    for x, y, _ in targets:
        on = (g.target_x_deg == x) & (g.target_y_deg == y) & (g.truth == FIX)
        assert on.sum() > 300
        assert np.nanmean(g.x_deg[on]) == pytest.approx(x, abs=0.15)
        assert np.nanmean(g.y_deg[on]) == pytest.approx(y, abs=0.15)
    # the true eye direction is kept: measured = eye + noise (no offset asked)
    ok = g.valid & (g.truth == FIX)
    assert np.std(g.x_deg[ok] - g.eye_x_deg[ok]) == pytest.approx(g.noise_sigma_deg, rel=0.1)
    # a repeated target is not a (zero-amplitude) saccade: the fixation goes on
    g3 = simulate_gaze(None, 1000.0, targets=[(1.0, 1.0, 0.3), (1.0, 1.0, 0.3), (5.0, 1.0, 0.3)],
                       blink_rate_hz=0.0)
    assert len(g3.saccades) == 1 and g3.saccades[0, 2] == pytest.approx(4.0)
    # a longer duration holds the last target
    g2 = simulate_gaze(3.0, 1000.0, targets=targets, blink_rate_hz=0.0)
    assert len(g2) == 3000 and g2.target_x_deg[-1] == 10.0 and g2.truth[-1] == FIX


@pytest.mark.parametrize("kwargs, word", [
    (dict(rate_hz=2500.0), "rate_hz"),
    (dict(rate_hz=0.0), "rate_hz"),
    (dict(precision_rms_deg=-0.1), "precision_rms_deg"),
    (dict(dropout_rate=0.9), "dropout_rate"),
    (dict(accuracy_offset_deg=(1.0,)), "accuracy_offset_deg"),
    (dict(targets=[(1.0, 2.0)]), "targets"),
    (dict(targets=[(1.0, 2.0, -1.0)]), "dwell_s"),
])
def test_bad_parameters_raise_input_error(kwargs, word):
    with pytest.raises(InputError, match=word):
        simulate_gaze(1.0, **{"rate_hz": 500.0, **kwargs})
    with pytest.raises(InputError, match="duration_s"):
        simulate_gaze(None)


# ------------------------------------------------------------------ scene gaze
def _orbit(duration=8.0, radius=60.0):
    return CameraPath.orbit([0, 0, 0], radius, elevation_deg=25, duration_s=duration, turns=0.2,
                            width=800, height=600, vfov_deg=40)


def test_project_on_path_matches_camera_project():
    path = _orbit()
    pts = np.random.default_rng(0).uniform(-15, 15, (20, 3))
    for t in (0.0, 1.37, 4.0, 7.99, 20.0):
        cam = path.at(t)
        px, depth = cam.project(pts)
        expect = cam.pixels_to_normalized(px)
        inside = ((expect >= 0) & (expect <= 1)).all(axis=1) & (depth > cam.near)
        got = np.stack([project_on_path(path, p, [t])[0] for p in pts])
        np.testing.assert_allclose(got[inside], expect[inside], atol=1e-12)
        assert np.isnan(got[~inside]).all()


def test_scene_gaze_fixates_targets_in_object_space():
    rng = np.random.default_rng(1)
    pts = rng.uniform([-15, -15, 0], [15, 15, 8], (25, 3))
    path = _orbit()
    display = DisplayGeometry()
    s = simulate_scene_gaze(pts, path, rate_hz=600.0, seed=2, precision_rms_deg=0.05, blink_rate_hz=0.0,
                            display=display)
    assert isinstance(s, SceneGaze) and len(s) == int(8.0 * 600)
    assert s.xy.shape == (len(s), 2) and s.target_index.dtype == np.int64
    fix = (s.truth == FIX) & (s.target_index >= 0) & s.valid
    assert fix.mean() > 0.5
    assert len(np.unique(s.target_index[s.target_index >= 0])) >= 10
    assert np.all(s.target_index[s.truth == SAC] == -1)
    # gaze follows each target's projection through the real Camera code while the camera moves
    idx = np.flatnonzero(fix)[::37]
    errs = []
    for i in idx:
        cam = path.at(s.t_s[i])
        px, _ = cam.project(pts[s.target_index[i]][None])
        true_xy = cam.pixels_to_normalized(px)[0]
        errs.append(display.angle_between_deg(s.xy[i][None], true_xy[None])[0])
    assert np.median(errs) < 0.3           # drift + noise, degrees
    # the projection of a fixated target moves on screen (object-space fixation, not a screen fixation)
    a, b = max(runs(fix), key=lambda r: r[1] - r[0])
    assert np.linalg.norm(s.target_xy[b - 1] - s.target_xy[a]) > 1e-3


def test_scene_gaze_offset_in_degrees():
    pts = np.random.default_rng(3).uniform(-10, 10, (15, 3))
    path = _orbit()
    display = DisplayGeometry()
    s = simulate_scene_gaze(pts, path, rate_hz=500.0, seed=4, accuracy_offset_deg=(1.0, 0.5),
                            blink_rate_hz=0.0, display=display)
    fix = (s.truth == FIX) & (s.target_index >= 0) & s.valid
    tdeg = display.norm_to_deg(s.target_xy[fix])
    assert np.mean(s.x_deg[fix] - tdeg[:, 0]) == pytest.approx(1.0, abs=0.06)
    assert np.mean(s.y_deg[fix] - tdeg[:, 1]) == pytest.approx(0.5, abs=0.06)


def test_scene_gaze_skips_targets_behind_or_off_screen():
    cam = Camera(position=[0, -50, 0], focal_point=[0, 0, 0], view_up=[0, 0, 1], width=640, height=480)
    path = CameraPath([0.0, 4.0], [cam, cam])
    pts = np.array([[0, 0, 0], [0, -100, 0], [500, 0, 0], [3, 0, 2]], dtype=float)   # 1 behind, 2 off-screen
    s = simulate_scene_gaze(pts, path, rate_hz=500.0, seed=0, blink_rate_hz=0.0)
    visited = set(np.unique(s.target_index[s.target_index >= 0]).tolist())
    assert visited == {0, 3}
    assert {1, 2} <= set(s.skipped.tolist())
    # nothing visible at all: the eye holds still, no target, no crash
    s2 = simulate_scene_gaze(pts[1:3], path, 1.0, rate_hz=200.0, blink_rate_hz=0.0)
    assert np.all(s2.target_index == -1) and len(s2.skipped) > 0


def test_scene_gaze_deterministic_and_bad_input():
    pts = np.random.default_rng(3).uniform(-10, 10, (5, 3))
    a = simulate_scene_gaze(pts, _orbit(2.0), rate_hz=300.0, seed=9)
    b = simulate_scene_gaze(pts, _orbit(2.0), rate_hz=300.0, seed=9)
    np.testing.assert_array_equal(a.xy, b.xy)
    np.testing.assert_array_equal(a.target_index, b.target_index)
    with pytest.raises(InputError, match="targets_world"):
        simulate_scene_gaze(np.zeros((3, 2)), _orbit())
    with pytest.raises(InputError, match="camera_path"):
        simulate_scene_gaze(pts, "path.json")


def test_scene_gaze_on_ign_buildings():
    las = DATA / "pointcloud" / "ign_lidarhd" / "870000_6618000.subset.50mx100m.las"
    if not las.is_file():
        pytest.skip(f"real data not found: {las}")
    io = pytest.importorskip("gaze3d.io", reason="gaze3d.io (scan loading) not available")
    scan = io.load_scan(las)
    buildings = scan.xyz[scan.labels == 6]
    assert len(buildings) > 1000
    pick = buildings[np.random.default_rng(0).choice(len(buildings), 30, replace=False)]
    center = scan.xyz.mean(axis=0)
    path = CameraPath.orbit(center, 120.0, elevation_deg=45, duration_s=10.0, turns=0.25,
                            width=1024, height=768, vfov_deg=50)
    s = simulate_scene_gaze(pick, path, rate_hz=1200.0, seed=1)
    visited = np.unique(s.target_index[s.target_index >= 0])
    assert len(visited) >= 10
    fix = (s.truth == FIX) & (s.target_index >= 0) & s.valid
    assert fix.mean() > 0.5
    i = np.flatnonzero(fix)[len(np.flatnonzero(fix)) // 2]
    cam = path.at(s.t_s[i])
    px, _ = cam.project(pick[s.target_index[i]][None])
    assert np.linalg.norm(s.xy[i] - cam.pixels_to_normalized(px)[0]) < 0.02


def test_orbit_session_scene_and_recording():
    from gaze3d.simulate import orbit_session

    o = orbit_session(1.0, 3, grid=11, n_keys=20)
    assert o.xyz.shape == (121, 3) and o.targets.shape == (12, 3)
    n = len(o.gaze.t_s)
    assert n == 1200 and len(o.recording["cameras"]) == n
    np.testing.assert_array_equal(o.recording["samples"]["t_host_ns"], o.recording["camera_t_host_ns"])
    np.testing.assert_array_equal(o.gaze.xy, orbit_session(1.0, 3, grid=11, n_keys=20).gaze.xy)
    with pytest.raises(InputError, match="duration_s"):
        orbit_session(0.0)
