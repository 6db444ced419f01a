"""The ``"adaptive"`` event classifier: data-driven thresholds, pursuit and PSO.

Used through :func:`gaze3d.events.classify_samples` (``method="adaptive"``).
Numpy only (the tracker environment). Stages, all in one pass over the signal:

1. **Gaps.** Losses up to ``gap_fill_max_s`` are filled linearly; longer ones
   (blinks, track loss) stay ``GAP``, widened by ``gap_margin_s`` on each side
   (the eyelid drags the pupil estimate just before and after a blink).
   **Blinks from the signal's shape** (after stage 3): the lid sweeping over
   the pupil drags the estimate in a fast excursion around the loss of track,
   so the part of a saccade-speed run within ``blink_reach_s`` of a loss that
   it contains or touches (a filled short loss included) is ``GAP``; the rest
   of that run is classified as usual.
2. **Speed.** A boxcar derivative over ``velocity_window_s``: the mean
   position of the later half minus that of the earlier half, over the time
   between their mean timestamps. It is a first-order Savitzky-Golay-like
   smoother computed from cumulative sums, so it costs O(n) whatever the rate,
   works on irregular timestamps and never reaches across a gap.
3. **Adaptive saccade thresholds** (Nyström & Holmqvist 2010): starting from
   ``peak_init``, the peak threshold becomes mean + ``peak_sd`` x SD of the
   speeds below it until it settles; the onset threshold is mean +
   ``onset_sd`` x SD. They are estimated per block of ``adapt_window_s``
   (interpolated between block centres) so they follow noise that changes
   within a long recording, and clamped to ``[threshold_min,
   threshold_max]``.
4. **Saccades** are runs above the onset threshold whose peak passes the peak
   threshold, lasting at least ``min_saccade_s`` and moving the eye at least
   ``min_saccade_amp_deg`` (smaller ones are noise or microsaccades: left to
   the fixation). The amplitude is the distance between the mean positions
   of up to ``saccade_amp_window_s`` of valid samples before and after the
   run (the two end samples when 0, or when one side has no valid sample
   in its window): a burst of noise goes out and comes
   back, and its end samples alone would pass. Their edges are then moved
   inwards to where a narrower speed estimate (``edge_window_s``) crosses
   the onset threshold: the smooth estimate finds saccades robustly but
   smears their flanks. With ``edge_pursuit`` (off by default) a saccade
   that leaves or lands in pursuit faster than the onset threshold ends
   where its speed in excess of that pursuit's falls to the threshold
   (otherwise the run goes on through the pursuit). **Small saccades**
   (off by default): a run that is no saccade only because its peak misses
   the peak threshold (small saccades are slow: main sequence) is one when
   the peak passes ``small_saccade_peak_frac`` x that threshold, it moves the
   eye ``small_saccade_amp_deg`` (measured as above), lasts at most
   ``small_saccade_max_s`` (longer runs at such speeds are pursuit's to
   judge) and lies wholly inside a fixation; the whole run is labelled, with
   no PSO after it. ``small_saccade_peak_frac=``:data:`SMALL_SACCADE_PEAK_FRAC`
   turns it on: it brings the Hooge adults' event F1 to their coders' but
   lowers both held-out sets (docs/events.md, stage 9).
5. **PSO** (post-saccadic oscillation, "glissade"): a run above the onset
   threshold that starts within ``pso_max_s`` after a saccade ends, slower
   than that saccade's peak, labelled from the saccade's end to at most
   ``pso_max_s`` after it (on by default; ``pso_max_s=0`` turns it off).
6. **Pursuit vs fixation** (REMoDNaV-like): between saccades, the speed over
   the longer ``pursuit_window_s`` is compared with ``max(pursuit_velocity,
   pursuit_noise_z x`` the speed that measurement noise alone gives that
   estimator``)``; the noise is estimated per block from second differences,
   which smooth pursuit hardly changes. ``pursuit_velocity`` (5 deg/s) is the
   slow movement the Hooge coders still call fixation; on a low-noise tracker
   it is the threshold that counts. Pursuit runs shorter than
   ``min_pursuit_s`` or moving less than ``pursuit_min_amp_deg`` are
   fixation. **Slow pursuit**: slower movement, above
   ``pursuit_slow_velocity`` (2 deg/s, and above the noise term), is pursuit
   only when it is sustained: the run lasts ``pursuit_slow_min_s``, carries
   the eye at least ``pursuit_slow_amp_deg`` (1 deg: a drift inside a
   fixation stays smaller), goes one way (net displacement at least
   ``pursuit_slow_straightness`` x the path length of its 50 ms mean
   positions) and, with ``pursuit_slow_cap``, averages under
   ``pursuit_velocity`` (a fast transient with slow tails was the fast test's
   to judge). Larsson et al. (2015) separate the two the same way, by spatial
   range and consistency of direction. ``pursuit_slow_velocity >=
   pursuit_velocity`` turns the slow tier off. Fixations shorter than
   ``min_fixation_s`` become ``UNCLASSIFIED``.

Its defaults were chosen on real human-coded recordings (see
``bench/events.py`` and ``docs/events.md`` for the protocol), not on the
simulator.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

#: Defaults of ``method="adaptive"`` (chosen on Hooge et al. 2018 adult
#: recordings; protocol and held-out scores in docs/events.md).
ADAPTIVE_DEFAULTS: Dict[str, float] = dict(
    gap_fill_max_s=0.075, gap_margin_s=0.020, velocity_window_s=0.030, edge_window_s=0.020,
    peak_init=200.0, robust=1.0, peak_sd=8.0, onset_sd=2.0, threshold_min=40.0, threshold_max=300.0,
    blink_reach_s=0.02, adapt_window_s=60.0, min_saccade_s=0.008, min_saccade_amp_deg=0.75,
    saccade_amp_window_s=0.060, extend_to_minimum=0.0,
    pso_max_s=0.04, edge_pursuit=0.0, pursuit_window_s=0.100, pursuit_velocity=5.0, pursuit_slow_velocity=2.0,
    pursuit_slow_amp_deg=1.0, pursuit_slow_min_s=0.15, pursuit_slow_straightness=0.7, pursuit_slow_cap=1.0,
    pursuit_noise_z=6.0, min_pursuit_s=0.150, pursuit_min_amp_deg=0.5,
    pursuit_straightness=0.0, min_fixation_s=0.040, small_saccade_peak_frac=0.0, small_saccade_amp_deg=0.8,
    small_saccade_max_s=0.06)
#: ``small_saccade_peak_frac`` of stage 9's choice (the tier is off by default: docs/events.md)
SMALL_SACCADE_PEAK_FRAC = 0.75


def _runs(mask: np.ndarray):
    """(starts, ends) of the runs of True in a 1D bool array, ends exclusive."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _cumsums(t: np.ndarray, x: np.ndarray, y: np.ndarray, ok: np.ndarray):
    """Prefix sums of t (from t[0]), x and y with invalid samples as 0: (3, n + 1) float64."""
    out = np.zeros((3, len(t) + 1))
    np.cumsum(t - t[0], out=out[0, 1:])
    np.cumsum(np.where(ok, x, 0.0), out=out[1, 1:])
    np.cumsum(np.where(ok, y, 0.0), out=out[2, 1:])
    return out


