"""Event classification: Tobii I-VT, I-DT, pursuit-aware I-VDT/I-VVT, object-space velocity."""
import numpy as np
import pytest

from gaze3d.camera import CameraPath
from gaze3d.errors import InputError
from gaze3d.events import (EventType, TOBII_IVT_DEFAULTS, angular_velocity, carried_pursuit, classify_rays,
                           classify_samples, cohen_kappa, fill_gaps)
from gaze3d.simulate import simulate_gaze

FIX, SAC, PUR, GAP, UNC = (int(EventType.FIXATION), int(EventType.SACCADE), int(EventType.PURSUIT),
                           int(EventType.GAP), int(EventType.UNCLASSIFIED))


def _signal(**kw):
    sig = simulate_gaze(kw.pop("duration_s", 30.0), **kw)
    return sig.t_s, np.where(sig.valid, sig.x_deg, np.nan), np.where(sig.valid, sig.y_deg, np.nan), sig.truth


def test_tobii_defaults():
    assert TOBII_IVT_DEFAULTS == dict(velocity_threshold=30.0, window_s=0.020, gap_fill_max_s=0.075,
                                      merge_max_gap_s=0.075, merge_max_angle_deg=0.5, min_fixation_s=0.060)


def test_velocity_of_constant_motion():
    t = np.arange(240) / 1200.0
    v = angular_velocity(t, 10.0 * t, 0.0 * t)
    np.testing.assert_allclose(v, 10.0, rtol=1e-9)


def test_ivt_on_fixations_and_saccades():
    t, x, y, truth = _signal(seed=4, pursuit_fraction=0.0)
    labels = classify_samples(t, x, y, "ivt")
    k_fix = cohen_kappa(truth, labels, FIX)
    k_sac = cohen_kappa(truth, labels, SAC)
    print(f"\nivt kappa (no pursuit, seed 4): fixation {k_fix:.3f} saccade {k_sac:.3f}")
    assert k_fix > 0.85 and k_sac > 0.8


@pytest.mark.parametrize("method, floor", [("ivdt", (0.8, 0.8, 0.75)), ("ivvt", (0.6, 0.8, 0.4))])
def test_pursuit_aware_methods(method, floor):
    t, x, y, truth = _signal(seed=7, pursuit_fraction=0.25)
    labels = classify_samples(t, x, y, method)
    kappas = [cohen_kappa(truth, labels, c) for c in (FIX, SAC, PUR)]
    print(f"\n{method} kappa (seed 7): fixation {kappas[0]:.3f} saccade {kappas[1]:.3f} pursuit {kappas[2]:.3f}")
    assert all(k > f for k, f in zip(kappas, floor))


def test_ivt_labels_pursuit_as_fixation_and_idt_finds_fixations():
    t, x, y, truth = _signal(seed=5, pursuit_fraction=0.0)
    labels = classify_samples(t, x, y, "idt")
    assert cohen_kappa(truth, labels, FIX) > 0.7
    assert not np.any(labels == PUR)


def test_gap_fill_merge_and_short_fixations():
    t = np.arange(1200) / 1200.0
    x = np.zeros_like(t)
    y = np.zeros_like(t)
    x[600:] = 5.0                       # a step: a saccade in the middle
    x[300:360] = np.nan                 # 50 ms gap: filled
    x[900:1080] = np.nan                # 150 ms gap: kept
    labels = classify_samples(t, x, y, "ivt")
    assert np.all(labels[300:360] == FIX)
    assert np.all(labels[900:1080] == GAP)
    assert np.any(labels[590:610] == SAC)
    # a 30 ms still period between two fast movements: too short, unclassified
    xs = np.concatenate([np.linspace(0, 10, 60), np.full(36, 10.0), np.linspace(10, 20, 60)])
    ts = np.arange(len(xs)) / 1200.0
    lab = classify_samples(ts, xs, np.zeros_like(xs), "ivt")
    assert not np.any(lab == FIX) and np.any(lab == UNC)


