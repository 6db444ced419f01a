"""Eye-movement event classifiers against human coders, side by side, in one run.

Datasets (``../shared/data/eyetracking``, test material only, never shipped;
see its README for licences and citations):

* ``hooge2018`` -- Hooge et al. (2018): 70 recordings at 300 Hz (10 adults,
  60 infants, reported separately), fixations hand-coded by 12 expert coders.
  Only fixations are coded: everything else is "not fixation".
* ``gazecom`` -- one GazeCom video-viewing recording (~250 Hz, irregular
  timestamps) with FIX / SACCADE / SP (smooth pursuit) / NOISE hand labels by
  two labellers and a final tie-broken set.

Scores, per dataset and class:

* sample-level Cohen's kappa of "is class c" (one class vs the rest), pooled
  over the recordings of a group, against each coder, then averaged over
  coders;
* event-level F1 with Hooge et al.'s matching (``computeHitMissFA.m``: walk the
  reference events, the first unused test event overlapping one is a hit;
  hits, misses and false alarms summed over recordings, then F1 = 2H / (2H +
  M + FA)), against each coder, averaged;
* the same two numbers between the human coders (each coder against every
  other), the agreement ceiling;
* "fixation+PSO": the fixation scores again with each PSO run that a fixation
  follows counted as that fixation (:func:`pso_in_fixation`; neither data set
  has a PSO class, and Hooge et al.'s coders differ on where it belongs).

Methods: ``gaze3d.events.classify_samples`` with each method's defaults,
REMoDNaV 1.1.2 (``pip install remodnav``, MIT, optional) with its defaults,
and pymovements' I-VT / I-DT detectors (optional) with their defaults. Last,
the runtime of one hour of 1,200 Hz gaze on one core (CPU time), target < 5 s.

Protocol for the ``adaptive`` defaults (see docs/events.md): tuned on the 10
hooge2018 adult recordings only, with simulated gaze as a constraint on the
pursuit stage and a tie-break on the saccade edges, the pursuit floor, the
blink reach, the slow-pursuit tier and the saccade amplitude (``--tune``
reruns the eight stages, ``--tune-late`` stages 5-8, ``--tune-slow`` stage 7,
``--tune-amp`` stage 8, ``--tune-small`` stage 9, an option that stays off:
its choice lost on both held-out sets); the 60 infant recordings and gazecom are held out:
no selection criterion used them (their scores were printed alongside during
development, the gazecom diagnosis is why stages 5-7 were opened, and in
stage 7 gazecom was looked at before the choice among rows that tie on the
tuning criteria: see docs/events.md; so they are not blind).

Last in a full run, simulated orbit viewing (:func:`orbit_table`): how the
screen-space labels treat the eye following a scene point while the camera
orbits (``--orbit`` prints only that table).

``--f1-misses`` prints where the adults' event F1 loses to the coders' (hits,
misses and false alarms per coder, and the coder fixation pairs ``adaptive``
merges into one: the small saccade between them).

Run: ``.venv/bin/python bench/events.py [--quick] [--orbit] [--orbit-figure PNG] [--pso] [--f1-misses] [--tune | --tune-late | --tune-slow | --tune-amp | --tune-small]``
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "POLARS_MAX_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Dict, List, Optional  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gaze3d.events import (ADAPTIVE_DEFAULTS, SMALL_SACCADE_PEAK_FRAC, EventType, _runs,  # noqa: E402
                           classify_samples, cohen_kappa, match_events)

EYE_DATA = REPO.parent / "shared" / "data" / "eyetracking"
FIX, SAC, PUR, GAP, PSO = (int(EventType.FIXATION), int(EventType.SACCADE), int(EventType.PURSUIT),
                           int(EventType.GAP), int(EventType.PSO))
OURS = ("ivt", "idt", "ivdt", "ivvt", "adaptive")


@dataclass
class Recording:
    """One gaze recording with per-sample reference labels from several people.

    ``refs`` is (n_people, n) int8 of EventType codes (-1: no label, left out
    of the scores; -2: labelled, but none of our classes). ``px_per_deg``
    converts the degrees back to pixels for libraries that want pixels.
    """

    name: str
    group: str
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    refs: np.ndarray
    coders: List[str]
    px_per_deg: float = 1.0


# ------------------------------------------------------------------ loading
def load_hooge(root: Path = EYE_DATA) -> List[Recording]:
    """The 70 hooge2018 recordings: refs are FIXATION where a coder marked a fixation, else -2 (not fixation).

    The coders labelled fixations only, so -2 matches no class: it counts as
    "not fixation" in the fixation scores.
    """
    d = np.load(root / "hooge2018" / "hooge2018_fixations.npz")
    coders = [str(c) for c in d["coders"]]
    out = []
    for rec, grp in zip(d["recordings"], d["group"]):
        rec = str(rec)
        fix = d[f"{rec}/fix"]
        refs = np.where(fix, FIX, -2).astype(np.int8)
        out.append(Recording(rec, str(grp), d[f"{rec}/t_s"], d[f"{rec}/x_deg"], d[f"{rec}/y_deg"], refs,
                             coders, px_per_deg=1920 / np.degrees(2 * np.arctan(50.9 / 2 / 65.0))))
    return out


_GAZECOM_CODE = {0: -1, 1: FIX, 2: SAC, 3: PUR, 4: GAP}   # UNKNOWN, FIX, SACCADE, SP, NOISE


def load_gazecom(root: Path = EYE_DATA) -> List[Recording]:
    """The GazeCom recording; refs rows handlabeller1, handlabeller2, final (final is not a coder of its own)."""
    d = np.load(root / "gazecom" / "gazecom_GGM_holsten_gate.npz")
    lab = np.vectorize(_GAZECOM_CODE.get)(d["labels"]).astype(np.int8)
    ok = d["confidence"] > 0
    x = np.where(ok, d["x_deg"], np.nan)
    y = np.where(ok, d["y_deg"], np.nan)
    return [Recording(str(d["recording"]), "video", d["t_s"], x, y, lab,
                      [str(s) for s in d["labellers"]],
                      px_per_deg=1280 / np.degrees(2 * np.arctan(200.0 / 450.0)))]


# ------------------------------------------------------------------ metrics
def f1(h, m, fa) -> float:
    return 2 * h / (2 * h + m + fa) if (2 * h + m + fa) else float("nan")


def agreement(recs: List[Recording], labels: List[np.ndarray], code: int, ref_rows=None):
    """(kappa, F1) of ``labels`` vs each reference row, pooled over recordings, averaged over rows.

    Samples a reference leaves unlabelled (-1) are left out of that comparison.
    """
    rows = range(recs[0].refs.shape[0]) if ref_rows is None else ref_rows
    ks, fs = [], []
    for r in rows:
        a, b, hmf = [], [], np.zeros(3)
        for rec, lab in zip(recs, labels):
            ref = rec.refs[r]
            use = ref != -1
            a.append(ref[use] == code)
            b.append(lab[use] == code)
            hmf += match_events(ref == code, lab == code)
        a, b = np.concatenate(a), np.concatenate(b)
        if a.any() or b.any():
            ks.append(cohen_kappa(a, b))
            fs.append(f1(*hmf))
    return float(np.mean(ks)) if ks else float("nan"), float(np.mean(fs)) if fs else float("nan")


def intercoder(recs: List[Recording], code: int, rows=None):
    """(kappa, F1) of each coder against every other coder, averaged over ordered pairs."""
    rows = list(range(recs[0].refs.shape[0])) if rows is None else list(rows)
    ks, fs = [], []
    for i, j in itertools.permutations(rows, 2):
        k, f = agreement(recs, [np.where(r.refs[j] == -1, -3, r.refs[j]) for r in recs], code, [i])
        ks.append(k)
        fs.append(f)
    return float(np.nanmean(ks)), float(np.nanmean(fs))


# ------------------------------------------------------------------ methods
def ours(method: str, **params) -> Callable[[Recording], np.ndarray]:
    def run(rec: Recording) -> np.ndarray:
        return classify_samples(rec.t, rec.x, rec.y, method, **params)
    return run


def _regular(rec: Recording):
    """(rate, x_px, y_px) on a regular grid for libraries that assume one (nearest-sample resampling)."""
    dt = float(np.median(np.diff(rec.t)))
    return 1.0 / dt, rec.x * rec.px_per_deg, rec.y * rec.px_per_deg


def remodnav_method() -> Optional[Callable[[Recording], np.ndarray]]:
    """REMoDNaV 1.1.2 with its defaults (None when not installed).

    One change where its defaults cannot run: the Savitzky-Golay window is
    widened to the next odd sample count (at 250 Hz 0.019 s is 4 samples,
    which REMoDNaV rejects). Its labels: FIXA fixation, SACC/ISAC saccade,
    PURS pursuit, HPSO/IHPS/LPSO/ILPS PSO, unlabelled samples gap.
    """
    try:
        from remodnav.clf import EyegazeClassifier
    except ImportError:
        return None
    logging.getLogger("remodnav").setLevel(logging.ERROR)
    code = {"FIXA": FIX, "SACC": SAC, "ISAC": SAC, "PURS": PUR, "HPSO": PSO, "IHPS": PSO, "LPSO": PSO,
            "ILPS": PSO}

    def run(rec: Recording) -> np.ndarray:
        fs, xp, yp = _regular(rec)
        lab = np.full(len(rec.t), GAP, dtype=np.int8)
        clf = EyegazeClassifier(px2deg=1.0 / rec.px_per_deg, sampling_rate=fs)
        data = np.rec.fromarrays([xp, yp], names="x,y")
        # its Savitzky-Golay window (0.019 s) must span an odd number of samples:
        # at rates where it does not (250 Hz: 4), take the next odd count
        k = int(0.019 * fs)
        savgol = 0.019 if k % 2 == 1 and k > 2 else (max(k + 1, 3) + 0.5) / fs
        try:
            pp = clf.preproc(data, savgol_length=savgol)
            events = clf(pp)
        except Exception:        # REMoDNaV raises on too-short or all-NaN inputs: all gap
            return lab
        for ev in events:
            s = int(round(ev["start_time"] * fs))
            e = int(round(ev["end_time"] * fs))
            lab[s:e] = code.get(ev["label"], GAP)
        return lab
    return run


def pymovements_methods() -> Dict[str, Callable[[Recording], np.ndarray]]:
    """pymovements' I-VT (20 deg/s) and I-DT (1 deg) fixation detectors, defaults (empty when not installed).

    Non-fixation samples are called saccades (these detectors find fixations
    only); invalid samples are gaps.
    """
    try:
        import pymovements as pm
    except ImportError:
        return {}

    def mark(events, n):
        lab = np.full(n, SAC, dtype=np.int8)
        for on, off in zip(events.frame["onset"].to_numpy(), events.frame["offset"].to_numpy()):
            lab[int(on):int(off) + 1] = FIX
        return lab

    def grid(rec):
        # pymovements wants constant timesteps: sample indices, and its 100 ms
        # minimum duration (its default, in ms) converted to samples
        fs = 1.0 / float(np.median(np.diff(rec.t)))
        return fs, np.arange(len(rec.t)), max(1, int(round(0.100 * fs)))

    def ivt(rec):
        fs, ts, min_dur = grid(rec)
        xy = np.c_[rec.x, rec.y]
        v = np.gradient(xy, axis=0) * fs       # central differences, deg/s per axis
        lab = mark(pm.events.ivt(v, timesteps=ts, minimum_duration=min_dur), len(ts))
        lab[~np.isfinite(xy).all(axis=1)] = GAP
        return lab

    def idt(rec):
        fs, ts, min_dur = grid(rec)
        xy = np.c_[rec.x, rec.y]
        lab = mark(pm.events.idt(xy, timesteps=ts, minimum_duration=min_dur), len(ts))
        lab[~np.isfinite(xy).all(axis=1)] = GAP
        return lab
    return {"pymovements ivt": ivt, "pymovements idt": idt}


# ------------------------------------------------------------------ runtime
def hour_runtime(method: str, rate_hz: float = 1200.0, seconds: float = 60.0, repeat: int = 60) -> float:
    """CPU seconds to classify one hour of ``rate_hz`` gaze: a simulated minute tiled ``repeat`` times."""
    from gaze3d.simulate import simulate_gaze

    sig = simulate_gaze(seconds, rate_hz, seed=11, pursuit_fraction=0.2)
    x = np.tile(np.where(sig.valid, sig.x_deg, np.nan), repeat)
    y = np.tile(np.where(sig.valid, sig.y_deg, np.nan), repeat)
    t = np.arange(len(x)) / rate_hz
    c0 = time.process_time()
    classify_samples(t, x, y, method)
    return (time.process_time() - c0) * 3600.0 / (seconds * repeat)


# ------------------------------------------------------------------ orbit viewing
#: (row name, classify_samples method, parameters, the camera known): the last row labels the screen signal
#: knowing the camera (gaze3d.attention.batch.fixation_labels(..., scan, frame="screen"): a fixation the
#: camera carries across the screen is pursuit there, gaze3d.events.carried_pursuit)
ORBIT_VARIANTS = (("adaptive", "adaptive", {}, False),
                  ("adaptive, edge_pursuit=1", "adaptive", {"edge_pursuit": 1.0}, False),
                  ("ivvt", "ivvt", {}, False),
                  ("adaptive, camera known (frame='screen')", "adaptive", {}, True))
ORBIT_SEEDS = (5, 6, 7, 8)    # the tests use seed 3


def orbit_table(seeds=(3,) + ORBIT_SEEDS):
    """On-screen labels of the samples where the eye holds a scene point while the camera orbits.

    Per variant, the mean over ``seeds`` of :func:`orbit_session` (the tests use
    seed 3, printed apart): the share of those samples called pursuit,
    fixation, saccade, and the fixation share again without the 200 ms holds
    (no target on screen: the eye holds still on the screen, so fixation is
    right there), plus saccade kappa against the simulator's saccades.
    """
    from gaze3d.attention.batch import fixation_labels
    from gaze3d.scan import PointCloud
    from gaze3d.simulate import orbit_session as simulate_orbit

    sessions = [simulate_orbit(10.0, s) for s in seeds]
    print(f"\n## orbit viewing on the screen (camera orbits at 60 deg/s; object-space fixations move at 3-11 "
          f"deg/s on the screen): mean of seeds {seeds}, [seed {seeds[0]}]")
    print("| method | pursuit share | fixation share | fixation share, holds left out | saccade share | "
          "saccade kappa |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, method, params, camera in ORBIT_VARIANTS:
        cols = []
        for o in sessions:
            g = o.gaze
            tr, target = g.truth, g.target_index
            if camera:
                lab = fixation_labels(o.recording, method, scan=PointCloud(o.xyz), frame="screen", **params)[1]
            else:
                lab = classify_samples(g.t_s, g.x_deg, g.y_deg, method, **params)
            fix, moving = tr == FIX, (tr == FIX) & (target >= 0)
            cols.append([np.mean(lab[fix] == PUR), np.mean(lab[fix] == FIX), np.mean(lab[moving] == FIX),
                         np.mean(lab[fix] == SAC), cohen_kappa(tr, lab, SAC)])
        cols = np.asarray(cols)
        print(f"| {name} | " + " | ".join(f"{m:.3f} [{c:.3f}]" for m, c in zip(cols.mean(axis=0), cols[0])) + " |")


def orbit_figure(path: Path, seed: int = 3, span_s=(0.0, 4.0)):
    """On-screen gaze speed of one orbit session with its label bands (truth, screen alone, camera known)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gaze3d.attention.batch import fixation_labels
    from gaze3d.events import angular_velocity
    from gaze3d.scan import PointCloud
    from gaze3d.simulate import orbit_session as simulate_orbit

    o = simulate_orbit(10.0, seed)
    g = o.gaze
    rows = (("simulator: eye holds a scene point", np.where((g.truth == FIX) & (g.target_index >= 0), PUR, g.truth)),
            ("screen signal alone", classify_samples(g.t_s, g.x_deg, g.y_deg, "adaptive")),
            ("camera known (frame='screen')",
             fixation_labels(o.recording, "adaptive", scan=PointCloud(o.xyz), frame="screen")[1]))
    colours = {FIX: "#1b9e77", PUR: "#7570b3", SAC: "#d95f02", GAP: "#999999", PSO: "#e7298a"}
    sel = (g.t_s >= span_s[0]) & (g.t_s < span_s[1])
    t = g.t_s[sel]
    speed = angular_velocity(g.t_s, g.x_deg, g.y_deg, window_s=0.05, valid=g.valid)[sel]
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    ax.plot(t, speed, color="black", lw=0.8)
    ax.axhline(5.0, color="grey", ls=":", lw=0.8)
    ax.text(t[0] + 0.3, 5.3, "5 deg/s: the pursuit floor on the screen (slower needs 1 deg, 150 ms)", ha="left",
            va="bottom", fontsize=7.5, color="grey")
    top = 30.0
    ax.set_ylim(-3 * 4.0, top)
    for k, (name, lab) in enumerate(rows):
        lab = lab[sel]
        y0 = -4.0 * (k + 1)
        change = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1], True])
        for a, b in zip(change[:-1], change[1:]):
            c = colours.get(int(lab[a]))
            if c is not None:
                ax.fill_between([t[a], t[b - 1]], y0, y0 + 3.2, color=c, lw=0)
        ax.text(t[0], y0 + 1.6, " " + name, va="center", fontsize=7.5, color="white")
    ax.set_xlim(t[0], t[-1])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("gaze speed on the screen (deg/s)")
    ax.set_yticks([0, 10, 20, 30])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, ["fixation", "pursuit", "saccade", "gap", "PSO"], ncol=5, fontsize=7.5, loc="upper right")
    ax.set_title(f"Orbiting camera (60 deg/s), seed {seed}: the eye holds scene points, which move on the screen",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    print(f"wrote {path}")


# ------------------------------------------------------------------ tables
def pso_in_fixation(labels: np.ndarray) -> np.ndarray:
    """Labels with each PSO run that a fixation follows counted as that fixation.

    Neither data set has a PSO class. Hooge et al. (2018) found their coders
    differ on whether the post-saccadic oscillation belongs to the fixation
    (most put it inside), so the "+PSO" columns score a PSO as the start of the
    fixation after it; a PSO followed by anything else (a too-short fixation,
    another saccade) stays outside. The plain columns score it as not fixation.
    """
    out = labels.copy()
    for s, e in zip(*_runs(labels == PSO)):
        if e < len(labels) and labels[e] == FIX:
            out[s:e] = FIX
    return out


#: pso_max_s values of the PSO sweep (0: no PSO label; 0.04: the default, Nystrom & Holmqvist's window)
PSO_GRID = (0.0, 0.01, 0.02, 0.03, 0.04)


def f1_misses(adults: List[Recording], window_s: float = 0.060):
    """Where the adults' event F1 loses to the coders': hits / misses / false alarms per coder (ours and
    coder vs coder), and the coder fixation pairs that one fixation of ours spans (we merge them: the
    small saccade between them was not found), with that saccade's amplitude (mean positions of
    ``window_s`` before and after the coder's gap) and duration."""
    labels = [classify_samples(r.t, r.x, r.y, "adaptive") for r in adults]
    rows = range(adults[0].refs.shape[0])
    ours = np.zeros(3)
    for r, lab in zip(adults, labels):
        for c in rows:
            ours += match_events(r.refs[c] == FIX, lab == FIX)
    ours /= len(rows)
    pairs, cc = 0, np.zeros(3)
    for i, j in itertools.permutations(rows, 2):
        for r in adults:
            cc += match_events(r.refs[i] == FIX, r.refs[j] == FIX)
        pairs += 1
    cc /= pairs
    print("## adults: event matching per coder (hits, misses, false alarms, F1)")
    for name, (h, m, fa) in (("adaptive", ours), ("coder vs coder", cc)):
        print(f"{name:>15}: hits {h:6.1f}  misses {m:5.1f}  false alarms {fa:5.1f}  F1 {f1(h, m, fa):.4f}")
    amp, dur = [], []
    for r, lab in zip(adults, labels):
        w = max(1, int(round(window_s / float(np.median(np.diff(r.t))))))
        for c in rows:
            starts, ends = _runs(r.refs[c] == FIX)
            for g0, g1 in zip(ends[:-1], starts[1:]):         # the coder's gap between two fixations
                if g0 > 0 and g1 < len(lab) and np.all(lab[g0 - 1:g1 + 1] == FIX):
                    a, b = slice(max(g0 - w, 0), g0), slice(g1, g1 + w)
                    amp.append(np.hypot(np.nanmean(r.x[b]) - np.nanmean(r.x[a]),
                                        np.nanmean(r.y[b]) - np.nanmean(r.y[a])))
                    dur.append(r.t[g1] - r.t[g0 - 1])
    q = (0.1, 0.25, 0.5, 0.75, 0.9)
    print(f"coder fixation pairs one fixation of ours spans: {len(amp) / len(rows):.1f} per coder")
    print(f"  their gap's amplitude (deg, {window_s * 1e3:.0f} ms means), quantiles {q}: "
          f"{np.round(np.nanquantile(amp, q), 2).tolist()}")
    print(f"  their gap's duration (ms), same quantiles: {np.round(np.quantile(dur, q) * 1e3, 1).tolist()}")


def pso_table(blocks):
    """Fixation kappa / F1, strict and +PSO, per data set for each ``pso_max_s`` of PSO_GRID (defaults
    otherwise): what labelling the oscillation costs against coders who have no PSO class."""
    print("## PSO length sweep: fixation kappa strict / +PSO, F1 strict (PSO share of the samples)")
    print("| pso_max_s | " + " | ".join(f"{d} {g}" for d, g, _, _ in blocks) + " |")
    print("|---|" + "---|" * len(blocks))
    for pm in PSO_GRID:
        cells = []
        for _, _, recs, rows in blocks:
            labels = [classify_samples(r.t, r.x, r.y, "adaptive", pso_max_s=pm) for r in recs]
            k, f = agreement(recs, labels, FIX, rows)
            kp, _ = agreement(recs, [pso_in_fixation(lab) for lab in labels], FIX, rows)
            share = sum(int((lab == PSO).sum()) for lab in labels) / sum(len(lab) for lab in labels)
            cells.append(f"{k:.4f} / {kp:.4f}, {f:.4f} ({share:.4f})")
        print(f"| {pm} | " + " | ".join(cells) + " |")


# (column name, class code, how our labels are read for it)
CLASSES = {"hooge2018": (("fixation", FIX, None), ("fixation+PSO", FIX, pso_in_fixation)),
           "gazecom": (("fixation", FIX, None), ("fixation+PSO", FIX, pso_in_fixation), ("saccade", SAC, None),
                       ("pursuit", PUR, None), ("gap", GAP, None))}


def groups():
    """(dataset, group label, recordings, reference rows) for every block of the report."""
    out = []
    if (EYE_DATA / "hooge2018").is_dir():
        h = load_hooge()
        out.append(("hooge2018", "adults (tuning set)", [r for r in h if r.group == "adult"], None))
        out.append(("hooge2018", "infants (held out)", [r for r in h if r.group == "infant"], None))
    if (EYE_DATA / "gazecom").is_dir():
        out.append(("gazecom", "video (held out)", load_gazecom(), [0, 1]))
    return out


def methods(quick: bool = False) -> Dict[str, Callable[[Recording], np.ndarray]]:
    m = {f"gaze3d {k}": ours(k) for k in OURS}
    # stage 9's option, off by default (its held-out rows are why): side by side with the defaults
    m["gaze3d adaptive, small saccades on"] = ours("adaptive", small_saccade_peak_frac=SMALL_SACCADE_PEAK_FRAC)
    rm = remodnav_method()
    if rm is not None:
        m["REMoDNaV 1.1.2"] = rm
    if not quick:
        m.update(pymovements_methods())
    return m


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip pymovements and the runtime table")
    parser.add_argument("--tune", action="store_true", help="rerun the adaptive defaults search (adults only)")
    parser.add_argument("--tune-late", action="store_true",
                        help="rerun only stages 5-8 of that search (pursuit floor, blink reach, slow pursuit, "
                             "saccade amplitude)")
    parser.add_argument("--tune-slow", action="store_true", help="rerun only stage 7 (slow pursuit)")
    parser.add_argument("--tune-amp", action="store_true", help="rerun only stage 8 (saccade amplitude)")
    parser.add_argument("--tune-small", action="store_true",
                        help="rerun only stage 9 (small saccades; off by default, see docs/events.md)")
    parser.add_argument("--orbit", action="store_true", help="print only the orbit-viewing table")
    parser.add_argument("--orbit-figure", type=Path, metavar="PNG",
                        help="draw seed 3 of the orbit session: on-screen gaze speed and the labels, screen signal "
                             "alone and camera known (docs/images/events_orbit_labels.png)")
    parser.add_argument("--pso", action="store_true",
                        help="print only the PSO length sweep (pso_max_s), strict and +PSO, every data set")
    parser.add_argument("--f1-misses", action="store_true",
                        help="print only where the adults' event F1 loses to the coders' (the tuning set)")
    args = parser.parse_args(argv)
    if args.orbit_figure:
        orbit_figure(args.orbit_figure)
        return 0
    if args.orbit:
        orbit_table()
        return 0
    blocks = groups()
    if not blocks:
        print(f"no human-coded data at {EYE_DATA}: nothing to compare")
        return 1
    if args.pso:
        pso_table(blocks)
        return 0
    if args.f1_misses:
        f1_misses([r for d, g, recs, _ in blocks if d == "hooge2018" and g.startswith("adult") for r in recs])
        return 0
    if args.tune_small:
        tune_small([r for d, g, recs, _ in blocks if d == "hooge2018" and g.startswith("adult") for r in recs])
        return 0
    if args.tune_amp and not (args.tune or args.tune_late):
        tune_amp([r for d, g, recs, _ in blocks if d == "hooge2018" and g.startswith("adult") for r in recs])
    if args.tune_slow and not (args.tune or args.tune_late):
        tune_slow([r for d, g, recs, _ in blocks if d == "hooge2018" and g.startswith("adult") for r in recs])
    if args.tune_late and not args.tune:
        tune_late([r for d, g, recs, _ in blocks if d == "hooge2018" and g.startswith("adult") for r in recs])
    if args.tune:
        tune([r for d, g, recs, _ in blocks if d == "hooge2018" and g.startswith("adult") for r in recs])
    ms = methods(args.quick)
    missing = [n for n, ok in (("remodnav", "REMoDNaV 1.1.2" in ms),
                               ("pymovements", "pymovements ivt" in ms or args.quick)) if not ok]
    if missing:
        print(f"# not installed, rows left out: {', '.join(missing)}")
    print("Sample-level Cohen's kappa / event F1 (Hooge et al. 2018 matching) per class, "
          "mean over the human coders; 'coders' = each coder against every other")
    for dataset, group, recs, rows in blocks:
        n = sum(len(r.t) for r in recs)
        print(f"\n## {dataset}, {group}: {len(recs)} recording(s), {n:,} samples, "
              f"{len(rows) if rows else recs[0].refs.shape[0]} coders")
        cls = CLASSES[dataset]
        print("| method | " + " | ".join(f"{c} kappa | {c} F1" for c, _, _ in cls) + " | CPU s |")
        print("|---|" + "---:|---:|" * len(cls) + "---:|")
        cells, ceiling = [], {}
        for c, code, _ in cls:           # the coders have no PSO: one ceiling per class
            if code not in ceiling:
                ceiling[code] = intercoder(recs, code, rows)
            cells += [f"{v:.3f}" for v in ceiling[code]]
        print("| coders (ceiling) | " + " | ".join(cells) + " | |")
        for name, fn in ms.items():
            c0 = time.process_time()
            labels = [fn(r) for r in recs]
            cpu = time.process_time() - c0
            cells = []
            for c, code, read in cls:
                k, f = agreement(recs, labels if read is None else [read(lab) for lab in labels], code, rows)
                cells += [f"{k:.3f}", f"{f:.3f}"]
            print(f"| {name} | " + " | ".join(cells) + f" | {cpu:.2f} |")
    if not args.quick:
        orbit_table()
        print("\n## runtime: CPU seconds per hour of 1,200 Hz gaze, one core (target < 5 s)")
        print("| method | s per hour |")
        print("|---|---:|")
        for m in OURS:
            print(f"| gaze3d {m} | {hour_runtime(m):.2f} |")
    return 0


# ------------------------------------------------------------------ tuning
# The search as it was run (2026-12-06), in three stages, on the adults only.
# Stage 1, saccades: the pursuit and edge settings of that time held fixed.
STAGE1_FIXED = dict(min_pursuit_s=0.10, pursuit_velocity=3.0, pursuit_noise_z=4.0, edge_window_s=0.0,
                    gap_margin_s=0.01)
TUNE_GRID = dict(robust=(0.0, 1.0), peak_sd=(3.0, 4.0, 6.0, 8.0), onset_sd=(1.5, 2.0, 3.0),
                 threshold_min=(40.0, 55.0, 70.0), velocity_window_s=(0.030, 0.040, 0.050),
                 min_saccade_amp_deg=(0.5, 1.0), min_fixation_s=(0.04, 0.06), pso_max_s=(0.0, 0.04),
                 extend_to_minimum=(0.0,))
# Stage 2, pursuit: adults (any pursuit there is a false alarm) with simulated pursuit as a constraint.
PURSUIT_GRID = dict(min_pursuit_s=(0.1, 0.15, 0.2), pursuit_straightness=(0.0, 0.5, 0.7, 0.85),
                    pursuit_velocity=(2.0, 3.0, 5.0), pursuit_noise_z=(3.0, 4.0, 6.0))
PURSUIT_SIMS = ((300.0, 21), (1200.0, 22), (60.0, 23))     # (rate, seed) of simulate_gaze, 60 s, 20 % pursuit
# Stage 3, saccade edges: adults first, simulated saccade kappa (seed 22) to break ties.
EDGE_GRID = (0.0, 0.007, 0.010, 0.015, 0.020)
# Stage 4, the margin around gaps (10 ms until then): adults.
GAP_MARGIN_GRID = (0.0, 0.01, 0.02, 0.03, 0.04, 0.05)
# Stage 5 (2026-12-07), the pursuit speed floor. On the adults the noise term
# (pursuit_noise_z x the estimator's noise speed, ~5.5 deg/s at their 0.13 deg
# noise) hides the floor, so stage 2 could not see it and took the simulator's
# most permissive value. Here the noise term is off: the lowest floor that keeps
# the adults' score at its best, ties to simulated pursuit kappa (stage 2's sims).
PURSUIT_FLOOR_GRID = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
# Stage 6 (2026-12-07), how far around a loss a saccade-speed run is a blink's
# excursion: adults first, then simulated gap kappa (stage 2's sims).
BLINK_REACH_GRID = (0.0, 0.02, 0.04, 0.06, 0.1, 0.15)
# Stage 7 (2026-12-07), slow pursuit. Stage 5's floor (5 deg/s) made on-screen
# pursuit slower than that fixation. Between pursuit_slow_velocity and the floor
# a run is pursuit only when it is sustained: it moves the eye at least
# pursuit_slow_amp_deg, lasts pursuit_slow_min_s, goes one way
# (pursuit_slow_straightness) and, with pursuit_slow_cap, is slow on average (a
# fast transient with slow tails was the fast test's to judge). Adults first
# (noise term off, as in stage 5: any pursuit on static images is a false
# alarm), then the simulations: the mean over three groups of each group's
# worst score (simulated pursuit at 2-5 deg/s, stage 2's sims at 5-30 deg/s,
# both pursuit kappa; orbit sessions, the share of their object-space fixations
# called pursuit on the screen).
SLOW_GRID = dict(pursuit_slow_velocity=(1.5, 2.0, 3.0), pursuit_slow_amp_deg=(0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
                 pursuit_slow_straightness=(0.0, 0.7, 0.9), pursuit_slow_min_s=(0.15, 0.2, 0.3, 0.4),
                 pursuit_slow_cap=(0.0, 1.0))
SLOW_SPEED = (2.0, 5.0)
# Stage 8 (2026-12-07), saccade amplitude. Until then it was the distance between
# the run's two end samples, which a burst of noise (out and back, 1-2 deg on
# Hooge's noisier recordings) passes; now the mean positions of up to
# saccade_amp_window_s of valid samples before and after the run (0: the end
# samples, as before). Adults first (kappa + F1), then the mean simulated
# saccade kappa (stage 2's sims; their minimum, the 60 Hz sim, ties throughout).
AMP_GRID = dict(saccade_amp_window_s=(0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08),
                min_saccade_amp_deg=(0.5, 0.75, 1.0, 1.25, 1.5))


# Stage 9 (2026-12-07), small saccades (off by default). 33 of the 40.5 adult
# event misses per coder are coder fixation pairs that one of our fixations
# spans: the saccade between them (median 0.68 deg in 20-60 ms) passes the onset
# threshold but not the peak threshold (main sequence: small saccades are slow).
# A fast run that is no saccade is called one when its peak passes
# small_saccade_peak_frac x the peak threshold, it moves the eye
# small_saccade_amp_deg (mean positions around it, as stage 8) and lasts at
# most small_saccade_max_s (a longer one is pursuit's to judge). The rule,
# written before the grid ran: (1) no simulated pursuit lost (each sim's pursuit
# kappa and the orbit's pursuit share within 0.005 of the tier off, no drift
# sample called pursuit); (2) of the settings that reach the adult coders on
# kappa and F1 both, the best kappa + F1 (else the best of all), and only if it
# beats the tier off by more than 0.001; (3) ties within 0.0005: the mean
# simulated saccade kappa, then the more conservative setting (higher fraction,
# larger amplitude, shorter maximum).
SMALL_GRID = dict(small_saccade_peak_frac=(0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9),
                  small_saccade_amp_deg=(0.75, 0.8, 0.85, 0.9, 1.0), small_saccade_max_s=(0.06, 0.08, 0.1))


def _score(adults, **params):
    labels = [classify_samples(r.t, r.x, r.y, "adaptive", **params) for r in adults]
    return agreement(adults, labels, FIX)


def _pursuit_sims(speed=(5.0, 30.0)):
    from gaze3d.simulate import simulate_gaze

    sims = []
    for rate, seed in PURSUIT_SIMS:
        sg = simulate_gaze(60.0, rate, seed=seed, pursuit_fraction=0.2, pursuit_speed_deg_s=speed)
        sims.append((sg.t_s, np.where(sg.valid, sg.x_deg, np.nan), np.where(sg.valid, sg.y_deg, np.nan), sg.truth))
    return sims


def orbit_session(seed: int, duration_s: float = 10.0, rate_hz: float = 1200.0):
    """(t, x_deg, y_deg, truth, target) of :func:`gaze3d.simulate.orbit_session`.

    ``truth`` is FIXATION where the eye holds a point of the scene (object
    space), which on the screen moves at 3-11 deg/s (median 7): smooth pursuit
    there. ``target`` (n,) int64 is the scene point fixated, -1 in saccades,
    gaps and the 200 ms holds where no target is on screen (the eye holds still
    on the screen: truth FIXATION there is a screen fixation too).
    """
    from gaze3d.simulate import orbit_session as simulate_orbit

    g = simulate_orbit(duration_s, seed, rate_hz=rate_hz, grid=2).gaze
    return g.t_s, g.x_deg, g.y_deg, g.truth, g.target_index


def drift_session(rate_hz: float, seed: int, n_drifts: int = 15, noise_deg: float = 0.02):
    """Fixations, each after a saccade, opening with a slow straight drift: what must stay fixation.

    Each of ``n_drifts`` fixations starts with a constant-speed drift of
    0.4-1.0 deg over 150-400 ms (1-7 deg/s) in a random direction, then holds
    still; saccades of 2-10 deg (main sequence, :mod:`gaze3d.simulate`) join
    them; white noise of ``noise_deg``. Returns (t, x_deg, y_deg, truth,
    drift): ``truth`` FIXATION or SACCADE, ``drift`` (n,) bool the drift samples.
    """
    from gaze3d.simulate import saccade_duration_s, saccade_position_fraction

    rng = np.random.default_rng(seed)
    xs, ys, truth, drift = [], [], [], []
    pos = np.zeros(2)

    def add(p, code, is_drift=False):
        xs.append(p[:, 0])
        ys.append(p[:, 1])
        truth.append(np.full(len(p), code, dtype=np.int8))
        drift.append(np.full(len(p), is_drift))

    add(np.repeat(pos[None], int(0.5 * rate_hz), axis=0), FIX)
    for _ in range(n_drifts):
        amp, ang = rng.uniform(2.0, 10.0), rng.uniform(0, 2 * np.pi)
        step = amp * np.array([np.cos(ang), np.sin(ang)])
        k = max(1, int(round(saccade_duration_s(amp) * rate_hz)))
        frac = saccade_position_fraction((np.arange(k) + 0.5) / k, amp)
        add(pos + frac[:, None] * step, SAC)
        pos = pos + step
        d_amp, d_dur, d_ang = rng.uniform(0.4, 1.0), rng.uniform(0.15, 0.4), rng.uniform(0, 2 * np.pi)
        m = max(1, int(round(d_dur * rate_hz)))
        dd = d_amp * np.array([np.cos(d_ang), np.sin(d_ang)])
        add(pos + ((np.arange(m) + 1.0) / m)[:, None] * dd, FIX, True)
        pos = pos + dd
        add(np.repeat(pos[None], int(rng.uniform(0.2, 0.5) * rate_hz), axis=0), FIX)
    x, y = np.concatenate(xs), np.concatenate(ys)
    x = x + rng.normal(0, noise_deg, len(x))
    y = y + rng.normal(0, noise_deg, len(y))
    return np.arange(len(x)) / rate_hz, x, y, np.concatenate(truth), np.concatenate(drift)


DRIFT_SIMS = ((60.0, 31), (300.0, 32), (1200.0, 33))      # (rate, seed) of drift_session; the tests use others


def tune_slow(adults: List[Recording], all_rows: bool = False):
    """Stage 7: the slow-pursuit tier (SLOW_GRID) on the adults, then the simulations; prints the best rows."""
    slow, fast = _pursuit_sims(SLOW_SPEED), _pursuit_sims()
    orbits = [orbit_session(s) for s in ORBIT_SEEDS]
    drifts = [drift_session(rate, seed) for rate, seed in DRIFT_SIMS]
    base = dict(ADAPTIVE_DEFAULTS, pso_max_s=0.0)
    rows = []
    for vals in itertools.product(*SLOW_GRID.values()):
        p = dict(base, **dict(zip(SLOW_GRID, vals)))
        k, f = _score(adults, **dict(p, pursuit_noise_z=0.0))
        groups = [[cohen_kappa(tr, classify_samples(t, x, y, "adaptive", **p), PUR) for t, x, y, tr in sims]
                  for sims in (slow, fast)]
        groups.append([float(np.mean(classify_samples(t, x, y, "adaptive", **p)[tr == FIX] == PUR))
                       for t, x, y, tr, _ in orbits])
        drift = max(float(np.mean(classify_samples(t, x, y, "adaptive", **p)[dr] == PUR))
                    for t, x, y, _, dr in drifts)
        sim = float(np.mean([min(g) for g in groups]))
        rows.append((round(k + f, 3), round(drift, 3), round(float(np.mean(groups[2])), 3), round(sim, 3), k, f,
                     drift, groups, dict(zip(SLOW_GRID, vals))))
    # the adults first; then the least of the simulated drifts called pursuit; then
    # the orbit sessions (mean share; the case this stage is for), then the mean of
    # the group minima; remaining ties to the first in grid order (the most permissive)
    rows.sort(key=lambda r: (-r[0], r[1], -r[2], -r[3]))
    print(f"## stage 7 (slow pursuit), best 15 of {len(rows)}: adult kappa, F1 (noise term off); simulated "
          f"drifts called pursuit (max of 3); simulations: pursuit kappa at 2-5 deg/s (3 sims), at 5-30 (3 sims), "
          f"orbit screen pursuit share ({len(orbits)}, 'orbit' is their mean); sim = mean of the group minima")
    for r in rows[:15] if not all_rows else rows:
        g = " | ".join(" ".join(f"{v:.3f}" for v in grp) for grp in r[7])
        print(f"kappa {r[4]:.3f} F1 {r[5]:.3f} sum {r[0]:.3f} drift {r[6]:.3f} orbit {r[2]:.3f} sim {r[3]:.3f} "
              f"[{g}] {r[8]}")
    print("## stage 7, slow tier off (pursuit_slow_velocity = pursuit_velocity) for comparison")
    off = dict(base, pursuit_slow_velocity=base["pursuit_velocity"])
    k, f = _score(adults, **dict(off, pursuit_noise_z=0.0))
    print(f"kappa {k:.3f} F1 {f:.3f} sum {k + f:.3f}")


def tune_amp(adults: List[Recording]):
    """Stage 8: the saccade amplitude window and minimum (AMP_GRID) on the adults, ties to the simulations."""
    sims = _pursuit_sims()
    rows = []
    for vals in itertools.product(*AMP_GRID.values()):
        p = dict(ADAPTIVE_DEFAULTS, **dict(zip(AMP_GRID, vals)))
        k, f = _score(adults, **p)
        sim = [cohen_kappa(tr, classify_samples(t, x, y, "adaptive", **p), SAC) for t, x, y, tr in sims]
        rows.append((round(k + f, 3), round(float(np.mean(sim)), 3), k, f, sim, dict(zip(AMP_GRID, vals))))
    rows.sort(key=lambda r: (-r[0], -r[1]))
    print(f"## stage 8 (saccade amplitude), best 10 of {len(rows)}: adult kappa, F1 (defaults, PSO on); "
          f"simulated saccade kappa (stage 2's sims, 300 / 1,200 / 60 Hz, and their mean)")
    for r in rows[:10] + [r for r in rows if r[5]["saccade_amp_window_s"] == 0.0][:2]:
        print(f"kappa {r[2]:.4f} F1 {r[3]:.4f} sum {r[0]:.3f} sim saccade {' / '.join(f'{v:.3f}' for v in r[4])} "
              f"mean {r[1]:.3f} {r[5]}")


def tune_small(adults: List[Recording]):
    """Stage 9: the small-saccade tier (SMALL_GRID) on the adults, judged by the rule above SMALL_GRID."""
    from gaze3d.simulate import orbit_session as simulate_orbit

    sims = _pursuit_sims() + _pursuit_sims(SLOW_SPEED)
    orbits = [simulate_orbit(10.0, s).gaze for s in (3,) + ORBIT_SEEDS]
    drifts = [drift_session(r, s) for r, s in DRIFT_SIMS]
    ck, cf = intercoder(adults, FIX)

    def row(p):
        k, f = _score(adults, **p)
        labs = [classify_samples(t, x, y, "adaptive", **p) for t, x, y, _ in sims]
        pur = [cohen_kappa(tr, lab, PUR) for (_, _, _, tr), lab in zip(sims, labs)]
        sac = [cohen_kappa(tr, lab, SAC) for (_, _, _, tr), lab in zip(sims[:3], labs[:3])]
        orbit = np.mean([np.mean(classify_samples(g.t_s, g.x_deg, g.y_deg, "adaptive", **p)[g.truth == FIX] == PUR)
                         for g in orbits])
        drift = sum(int(np.sum(classify_samples(t, x, y, "adaptive", **p)[d] == PUR)) for t, x, y, _, d in drifts)
        return dict(kappa=k, f1=f, pur=pur, sac=float(np.mean(sac)), orbit=orbit, drift=drift)

    off = row(dict(ADAPTIVE_DEFAULTS, small_saccade_peak_frac=0.0))
    rows = []
    for vals in itertools.product(*SMALL_GRID.values()):
        setting = dict(zip(SMALL_GRID, vals))
        r = row(dict(ADAPTIVE_DEFAULTS, **setting))
        keeps_pursuit = (max(abs(a - b) for a, b in zip(r["pur"], off["pur"])) <= 0.005
                         and abs(r["orbit"] - off["orbit"]) <= 0.005 and r["drift"] <= off["drift"])
        rows.append(dict(r, setting=setting, keeps_pursuit=keeps_pursuit,
                         both=r["kappa"] >= ck and r["f1"] >= cf))
    ok = [r for r in rows if r["keeps_pursuit"]]
    pool = [r for r in ok if r["both"]] or ok
    best = max(r["kappa"] + r["f1"] for r in pool) if pool else -np.inf
    tied = [r for r in pool if r["kappa"] + r["f1"] >= best - 0.0005]
    # ties: mean simulated saccade kappa, then higher fraction, larger amplitude, shorter maximum
    tied.sort(key=lambda r: (-round(r["sac"], 4), -r["setting"]["small_saccade_peak_frac"],
                             -r["setting"]["small_saccade_amp_deg"], r["setting"]["small_saccade_max_s"]))
    print(f"## stage 9 (small saccades): coders kappa {ck:.4f} F1 {cf:.4f}; tier off kappa {off['kappa']:.4f} "
          f"F1 {off['f1']:.4f} sum {off['kappa'] + off['f1']:.4f}; {len(ok)} of {len(rows)} settings keep the "
          f"simulated pursuit, {sum(r['both'] for r in ok)} of them reach the coders on both")
    for r in sorted(ok, key=lambda r: -(r["kappa"] + r["f1"]))[:10]:
        print(f"kappa {r['kappa']:.4f} F1 {r['f1']:.4f} sum {r['kappa'] + r['f1']:.4f} both {r['both']} "
              f"sim saccade {r['sac']:.4f} {r['setting']}")
    if tied and best > off["kappa"] + off["f1"] + 0.001:
        print(f"chosen: {tied[0]['setting']}")
    else:
        print("chosen: none (the tier stays off)")


def tune_late(adults: List[Recording]):
    """Stages 5-8 (pursuit floor, blink reach, slow pursuit, saccade amplitude) from today's other defaults.

    Stages 5-7 run with PSO off, as stages 1-4 did; stage 8 with today's defaults.
    """
    sims = _pursuit_sims()
    base = dict(ADAPTIVE_DEFAULTS, pso_max_s=0.0)
    print("## stage 5 (pursuit floor, noise term off on the adults): adult kappa, F1; "
          "simulated pursuit kappa (min over the sims, noise term on)")
    for pv in PURSUIT_FLOOR_GRID:
        p5 = dict(base, pursuit_velocity=pv, pursuit_slow_velocity=pv)      # slow tier (stage 7) off
        k, f = _score(adults, **dict(p5, pursuit_noise_z=0.0))
        sim = min(cohen_kappa(tr, classify_samples(t, x, y, "adaptive", **p5), PUR) for t, x, y, tr in sims)
        print(f"pursuit_velocity {pv}: kappa {k:.3f} F1 {f:.3f} sum {k + f:.3f} sim pursuit {sim:.3f}")
    print("## stage 6 (blink reach): adult kappa, F1; simulated gap kappa (min over the sims)")
    for br in BLINK_REACH_GRID:
        k, f = _score(adults, **dict(base, blink_reach_s=br))
        sim = min(cohen_kappa(tr, classify_samples(t, x, y, "adaptive", **dict(base, blink_reach_s=br)), GAP)
                  for t, x, y, tr in sims)
        print(f"blink_reach_s {br}: kappa {k:.3f} F1 {f:.3f} sum {k + f:.3f} sim gap {sim:.3f}")
    tune_slow(adults)
    tune_amp(adults)


def tune(adults: List[Recording]):
    """Rerun the search of the adaptive defaults on the adult recordings (prints the top rows)."""
    from gaze3d.simulate import simulate_gaze

    keys = list(TUNE_GRID)
    rows = []
    for vals in itertools.product(*(TUNE_GRID[k] for k in keys)):
        p = dict(zip(keys, vals))
        k, f = _score(adults, **STAGE1_FIXED, **p)
        rows.append((k + f, k, f, p))
    rows.sort(key=lambda b: -b[0])
    print(f"## stage 1 (saccades), best 10 of {len(rows)}: fixation kappa, F1 vs the adult coders")
    for _, k, f, p in rows[:10]:
        print(f"kappa {k:.3f} F1 {f:.3f} {p}")
    base = {k: v for k, v in ADAPTIVE_DEFAULTS.items() if k in TUNE_GRID}
    sims = _pursuit_sims()
    rows = []
    for vals in itertools.product(*PURSUIT_GRID.values()):
        p = dict(zip(PURSUIT_GRID, vals))
        k, f = _score(adults, **base, **p, edge_window_s=0.0, gap_margin_s=0.01)
        sim, recall = [], []
        for t, x, y, tr in sims:
            lab = classify_samples(t, x, y, "adaptive", **base, **p, edge_window_s=0.0, gap_margin_s=0.01)
            sim.append(cohen_kappa(tr, lab, PUR))
            recall.append(np.mean(lab[tr == PUR] == PUR))
        rows.append((round(k, 3) + round(f, 3), round(min(sim), 3), min(recall), k, f, p))
    # the adult score first, then simulated pursuit kappa, then recall (the least restrictive)
    rows.sort(key=lambda b: (-b[0], -b[1], -b[2]))
    print(f"## stage 2 (pursuit), best 10 of {len(rows)}: adult kappa, F1; simulated pursuit kappa, recall (min)")
    for _, sim, rec, k, f, p in rows[:10]:
        print(f"kappa {k:.3f} F1 {f:.3f} sim pursuit {sim:.3f} recall {rec:.3f} {p}")
    sg = simulate_gaze(60.0, 1200.0, seed=22, pursuit_fraction=0.2)
    sx, sy = np.where(sg.valid, sg.x_deg, np.nan), np.where(sg.valid, sg.y_deg, np.nan)
    print("## stage 3 (saccade edges): adult kappa, F1; simulated saccade kappa")
    for ew in EDGE_GRID:
        p = dict(ADAPTIVE_DEFAULTS, edge_window_s=ew, gap_margin_s=0.01)
        k, f = _score(adults, **p)
        ks = cohen_kappa(sg.truth, classify_samples(sg.t_s, sx, sy, "adaptive", **p), SAC)
        print(f"edge_window_s {ew}: kappa {k:.3f} F1 {f:.3f} sim saccade {ks:.3f}")
    print("## stage 4 (gap margin): adult kappa, F1")
    for gm in GAP_MARGIN_GRID:
        k, f = _score(adults, **dict(ADAPTIVE_DEFAULTS, gap_margin_s=gm))
        print(f"gap_margin_s {gm}: kappa {k:.4f} F1 {f:.4f} sum {k + f:.4f}")
    tune_late(adults)


if __name__ == "__main__":
    sys.exit(main())
