"""The ``adaptive`` event classifier against human coders on real recordings.

Data: ``../shared/data/eyetracking`` (hooge2018: 12 expert coders' fixations,
300 Hz; gazecom: one video recording with smooth-pursuit hand labels). They
are test material only (non-commercial / GPL, never shipped); the tests skip
with a reason where the folder is absent. The scoring code is the bench's
(``bench/events.py``), so the tests and the published numbers are one
computation. Bounds are today's measurements (``.venv/bin/python
bench/events.py --quick``) less a small margin; docs/events.md has the tables.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from gaze3d.events import EventType, classify_samples

FIX, SAC, PUR, GAP, PSO = (int(EventType.FIXATION), int(EventType.SACCADE), int(EventType.PURSUIT),
                           int(EventType.GAP), int(EventType.PSO))
REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_events", REPO / "bench" / "events.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench(shared_data):
    b = _bench()
    if not (shared_data / "eyetracking" / "hooge2018").is_dir():
        pytest.skip(f"human-coded eye-tracking data not found at {shared_data / 'eyetracking'}")
    return b


@pytest.fixture(scope="module")
def hooge(bench, shared_data):
    recs = bench.load_hooge(shared_data / "eyetracking")
    return {g: [r for r in recs if r.group == g] for g in ("adult", "infant")}


# today (defaults label PSO): adults (tuning set) fixation kappa 0.760 F1 0.933, with a PSO that a
# fixation follows counted as that fixation ("+PSO", bench.pso_in_fixation) 0.782 / 0.933; coders among
# themselves 0.752 / 0.939. Infants (held out) 0.879 / 0.937, +PSO 0.889 / 0.937; coders 0.886 / 0.935.
# I-VT 0.615 / 0.865 and 0.782 / 0.813.
@pytest.mark.parametrize("group, kappa_min, pso_kappa_min, f1_min", [("adult", 0.75, 0.77, 0.925),
                                                                    ("infant", 0.87, 0.88, 0.93)])
def test_adaptive_agrees_with_the_coders_on_hooge2018(bench, hooge, group, kappa_min, pso_kappa_min, f1_min):
    recs = hooge[group]
    labels = [classify_samples(r.t, r.x, r.y, "adaptive") for r in recs]
    kappa, f1 = bench.agreement(recs, labels, FIX)
    pso_kappa, pso_f1 = bench.agreement(recs, [bench.pso_in_fixation(lab) for lab in labels], FIX)
    ivt = bench.agreement(recs, [classify_samples(r.t, r.x, r.y, "ivt") for r in recs], FIX)
    print(f"\nhooge2018 {group}: adaptive fixation kappa {kappa:.3f} F1 {f1:.3f}, +PSO {pso_kappa:.3f} / "
          f"{pso_f1:.3f}; ivt {ivt[0]:.3f} / {ivt[1]:.3f}")
    assert np.any(np.concatenate(labels) == PSO)          # the default labels PSO
    assert kappa >= kappa_min and f1 >= f1_min and pso_kappa >= pso_kappa_min and pso_f1 >= f1_min
    assert kappa > ivt[0] and f1 > ivt[1]


def test_adaptive_reaches_the_coders_own_agreement_on_adults(bench, hooge):
    """The tuning set: at least the mean kappa of each coder against the other eleven.

    Scored both ways: PSO as not fixation (strict: 0.760 today) and with each PSO
    that a fixation follows inside that fixation (0.782), as most of Hooge et
    al.'s coders put it (their coding has no PSO class); coders 0.752.
    """
    recs = hooge["adult"]
    labels = [classify_samples(r.t, r.x, r.y, "adaptive") for r in recs]
    strict, _ = bench.agreement(recs, labels, FIX)
    kappa, _ = bench.agreement(recs, [bench.pso_in_fixation(lab) for lab in labels], FIX)
    coders, _ = bench.intercoder(recs, FIX)
    print(f"\nadults: adaptive kappa {strict:.3f}, +PSO {kappa:.3f}, coders among themselves {coders:.3f}")
    assert strict >= coders and kappa >= coders


def test_saccade_amplitude_around_the_run_follows_the_coders(bench, hooge):
    """Saccade amplitude from the mean positions around a fast run (saccade_amp_window_s) vs two end samples.

    Hooge's noisy recordings have bursts of 1-2 deg that go and come back; the
    coders call 40-60 % of the small "saccades" they make fixation. Today, adults
    (tuning) kappa/F1 0.760/0.933 with the window, 0.736/0.923 from end samples;
    infants (held out) 0.879/0.937 vs 0.876/0.936.
    """
    for group, gain in (("adult", 0.015), ("infant", 0.0)):
        recs = hooge[group]
        on = bench.agreement(recs, [classify_samples(r.t, r.x, r.y, "adaptive") for r in recs], FIX)
        off = bench.agreement(recs, [classify_samples(r.t, r.x, r.y, "adaptive", saccade_amp_window_s=0.0,
                                                      min_saccade_amp_deg=0.5) for r in recs], FIX)
        print(f"\n{group}: kappa/F1 amplitude around the run {on[0]:.4f}/{on[1]:.4f}, end samples "
              f"{off[0]:.4f}/{off[1]:.4f}")
        assert on[0] >= off[0] + gain and on[1] >= off[1]


def test_small_saccade_tier_reaches_the_adult_coders_on_kappa_and_f1(bench, hooge):
    """Stage 9 (docs/events.md; off by default): with the small-saccade tier the adults (tuning set)
    reach their coders on event F1 too (today kappa/F1 0.7557/0.9404 against the coders'
    0.7515/0.9393; the tier off 0.7605/0.9326). Held out it loses (infants 0.877/0.935 against
    0.879/0.937, GazeCom 0.778/0.957 against 0.782/0.965), which is why it stays off."""
    from gaze3d.events import SMALL_SACCADE_PEAK_FRAC

    recs = hooge["adult"]
    off = bench.agreement(recs, [classify_samples(r.t, r.x, r.y, "adaptive") for r in recs], FIX)
    on = bench.agreement(recs, [classify_samples(r.t, r.x, r.y, "adaptive",
                                                 small_saccade_peak_frac=SMALL_SACCADE_PEAK_FRAC) for r in recs], FIX)
    coders = bench.intercoder(recs, FIX)
    print(f"\nadults kappa/F1: tier on {on[0]:.4f}/{on[1]:.4f}, off {off[0]:.4f}/{off[1]:.4f}, "
          f"coders {coders[0]:.4f}/{coders[1]:.4f}")
    assert on[0] >= coders[0] and on[1] >= coders[1]
    assert on[1] >= off[1] + 0.005


def test_blink_excursions_leave_hooge_unchanged(bench, hooge):
    """Hooge's losses are NaN gaps: calling the fast runs around them GAP must not cost fixation agreement."""
    recs = hooge["adult"] + hooge["infant"]
    on = bench.agreement(recs, [classify_samples(r.t, r.x, r.y, "adaptive") for r in recs], FIX)
    off = bench.agreement(recs, [classify_samples(r.t, r.x, r.y, "adaptive", blink_reach_s=0.0) for r in recs], FIX)
    print(f"\nhooge2018 all: fixation kappa/F1 with blink excursions {on[0]:.4f}/{on[1]:.4f}, "
          f"without {off[0]:.4f}/{off[1]:.4f}")
    assert on[0] >= off[0] - 0.002 and on[1] >= off[1] - 0.002