def test_merge_joins_fixations_across_a_short_blip():
    t = np.arange(600) / 1200.0
    x = np.zeros_like(t)
    x[300:306] = np.linspace(0, 1.0, 6)     # a fast 5-sample blip, back at 0.1 deg
    x[306:] = 0.1
    labels = classify_samples(t, x, np.zeros_like(t), "ivt")
    assert np.all(labels == FIX)
    no_merge = classify_samples(t, x, np.zeros_like(t), "ivt", merge_max_gap_s=0.0)
    assert np.any(no_merge == SAC)


def test_fill_gaps_interpolates_linearly():
    t = np.arange(5) * 0.01
    x = np.array([0.0, np.nan, np.nan, 3.0, 4.0])
    xf, yf, ok = fill_gaps(t, x, x.copy(), np.isfinite(x), 0.075)
    np.testing.assert_allclose(xf, [0, 1, 2, 3, 4])
    assert ok.all()


def _orbit_locked(duration=1.0, rate=1200.0, deg_per_s=180.0):
    """Camera orbiting at deg_per_s while the eye stays on a world point off the orbit centre."""
    path = CameraPath.orbit((0, 0, 0), radius=10.0, elevation_deg=20, duration_s=duration,
                            turns=deg_per_s * duration / 360.0, n_keys=200, vfov_deg=60.0)
    target = np.array([4.0, -3.0, 1.0])     # moves at 35-63 deg/s on the screen
    t = np.arange(int(duration * rate)) / rate
    rng = np.random.default_rng(0)
    cams = [path.at(s) for s in t]
    origins = np.array([c.position for c in cams])
    dirs = target - origins
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    dirs += rng.normal(0, np.radians(0.02), dirs.shape)      # tracker noise
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return t, cams, origins, dirs, target


def _screen_deg(cams, target):
    """Where ``target`` (3,) appears on each camera's screen, as (x, y) angles in degrees from its centre."""
    px = np.array([c.project(target[None])[0][0] for c in cams])
    f = cams[0].focal_px
    return (np.degrees(np.arctan((px[:, 0] - cams[0].width / 2) / f)),
            np.degrees(np.arctan((px[:, 1] - cams[0].height / 2) / f)))


def test_locked_gaze_on_rotating_camera_is_one_fixation_in_object_space():
    t, cams, origins, dirs, target = _orbit_locked()
    hits = np.repeat(target[None], len(t), axis=0)
    obj = classify_rays(t, origins, dirs, hits, "ivt")
    assert np.all(obj == FIX)
    # the same gaze on the screen moves with the camera: not a fixation there
    x_deg, y_deg = _screen_deg(cams, target)
    screen = classify_samples(t, x_deg, y_deg, "ivt")
    assert np.mean(screen == FIX) < 0.2
    assert np.mean(np.isin(classify_samples(t, x_deg, y_deg, "ivvt"), (SAC, PUR))) > 0.8


@pytest.mark.parametrize("args, match", [
    (([0, 1], [0], [0, 1]), "same length"),
    (([0, 0], [0, 1], [0, 1]), "increasing"),
])
def test_bad_signals(args, match):
    with pytest.raises(InputError, match=match):
        classify_samples(*args)


def test_bad_method_and_param():
    with pytest.raises(InputError, match="method"):
        classify_samples([0, 1], [0, 0], [0, 0], "magic")
    with pytest.raises(InputError, match="velocity_threshold|unknown"):
        classify_samples([0, 1], [0, 0], [0, 0], "idt", velocity_threshold=3)


# ------------------------------------------------------------------ adaptive
PSO = int(EventType.PSO)


def test_adaptive_defaults_table_and_validation():
    from gaze3d.events import ADAPTIVE_DEFAULTS, METHODS

    assert "adaptive" in METHODS and PSO == 5
    t = np.arange(100) / 300.0
    assert classify_samples(t, 0 * t, 0 * t, "adaptive", **ADAPTIVE_DEFAULTS).shape == (100,)
    with pytest.raises(InputError, match="unknown"):
        classify_samples(t, 0 * t, 0 * t, "adaptive", velocity_threshold=30.0)
    with pytest.raises(InputError, match="peak_sd"):
        classify_samples(t, 0 * t, 0 * t, "adaptive", peak_sd=-1.0)


