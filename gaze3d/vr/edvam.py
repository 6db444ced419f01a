"""EDVAM-style VR sessions (Unity + Pupil Labs CSV) as gaze3d recordings.

EDVAM (Zhou et al., a museum VR data set) logs per frame: ``L_x/y/z`` the 3D
point of regard in the Unity scene, ``C_x/y/z`` the camera (head) position,
``F_x/y/z`` its forward vector (rounded to 0.1), ``confidence`` of the pupil
detector, and a ``time`` column in seconds. The file repeats its ``index``
and ``time`` columns at the end; the first occurrence is used.

:func:`import_edvam` writes a recording with one ``gaze.3d`` sample per row:
the ray from the camera through the point of regard, the head pose from the
camera position and forward vector (+Y up; EDVAM has no roll), all mirrored
from Unity's left-handed world into a right-handed one
(:func:`gaze3d.vr.frames.from_unity`), and ``valid`` = confidence at least
``min_confidence``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..protocol import TOPIC_GAZE_3D
from . import frames

#: Pupil Labs' own guidance: data under 0.6 confidence is unreliable (also :func:`gaze3d.calib.vr.edvam_quality`).
EDVAM_MIN_CONFIDENCE = 0.6

_NEED = ("time", "L_x", "L_y", "L_z", "C_x", "C_y", "C_z", "F_x", "F_y", "F_z", "confidence")


def load_edvam(path) -> dict:
    """Read an EDVAM raw-subset CSV (in the file's Unity coordinates).

    Returns
    -------
    dict with ``t_s (n,)``, ``gaze_point (n, 3)`` (L, 3D point of regard),
    ``camera (n, 3)`` (C), ``forward (n, 3)`` (F, normalised here; the file
    rounds it to 0.1) and ``confidence (n,)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    InputError
        Missing columns or a non-numeric value (the message names the file and row).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such EDVAM file")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        rows = [r for r in reader if r]
    if header is None or any(h not in header for h in _NEED):
        raise InputError(f"{path}: not an EDVAM CSV (expected columns {list(_NEED)})")
    col = [header.index(h) for h in _NEED]       # first occurrence of duplicated names
    a = np.empty((len(rows), len(_NEED)))
    for i, r in enumerate(rows):
        try:
            a[i] = [float(r[c]) for c in col]
        except (ValueError, IndexError) as exc:
            raise InputError(f"{path}: data row {i + 1}: bad numeric value ({exc})") from None
    fwd = a[:, 7:10]
    n = np.linalg.norm(fwd, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fwd = np.where(n > 1e-12, fwd / n, np.nan)
    return {"t_s": a[:, 0], "gaze_point": a[:, 1:4], "camera": a[:, 4:7], "forward": fwd,
            "confidence": a[:, 10]}


def edvam_samples(session: dict, min_confidence: float = EDVAM_MIN_CONFIDENCE) -> list:
    """``gaze.3d`` sample dicts (protocol fields) of a :func:`load_edvam` session, right-handed world.

    Each sample has ``ray_origin`` (head), ``ray_direction`` (unit, head ->
    point of regard), ``head_pose`` (16 floats, row-major world-from-head),
    ``gaze_point`` (the point of regard), ``confidence`` and ``valid``.
    ``t_host_ns`` is the file's time (the recording's clock starts at 0).
    """
    t = np.asarray(session["t_s"], dtype=np.float64)
    if len(t) == 0:
        raise InputError("EDVAM session: no rows")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
        bad = int(np.flatnonzero(~np.isfinite(t) | np.r_[False, np.diff(t) < 0])[0])
        raise InputError(f"EDVAM session: 'time' must be finite and non-decreasing (row {bad + 1}: {t[bad]})")
    cam, point = session["camera"], session["gaze_point"]
    rays = frames.from_unity(cam, point - cam)
    point_rh = point @ frames.MIRROR_Z
    pose = frames.look_pose(rays.origin, session["forward"] @ frames.MIRROR_Z)
    conf = np.asarray(session["confidence"], dtype=np.float64)
    ok = (conf >= min_confidence) & np.isfinite(rays.direction).all(1) & np.isfinite(pose).all((1, 2))
    t_ns = np.round((t - t[0]) * 1e9).astype(np.int64)
    out = []
    for i in range(len(t)):
        out.append({"topic": TOPIC_GAZE_3D, "seq": i, "t_host_ns": int(t_ns[i]), "t_device": float(t[i]),
                    "valid": bool(ok[i]), "confidence": float(conf[i]),
                    "ray_origin": rays.origin[i].tolist(), "ray_direction": rays.direction[i].tolist(),
                    "head_pose": pose[i].ravel().tolist(), "gaze_point": point_rh[i].tolist()})
    return out


def import_edvam(csv_path, out, *, min_confidence: float = EDVAM_MIN_CONFIDENCE) -> dict:
    """Write the EDVAM CSV ``csv_path`` as the recording ``out`` (temporary file, then rename).

    Returns
    -------
    dict: ``out`` (path), ``samples``, ``valid``, ``duration_s``.
    """
    from ..recording import write_recording

    csv_path = Path(csv_path)
    session = load_edvam(csv_path)
    samples = edvam_samples(session, min_confidence)
    n_valid = sum(s["valid"] for s in samples)
    if n_valid == 0:
        raise InputError(f"{csv_path}: no sample with confidence >= {min_confidence} and a finite gaze ray")
    write_recording(out, samples, {
        "source": "edvam", "imported_from": str(csv_path.resolve()),
        "frames": "right-handed, +Y up: the Unity scene with z mirrored (gaze3d.vr.frames.from_unity)",
        "min_confidence": float(min_confidence)})
    return {"out": str(out), "samples": len(samples), "valid": int(n_valid),
            "duration_s": float(session["t_s"][-1] - session["t_s"][0])}