def test_hooge_event_matching_counts_like_the_reference_code():
    """computeHitMissFA.m's rules: first unused overlapping test event is the hit."""
    from gaze3d.events import match_events

    ref = np.zeros(30, bool)
    test = np.zeros(30, bool)
    ref[2:10] = ref[12:20] = ref[25:28] = True
    test[0:4] = test[6:14] = test[16:18] = True    # [2, 10) takes [0, 4); [12, 20) takes [6, 14), the first
    assert match_events(ref, test) == (2, 1, 1)
    assert match_events(ref, ref) == (3, 0, 0)
    assert match_events(ref, np.zeros(30, bool)) == (0, 3, 0)


@pytest.fixture(scope="module")
def gazecom(bench, shared_data):
    if not (shared_data / "eyetracking" / "gazecom").is_dir():
        pytest.skip(f"GazeCom labels not found at {shared_data / 'eyetracking' / 'gazecom'}")
    return bench.load_gazecom(shared_data / "eyetracking")[0]


def test_gazecom_pursuit_is_not_called_fixation(gazecom):
    """Held-out real pursuit: samples both hand labellers call SP."""
    lab = classify_samples(gazecom.t, gazecom.x, gazecom.y, "adaptive")
    sp = (gazecom.refs[0] == PUR) & (gazecom.refs[1] == PUR)
    as_fix = float(np.mean(lab[sp] == FIX))
    as_pur = float(np.mean(lab[sp] == PUR))
    ivt_fix = float(np.mean(classify_samples(gazecom.t, gazecom.x, gazecom.y, "ivt")[sp] == FIX))
    print(f"\ngazecom: {sp.sum()} SP samples; adaptive calls {as_pur:.2f} pursuit, {as_fix:.2f} fixation; "
          f"ivt {ivt_fix:.2f} fixation")
    assert sp.sum() > 100
    # today: 0.52 pursuit, 0.00 fixation (the rest saccade or PSO); ivt 0.96 fixation
    assert as_pur >= 0.5 and as_fix <= 0.1 and ivt_fix > 0.8