#: samples per block of :func:`boxcar_speed`'s full windows (a few hundred kB of temporaries)
_BLOCK = 8192


def boxcar_speed(t: np.ndarray, x: np.ndarray, y: np.ndarray, mask: np.ndarray, half: int,
                 sums: np.ndarray = None) -> np.ndarray:
    """Speed (deg/s) from the means of ``half`` + 1 samples after vs before each sample.

    Parameters
    ----------
    t, x, y : (n,) float64
        Time (s) and position (deg); only samples where ``mask`` holds are read.
    mask : (n,) bool
        Samples to use; windows never cross a run of False.
    half : int
        Samples on each side (>= 1).
    sums : (3, n + 1) float64, optional
        :func:`_cumsums` of a validity mask that includes ``mask`` (windows stay
        inside ``mask``'s runs, so one set of sums serves every sub-mask).

    Returns
    -------
    speed : (n,) float64, NaN outside ``mask`` and in runs of one sample.
    """
    n = len(t)
    v = np.full(n, np.nan)
    if n == 0 or not mask.any():
        return v
    if sums is None:
        sums = _cumsums(t, x, y, mask)
    ts, xs, ys = sums
    m = half + 1
    # full windows: mean of [i, i + half] minus mean of [i - half, i], from contiguous slices, in blocks
    # that stay in cache (whole-signal temporaries cost more in page faults than in arithmetic: an hour
    # at 1,200 Hz is 4.3M samples); per sample the same operations in the same order as one pass
    for s0 in range(half, n - half, _BLOCK):
        s1 = min(s0 + _BLOCK, n - half)
        d = np.empty((3, s1 - s0))
        for k, cs in enumerate((ts, xs, ys)):
            np.subtract(cs[s0 + half + 1:s1 + half + 1] - cs[s0:s1], cs[s0 + 1:s1 + 1] - cs[s0 - half:s1 - half],
                        out=d[k])
        d /= m
        with np.errstate(invalid="ignore", divide="ignore"):
            v[s0:s1] = np.hypot(d[1], d[2]) / d[0]
    # windows clipped by a run's edge (or the signal's): the first and last `half` samples of each run of
    # `mask` (all of a short run), in order, with their run's bounds; the general, gathered form
    rs, re_ = _runs(mask)
    head_end = np.minimum(rs + half, re_)
    tail_start = np.maximum(re_ - half, head_end)
    starts = np.stack([rs, tail_start], 1).reshape(-1)
    lengths = np.stack([head_end - rs, re_ - tail_start], 1).reshape(-1)
    i = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    run = np.repeat(np.arange(len(rs)).repeat(2), lengths)
    lo, hi = rs[run], re_[run] - 1
    if len(i):
        a = np.maximum(i - half, lo)             # earlier half: [a, i]
        b = np.minimum(i + half, hi)             # later half:   [i, b]
        nl, nr = (i - a + 1).astype(np.float64), (b - i + 1).astype(np.float64)
        dt = (ts[b + 1] - ts[i]) / nr - (ts[i + 1] - ts[a]) / nl
        dx = (xs[b + 1] - xs[i]) / nr - (xs[i + 1] - xs[a]) / nl
        dy = (ys[b + 1] - ys[i]) / nr - (ys[i + 1] - ys[a]) / nl
        with np.errstate(invalid="ignore", divide="ignore"):
            v[i] = np.where(dt > 0, np.hypot(dx, dy) / np.where(dt > 0, dt, 1.0), np.nan)
    v[~mask] = np.nan
    return v


