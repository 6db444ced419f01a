"""Simulated annotation sessions saved as recordings: test and benchmark input for batches.

:func:`simulate_session` plays the demo's viewing (a camera orbiting the scan,
60 camera frames per second) with the eye simulator fixating points of one
class, and writes what the viewer would have recorded: gaze samples, camera
frames, the annotator and the scan's path and SHA-256.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from ..protocol import TOPIC_GAZE_2D


def simulate_session(scan_path, recording_path, *, duration_s: float = 5.0, rate_hz: float = 1200.0,
                     seed: int = 0, annotator: str = "sim", label: Optional[int] = 6, n_targets: int = 6,
                     offset_deg: float = 0.3, scan=None) -> Path:
    """Write a recording of a simulated annotator looking at ``label`` points of a scan.

    Parameters
    ----------
    scan_path : path
        The scan (its path and SHA-256 go in the recording's metadata).
    recording_path : path
        New recording file (must not exist).
    duration_s, rate_hz : float
        Session length and tracker rate.
    seed : int
        Picks the targets, the eye movements and the annotator's calibration
        offset (uniform in ``+-offset_deg`` per axis).
    annotator : str
        Stored as the recording's ``annotator``.
    label : int, optional
        Class whose points are looked at (ASPRS 6 = building); None: any point.
    scan : PointCloud, optional
        The already loaded ``scan_path`` (saves reading it again).

    Returns
    -------
    Path of the recording.
    """
    from ..demo import FRAME_RATE_HZ, demo_camera_path
    from ..io import load_scan
    from ..recording import RecordingWriter
    from ..simulate import simulate_scene_gaze
    from .provenance import stamp_recording

    cloud = scan if scan is not None else load_scan(scan_path)
    xyz = np.asarray(cloud.xyz)
    if label is not None:
        if cloud.labels is None or not np.any(cloud.labels == label):
            raise InputError(f"{scan_path}: no points of class {label} to look at")
        xyz = xyz[cloud.labels == label]
    rng = np.random.default_rng(seed)
    targets = xyz[np.sort(rng.choice(len(xyz), size=min(n_targets, len(xyz)), replace=False))]
    path = demo_camera_path(cloud.bounds, duration_s)
    offset = tuple(float(v) for v in rng.uniform(-offset_deg, offset_deg, 2))
    g = simulate_scene_gaze(targets, path, duration_s, rate_hz, seed=seed, accuracy_offset_deg=offset)
    t0 = 10**12 + int(seed) * 10**9                   # any host clock origin
    t_rel = g.t_s - path.times[0]
    t_ns = t0 + np.round(t_rel * 1e9).astype(np.int64)
    n_frames = int(np.ceil(duration_s * FRAME_RATE_HZ)) + 1
    out = Path(recording_path)
    with RecordingWriter(out, commit_interval_s=3600) as w:
        stamp_recording(w.set_meta, scan_path)
        w.set_meta("annotator", annotator)
        w.set_meta("source", "gaze3d.batch.synthetic")
        for k in range(n_frames):
            w.add_camera(t0 + int(round(k / FRAME_RATE_HZ * 1e9)), path.at(path.times[0] + k / FRAME_RATE_HZ))
        w.add_samples([{"topic": TOPIC_GAZE_2D, "t_host_ns": int(t), "t_device": float(td), "seq": i,
                        "gaze": [float(x), float(y)], "valid": bool(v)}
                       for i, (t, td, x, y, v) in enumerate(zip(t_ns, t_rel, g.xy[:, 0], g.xy[:, 1], g.valid))])
    return out


def crop_cloud(cloud, mask):
    """The points of ``cloud`` where ``mask`` (n,) bool is set, with their colours, intensity and labels."""
    from ..scan import PointCloud

    m = np.asarray(mask, dtype=bool)
    pick = (lambda a: None if a is None else np.asarray(a)[m])
    return PointCloud(xyz=cloud.xyz[m], colors=pick(cloud.colors), intensity=pick(cloud.intensity),
                      normals=pick(cloud.normals), labels=pick(cloud.labels),
                      fields={k: np.asarray(v)[m] for k, v in cloud.fields.items()},
                      label_names=dict(cloud.label_names))