@pytest.mark.parametrize("method, params, match", [
    ("adaptive", dict(peak_sd=0.0), "peak_sd: expected a number > 0"),          # was a ZeroDivisionError
    ("adaptive", dict(velocity_window_s=1e99), "at most 60 s"),                  # was an OverflowError
    ("adaptive", dict(saccade_amp_window_s=1e6), "at most 60 s"),                # was a 33 GB allocation
    ("adaptive", dict(adapt_window_s=1e5), "at most 3600 s"),
    ("adaptive", dict(threshold_min=500.0, threshold_max=10.0), "at most threshold_max"),
    ("ivt", dict(window_s=61.0), "at most 60 s"),
    ("idt", dict(min_duration_s=float("inf")), ">= 0"),
])
def test_parameters_out_of_range_are_one_line(method, params, match):
    t = np.arange(300) / 300.0
    with pytest.raises(InputError, match=match):
        classify_samples(t, 0 * t, 0 * t, method, **params)


# today (seed 8, 30 s) fixation / saccade / pursuit kappa: 30 Hz 0.641 0.433 0.854; 60 Hz 0.846 0.690
# 0.970; 250 Hz 0.924 0.887 0.951; 1200 Hz 0.925 0.909 0.944; 2000 Hz 0.925 0.911 0.944; 1200 Hz with
# 0.5 deg noise 0.847 0.915 0.830. Floors a few hundredths below.
@pytest.mark.parametrize("rate, precision, floor", [
    (30.0, 0.05, (0.55, 0.38, 0.74)),
    (60.0, 0.05, (0.8, 0.6, 0.93)),
    (250.0, 0.05, (0.9, 0.82, 0.92)),
    (1200.0, 0.05, (0.9, 0.8, 0.9)),
    (2000.0, 0.05, (0.9, 0.8, 0.9)),
    (1200.0, 0.5, (0.8, 0.78, 0.72)),
])
def test_adaptive_across_rates_and_noise(rate, precision, floor):
    t, x, y, truth = _signal(seed=8, rate_hz=rate, precision_rms_deg=precision, pursuit_fraction=0.2)
    labels = classify_samples(t, x, y, "adaptive")
    kappas = [cohen_kappa(truth, labels, c) for c in (FIX, SAC, PUR)]
    ivt = cohen_kappa(truth, classify_samples(t, x, y, "ivt"), FIX)
    print(f"\nadaptive {rate:.0f} Hz, noise {precision} deg: fixation {kappas[0]:.3f} saccade {kappas[1]:.3f} "
          f"pursuit {kappas[2]:.3f} (ivt fixation {ivt:.3f})")
    assert all(k > f for k, f in zip(kappas, floor))
    assert kappas[0] > ivt


def test_adaptive_locked_gaze_on_rotating_camera():
    t, cams, origins, dirs, target = _orbit_locked()
    # hit points as a viewer gets them: the measured ray against the surface (plane z = 1
    # through the target), so they carry the tracker noise (exact target hits would
    # integrate it into a random walk that reads as slow drift)
    hits = origins + dirs * ((target[2] - origins[:, 2:3]) / dirs[:, 2:3])
    assert np.all(classify_rays(t, origins, dirs, hits, "adaptive") == FIX)
    x_deg, y_deg = _screen_deg(cams, target)
    screen = classify_samples(t, x_deg, y_deg, "adaptive")
    assert np.mean(screen == FIX) < 0.05          # on the screen the eye moves: not a fixation