def _stats(v: np.ndarray, robust: float):
    """(centre, spread) of speeds: mean and SD, or median and 1.4826 MAD when ``robust``."""
    if len(v) < 10:
        return np.nan, np.nan
    if robust:
        med = float(np.median(v))
        return med, 1.4826 * float(np.median(np.abs(v - med)))
    return float(v.mean()), float(v.std())


def _nh_thresholds(v: np.ndarray, p) -> tuple:
    """Nyström-Holmqvist peak and onset thresholds of one block of speeds (finite values)."""
    pt = p["peak_init"]
    below = v[v < pt]
    centre, spread = _stats(below, p["robust"])
    for _ in range(100):
        if len(below) < 10:
            break
        new = centre + p["peak_sd"] * spread
        done = abs(new - pt) < 1.0
        pt = new
        below = v[v < pt]
        centre, spread = _stats(below, p["robust"])
        if done:
            break
    if len(below) < 10:
        return np.nan, np.nan
    st = centre + p["onset_sd"] * spread
    pt = min(max(pt, p["threshold_min"]), p["threshold_max"])
    # the onset threshold stays below the peak one (so every saccade has an onset)
    st = min(max(st, p["threshold_min"] * p["onset_sd"] / p["peak_sd"]), pt)
    return pt, st


def _blocks(t: np.ndarray, window_s: float):
    """(starts, ends) sample index blocks of about ``window_s`` (one block when shorter)."""
    n = len(t)
    span = t[-1] - t[0]
    if window_s <= 0 or span <= 1.5 * window_s:
        return np.array([0]), np.array([n])
    k = int(round(span / window_s))
    edges = np.searchsorted(t, t[0] + span * np.arange(1, k) / k)
    return np.r_[0, edges], np.r_[edges, n]


