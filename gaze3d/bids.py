"""Export recordings to BIDS-style eye-tracking files, and import such files as recordings.

Export writes, for a recording and a file-name prefix (``sub-01_task-label``)::

    <prefix>_eyetrack.tsv.gz   one row per gaze sample, no header row (BIDS physio style):
                               timestamp, x_coordinate, y_coordinate, pupil_size, valid
    <prefix>_eyetrack.json     sidecar: Columns, units and descriptions per column,
                               SamplingFrequency, StartTime, PhysioType "eyetrack",
                               SampleCoordinateSystem "gaze-on-screen", SampleCoordinateUnits
    <prefix>_events.tsv        annotation events (onset, duration, trial_type, event_json)
    <prefix>_cameras.tsv       viewer camera frames (onset, camera_json); gaze3d-specific

With ``style="physio"`` the gaze files follow the BIDS 1.10 physio naming
instead: ``<prefix>_recording-eye1_physio.tsv.gz`` / ``.json``.

``timestamp`` is in seconds from the first sample (``StartTime`` 0); the
sidecar's ``gaze3d.t0_host_ns`` restores the tracker-clock times on import.
Coordinates are normalised display coordinates (origin top-left) unless a
screen size is given, then pixels (``ScreenResolution``). Missing values are
``n/a``. Import accepts such files from other tools too (``_physio.tsv.gz``
with ``PhysioType`` eyetrack, pixels or normalised, seconds or milliseconds),
so recordings made elsewhere can be replayed.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import InputError
from .recording import Recording, RecordingWriter

COLUMNS = ("timestamp", "x_coordinate", "y_coordinate", "pupil_size", "valid")
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_NORMALISED_UNITS = {"normalized", "normalised", "ratio", "a.u.", "au", "norm"}


def _fmt(value: float, digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _tsv(rows, header: Optional[Sequence[str]] = None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    if header:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def export_bids(recording, out_dir, prefix: Optional[str] = None, *, topic: str = "gaze.2d",
                screen_size_px: Optional[Tuple[int, int]] = None, style: str = "eyetrack") -> dict:
    """Write a recording as BIDS-style eye-tracking files; returns ``{kind: Path}``.

    Parameters
    ----------
    recording : path or Recording
    out_dir : path
        Created if missing; files are written atomically.
    prefix : str, optional
        File-name prefix, default the recording's stem.
    topic : str
        Which sample topic to export.
    screen_size_px : (width, height), optional
        Write pixel coordinates for this screen instead of normalised ones.
    style : {"eyetrack", "physio"}
        File naming: ``<prefix>_eyetrack.tsv.gz`` or ``<prefix>_recording-eye1_physio.tsv.gz``.
    """
    if style not in ("eyetrack", "physio"):
        raise InputError(f"style: expected 'eyetrack' or 'physio', got {style!r}")
    rec = recording if isinstance(recording, Recording) else Recording(recording)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = prefix or rec.path.stem
    s = rec.samples(topic)
    n = len(s["t_host_ns"])
    if n == 0:
        raise InputError(f"{rec.path}: no {topic!r} samples to export")
    t0 = int(s["t_host_ns"][0])
    t = (s["t_host_ns"] - t0) / 1e9
    x, y = s["x"].copy(), s["y"].copy()
    units = "normalized"
    if screen_size_px is not None:
        w, h = (int(v) for v in screen_size_px)
        if w <= 0 or h <= 0:
            raise InputError(f"screen_size_px: expected positive width and height, got {screen_size_px}")
        x, y, units = x * w, y * h, "pixel"
    rows = ((_fmt(ti, 9), _fmt(xi, 6), _fmt(yi, 6), _fmt(pi, 4), int(v))
            for ti, xi, yi, pi, v in zip(t.tolist(), x.tolist(), y.tolist(), s["pupil_mm"].tolist(),
                                         s["valid"].tolist()))
    dt = np.diff(s["t_host_ns"])
    rate = float(1e9 / np.median(dt)) if n > 1 and np.median(dt) > 0 else None
    meta = rec.meta
    info = meta.get("source_info") if isinstance(meta.get("source_info"), dict) else {}
    sidecar = {
        "PhysioType": "eyetrack",
        "SamplingFrequency": round(rate, 3) if rate else "n/a",
        "StartTime": 0.0,
        "Columns": list(COLUMNS),
        "RecordedEye": "cyclopean",
        "SampleCoordinateSystem": "gaze-on-screen",
        "SampleCoordinateUnits": units,
        "EnvironmentCoordinates": "top-left",
        "Manufacturer": str(info.get("manufacturer", meta.get("source", "n/a"))),
        "ManufacturersModelName": str(info.get("model", "n/a")),
        "timestamp": {"Description": "time of the sample from the first sample (tracker host monotonic clock)",
                      "Units": "s"},
        "x_coordinate": {"Description": "combined gaze, horizontal, origin at the left edge of the display",
                         "Units": units},
        "y_coordinate": {"Description": "combined gaze, vertical, origin at the top edge, pointing down",
                         "Units": units},
        "pupil_size": {"Description": "mean pupil diameter of the valid eyes", "Units": "mm"},
        "valid": {"Description": "1 if the combined gaze is valid, else 0", "Levels": {"0": "invalid", "1": "valid"}},
        "gaze3d": {"t0_host_ns": t0, "topic": topic, "recording": rec.path.name, "meta": meta},
    }
    if screen_size_px is not None:
        sidecar["ScreenResolution"] = [int(v) for v in screen_size_px]
    gaze_stem = f"{prefix}_eyetrack" if style == "eyetrack" else f"{prefix}_recording-eye1_physio"
    paths = {"eyetrack": out_dir / f"{gaze_stem}.tsv.gz", "sidecar": out_dir / f"{gaze_stem}.json"}
    _atomic_write(paths["eyetrack"], gzip.compress(_tsv(rows), compresslevel=6, mtime=0))
    _atomic_write(paths["sidecar"], json.dumps(sidecar, indent=2, default=str).encode("utf-8"))
    events = rec.events()
    if events:
        paths["events"] = out_dir / f"{prefix}_events.tsv"
        ev_rows = [(_fmt((e["t_host_ns"] - t0) / 1e9, 9), "n/a", str(e.get("type", "n/a")),
                    json.dumps({k: v for k, v in e.items() if k != "t_host_ns"}, default=str)) for e in events]
        _atomic_write(paths["events"], _tsv(ev_rows, ("onset", "duration", "trial_type", "event_json")))
    t_cam, cams = rec.camera_frames()
    if cams:
        paths["cameras"] = out_dir / f"{prefix}_cameras.tsv"
        cam_rows = [(_fmt((int(tc) - t0) / 1e9, 9), json.dumps(c.to_dict())) for tc, c in zip(t_cam.tolist(), cams)]
        _atomic_write(paths["cameras"], _tsv(cam_rows, ("onset", "camera_json")))
    return paths


# ---------------------------------------------------------------------- import
def _sidecar_for(tsv: Path) -> Path:
    name = tsv.name
    for ext in (".tsv.gz", ".tsv"):
        if name.endswith(ext):
            return tsv.with_name(name[: -len(ext)] + ".json")
    raise InputError(f"{tsv}: expected a .tsv.gz or .tsv eye-tracking file")


def _float(text: str, where: str) -> float:
    text = text.strip()
    if text in ("n/a", "NaN", "nan", ""):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: expected a number or n/a, got {text!r}") from None


def read_bids_eyetrack(tsv, *, screen_size_px: Optional[Tuple[int, int]] = None) -> Tuple[dict, dict]:
    """Read a BIDS-style eye-tracking TSV and its JSON sidecar.

    Returns
    -------
    columns : dict with ``t_s (n,) float64`` (seconds from StartTime), ``x, y
        (n,) float64`` normalised display coordinates (NaN if invalid),
        ``pupil (n,) float64`` and ``valid (n,) bool``
    sidecar : dict
    """
    tsv = Path(tsv)
    if not tsv.is_file():
        raise FileNotFoundError(f"{tsv}: no such file")
    side_path = _sidecar_for(tsv)
    if not side_path.is_file():
        raise InputError(f"{tsv}: JSON sidecar {side_path.name} not found (it names the columns)")
    try:
        sidecar = json.loads(side_path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{side_path}: invalid JSON ({exc})") from None
    columns = sidecar.get("Columns")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(f"{side_path}: 'Columns' must list the column names")
    for need in ("timestamp", "x_coordinate", "y_coordinate"):
        if need not in columns:
            raise InputError(f"{side_path}: 'Columns' lacks {need!r} (has {columns})")
    opener = gzip.open if tsv.name.endswith(".gz") else open
    try:
        with opener(tsv, "rt", encoding="utf-8", newline="") as f:
            rows = [r for r in csv.reader(f, delimiter="\t") if r]
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{tsv}: cannot read ({exc})") from None
    if rows and rows[0][: len(columns)] == columns:
        rows = rows[1:]  # tolerate a header row
    idx = {c: i for i, c in enumerate(columns)}
    n = len(rows)
    data = {c: np.full(n, np.nan) for c in ("timestamp", "x_coordinate", "y_coordinate", "pupil_size", "valid")}
    for r, row in enumerate(rows):
        if len(row) < len(columns):
            raise InputError(f"{tsv}: row {r + 1} has {len(row)} values, expected {len(columns)}")
        for c in data:
            if c in idx:
                data[c][r] = _float(row[idx[c]], f"{tsv}: row {r + 1}, column {c}")
    t_unit = (sidecar.get("timestamp") or {}).get("Units", "s") if isinstance(sidecar.get("timestamp"), dict) else "s"
    if t_unit not in _TIME_UNITS:
        raise InputError(f"{side_path}: timestamp Units {t_unit!r} not understood (expected one of {list(_TIME_UNITS)})")
    t_s = data["timestamp"] * _TIME_UNITS[t_unit]
    if n and not np.all(np.isfinite(t_s)):
        raise InputError(f"{tsv}: every row needs a timestamp")
    units = str(sidecar.get("SampleCoordinateUnits", "pixel")).lower()
    x, y = data["x_coordinate"], data["y_coordinate"]
    if units in _NORMALISED_UNITS:
        pass
    elif units in ("pixel", "pixels", "px"):
        size = screen_size_px or sidecar.get("ScreenResolution")
        if size is None or len(size) != 2:
            raise InputError(f"{side_path}: coordinates are in pixels but no ScreenResolution is given "
                             "(pass the screen size, for example --screen 1920x1080)")
        x, y = x / float(size[0]), y / float(size[1])
    else:
        raise InputError(f"{side_path}: SampleCoordinateUnits {units!r} not supported (pixel or normalized)")
    valid = np.isfinite(x) & np.isfinite(y)
    if "valid" in idx:
        valid &= data["valid"] == 1
    x = np.where(valid, x, np.nan)
    y = np.where(valid, y, np.nan)
    return {"t_s": t_s, "x": x, "y": y, "pupil": data["pupil_size"], "valid": valid}, sidecar


def _read_onsets(path: Path):
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def import_bids(tsv, out_path, *, screen_size_px: Optional[Tuple[int, int]] = None) -> Path:
    """Make a gaze3d recording from a BIDS-style eye-tracking file (and its events/cameras beside it).

    The new recording (``out_path``, must not exist) has one ``gaze.2d``
    sample per row, ``t_device`` = the file's timestamp in seconds and
    ``t_host_ns`` from the gaze3d export's ``t0_host_ns`` (or 0) plus it.
    """
    tsv = Path(tsv)
    out_path = Path(out_path)
    if out_path.exists():
        raise InputError(f"{out_path}: already exists; choose a new recording file name")
    cols, sidecar = read_bids_eyetrack(tsv, screen_size_px=screen_size_px)
    g3d = sidecar.get("gaze3d") if isinstance(sidecar.get("gaze3d"), dict) else {}
    t0 = int(g3d.get("t0_host_ns", 0))
    t_ns = t0 + np.round(cols["t_s"] * 1e9).astype(np.int64)
    source = str((g3d.get("meta") or {}).get("source", "bids"))
    samples = []
    for i in range(len(t_ns)):
        ok = bool(cols["valid"][i])
        x, y, p = float(cols["x"][i]), float(cols["y"][i]), float(cols["pupil"][i])
        s = {"topic": "gaze.2d", "v": 1, "source": source, "session": "imported", "seq": i,
             "t_device": float(cols["t_s"][i]), "t_host_ns": int(t_ns[i]), "gaze": [x, y], "valid": ok}
        if math.isfinite(p):
            s["pupil_mm"] = p
        samples.append(s)
    stem = re.sub(r"(_recording-[A-Za-z0-9]+)?_(eyetrack|physio)\.tsv(\.gz)?$", "", tsv.name)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent if out_path.parent.is_dir() else None,
                               prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)
    try:
        with RecordingWriter(tmp, commit_interval_s=3600) as w:
            for start in range(0, len(samples), 10_000):
                w.add_samples(samples[start:start + 10_000])
            for row in _read_onsets(tsv.with_name(f"{stem}_events.tsv")):
                event = json.loads(row["event_json"]) if row.get("event_json") else {
                    k: v for k, v in row.items() if k not in ("onset",)}
                if row.get("trial_type") not in (None, "n/a"):
                    event.setdefault("type", row["trial_type"])
                w.add_event(t0 + int(round(_float(row["onset"], "events onset") * 1e9)), event)
            for row in _read_onsets(tsv.with_name(f"{stem}_cameras.tsv")):
                w.add_camera(t0 + int(round(_float(row["onset"], "cameras onset") * 1e9)),
                             json.loads(row["camera_json"]))
            w.set_meta("source", source)
            w.set_meta("imported_from", str(tsv.resolve()))
            w.set_meta("bids_sidecar", {k: v for k, v in sidecar.items() if k != "gaze3d"})
            if g3d.get("meta"):
                w.set_meta("original_meta", g3d["meta"])
        for suffix in ("-wal", "-shm"):
            if os.path.exists(tmp + suffix):
                os.unlink(tmp + suffix)
        os.replace(tmp, out_path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(tmp + suffix):
                os.unlink(tmp + suffix)
    return out_path