def test_adaptive_orbit_session_pursuit_on_screen_fixation_in_object_space():
    """simulate_scene_gaze: targets on a plane fixated while the camera orbits at 60 deg/s."""
    from gaze3d.simulate import orbit_session

    o = orbit_session(10.0, 3, grid=2)
    sg, path = o.gaze, o.path
    fix = sg.truth == FIX
    screen = classify_samples(sg.t_s, sg.x_deg, sg.y_deg, "adaptive")
    # object space: each gaze ray against the plane z = 0 the targets lie on
    ok = sg.valid & np.isfinite(sg.xy).all(axis=1)
    origins = np.full((len(sg.t_s), 3), np.nan)
    dirs = np.full((len(sg.t_s), 3), np.nan)
    for i in np.flatnonzero(ok):
        cam = path.at(sg.t_s[i])
        o, d = cam.unproject(cam.normalized_to_pixels(sg.xy[i:i + 1]))
        origins[i], dirs[i] = o[0], d[0]
    hits = origins + dirs * (-origins[:, 2:3] / dirs[:, 2:3])
    obj = classify_rays(sg.t_s, origins, dirs, hits, "adaptive")
    on_screen_pursuit = float(np.mean(screen[fix] == PUR))
    on_screen_fixation = float(np.mean(screen[fix] == FIX))
    k_obj = cohen_kappa(sg.truth, obj, FIX)
    print(f"\norbit: object-space fixations labelled pursuit on the screen {on_screen_pursuit:.3f}, "
          f"fixation on the screen {on_screen_fixation:.3f}; object-space fixation kappa {k_obj:.3f}")
    # on the screen these fixations move at 3-11 deg/s (median 7). Below the 5 deg/s
    # floor only sustained movement is pursuit (slow tier: >= 1 deg, one way), so the
    # shortest slow ones (0.2-0.3 s, under 1 deg: a drift's size) stay fixation.
    # today 0.802 pursuit, 0.144 fixation (without the slow tier 0.504 / 0.442)
    assert on_screen_pursuit >= 0.78 and on_screen_fixation <= 0.16
    assert k_obj > 0.88


