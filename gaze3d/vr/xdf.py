"""XDF files (LabRecorder's format) as gaze3d recordings, and recordings as XDF.

:func:`import_xdf` reads an XDF file with ``pyxdf`` (optional dependency,
``pip install gaze3d[lsl]``; it synchronises the streams' clocks and
dejitters their timestamps), picks the 3D gaze stream and, if there is one,
the head-pose stream, joins them on their (synchronised) timestamps with
:class:`gaze3d.vr.posejoin.PoseJoin`, and writes one ``gaze.3d`` sample per
gaze sample. Channels are found by their labels (``ox oy oz dx dy dz``,
optional ``confidence``/``valid``; head ``px py pz qx qy qz qw``) or given
as ``field:index`` like the ``lsl`` source's ``channels`` option.

:func:`export_xdf` writes a recording's ``gaze.3d`` rays (and head poses) as
an XDF file with those labels (format 1.0: file header, stream headers,
samples, clock offsets, stream footers), so any XDF reader (pyxdf, MNE,
EEGLAB's xdf plugin) opens it next to EEG or other LSL data.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, Optional
from xml.sax.saxutils import escape

import numpy as np

from .._optional import optional_import
from ..errors import InputError
from ..protocol import TOPIC_GAZE_3D

RAY_LABELS = ("ox", "oy", "oz", "dx", "dy", "dz")
HEAD_LABELS = ("px", "py", "pz", "qx", "qy", "qz", "qw")


# --- writing -----------------------------------------------------------------------------------------
def _varlen(n: int) -> bytes:
    for nbytes, fmt in ((1, "<B"), (4, "<I"), (8, "<Q")):
        if n < 256 ** nbytes:
            return bytes([nbytes]) + struct.pack(fmt, n)
    raise ValueError(n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _stream_header(sid: int, name: str, type_: str, labels, srate: float) -> bytes:
    chans = "".join(f"<channel><label>{escape(lb)}</label></channel>" for lb in labels)
    xml = (f'<?xml version="1.0"?><info><name>{escape(name)}</name><type>{escape(type_)}</type>'
           f"<channel_count>{len(labels)}</channel_count><nominal_srate>{srate:.6g}</nominal_srate>"
           f"<channel_format>double64</channel_format><source_id>{escape(name)}</source_id>"
           f"<created_at>0</created_at><desc><channels>{chans}</channels></desc></info>")
    return _chunk(2, struct.pack("<I", sid) + xml.encode("utf-8"))


def _samples(sid: int, t: np.ndarray, values: np.ndarray) -> bytes:
    out = [struct.pack("<I", sid), _varlen(len(t))]
    for ti, row in zip(t, values):
        out.append(b"\x08" + struct.pack("<d", float(ti)) + np.asarray(row, dtype="<f8").tobytes())
    return _chunk(3, b"".join(out))


def write_xdf(path, streams) -> Path:
    """Write ``streams`` (list of dicts ``name, type, labels, t (n,), values (n, c), srate``) as XDF 1.0.

    Written to a temporary file and renamed. Clock offsets of 0 at the start
    and end (the data is on one clock already).
    """
    from ..io._common import atomic_path

    parts = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, start=1):
        parts.append(_stream_header(sid, s["name"], s["type"], s["labels"], float(s.get("srate", 0.0))))
    for sid, s in enumerate(streams, start=1):
        t = np.asarray(s["t"], dtype=np.float64)
        v = np.asarray(s["values"], dtype=np.float64).reshape(len(t), len(s["labels"]))
        for a in range(0, len(t), 1000):
            parts.append(_samples(sid, t[a:a + 1000], v[a:a + 1000]))
        for ct in (t[:1], t[-1:]):
            if len(ct):
                parts.append(_chunk(4, struct.pack("<Idd", sid, float(ct[0]), 0.0)))
        footer = (f'<?xml version="1.0"?><info><first_timestamp>{t[0] if len(t) else 0:.9f}</first_timestamp>'
                  f"<last_timestamp>{t[-1] if len(t) else 0:.9f}</last_timestamp>"
                  f"<sample_count>{len(t)}</sample_count></info>")
        parts.append(_chunk(6, struct.pack("<I", sid) + footer.encode("utf-8")))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(parts))
    return path


def export_xdf(recording, path, name: str = "gaze3d") -> Path:
    """A recording's ``gaze.3d`` rays (stream ``NAME-gaze``, type ``Gaze``: ox..dz, valid) and head poses
    (``NAME-head``, type ``HeadPose``: px..qw, where the recording has them) as an XDF file; times are the
    samples' ``t_device`` (their capture time in s), else ``t_host_ns``."""
    from .analysis import read_rays

    r = read_rays(recording)
    if len(r["t_s"]) == 0:
        raise InputError(f"{recording}: no gaze.3d samples to export")
    t = r["t_s"] + r["t_host_ns"][0] * 1e-9
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    gaze = np.c_[r["origin"], r["direction"], r["valid"].astype(float)]
    streams = [{"name": f"{name}-gaze", "type": "Gaze", "labels": RAY_LABELS + ("valid",), "t": t, "values": gaze,
                "srate": 1 / dt if dt > 0 else 0.0}]
    pose = r["head_pose"]
    have = np.isfinite(pose).all(axis=(1, 2))
    if have.any():
        q = _matrix_to_quat(pose[have, :3, :3])
        streams.append({"name": f"{name}-head", "type": "HeadPose", "labels": HEAD_LABELS, "t": t[have],
                        "values": np.c_[pose[have, :3, 3], q], "srate": streams[0]["srate"]})
    return write_xdf(path, streams)


