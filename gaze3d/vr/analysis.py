"""Recordings of 3D gaze rays (``gaze.3d``) for the analysis commands.

:func:`choose_topic` picks the gaze topic a command works on and refuses a
recording without usable samples (one line naming the file: the commands
then exit 2 instead of writing an empty result). :func:`read_rays` reads the
rays, head poses and points of regard in time order; :func:`fixation_events`
classifies them in world space (:mod:`gaze3d.vr.events`) and returns
BIDS-style event rows.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..protocol import TOPIC_GAZE_2D, TOPIC_GAZE_3D

TOPIC_CHOICES = ("auto", TOPIC_GAZE_2D, TOPIC_GAZE_3D)


def choose_topic(recording, topic: str = "auto") -> str:
    """The topic to analyse: ``auto`` = ``gaze.2d`` if it holds samples, else ``gaze.3d``.

    ``recording`` is a path or an open :class:`~gaze3d.recording.Recording`
    (a caller that reads it afterwards opens it once: opening verifies every checksum).

    Raises
    ------
    InputError
        No sample in that topic, or none valid (the message names the file and the counts).
    """
    from ..recording import Recording

    if topic not in TOPIC_CHOICES:
        raise InputError(f"--topic: expected one of {', '.join(TOPIC_CHOICES)}, got {topic!r}")
    if not isinstance(recording, Recording):
        with Recording(recording) as rec:
            return choose_topic(rec, topic)
    counts = recording.topics()
    if topic == "auto":
        topic = TOPIC_GAZE_2D if counts.get(TOPIC_GAZE_2D) else TOPIC_GAZE_3D
    n = int(counts.get(topic, 0))
    if n == 0:
        have = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        raise InputError(f"{recording.path}: no {topic} samples (samples per topic: {have})")
    if not np.count_nonzero(recording.samples(topic)["valid"]):
        what = "a finite ray" if topic == TOPIC_GAZE_3D else "a finite gaze point"
        raise InputError(f"{recording.path}: none of the {n} {topic} samples is valid (valid flag and {what})")
    return topic


def read_rays(recording) -> dict:
    """A recording's ``gaze.3d`` samples in time order (repeated times dropped).

    Returns
    -------
    dict with ``t_host_ns (n,) int64``, ``t_s (n,)`` (from the first sample),
    ``origin, direction (n, 3)``, ``head_pose (n, 4, 4)``, ``valid (n,) bool``
    and ``point (n, 3)``: the payloads' ``gaze_point`` (the point of regard,
    EDVAM and the VR simulator give it), NaN where absent.
    """
    from ..attention.batch import _ordered
    from ..recording import Recording

    def read(rec):
        s = rec.samples(TOPIC_GAZE_3D)
        pts = np.full((len(s["t_host_ns"]), 3), np.nan)
        for i, p in enumerate(rec.payloads(TOPIC_GAZE_3D)):
            g = p.get("gaze_point")
            if g is not None:
                try:
                    pts[i] = np.asarray(g, dtype=np.float64).reshape(3)
                except (TypeError, ValueError):
                    raise InputError(f"{rec.path}: gaze.3d sample {i}: 'gaze_point' must be [x, y, z]") from None
        s["point"] = pts
        return s

    if isinstance(recording, Recording):
        s = read(recording)
    else:
        with Recording(recording) as rec:
            s = read(rec)
    _, cols = _ordered(s)
    t = cols["t_host_ns"]
    return {"t_host_ns": t, "t_s": (t - t[0]) * 1e-9 if len(t) else np.zeros(0),
            "origin": cols["ray_origin"], "direction": cols["ray_direction"], "head_pose": cols["head_pose"],
            "valid": cols["valid"].astype(bool), "point": cols["point"]}


def fixation_events(recording, method: str = "adaptive", *, use_points: bool = True, **params):
    """World-space events of a ``gaze.3d`` recording as rows for an events TSV.

    Returns
    -------
    rows : list of dict
        ``onset``, ``duration`` (s), ``trial_type``, ``x``, ``y``, ``z`` (mean
        point of regard, NaN without one), ``n_samples``, ``t_host_ns``.
    n_samples : int
    labels : (n,) int8
    """
    from ..events import EventType
    from .events import classify_world

    r = read_rays(recording)
    has_points = use_points and bool(np.isfinite(r["point"]).all(axis=1)[r["valid"]].any())
    points = r["point"] if has_points else None
    labels = classify_world(r["t_s"], r["origin"], r["direction"], points, r["valid"], method=method, **params)
    t = r["t_host_ns"]
    rows = []
    if len(labels) == 0:
        return rows, 0, labels
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    change = np.flatnonzero(np.diff(labels)) + 1
    for s, e in zip(np.r_[0, change], np.r_[change, len(labels)]):
        p = r["point"][s:e]
        fin = np.isfinite(p).all(axis=1) & r["valid"][s:e]     # an invalid sample's point is not a gaze
        mean = p[fin].mean(axis=0) if fin.any() else np.full(3, np.nan)
        rows.append({"onset": (int(t[s]) - int(t[0])) * 1e-9,
                     "duration": (int(t[e - 1]) - int(t[s]) + dt) * 1e-9,
                     "trial_type": EventType(int(labels[s])).name.lower(),
                     "x": float(mean[0]), "y": float(mean[1]), "z": float(mean[2]),
                     "n_samples": int(e - s), "t_host_ns": int(t[s])})
    return rows, len(labels), labels