def _saccade_then(rate, move, before_s=0.6, after_s=1.6, noise=0.02, seed=0):
    """(t, x, y, after): a fixation, a 6 deg 30 ms saccade, then ``move(tau)`` -> (dx, dy) added after it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int((before_s + 0.03 + after_s) * rate)) / rate
    x, y = np.zeros_like(t), np.zeros_like(t)
    sac = (t >= before_s) & (t < before_s + 0.03)
    x[sac] = 6.0 * (0.5 - 0.5 * np.cos(np.pi * (t[sac] - before_s) / 0.03))
    after = t >= before_s + 0.03
    dx, dy = move(t[after] - before_s - 0.03)
    x[after], y[after] = 6.0 + dx, dy
    return t, x + rng.normal(0, noise, len(t)), y + rng.normal(0, noise, len(t)), after


@pytest.mark.parametrize("rate", [60.0, 250.0, 1200.0])
def test_adaptive_slow_pursuit_is_pursuit(rate):
    """Pursuit at 2.5-4.5 deg/s for 1.2 s after a saccade: pursuit, not fixation (it was before the slow tier)."""
    ang = np.radians(30.0)
    for v in (2.5, 3.5, 4.5):
        def move(tau, v=v):
            d = v * np.clip(tau, 0, 1.2)
            return d * np.cos(ang), d * np.sin(ang)
        t, x, y, after = _saccade_then(rate, move)
        seg = after & (t < t[after][0] + 1.2)
        lab = classify_samples(t, x, y, "adaptive")
        off = classify_samples(t, x, y, "adaptive", pursuit_slow_velocity=5.0)    # the slow tier off
        print(f"\n{rate:.0f} Hz, pursuit at {v} deg/s: pursuit {np.mean(lab[seg] == PUR):.2f} "
              f"fixation {np.mean(lab[seg] == FIX):.2f} (slow tier off: fixation {np.mean(off[seg] == FIX):.2f})")
        assert np.mean(lab[seg] == PUR) >= 0.9 and np.mean(lab[seg] == FIX) <= 0.05
        assert np.mean(off[seg] == FIX) > 0.9


@pytest.mark.parametrize("rate", [60.0, 250.0, 1200.0])
def test_adaptive_slow_small_drift_stays_fixation(rate):
    """A straight drift of 0.5-0.9 deg over 0.15-0.3 s right after a saccade: fixation, as coders call it.

    The old 2 deg/s floor called it pursuit; the 5 deg/s floor alone keeps it
    too, the slow tier must not take it back (it is under 1 deg).
    """
    for amp, dur in ((0.5, 0.15), (0.7, 0.2), (0.9, 0.3)):
        def move(tau, amp=amp, dur=dur):
            d = amp * np.clip(tau / dur, 0, 1)
            return d, 0.5 * d
        t, x, y, after = _saccade_then(rate, move)
        lab = classify_samples(t, x, y, "adaptive")
        old = classify_samples(t, x, y, "adaptive", pursuit_velocity=2.0)          # the floor before
        print(f"\n{rate:.0f} Hz, drift {amp} deg in {dur} s: pursuit {np.mean(lab[after] == PUR):.2f} "
              f"(2 deg/s floor: {np.mean(old[after] == PUR):.2f})")
        assert not np.any(lab == PUR) and np.mean(np.isin(lab[after], (FIX, PSO))) > 0.95
        if rate > 60 and amp > 0.5:
            assert np.any(old[after] == PUR)


def test_adaptive_slow_pursuit_simulated():
    """simulate_gaze with all pursuit at 2-5 deg/s: most of it called pursuit."""
    t, x, y, truth = _signal(seed=8, rate_hz=1200.0, pursuit_fraction=0.2, pursuit_speed_deg_s=(2.0, 5.0))
    labels = classify_samples(t, x, y, "adaptive")
    k = cohen_kappa(truth, labels, PUR)
    off = cohen_kappa(truth, classify_samples(t, x, y, "adaptive", pursuit_slow_velocity=5.0), PUR)
    print(f"\nsimulated pursuit at 2-5 deg/s, 1200 Hz: pursuit kappa {k:.3f} (slow tier off {off:.3f}), "
          f"recall {np.mean(labels[truth == PUR] == PUR):.3f}")
    assert k > 0.85 and off < 0.2
    with pytest.raises(InputError, match="pursuit_speed_deg_s"):
        simulate_gaze(1.0, pursuit_speed_deg_s=(5.0, 2.0))


@pytest.mark.parametrize("case", ["empty", "one", "all_nan", "inf", "still", "huge_noise", "irregular_walk",
                                  "every_7th_lost", "slow_rate", "short_saccade"])
def test_adaptive_survives_degenerate_signals(case):
    rng = np.random.default_rng(0)
    n = {"empty": 0, "one": 1, "all_nan": 50, "inf": 50, "slow_rate": 10, "short_saccade": 40}.get(case, 3000)
    t = np.arange(n) / 1200.0
    x = np.zeros(n)
    y = np.zeros(n)
    if case == "all_nan":
        x[:] = np.nan
    elif case == "inf":
        x[:] = np.inf
    elif case == "huge_noise":
        x, y = rng.normal(0, 50, n), rng.normal(0, 50, n)
    elif case == "irregular_walk":
        t = np.cumsum(rng.uniform(1e-4, 0.05, n))
        x = np.cumsum(rng.normal(0, 1, n))
    elif case == "every_7th_lost":
        x[::7] = np.nan
    elif case == "slow_rate":
        t = np.arange(n) * 100.0
        x = np.arange(n, dtype=float)
    elif case == "short_saccade":          # shorter than the pursuit window, with a saccade in it
        x[n // 2:] = 8.0
    for kw in ({}, {"edge_pursuit": 1.0}, {"saccade_amp_window_s": 0.0}):
        labels = classify_samples(t, x, y, "adaptive", **kw)
        assert labels.shape == (n,) and labels.dtype == np.int8
        assert set(np.unique(labels)) <= {int(e) for e in EventType}
        if case in ("all_nan", "inf"):
            assert np.all(labels == GAP)
        if case == "still":
            assert np.all(labels == FIX)


def _fixation_signal(rate=300.0, seconds=2.0, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return t, rng.normal(0, noise, len(t)), rng.normal(0, noise, len(t))


def test_adaptive_blink_excursion_around_a_short_loss_is_a_gap():
    """A fast downward sweep, 6 lost samples (filled: under 75 ms), and the return: a blink, not saccades.

    The sweeps last 15 ms, inside the default reach (20 ms) of the loss.
    """
    t, x, y = _fixation_signal()
    x[t >= 0.5] += 8.0                                   # a real saccade far from any loss
    ramp = np.clip((t - 1.215) / 0.015, 0, 1) - np.clip((t - 1.25) / 0.015, 0, 1)
    y += 3.0 * ramp                                      # the lid drags the estimate down and back
    lost = (t >= 1.23) & (t < 1.25)
    x[lost] = y[lost] = np.nan
    lab = classify_samples(t, x, y, "adaptive")
    off = classify_samples(t, x, y, "adaptive", blink_reach_s=0.0)
    around = (t >= 1.21) & (t < 1.27)
    assert np.all(lab[lost] == GAP) and not np.any(lab[around] == SAC)
    assert np.mean(lab[around] == GAP) > 0.5
    assert np.any(off[around] == SAC)                    # without the rule: two "saccades"
    near_saccade = (t > 0.49) & (t < 0.52)
    assert np.any(lab[near_saccade] == SAC) and not np.any(lab[t < 1.1] == GAP)


def test_adaptive_pso_is_labelled_and_ends_within_pso_max_s():
    """A 10 deg saccade with a damped 25 Hz overshoot: PSO right after it, over within pso_max_s."""
    from gaze3d.events import ADAPTIVE_DEFAULTS

    rate = 1000.0
    t, x, y = _fixation_signal(rate=rate, noise=0.005)
    sac = (t >= 1.0) & (t < 1.04)
    x[sac] += 10.0 * (0.5 - 0.5 * np.cos(np.pi * (t[sac] - 1.0) / 0.04))
    after = t >= 1.04
    x[after] += 10.0 + 0.6 * np.sin(2 * np.pi * 25 * (t[after] - 1.04)) * np.exp(-(t[after] - 1.04) / 0.02)
    lab = classify_samples(t, x, y, "adaptive")
    assert ADAPTIVE_DEFAULTS["pso_max_s"] > 0 and np.any(lab == PSO)
    sac_end = t[np.flatnonzero(lab == SAC)[-1]]
    assert t[np.flatnonzero(lab == PSO)].max() <= sac_end + ADAPTIVE_DEFAULTS["pso_max_s"] + 1e-9
    assert not np.any(classify_samples(t, x, y, "adaptive", pso_max_s=0.0) == PSO)
    assert lab[-1] == FIX


def test_adaptive_noise_burst_is_not_a_saccade():
    """A saccade moves the eye: its amplitude is between the mean positions around it, not two samples.

    A 20 ms burst of noise (out and back) gives two end samples 1-2 deg apart;
    the 60 ms of gaze before and after it are in one place, so it stays
    fixation. A real 1 deg step is still a saccade.
    """
    rate = 300.0
    rng = np.random.default_rng(1)
    t = np.arange(int(1.2 * rate)) / rate
    x, y = rng.normal(0, 0.05, len(t)), rng.normal(0, 0.05, len(t))
    i, j = int(0.5 * rate), int(0.9 * rate)
    y[i:i + 6] += [0.8, 1.6, 0.6, -0.8, -1.4, -0.5]
    x[j:] += 1.0
    for kw, burst_is_saccade in (({}, False), ({"saccade_amp_window_s": 0.0}, True)):
        labels = classify_samples(t, x, y, "adaptive", **kw)
        assert np.any(labels[i - 3:i + 9] == SAC) == burst_is_saccade, kw
        assert np.any(labels[j - 6:j + 6] == SAC), kw
        assert np.all(labels[j + 20:] == FIX)


def _small_saccade(rate=300.0, amp=0.9, dur=0.03, noise=0.1, seed=0, pursuit_deg_s=0.0):
    """(t, x, y, onset): 0.7 s of fixation, a ``amp`` deg saccade over ``dur`` s (or, with
    ``pursuit_deg_s``, 0.3 s of pursuit at that speed), then fixation; white noise ``noise`` deg."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.5 * rate)) / rate
    x, y, a = np.zeros_like(t), np.zeros_like(t), 0.7
    if pursuit_deg_s:
        y[t >= a] = pursuit_deg_s * np.minimum(t[t >= a] - a, 0.3)
    else:
        m = (t >= a) & (t < a + dur)
        x[m] = amp * (0.5 - 0.5 * np.cos(np.pi * (t[m] - a) / dur))
        x[t >= a + dur] = amp
    return t, x + rng.normal(0, noise, len(t)), y + rng.normal(0, noise, len(t)), a


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adaptive_small_saccade_tier_splits_the_fixation(seed):
    """small_saccade_peak_frac (off by default): a 0.9 deg saccade whose smoothed peak stays under the
    40 deg/s peak-threshold floor splits the fixation only with the tier on; nothing else moves."""
    from gaze3d.events import SMALL_SACCADE_PEAK_FRAC

    t, x, y, a = _small_saccade(seed=seed)
    near = (t > a - 0.05) & (t < a + 0.08)
    default = classify_samples(t, x, y, "adaptive")
    on = classify_samples(t, x, y, "adaptive", small_saccade_peak_frac=SMALL_SACCADE_PEAK_FRAC)
    assert np.all(default == FIX)                                  # one fixation spans it by default
    sac = np.flatnonzero(on == SAC)
    assert len(sac) and near[sac].all() and np.all(np.diff(sac) == 1)   # one run, at the saccade
    assert 0.025 <= t[sac[-1]] - t[sac[0]] <= 0.05
    assert np.all(on[~near] == FIX)