def test_gazecom_agreement_beats_remodnav_where_installed(bench, gazecom):
    rm = bench.remodnav_method()
    if rm is None:
        pytest.skip("remodnav not installed (optional bench comparison: pip install remodnav)")
    ours = bench.agreement([gazecom], [classify_samples(gazecom.t, gazecom.x, gazecom.y, "adaptive")], FIX, [0, 1])
    theirs = bench.agreement([gazecom], [rm(gazecom)], FIX, [0, 1])
    print(f"\ngazecom fixation kappa/F1: adaptive {ours[0]:.3f}/{ours[1]:.3f}, "
          f"REMoDNaV {theirs[0]:.3f}/{theirs[1]:.3f}")
    assert ours[0] > theirs[0] and ours[1] > theirs[1]


def test_gazecom_fixations_held_out(bench, gazecom):
    """Held out: fixation agreement with the two labellers, and above I-VT and I-VVT.

    Today 0.782 (+PSO 0.795); labellers 0.794; ivt 0.674, ivvt 0.749. The drifts of
    3-7 deg/s that the labellers call fixation are below the 5 deg/s pursuit floor
    and too small (under 1 deg) for the slow-pursuit tier. (Not blind: GazeCom
    decided among settings that tied on the tuning set, docs/events.md stage 7.)
    """
    def score(lab):
        return bench.agreement([gazecom], [lab], FIX, [0, 1])[0]
    lab = classify_samples(gazecom.t, gazecom.x, gazecom.y, "adaptive")
    k, k_pso = score(lab), score(bench.pso_in_fixation(lab))
    others = {m: score(classify_samples(gazecom.t, gazecom.x, gazecom.y, m)) for m in ("ivt", "ivvt")}
    print(f"\ngazecom fixation kappa: adaptive {k:.3f} (+PSO {k_pso:.3f}), {others}")
    assert k >= 0.77 and k_pso >= 0.78 and k > max(others.values())


def test_gazecom_slow_pursuit(bench, gazecom):
    """Labeller 1's two slow (~4 deg/s) pursuits are pursuit; nothing both labellers call fixation is.

    Labeller 2 calls those stretches (mainly 0.28-0.55 s and 0.79-1.07 s; 163 samples
    that labeller 1 calls pursuit and labeller 2 fixation) fixation. The 5 deg/s
    floor alone called none of them pursuit; the slow tier (sustained: 1 deg or more,
    one way) calls 0.80 of them pursuit (today).
    """
    lab = classify_samples(gazecom.t, gazecom.x, gazecom.y, "adaptive")
    off = classify_samples(gazecom.t, gazecom.x, gazecom.y, "adaptive", pursuit_slow_velocity=5.0)
    l1, l2 = gazecom.refs[0], gazecom.refs[1]
    slow = (l1 == PUR) & (l2 == FIX)
    both_fix = (l1 == FIX) & (l2 == FIX)
    print(f"\ngazecom: labeller-1-only pursuit {slow.sum()} samples, adaptive pursuit {np.mean(lab[slow] == PUR):.2f} "
          f"(slow tier off {np.mean(off[slow] == PUR):.2f}); pursuit where both say fixation "
          f"{np.sum(lab[both_fix] == PUR)}")
    assert np.mean(lab[slow] == PUR) >= 0.75 and np.mean(off[slow] == PUR) == 0.0
    assert np.sum(lab[both_fix] == PUR) == 0


def test_gazecom_blink_is_a_gap(gazecom):
    """The blink at 6.59-6.83 s (7 lost samples inside a fast sweep; labellers: NOISE) is labelled GAP."""
    lab = classify_samples(gazecom.t, gazecom.x, gazecom.y, "adaptive")
    blink = (gazecom.t >= 6.587) & (gazecom.t <= 6.834)
    gap_share = float(np.mean(lab[blink] == GAP))
    off = classify_samples(gazecom.t, gazecom.x, gazecom.y, "adaptive", blink_reach_s=0.0)
    print(f"\ngazecom blink: {gap_share:.2f} of its samples GAP ({np.mean(off[blink] == GAP):.2f} without "
          f"blink excursions); GAP outside NOISE: {np.sum((lab == GAP) & (gazecom.refs[2] != GAP))} samples")
    assert gap_share >= 0.2 and np.mean(off[blink] == GAP) == 0.0
    assert np.sum((lab == GAP) & (gazecom.refs[2] != GAP)) <= 5