def _per_block(t, starts, ends, values):
    """Per-sample values interpolated between block centres (NaN blocks take the overall median)."""
    values = np.asarray(values, dtype=np.float64)
    good = np.isfinite(values)
    if not good.any():
        return np.full(len(t), np.nan)
    values = np.where(good, values, np.nanmedian(values))
    if len(values) == 1:
        return np.full(len(t), values[0])
    centres = 0.5 * (t[starts] + t[ends - 1])
    return np.interp(t, centres, values)


def _noise_sd(x, y, ok) -> float:
    """Per-axis SD of white measurement noise, robust to saccades and pursuit (second differences)."""
    both = ok[2:] & ok[1:-1] & ok[:-2]
    d2 = np.r_[(x[2:] - 2 * x[1:-1] + x[:-2])[both], (y[2:] - 2 * y[1:-1] + y[:-2])[both]]
    if len(d2) < 10:
        return np.nan
    return 1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6.0)


def classify_adaptive(t: np.ndarray, x: np.ndarray, y: np.ndarray, ok: np.ndarray, p: dict,
                      codes: dict, measured: np.ndarray) -> np.ndarray:
    """Labels of a checked, gap-filled signal (see the module docstring).

    Parameters
    ----------
    t, x, y : (n,) float64
        Strictly increasing seconds, degrees; ``x``/``y`` finite where ``ok``.
    ok : (n,) bool
        Valid samples after gap filling.
    p : dict
        ``ADAPTIVE_DEFAULTS`` with overrides.
    codes : dict
        EventType codes by name (``GAP``, ``FIXATION``, ``SACCADE``, ``PURSUIT``,
        ``PSO``, ``UNCLASSIFIED``).
    measured : (n,) bool
        Samples the tracker delivered (before gap filling). A loss filled by
        interpolation that sits inside a fast excursion is a blink, not a
        dropout (stage 1).

    Returns
    -------
    labels : (n,) int8
    """
    GAP, FIX, SAC, PUR, PSO, UNC = (codes[k] for k in ("GAP", "FIXATION", "SACCADE", "PURSUIT", "PSO",
                                                       "UNCLASSIFIED"))
    n = len(t)
    labels = np.full(n, GAP, dtype=np.int8)
    if n < 2 or not ok.any():
        return labels
    dt_med = float(np.median(np.diff(t)))
    # --- gaps, widened by the blink margin
    good = ok.copy()
    m = int(round(p["gap_margin_s"] / dt_med))
    if m > 0:
        bad = np.flatnonzero(~ok)
        if len(bad):
            near = np.zeros(n + 1, dtype=np.int64)
            np.add.at(near, np.maximum(bad - m, 0), 1)
            np.add.at(near, np.minimum(bad + m + 1, n), -1)
            good &= np.cumsum(near[:n]) == 0
    if not good.any():
        return labels
    # --- speed and adaptive thresholds
    half = max(1, int(round(p["velocity_window_s"] / 2 / dt_med)))
    sums = _cumsums(t, x, y, good)        # shared by the three speed estimates below
    v = boxcar_speed(t, x, y, good, half, sums)
    bs, be = _blocks(t, p["adapt_window_s"])
    pts, sts, sds = [], [], []
    for s, e in zip(bs, be):
        vb = v[s:e]
        vb = vb[np.isfinite(vb)]
        pt, st = _nh_thresholds(vb, p) if len(vb) else (np.nan, np.nan)
        pts.append(pt)
        sts.append(st)
        sds.append(_noise_sd(x[s:e], y[s:e], good[s:e]))
    pt = _per_block(t, bs, be, pts)
    st = _per_block(t, bs, be, sts)
    if not np.isfinite(pt).all():        # too few samples anywhere: the floor
        pt = np.full(n, p["threshold_min"])
        st = np.full(n, p["threshold_min"] * p["onset_sd"] / p["peak_sd"])
    vv = np.where(np.isfinite(v), v, 0.0)
    # --- saccades: runs above onset with a peak above the peak threshold
    s_all, e_all, peak, ptr, is_sac, is_small = _fast_runs(vv, st, pt, good, x, y, dt_med, p)
    # --- blinks from the signal's shape: the lid sweeping over the pupil drags the
    # estimate in a fast excursion around the loss of track. The part of a
    # saccade-speed run within blink_reach_s of a loss it contains or touches (a
    # filled short loss, a long gap's margin) is that excursion: GAP, not a saccade.
    # The rest of such a run (a saccade or fast pursuit the blink interrupted) is
    # classified as usual, so the runs are found again without it.
    if p["blink_reach_s"] > 0 and len(s_all):
        lost = ~good | ~measured
        cl = np.r_[0, np.cumsum(lost)]
        inside = (cl[e_all] - cl[s_all]) > 0
        before = np.r_[False, lost][s_all]                 # lost[s - 1] (False at the start)
        after = np.r_[lost, False][e_all]                  # lost[e] (False at the end)
        cand = np.flatnonzero((peak > ptr) & (inside | before | after))
        if len(cand):
            # distances to the nearest loss for the candidate runs' samples only
            # (a few per blink; the whole signal would cost O(n log n) per call)
            lens = e_all[cand] - s_all[cand]
            idx = np.arange(lens.sum()) + np.repeat(s_all[cand] - np.r_[0, np.cumsum(lens)[:-1]], lens)
            tl = t[np.flatnonzero(lost)]
            ti = t[idx]
            j = np.searchsorted(tl, ti)
            near = np.minimum(np.abs(ti - tl[np.maximum(j - 1, 0)]), np.abs(tl[np.minimum(j, len(tl) - 1)] - ti))
            good[idx[near <= p["blink_reach_s"] + 1e-12]] = False
            s_all, e_all, peak, ptr, is_sac, is_small = _fast_runs(vv, st, pt, good, x, y, dt_med, p)
    # pursuit window and the speed floor of pursuit (stage 6), also used by the saccade edges
    hp = max(1, int(round(p["pursuit_window_s"] / 2 / dt_med)))
    # noise SD of that estimator: difference of two means of (hp + 1) samples
    # over a time of about hp * dt; per axis sqrt(2 / (hp + 1)) sigma / (hp dt)
    noise_v = np.sqrt(2.0 / (hp + 1)) * _per_block(t, bs, be, sds) / (hp * dt_med)
    noise_thr = p["pursuit_noise_z"] * np.nan_to_num(noise_v)
    thr = np.maximum(p["pursuit_velocity"], noise_thr)
    if p["edge_window_s"] > 0 and len(s_all):
        # refine saccade edges on a narrower speed estimate (detection keeps the smooth one)
        he = max(1, int(round(p["edge_window_s"] / 2 / dt_med)))
        v2 = np.nan_to_num(boxcar_speed(t, x, y, good, he, sums))
        if p["edge_pursuit"]:
            # the smooth speed of the movement a saccade leaves (lead) or lands in
            # (follow): the pursuit estimator centred hp samples before/after, kept
            # where it is pursuit-fast (0 elsewhere, so edges by a fixation are as before)
            vpa = np.nan_to_num(boxcar_speed(t, x, y, good, hp, sums))
            vpa = np.where(vpa > thr, vpa, 0.0)
            follow, lead = np.zeros(n), np.zeros(n)
            m = max(n - hp, 0)               # none when the signal is shorter than hp
            follow[:m], lead[n - m:] = vpa[n - m:], vpa[:m]
        for k in np.flatnonzero(is_sac):
            s, e = s_all[k], e_all[k]
            top = s + int(np.argmax(vv[s:e]))
            while s < top and v2[s] < st[s]:
                s += 1
            while e - 1 > top and v2[e - 1] < st[e - 1]:
                e -= 1
            if p["edge_pursuit"]:
                # in pursuit faster than the onset threshold the run goes on past
                # the saccade: its edges are where the speed in excess of that
                # pursuit's falls to the onset threshold (nearest the peak)
                post = np.flatnonzero((v2[top + 1:e] < st[top + 1:e] + follow[top + 1:e])
                                      & (follow[top + 1:e] > 0))
                if len(post):
                    e = top + 1 + int(post[0])
                pre = np.flatnonzero((v2[s:top] < st[s:top] + lead[s:top]) & (lead[s:top] > 0))
                if len(pre):
                    s = s + int(pre[-1]) + 1
            s_all[k], e_all[k] = s, e
    labels[good] = FIX
    if not good.all():
        # a filled loss touching a blink's excursion was never measured: GAP too
        gap = ~good
        for s, e in zip(*_runs(good & ~measured)):
            if (s > 0 and gap[s - 1]) or (e < n and gap[e]):
                labels[s:e] = GAP
    sac_end = -np.inf
    sac_peak = 0.0
    extend = bool(p["extend_to_minimum"])
    for k in range(len(s_all)):
        s, e = s_all[k], e_all[k]
        if is_sac[k]:
            if extend:
                # Nystrom-Holmqvist: onset and offset at the speed minima around the threshold crossings
                while s > 0 and labels[s - 1] == FIX and vv[s - 1] < vv[s]:
                    s -= 1
                while e < n and good[e] and vv[e] < vv[e - 1]:
                    e += 1
            labels[s:e] = SAC
            sac_end, sac_peak, last_e = t[e - 1], peak[k], e
        elif t[s] - sac_end <= p["pso_max_s"] + 1e-12 and peak[k] < sac_peak:
            # contiguous with the saccade it follows, and over within pso_max_s of its
            # end (the oscillation has died out by then; what goes on moving after it
            # is left to the pursuit test)
            stop = min(e, int(np.searchsorted(t, sac_end + p["pso_max_s"] + 1e-12, side="right")))
            labels[last_e:stop] = PSO
            sac_end = -np.inf
    # small saccades (stage 4, off by default): after the PSO pass, so a fast run inside a saccade's
    # oscillation stays PSO; the whole run is labelled (its peak sample alone scored a lower event F1 on
    # the adults)
    for k in np.flatnonzero(is_small):
        s, e = s_all[k], e_all[k]
        if np.all(labels[s:e] == FIX):
            labels[s:e] = SAC
    # --- pursuit vs fixation between saccades
    inter = labels == FIX
    if inter.any():
        vp = boxcar_speed(t, x, y, inter, hp, sums)
        moving = inter & np.isfinite(vp)
        pur = moving & (vp > thr)
        ps, pe = _runs(pur)
        for s, e in zip(ps, pe):
            if not _is_pursuit(x, y, s, e, hp, dt_med, p["min_pursuit_s"], p["pursuit_min_amp_deg"],
                               p["pursuit_straightness"]):
                pur[s:e] = False
        # slow pursuit: below pursuit_velocity the eye also drifts within a fixation
        # (small excursions, a few hundred ms), so a slow run is pursuit only when it
        # is sustained: it carries the eye further than such a drift does
        # (pursuit_slow_amp_deg), goes one way and is slow on average (see the
        # module docstring; Larsson et al. 2015 use spatial range and direction)
        slow_thr = np.maximum(min(p["pursuit_slow_velocity"], p["pursuit_velocity"]), noise_thr)
        if np.any(slow_thr < thr):
            slow_amp = max(p["pursuit_slow_amp_deg"], p["pursuit_min_amp_deg"])
            slow_s = max(p["pursuit_slow_min_s"], p["min_pursuit_s"])
            slow_cap = p["pursuit_velocity"] if p["pursuit_slow_cap"] else np.inf
            for s, e in zip(*_runs(moving & (vp > slow_thr))):
                if not pur[s:e].all() and _is_pursuit(x, y, s, e, hp, dt_med, slow_s, slow_amp,
                                                      p["pursuit_slow_straightness"], ends=True,
                                                      max_speed=slow_cap):
                    pur[s:e] = True
        labels[pur] = PUR
    fs, fe = _runs(labels == FIX)
    short = (fe - fs) * dt_med < p["min_fixation_s"] - 1e-12
    for s, e in zip(fs[short], fe[short]):
        labels[s:e] = UNC
    return labels