def test_adaptive_small_saccade_tier_leaves_fast_pursuit_alone():
    """0.3 s of 35 deg/s pursuit passes the tier's speed test (above 0.75 x the 40 deg/s floor) and is
    no saccade: the tier's maximum duration (small_saccade_max_s) keeps it pursuit; lifted, it is not."""
    from gaze3d.events import SMALL_SACCADE_PEAK_FRAC

    t, x, y, a = _small_saccade(noise=0.05, pursuit_deg_s=35.0)
    moving = (t > a + 0.03) & (t < a + 0.27)
    on = classify_samples(t, x, y, "adaptive", small_saccade_peak_frac=SMALL_SACCADE_PEAK_FRAC)
    assert np.array_equal(on, classify_samples(t, x, y, "adaptive"))
    assert np.mean(on[moving] == PUR) > 0.95
    uncapped = classify_samples(t, x, y, "adaptive", small_saccade_peak_frac=SMALL_SACCADE_PEAK_FRAC,
                                small_saccade_max_s=10.0)
    assert np.mean(uncapped[moving] == SAC) > 0.95


@pytest.mark.parametrize("rate", [300.0, 1200.0])
def test_adaptive_edge_pursuit_ends_a_saccade_that_lands_in_fast_pursuit(rate):
    """edge_pursuit=1: a saccade into 25 deg/s pursuit ends with the saccade, the rest is pursuit.

    The onset threshold of a mostly still signal is near its 10 deg/s floor, so
    by default the run above it goes on through the whole 0.5 s of pursuit and
    is all called saccade (docs/events.md, "Orbit viewing"; pinned here: over 90%).
    """
    t, x, y, after = _saccade_then(rate, lambda tau: (0 * tau, 25.0 * tau), before_s=2.0, after_s=0.5)
    default = classify_samples(t, x, y, "adaptive")
    labels = classify_samples(t, x, y, "adaptive", edge_pursuit=1.0)
    sac = np.flatnonzero(labels == SAC)
    print(f"\n{rate:.0f} Hz: after the saccade, saccade share {np.mean(default[after] == SAC):.3f} by default, "
          f"{np.mean(labels[after] == SAC):.3f} with edge_pursuit; pursuit share {np.mean(labels[after] == PUR):.3f}")
    assert np.mean(default[after] == SAC) > 0.9               # the documented default: all saccade
    assert 0.025 <= t[sac[-1]] - t[sac[0]] <= 0.045          # the 30 ms saccade, give or take a sample
    assert np.sum(labels[after] == SAC) <= max(1, int(0.004 * rate))
    assert np.mean(labels[after] == PUR) > 0.95
    assert np.all(labels[t < 1.9] == FIX)


