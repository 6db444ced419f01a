"""Batch attention and fixation labels over a whole recording.

A recording (``gaze3d.recording.Recording``, its path, or an in-memory dict)
holds gaze samples stamped with the host clock and the viewer's camera frames
(each shown from its ``t_host_ns`` on). Samples are replayed, in time order,
under the camera shown at their time, through the same
:class:`~gaze3d.attention.AttentionAccumulator` the live viewer uses, so batch
and live give the same attention, and two replays are bit-identical.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError
from ..protocol import TOPIC_GAZE_2D, TOPIC_GAZE_3D
from .accumulator import AttentionAccumulator

TOPIC_2D, TOPIC_3D = TOPIC_GAZE_2D, TOPIC_GAZE_3D   # the short names other modules import


def _progress(total: int, desc: str, enabled: Optional[bool]):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="sample", leave=False)


def read_recording(recording, topic: str = TOPIC_2D) -> Tuple[dict, np.ndarray, list]:
    """Samples, camera times and cameras of a recording.

    Parameters
    ----------
    recording : Recording, str, Path or dict
        A dict is taken as ``{"samples": {column: array}, "camera_t_host_ns":
        (k,) int, "cameras": [Camera]}`` (cameras may be omitted for 3D rays).

    Returns
    -------
    samples : dict of (n,) columns, cameras' ``t_host_ns (k,) int64``, list of Camera
    """
    if isinstance(recording, dict):
        try:
            samples = recording["samples"]
        except KeyError:
            raise InputError("recording dict: missing key 'samples' (a dict of columns)") from None
        t_cam = np.asarray(recording.get("camera_t_host_ns", []), dtype=np.int64)
        cams = list(recording.get("cameras", []))
        return samples, t_cam, cams
    if isinstance(recording, (str, os.PathLike)):
        from ..recording import Recording

        with Recording(Path(recording)) as rec:
            samples = rec.samples(topic)
            t_cam, cams = rec.camera_frames()
        return samples, t_cam, cams
    if hasattr(recording, "samples") and hasattr(recording, "camera_frames"):
        samples = recording.samples(topic)
        t_cam, cams = recording.camera_frames()
        return samples, t_cam, cams
    raise InputError(f"recording: expected a Recording, a path or a dict, got {type(recording).__name__}")


def _ordered(samples: dict) -> Tuple[np.ndarray, dict]:
    """Sort by ``t_host_ns`` and drop repeated times (a sample must follow the previous one)."""
    if "t_host_ns" not in samples:
        raise InputError(f"recording samples: missing column 't_host_ns', got {sorted(samples)}")
    t = np.asarray(samples["t_host_ns"], dtype=np.int64)
    order = np.argsort(t, kind="stable")
    t = t[order]
    keep = np.ones(len(t), dtype=bool)
    keep[1:] = t[1:] > t[:-1]
    idx = order[keep]
    n = len(np.asarray(samples["t_host_ns"]))
    cols = {k: np.asarray(v)[idx] for k, v in samples.items()
            if v is not None and np.ndim(v) >= 1 and len(v) == n}
    return idx, cols


def _display_to_viewport(x, y, viewport):
    vx, vy, vw, vh = (float(v) for v in viewport)
    if vw <= 0 or vh <= 0:
        raise InputError(f"viewport: expected (x, y, width, height) with positive size, got {viewport}")
    return (np.asarray(x, dtype=np.float64) - vx) / vw, (np.asarray(y, dtype=np.float64) - vy) / vh


def replay(acc: AttentionAccumulator, recording, *, topic: str = TOPIC_2D,
           viewport=(0.0, 0.0, 1.0, 1.0), progress: Optional[bool] = None) -> dict:
    """Feed a recording's samples to ``acc`` frame by frame, then flush it.

    Returns
    -------
    stats : dict
        ``samples`` (read), ``before_first_camera`` (dropped: no camera shown
        yet), ``repeated_time`` (dropped), ``frames`` (camera frames used).
    """
    samples, t_cam, cams = read_recording(recording, topic)
    n_in = len(np.asarray(samples.get("t_host_ns", [])))
    _, cols = _ordered(samples)
    t = cols["t_host_ns"]
    stats = {"samples": n_in, "repeated_time": n_in - len(t), "before_first_camera": 0, "frames": 0}
    bar = _progress(len(t), "attention", progress)
    if topic == TOPIC_3D:
        if "ray_origin" not in cols or "ray_direction" not in cols:
            raise InputError("recording gaze.3d samples: missing ray_origin / ray_direction columns")
        step = 4096
        for s in range(0, len(t), step):
            sl = slice(s, s + step)
            acc.add_rays(cols["ray_origin"][sl], cols["ray_direction"][sl],
                         t_s=(t[sl] - t[0]) * 1e-9, valid=cols.get("valid", np.ones(len(t), bool))[sl],
                         event=cols["event"][sl] if "event" in cols else None)
            if bar is not None:
                bar.update(len(t[sl]))
    else:
        if len(cams) == 0:
            raise InputError("recording: no camera frames (the viewer records one per rendered frame); "
                             "attention of 2D gaze needs the camera it was seen through")
        order = np.argsort(t_cam, kind="stable")
        t_cam = np.asarray(t_cam, dtype=np.int64)[order]
        cams = [cams[i] for i in order]
        frame = np.searchsorted(t_cam, t, side="right") - 1
        stats["before_first_camera"] = int(np.count_nonzero(frame < 0))
        x, y = _display_to_viewport(cols["x"], cols["y"], viewport)
        starts = np.flatnonzero(np.r_[True, frame[1:] != frame[:-1]])
        ends = np.r_[starts[1:], len(t)]
        for s, e in zip(starts, ends):
            if frame[s] < 0:
                continue
            batch = {"x": x[s:e], "y": y[s:e], "t_host_ns": t[s:e],
                     "valid": cols["valid"][s:e] if "valid" in cols else None}
            if "event" in cols:
                batch["event"] = cols["event"][s:e]
            acc.add(cams[frame[s]], batch)
            stats["frames"] += 1
            if bar is not None:
                bar.update(e - s)
    if bar is not None:
        bar.close()
    acc.flush()
    return stats


def accumulate_attention(scan, recording, *, topic: str = TOPIC_2D, viewport=(0.0, 0.0, 1.0, 1.0),
                         progress: Optional[bool] = None, **options) -> np.ndarray:
    """Attention of a whole recording on a scan.

    Parameters
    ----------
    scan : PointCloud | Mesh | Volume
    recording : Recording, path or dict
        See :func:`read_recording`. 2D samples (topic ``gaze.2d``) are in
        normalised display coordinates and are mapped to the viewport
        ``(x, y, width, height)`` (normalised on the display; default the whole
        display); 3D rays (topic ``gaze.3d``) are used directly. An ``event``
        column, when present, selects fixations instead of the online filter.
    progress : bool, optional
        tqdm progress bar (default: when stderr is a terminal).
    **options
        Passed to :class:`AttentionAccumulator` (``sigma_deg``,
        ``fixations_only``, ``method``...).

    Returns
    -------
    attention : float32 array
        One value per point / vertex (``(n,)``) or voxel (``(I, J, K)``).
    """
    acc = AttentionAccumulator(scan, **options)
    replay(acc, recording, topic=topic, viewport=viewport, progress=progress)
    return acc.values


def fixation_labels(recording, method: str = "adaptive", *, display=None, viewport=(0.0, 0.0, 1.0, 1.0),
                    scan=None, frame: Optional[str] = None, engine_options: Optional[dict] = None, **params):
    """Per-sample event labels of a recording's 2D gaze.

    Without ``scan`` the gaze is classified on the screen, in degrees through
    ``display`` (a :class:`~gaze3d.display.DisplayGeometry`, default a 24"
    monitor at 65 cm). With ``scan`` it is classified in **object space**
    (``frame="object"``, the default then): the gaze ray of every sample
    (through the camera shown then) is compared with the scene point looked at
    by the previous sample, so following a point while the camera moves is a
    fixation; the camera angles are converted to visual degrees through
    ``display`` and ``viewport``. With ``scan`` and ``frame="screen"``: what
    the eye did on the screen, knowing the camera: the screen labels, with the
    fixations the camera carried across the screen called pursuit
    (:func:`gaze3d.events.carried_pursuit`).

    Returns
    -------
    t_host_ns : (n,) int64, labels : (n,) int8, xy_deg : (n, 2) float64 (screen degrees)
    """
    from ..display import DisplayGeometry
    from ..events import carried_pursuit, classify_samples, object_space_steps

    frame = frame or ("object" if scan is not None else "screen")
    if frame not in ("object", "screen"):
        raise InputError(f"frame: expected 'object' or 'screen', got {frame!r}")
    if frame == "object" and scan is None:
        raise InputError("frame: 'object' needs the scan the recording was made on")
    display = display or DisplayGeometry()
    samples, t_cam, cams = read_recording(recording, TOPIC_2D)
    _, cols = _ordered(samples)
    t = cols["t_host_ns"]
    valid = cols["valid"].astype(bool) if "valid" in cols else np.ones(len(t), bool)
    x = np.where(valid, cols["x"], np.nan)
    y = np.where(valid, cols["y"], np.nan)
    deg = display.norm_to_deg(np.c_[np.nan_to_num(x), np.nan_to_num(y)])
    deg[~(np.isfinite(x) & np.isfinite(y))] = np.nan
    t_s = (t - t[0]) * 1e-9 if len(t) else np.zeros(0)
    if scan is None:
        return t, classify_samples(t_s, deg[:, 0], deg[:, 1], method, **params), deg
    if len(cams) == 0:
        raise InputError("recording: no camera frames; object-space fixations need the viewer's cameras")
    from .engine import make_engine
    from .foveal import FovealModel

    # object-space steps are camera angles: convert to visual degrees with the display
    foveal = FovealModel.from_display(display, viewport)
    engine = make_engine(scan, foveal, **dict(engine_options or {}))
    order = np.argsort(t_cam, kind="stable")
    t_cam = np.asarray(t_cam, dtype=np.int64)[order]
    cams = [cams[i] for i in order]
    frame_of = np.searchsorted(t_cam, t, side="right") - 1
    vx, vy = _display_to_viewport(x, y, viewport)
    ok = np.isfinite(vx) & np.isfinite(vy) & (frame_of >= 0)
    steps = np.full((len(t), 2), np.nan)
    prev_d = prev_x = None
    starts = np.flatnonzero(np.r_[True, frame_of[1:] != frame_of[:-1]]) if len(t) else np.zeros(0, int)
    for s, e in zip(starts, np.r_[starts[1:], len(t)]):
        sel = np.flatnonzero(ok[s:e]) + s
        if frame_of[s] < 0 or len(sel) == 0:
            continue
        cam = cams[frame_of[s]]
        o, d = cam.unproject(cam.normalized_to_pixels(np.c_[vx[sel], vy[sel]]))
        fr = engine.frame(cam, d)
        hits = engine.hit_points(fr, d, o)
        steps[sel] = object_space_steps(o, d, hits, prev_d, prev_x,
                                        rights=np.broadcast_to(cam.right, d.shape),
                                        ups=np.broadcast_to(cam.up, d.shape))
        steps[sel] *= foveal.visual_per_camera(cam)
        prev_d, prev_x = d[-1], hits[-1]
    good = np.isfinite(steps).all(axis=1)
    traj = np.full((len(t), 2), np.nan)
    traj[good] = np.cumsum(steps[good], axis=0)
    labels = classify_samples(t_s, traj[:, 0], traj[:, 1], method, **params)
    if frame == "screen":
        labels = carried_pursuit(t_s, classify_samples(t_s, deg[:, 0], deg[:, 1], method, **params), deg, traj,
                                 labels)
    return t, labels, deg


def label_runs(t_host_ns: np.ndarray, labels: np.ndarray, xy_deg: np.ndarray) -> list:
    """Events as dicts (onset_s, duration_s, trial_type, x_deg, y_deg, n_samples, t_host_ns) from labels."""
    from ..events import EventType

    out = []
    if len(labels) == 0:
        return out
    t0 = int(t_host_ns[0])
    dt = float(np.median(np.diff(t_host_ns))) if len(t_host_ns) > 1 else 0.0
    change = np.flatnonzero(np.diff(labels)) + 1
    for s, e in zip(np.r_[0, change], np.r_[change, len(labels)]):
        xy = xy_deg[s:e]
        fin = np.isfinite(xy).all(axis=1)
        mean = xy[fin].mean(axis=0) if fin.any() else np.array([np.nan, np.nan])
        out.append({"onset": (int(t_host_ns[s]) - t0) * 1e-9,
                    "duration": (int(t_host_ns[e - 1]) - int(t_host_ns[s]) + dt) * 1e-9,
                    "trial_type": EventType(int(labels[s])).name.lower(),
                    "x_deg": float(mean[0]), "y_deg": float(mean[1]), "n_samples": int(e - s),
                    "t_host_ns": int(t_host_ns[s])})
    return out