def _is_pursuit(x, y, s, e, hp, dt_med, min_s, min_amp, straightness, ends=False, max_speed=np.inf) -> bool:
    """Whether the run [s, e) lasts ``min_s`` seconds, moves ``min_amp`` deg and goes one way.

    ``ends``: the amplitude from the mean positions of the run's first and last
    ``hp // 2`` samples (a quarter of the run at most) rather than from its two
    end samples, so that sample noise does not inflate it. ``straightness``:
    the least ratio of net displacement to path length, both measured on the
    mean positions of consecutive ``hp``-sample chunks (half the pursuit
    window), so that the ratio reads the direction of the movement rather
    than sample noise (Larsson et al. 2015's consistency of direction; runs
    of fewer than three chunks are not tested). ``max_speed``: the most the
    run may average (amplitude over duration, deg/s).
    """
    if (e - s) * dt_med < min_s - 1e-12:
        return False
    if ends:
        k = max(1, min(hp // 2, (e - s) // 4))
        amp = np.hypot(x[e - k:e].mean() - x[s:s + k].mean(), y[e - k:e].mean() - y[s:s + k].mean())
    else:
        amp = np.hypot(x[e - 1] - x[s], y[e - 1] - y[s])
    if amp < min_amp or amp > max_speed * (e - s) * dt_med:
        return False
    m = (e - s) // hp
    if straightness > 0 and m >= 3:
        cx = x[s:s + m * hp].reshape(m, hp).mean(axis=1)
        cy = y[s:s + m * hp].reshape(m, hp).mean(axis=1)
        path = np.sum(np.hypot(np.diff(cx), np.diff(cy)))
        if np.hypot(cx[-1] - cx[0], cy[-1] - cy[0]) < straightness * path:
            return False
    return True


def _fast_runs(vv, st, pt, good, x, y, dt_med, p):
    """Runs above the onset threshold: (starts, ends, peak, peak threshold, is_saccade, is_small_saccade).

    A run is a saccade when its peak speed passes the peak threshold, it lasts
    ``min_saccade_s`` and moves the eye ``min_saccade_amp_deg`` (between the
    mean positions around it, see the module docstring; between the run's end
    samples when one side has no valid sample in its window, or when
    ``saccade_amp_window_s`` is 0). A run that is no saccade is a small one
    when ``small_saccade_peak_frac`` > 0 and the small-saccade conditions of
    the module docstring hold (stage 4).
    """
    s_all, e_all = _runs(good & (vv > st))
    if not len(s_all):
        z = np.zeros(0)
        return s_all, e_all, z, z, np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    peak = _run_max(vv, s_all, e_all)
    ptr = -_run_max(-pt, s_all, e_all)
    dur = (e_all - s_all) * dt_med
    prev = np.maximum(s_all - 1, 0)
    amp = np.hypot(x[e_all - 1] - x[prev], y[e_all - 1] - y[prev])
    if p["saccade_amp_window_s"] > 0:
        # the displacement between where the eye was before the run and where it
        # is after it: mean positions of up to k valid samples on each side (a
        # burst of noise goes and comes back; two single samples do not show it)
        n = len(vv)
        k = max(1, int(round(p["saccade_amp_window_s"] / dt_med)))
        off = np.arange(1, k + 1)
        side = []
        for idx in (s_all[:, None] - off, e_all[:, None] - 1 + off):       # (runs, k) each
            inside = (idx >= 0) & (idx < n)
            idx = np.clip(idx, 0, n - 1)
            use = inside & good[idx]
            cnt = use.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                side.append((np.where(use, x[idx], 0.0).sum(axis=1) / cnt, np.where(use, y[idx], 0.0).sum(axis=1) / cnt,
                             cnt > 0))
        (bx, by, bok), (ax, ay, aok) = side
        amp = np.where(bok & aok, np.hypot(ax - bx, ay - by), amp)
    is_sac = (peak > ptr) & (dur >= p["min_saccade_s"] - 1e-12) & (amp >= p["min_saccade_amp_deg"])
    # a small saccade (off when small_saccade_peak_frac is 0): its peak misses the peak threshold only
    is_small = (~is_sac & (p["small_saccade_peak_frac"] > 0) & (peak > p["small_saccade_peak_frac"] * ptr)
                & (amp >= p["small_saccade_amp_deg"]) & (dur >= p["min_saccade_s"] - 1e-12)
                & (dur <= p["small_saccade_max_s"] + 1e-12))
    return s_all, e_all, peak, ptr, is_sac, is_small


def _run_max(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Max of ``a`` over each [start, end) run (non-empty, non-overlapping, sorted)."""
    # reduceat over interleaved (start, end) boundaries: even slots are the runs
    idx = np.ravel(np.c_[starts, np.minimum(ends, len(a) - 1)])
    out = np.maximum.reduceat(a, idx)[::2]
    # a run ending at the array's end: reduceat's last slot already covers it, but
    # a slot [start, end) with end == len(a) - 1 excluded the last element: fix those
    tail = ends == len(a)
    if tail.any():
        out[tail] = [a[s:].max() for s in starts[tail]]
    return out