def test_carried_pursuit_relabels_only_fixations_the_camera_carried():
    t = np.arange(600) / 300.0                                 # 2 s at 300 Hz
    still = np.zeros((600, 2))
    moving = np.c_[3.0 * t, 0.0 * t]                            # 3 deg/s: a slow, drift-like speed
    lab = np.full(600, FIX, np.int8)
    lab[290:300] = SAC
    # the screen gaze moves while the object-space trajectory stays: the camera carried a fixated point
    out = carried_pursuit(t, lab, moving, still, lab)
    assert (out[:290] == PUR).all() and (out[300:] == PUR).all() and (out[290:300] == SAC).all()
    # still camera: the two trajectories move together (drift), nothing changes
    np.testing.assert_array_equal(carried_pursuit(t, lab, moving, moving, lab), lab)
    # slower than min_speed, or not a fixation in object space (the eye held still on the screen while
    # the scene moved under it): unchanged
    np.testing.assert_array_equal(carried_pursuit(t, lab, 0.5 * moving, still, lab), lab)
    np.testing.assert_array_equal(carried_pursuit(t, lab, moving, still, np.full(600, PUR)), lab)
    # invalid samples are left out of the net speed
    gappy = moving.copy()
    gappy[100:200] = np.nan
    assert (carried_pursuit(t, lab, gappy, still, lab)[:290] == PUR).all()
    with pytest.raises(InputError, match="same length"):
        carried_pursuit(t[:-1], lab, moving, still, lab)
    with pytest.raises(InputError, match="min_speed"):
        carried_pursuit(t, lab, moving, still, lab, min_speed=0.0)