def _matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations -> (n, 4) quaternions (x, y, z, w), w >= 0 (Shepperd's method)."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    out = np.empty((len(R), 4))
    for i, m in enumerate(R):
        tr = np.trace(m)
        if tr > 0:
            s = 2.0 * np.sqrt(1.0 + tr)
            q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
        else:
            k = int(np.argmax(np.diag(m)))
            a, b = (k + 1) % 3, (k + 2) % 3
            s = 2.0 * np.sqrt(1.0 + m[k, k] - m[a, a] - m[b, b])
            q = [0.0] * 4
            q[k] = 0.25 * s
            q[a] = (m[a, k] + m[k, a]) / s
            q[b] = (m[b, k] + m[k, b]) / s
            q[3] = (m[b, a] - m[a, b]) / s
        q = np.asarray(q)
        out[i] = q if q[3] >= 0 else -q
    return out


# --- reading -----------------------------------------------------------------------------------------
def _labels(stream) -> list:
    try:
        chans = stream["info"]["desc"][0]["channels"][0]["channel"]
        return [str(c["label"][0]) for c in chans]
    except (KeyError, IndexError, TypeError):
        return []


def _field(stream, key: str) -> str:
    try:
        return str(stream["info"][key][0])
    except (KeyError, IndexError, TypeError):
        return ""


def _mapping(stream, need, given: Optional[str], what: str, path) -> Dict[str, int]:
    if given:
        out = {}
        for part in given.split(","):
            k, _, v = part.partition(":")
            try:
                out[k.strip()] = int(v)
            except ValueError:
                raise InputError(f"{path}: {what} channels: expected field:index pairs, got {given!r}") from None
    else:
        labels = [lb.lower() for lb in _labels(stream)]
        out = {k: labels.index(k) for k in list(need) + ["confidence", "valid"] if k in labels}
    missing = [k for k in need if k not in out]
    n = int(np.asarray(stream["time_series"]).reshape(len(stream["time_stamps"]), -1).shape[1]) \
        if len(stream["time_stamps"]) else 0
    if missing or any(i >= n or i < 0 for i in out.values()):
        raise InputError(f"{path}: {what} stream {_field(stream, 'name')!r}: channels {', '.join(need)} not found "
                         f"(labels {_labels(stream)}; give them as field:index)")
    return out


def import_xdf(path, out, *, gaze_stream: Optional[str] = None, head_stream: Optional[str] = None,
               channels: Optional[str] = None, head_channels: Optional[str] = None, gaze_frame: str = "world",
               convention: str = "openxr", threshold: float = 0.5, max_gap_s: float = 0.1) -> dict:
    """Write the 3D gaze of the XDF file ``path`` as the recording ``out``.

    Parameters
    ----------
    gaze_stream, head_stream : str, optional
        Stream names (default: the first stream with the six ray channels;
        the first other stream with the seven head-pose channels, if any).
    channels, head_channels : str, optional
        ``field:index`` pairs when the streams' labels do not name them.
    gaze_frame : ``world`` or ``head``
        Rays in the tracking space, or relative to the head (then the joined pose places them).
    convention : ``openxr`` or ``unity`` (Z mirrored, see :mod:`gaze3d.vr.frames`).
    threshold : float
        A ``confidence``/``valid`` channel below this marks the sample invalid.

    Returns
    -------
    dict: ``out``, ``samples``, ``valid``, ``gaze_stream``, ``head_stream``, ``joined``.
    """
    from ..recording import write_recording
    from .frames import MIRROR_Z
    from .posejoin import PoseJoin, apply_head_frame

    pyxdf = optional_import("pyxdf", extra="lsl")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such XDF file")
    if gaze_frame not in ("world", "head") or convention not in ("openxr", "unity"):
        raise InputError(f"xdf import: gaze_frame must be world|head and convention openxr|unity, "
                         f"got {gaze_frame!r}, {convention!r}")
    try:
        streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=True)
    except Exception as exc:       # pyxdf raises plain Exceptions/struct errors on broken files
        raise InputError(f"{path}: not a readable XDF file ({type(exc).__name__}: {exc})") from None

    def by_name(name):
        for s in streams:
            if _field(s, "name") == name:
                return s
        raise InputError(f"{path}: no stream named {name!r} (streams: {[_field(s, 'name') for s in streams]})")

    def has(s, labels):
        got = [lb.lower() for lb in _labels(s)]
        return all(lb in got for lb in labels)

    gaze = by_name(gaze_stream) if gaze_stream else next((s for s in streams if has(s, RAY_LABELS)), None)
    if gaze is None:
        raise InputError(f"{path}: no stream with channels {' '.join(RAY_LABELS)} "
                         f"(streams: {[_field(s, 'name') for s in streams]}); name it and give its channels")
    head = by_name(head_stream) if head_stream else next(
        (s for s in streams if s is not gaze and has(s, HEAD_LABELS)), None)
    if gaze_frame == "head" and head is None:
        raise InputError(f"{path}: gaze_frame=head needs a head-pose stream (channels {' '.join(HEAD_LABELS)})")
    gmap = _mapping(gaze, RAY_LABELS, channels, "gaze", path)
    t = np.asarray(gaze["time_stamps"], dtype=np.float64)
    if len(t) == 0:
        raise InputError(f"{path}: gaze stream {_field(gaze, 'name')!r} has no samples")
    g = np.asarray(gaze["time_series"], dtype=np.float64).reshape(len(t), -1)
    o, d = g[:, [gmap[k] for k in RAY_LABELS[:3]]], g[:, [gmap[k] for k in RAY_LABELS[3:]]]
    flag = gmap.get("confidence", gmap.get("valid"))
    ok = np.isfinite(o).all(1) & np.isfinite(d).all(1) & (np.linalg.norm(d, axis=1) > 0)
    if flag is not None:
        ok &= g[:, flag] >= threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
    join = None
    if head is not None:
        hmap = _mapping(head, HEAD_LABELS, head_channels, "head-pose", path)
        th = np.asarray(head["time_stamps"], dtype=np.float64)
        h = np.asarray(head["time_series"], dtype=np.float64).reshape(len(th), -1)
        p, q = h[:, [hmap[k] for k in HEAD_LABELS[:3]]], h[:, [hmap[k] for k in HEAD_LABELS[3:]]]
        if convention == "unity":
            p, q = p * [1.0, 1.0, -1.0], q * [-1.0, -1.0, 1.0, 1.0]
        join = PoseJoin(max_gap_s=max_gap_s, wait_s=0.0, keep_s=np.inf)
        join.add_poses(th, p, q)
    samples = []
    order = np.argsort(t, kind="stable")
    for k, i in enumerate(order):
        s = {"topic": TOPIC_GAZE_3D, "seq": k, "t_device": float(t[i]), "t_host_ns": int(round(t[i] * 1e9)),
             "valid": bool(ok[i])}
        if ok[i]:
            s["ray_origin"], s["ray_direction"] = o[i].tolist(), d[i].tolist()
        if join is not None:
            join.add_sample(t[i], s, 0.0)
        samples.append(s)
    if join is not None:
        join.ready(0.0, flush=True)
    mirror = MIRROR_Z if convention == "unity" else None
    for s in samples:
        if not s["valid"]:
            continue
        if gaze_frame == "head":
            apply_head_frame(s, mirror)
        elif mirror is not None:
            s["ray_origin"] = (np.asarray(s["ray_origin"]) @ mirror).tolist()
            s["ray_direction"] = (np.asarray(s["ray_direction"]) @ mirror).tolist()
    # LSL clocks can be negative after clock synchronisation: keep t_host_ns >= 0 on the recording's clock
    shift = -min(0, min(s["t_host_ns"] for s in samples))
    for s in samples:
        s["t_host_ns"] += shift
    n_valid = sum(1 for s in samples if s["valid"])
    write_recording(out, samples, {
        "source": "xdf", "imported_from": str(path.resolve()),
        "xdf_streams": {"gaze": _field(gaze, "name"), "head": None if head is None else _field(head, "name"),
                        "gaze_frame": gaze_frame, "convention": convention}})
    return {"out": str(out), "samples": len(samples), "valid": n_valid, "gaze_stream": _field(gaze, "name"),
            "head_stream": None if head is None else _field(head, "name"),
            "joined": 0 if join is None else join.counts["joined"] + join.counts["nearest"]}