@pytest.mark.parametrize("block", [3, 64, 8192])
def test_boxcar_speed_matches_its_definition_per_sample(monkeypatch, block):
    """Mean of the `half` + 1 samples after minus before each sample, inside its run of valid samples
    (clipped at the run's edges), over the time between those means; blocks of any size agree."""
    import gaze3d._events_adaptive as ea

    monkeypatch.setattr(ea, "_BLOCK", block)
    rng = np.random.default_rng(4)
    for n, p_lost, half in ((0, 0.0, 2), (1, 0.0, 1), (5, 0.0, 3), (300, 0.0, 4), (300, 0.2, 3), (500, 0.6, 5)):
        t = np.cumsum(rng.uniform(0.001, 0.004, n))
        x, y = np.cumsum(rng.normal(0, 0.3, n)), np.cumsum(rng.normal(0, 0.3, n))
        mask = rng.random(n) >= p_lost
        x[~mask] = np.nan
        v = ea.boxcar_speed(t, x, y, mask, half)
        for i in range(n):
            if not mask[i]:
                assert np.isnan(v[i])
                continue
            lo = hi = i
            while lo > 0 and mask[lo - 1] and i - lo < half:
                lo -= 1
            while hi < n - 1 and mask[hi + 1] and hi - i < half:
                hi += 1
            before, after = slice(lo, i + 1), slice(i, hi + 1)
            dt = t[after].mean() - t[before].mean()
            if dt <= 0:
                assert np.isnan(v[i]), (n, i)
                continue
            want = np.hypot(x[after].mean() - x[before].mean(), y[after].mean() - y[before].mean()) / dt
            assert v[i] == pytest.approx(want, rel=1e-9, abs=1e-9), (n, half, i)
