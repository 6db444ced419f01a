"""Export recordings as BIDS eye-tracking datasets, and import such files as recordings.

Export follows the BIDS physiological-recordings specification for eye
tracking (BIDS 1.10+, formerly BEP020). For subject ``01``, task ``gaze3d``
(plus optional session and run) it writes into the dataset root::

    dataset_description.json                       (if absent)
    sub-01/beh/sub-01_task-gaze3d_recording-eye1_physio.tsv.gz
                               one row per gaze sample, no header row:
                               timestamp, x_coordinate, y_coordinate, pupil_size, valid
    sub-01/beh/sub-01_task-gaze3d_recording-eye1_physio.json
                               PhysioType "eyetrack", RecordedEye "cyclopean",
                               SampleCoordinateSystem "gaze-on-screen", SamplingFrequency,
                               StartTime, Columns with Units and Description, device fields
    sub-01/beh/sub-01_task-gaze3d_recording-eye1_physioevents.tsv.gz (+ .json)
                               onset, duration, trial_type, message: the recording's
                               events and every viewer camera frame (trial_type "camera",
                               the camera as JSON in message)
    sub-01/beh/sub-01_task-gaze3d_events.tsv (+ .json)
                               the recording (trial_type "recording") and the annotation
                               events; the JSON holds StimulusPresentation (screen size,
                               distance, resolution, origin)

``timestamp`` and onsets are seconds from the first sample (``StartTime`` 0);
the physio sidecar's ``gaze3d.t0_host_ns`` restores tracker-clock times on
import. Coordinates are screen pixels (origin top-left) of the screen given
by ``display`` (default :class:`~gaze3d.display.DisplayGeometry`). Missing
values are ``n/a``. Import accepts such files from other tools too
(``_physio.tsv.gz`` with ``PhysioType`` eyetrack, pixels or normalised,
seconds or milliseconds) and gaze3d's earlier ``_eyetrack.tsv.gz`` files, so
recordings made elsewhere can be replayed.
"""
from __future__ import annotations

import csv
import gzip
import json
import math
import re
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .display import DisplayGeometry
from .errors import InputError
from .io._common import atomic_path
from .protocol import SCHEMA_VERSION, TOPIC_GAZE_2D
from .recording import Recording, RecordingWriter, recording_tmp

COLUMNS = ("timestamp", "x_coordinate", "y_coordinate", "pupil_size", "valid")
PHYSIOEVENT_COLUMNS = ("onset", "duration", "trial_type", "message")
BIDS_VERSION = "1.10.0"
RECORDING_LABEL = "eye1"  # one cyclopean (combined) gaze stream per recording
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_NORMALISED_UNITS = {"normalized", "normalised", "ratio", "a.u.", "au", "norm"}
# who made the device, by gaze3d source name, when the source's info() does not say
_MANUFACTURERS = {"tobii": "Tobii", "pupil": "Pupil Labs", "sim": "gaze3d", "mouse": "gaze3d", "replay": "gaze3d"}


def _fmt(value: float, digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` through the project's one atomic writer (temp file, umask mode, fsync, rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _tsv(rows, header: Optional[Sequence[str]] = None) -> bytes:
    """Tab-separated lines, no quoting (values never hold tabs or newlines: JSON escapes them)."""
    lines = ["\t".join(header)] if header else []
    lines += ["\t".join(str(v) for v in r) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2, default=str) + "\n").encode("utf-8")


def _label(value, what: str) -> str:
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9]+", text):
        raise InputError(f"BIDS {what} label {text!r}: expected letters and digits only (e.g. 01)")
    return text


def _entities_from_prefix(prefix: str) -> dict:
    """``sub-01_ses-a_task-x_run-1`` -> ``{"sub": "01", ...}`` (the former ``prefix`` argument)."""
    out = {}
    for part in prefix.split("_"):
        key, sep, value = part.partition("-")
        if not sep or key not in ("sub", "ses", "task", "run", "acq"):
            raise InputError(f"BIDS prefix {prefix!r}: expected key-value parts like sub-01_task-label, "
                             f"got {part!r}")
        out[key] = value
    return out


def _device_fields(meta: dict) -> dict:
    """Manufacturer, model and serial from the recorded source info (omitted where unknown)."""
    info = meta.get("source_info") if isinstance(meta.get("source_info"), dict) else {}
    source = str(info.get("source") or meta.get("source") or "")
    out = {}
    manufacturer = info.get("manufacturer") or _MANUFACTURERS.get(source)
    if manufacturer:
        out["Manufacturer"] = str(manufacturer)
    if info.get("model"):
        out["ManufacturersModelName"] = str(info["model"])
    if info.get("serial"):
        out["DeviceSerialNumber"] = str(info["serial"])
    versions = [f"gaze3d {meta.get('gaze3d_version')}" if meta.get("gaze3d_version") else None,
                f"SDK {info['sdk']}" if info.get("sdk") else None,
                f"{source} {info['version']}" if info.get("version") else None]
    if any(versions):
        out["SoftwareVersions"] = ", ".join(v for v in versions if v)
    return out


def export_bids(recording, out_dir, prefix: Optional[str] = None, *, subject: Optional[str] = None,
                session: Optional[str] = None, task: Optional[str] = None, run=None, topic: str = TOPIC_GAZE_2D,
                display: Optional[DisplayGeometry] = None,
                screen_size_px: Optional[Tuple[int, int]] = None) -> dict:
    """Write a recording into a BIDS dataset as eye-tracking physio files; returns ``{kind: Path}``.

    Parameters
    ----------
    recording : path or Recording
    out_dir : path
        The dataset root, created if missing; ``dataset_description.json`` is
        written if absent, so several recordings can go into one dataset.
        Files are written atomically.
    prefix : str, optional
        Entities as a file-name prefix (``sub-01_task-label``), instead of the
        keywords below.
    subject, session, task, run : str, optional
        BIDS entity labels; default subject ``01`` and task ``gaze3d``.
    topic : str
        Which sample topic to export.
    display : DisplayGeometry, optional
        The screen the gaze was on (size, distance, resolution): pixel
        coordinates and ``StimulusPresentation``. Default
        :class:`DisplayGeometry()` (a 24" 1920x1080 screen at 650 mm).
    screen_size_px : (width, height), optional
        Resolution only (overrides ``display``'s).

    Returns
    -------
    dict with ``eyetrack`` (the ``_physio.tsv.gz``), ``sidecar``,
    ``physioevents``, ``physioevents_sidecar``, ``events``, ``events_sidecar``
    and ``dataset_description``.
    """
    ent = _entities_from_prefix(prefix) if prefix else {}
    for key, value in (("sub", subject), ("ses", session), ("task", task), ("run", run)):
        if value is not None:
            ent[key] = str(value)
    ent.setdefault("sub", "01")
    ent.setdefault("task", "gaze3d")
    for key, value in ent.items():
        _label(value, key)
    if "run" in ent and not ent["run"].isdigit():
        raise InputError(f"BIDS run {ent['run']!r}: expected an index (a non-negative integer such as 1)")
    if not str(out_dir).strip():
        raise InputError("BIDS dataset folder: expected a folder name, got ''")
    display = display or DisplayGeometry()
    if screen_size_px is not None:
        try:
            w, h = (int(v) for v in screen_size_px)
        except (TypeError, ValueError):
            raise InputError(f"screen_size_px: expected (width, height) in pixels, got {screen_size_px!r}") from None
        if w <= 0 or h <= 0:
            raise InputError(f"screen_size_px: expected positive width and height, got {screen_size_px}")
        display = DisplayGeometry(width_mm=display.width_mm, height_mm=display.height_mm, width_px=w, height_px=h,
                                  distance_mm=display.distance_mm, eye_xy=display.eye_xy)
    rec = recording if isinstance(recording, Recording) else Recording(recording)
    s = rec.samples(topic)
    n = len(s["t_host_ns"])
    if n == 0:
        raise InputError(f"{rec.path}: no {topic!r} samples to export")
    meta = rec.meta
    t0 = int(s["t_host_ns"][0])
    t = (s["t_host_ns"] - t0) / 1e9
    w, h = int(display.width_px), int(display.height_px)
    x, y = s["x"] * w, s["y"] * h
    rows = ((_fmt(ti, 9), _fmt(xi, 4), _fmt(yi, 4), _fmt(pi, 4), int(v))
            for ti, xi, yi, pi, v in zip(t.tolist(), x.tolist(), y.tolist(), s["pupil_mm"].tolist(),
                                         s["valid"].tolist()))
    dt = np.diff(s["t_host_ns"])
    rate = float(1e9 / np.median(dt)) if n > 1 and np.median(dt) > 0 else None

    order = [k for k in ("sub", "ses", "task", "acq", "run") if k in ent]
    stem = "_".join(f"{k}-{ent[k]}" for k in order)
    root = Path(out_dir)
    folder = root / f"sub-{ent['sub']}"
    if "ses" in ent:
        folder = folder / f"ses-{ent['ses']}"
    folder = folder / "beh"
    # read everything before writing anything: a damaged recording must not leave half an export
    events = rec.events()
    t_cam, cams = rec.camera_frames()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: is a file, expected the BIDS dataset folder")
    made_dirs = [d for d in (folder, *folder.parents) if not d.exists()]      # deepest first
    written = []

    def write(path: Path, data: bytes) -> None:
        new = not path.exists()
        _atomic_write(path, data)
        if new:
            written.append(path)

    try:
        folder.mkdir(parents=True, exist_ok=True)
        gaze_stem = f"{stem}_recording-{RECORDING_LABEL}"
        paths = {"dataset_description": root / "dataset_description.json",
                 "eyetrack": folder / f"{gaze_stem}_physio.tsv.gz", "sidecar": folder / f"{gaze_stem}_physio.json",
                 "physioevents": folder / f"{gaze_stem}_physioevents.tsv.gz",
                 "physioevents_sidecar": folder / f"{gaze_stem}_physioevents.json",
                 "events": folder / f"{stem}_events.tsv", "events_sidecar": folder / f"{stem}_events.json"}

        if not paths["dataset_description"].exists():
            from . import __version__

            write(paths["dataset_description"], _json({
                "Name": "gaze3d eye-tracking recordings", "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
                "GeneratedBy": [{"Name": "gaze3d", "Version": __version__,
                                 "Description": "gaze3d record export"}]}))
        readme = root / "README.md"
        if not readme.exists():
            write(readme, b"# gaze3d eye-tracking recordings\n\nExported by `gaze3d record export`: one "
                                  b"`_recording-eye1_physio.tsv.gz` (combined gaze on the screen, pixels) per recording, "
                                  b"with physioevents (tracker events, viewer camera frames) and events.\n")
            paths["readme"] = readme
        sidecar = {
            "PhysioType": "eyetrack",
            "SamplingFrequency": round(rate, 3) if rate else "n/a",
            "StartTime": 0.0,
            "Columns": list(COLUMNS),
            "RecordedEye": "cyclopean",
            "SampleCoordinateSystem": "gaze-on-screen",
            **_device_fields(meta),
            "timestamp": {"LongName": "time of the sample",
                          "Description": "seconds from the first sample (tracker host monotonic clock)", "Units": "s"},
            "TaskName": ent["task"],
            "x_coordinate": {"LongName": "gaze x", "Description": "combined (cyclopean) gaze on the screen, "
                             "horizontal, from the left edge", "Units": "pixel"},
            "y_coordinate": {"LongName": "gaze y", "Description": "combined (cyclopean) gaze on the screen, "
                             "vertical, from the top edge, pointing down", "Units": "pixel"},
            "pupil_size": {"LongName": "pupil diameter", "Description": "mean pupil diameter of the valid eyes",
                           "Units": "mm"},
            "valid": {"LongName": "gaze valid", "Description": "1 if the combined gaze is valid, else 0",
                      "Levels": {"0": "invalid", "1": "valid"}},
            "gaze3d": {"t0_host_ns": t0, "topic": topic, "recording": rec.path.name, "meta": meta},
        }
        write(paths["eyetrack"], gzip.compress(_tsv(rows), compresslevel=6, mtime=0))
        write(paths["sidecar"], _json(sidecar))

        duration = float(t[-1]) if n > 1 else 0.0

        def onset(t_ns) -> str:
            return _fmt((int(t_ns) - t0) / 1e9, 9)

        def message(obj) -> str:
            return json.dumps(obj, default=str, separators=(",", ":"))

        pe_rows = [(onset(e["t_host_ns"]), "n/a", str(e.get("type", "n/a")) or "n/a",
                    message({k: v for k, v in e.items() if k != "t_host_ns"})) for e in events]
        pe_rows += [(onset(tc), "n/a", "camera", message(c.to_dict())) for tc, c in zip(t_cam.tolist(), cams)]
        pe_rows.sort(key=lambda r: float(r[0]))
        pe_rows.insert(0, ("0.000000000", _fmt(duration, 9), "recording", message({"recording": rec.path.name})))
        write(paths["physioevents"], gzip.compress(_tsv(pe_rows), compresslevel=6, mtime=0))
        write(paths["physioevents_sidecar"], _json({
            "Columns": list(PHYSIOEVENT_COLUMNS), "OnsetSource": "timestamp", "TaskName": ent["task"],
            "Description": "tracker and annotation events, and the viewer's camera frames (trial_type camera)",
            "onset": {"Description": "seconds on the physio timestamp axis", "Units": "s"},
            "duration": {"Description": "seconds (n/a for instantaneous events)", "Units": "s"},
            "trial_type": {"Description": "event type: recording, camera, or the gaze3d event type"},
            "message": {"Description": "the gaze3d event or camera (position, focal_point, view_up, vfov_deg, "
                                       "width, height, near, far, parallel_scale) as compact JSON"}}))

        ev_rows = [("0.000000000", _fmt(duration, 9), "recording", message({"recording": rec.path.name}))]
        ev_rows += [(onset(e["t_host_ns"]), "n/a", str(e.get("type", "n/a")) or "n/a",
                     message({k: v for k, v in e.items() if k != "t_host_ns"}))
                    for e in events if not str(e.get("type", "")).startswith("tracker.")]
        write(paths["events"], _tsv(ev_rows, ("onset", "duration", "trial_type", "event_json")))
        write(paths["events_sidecar"], _json({
            "TaskName": ent["task"],
            "onset": {"Description": "seconds from the first gaze sample", "Units": "s"},
            "duration": {"Description": "seconds", "Units": "s"},
            "trial_type": {"Description": "recording (the whole session) or the annotation event type"},
            "event_json": {"Description": "the gaze3d annotation event as compact JSON"},
            "StimulusPresentation": {
                "ScreenDistance": display.distance_mm / 1000.0,
                "ScreenOrigin": ["top", "left"],
                "ScreenResolution": [w, h],
                "ScreenSize": [display.width_mm / 1000.0, display.height_mm / 1000.0],
                "SoftwareName": "gaze3d"}}))
    except BaseException:
        # undo this export (files it created, folders it made), so a failure leaves the dataset as it was
        for path in written:
            path.unlink(missing_ok=True)
        for d in made_dirs:
            try:
                d.rmdir()
            except OSError:
                pass
        raise
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


def _stem(tsv: Path) -> str:
    """``sub-01_task-x`` of ``sub-01_task-x_recording-eye1_physio.tsv.gz`` (or ``..._eyetrack.tsv``)."""
    return re.sub(r"(_recording-[A-Za-z0-9]+)?_(eyetrack|physio)\.tsv(\.gz)?$", "", tsv.name)


def _stimulus_resolution(tsv: Path):
    """``StimulusPresentation.ScreenResolution`` of the events sidecar beside a physio file, if any."""
    side = tsv.with_name(f"{_stem(tsv)}_events.json")
    try:
        pres = json.loads(side.read_text("utf-8")).get("StimulusPresentation") or {}
    except (OSError, ValueError, AttributeError):
        return None
    size = pres.get("ScreenResolution") if isinstance(pres, dict) else None
    return size if isinstance(size, list) and len(size) == 2 else None


def read_bids_eyetrack(tsv, *, screen_size_px: Optional[Tuple[int, int]] = None) -> Tuple[dict, dict]:
    """Read a BIDS eye-tracking physio TSV (or gaze3d's earlier _eyetrack.tsv) and its JSON sidecar.

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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{side_path}: invalid JSON ({exc})") from None
    if not isinstance(sidecar, dict):
        raise InputError(f"{side_path}: expected a JSON object (BIDS sidecar), got {type(sidecar).__name__}")
    columns = sidecar.get("Columns")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(f"{side_path}: 'Columns' must list the column names")
    for need in ("timestamp", "x_coordinate", "y_coordinate"):
        if need not in columns:
            raise InputError(f"{side_path}: 'Columns' lacks {need!r} (has {columns})")
    opener = gzip.open if tsv.name.endswith(".gz") else open
    try:
        with opener(tsv, "rt", encoding="utf-8", newline="") as f:
            rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r]
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
    t_s = data["timestamp"] * _TIME_UNITS[_time_unit(sidecar, side_path)]
    if n == 0:
        raise InputError(f"{tsv}: no samples (the file has no data rows)")
    if not np.all(np.isfinite(t_s)):
        raise InputError(f"{tsv}: every row needs a timestamp")
    if np.any(np.diff(t_s) < 0):
        bad = int(np.flatnonzero(np.diff(t_s) < 0)[0]) + 1
        raise InputError(f"{tsv}: timestamps must be non-decreasing (row {bad + 1}: {data['timestamp'][bad]:g} "
                         f"after {data['timestamp'][bad - 1]:g})")
    x_meta = sidecar.get("x_coordinate") if isinstance(sidecar.get("x_coordinate"), dict) else {}
    units = str(sidecar.get("SampleCoordinateUnits") or x_meta.get("Units") or "pixel").lower()
    x, y = data["x_coordinate"], data["y_coordinate"]
    if units in _NORMALISED_UNITS:
        pass
    elif units in ("pixel", "pixels", "px"):
        size = screen_size_px or sidecar.get("ScreenResolution") or _stimulus_resolution(tsv)
        if size is None:
            raise InputError(f"{side_path}: coordinates are in pixels but no ScreenResolution is given "
                             "(pass the screen size, for example --screen 1920x1080)")
        try:
            sw, sh = (float(v) for v in size)
        except (TypeError, ValueError):
            sw = sh = math.nan
        if not (math.isfinite(sw) and math.isfinite(sh) and sw > 0 and sh > 0):
            raise InputError(f"{side_path}: ScreenResolution: expected [width, height] in pixels, got {size!r}")
        x, y = x / sw, y / sh
    else:
        raise InputError(f"{side_path}: SampleCoordinateUnits {units!r} not supported (pixel or normalized)")
    valid = np.isfinite(x) & np.isfinite(y)
    if "valid" in idx:
        valid &= data["valid"] == 1
    x = np.where(valid, x, np.nan)
    y = np.where(valid, y, np.nan)
    return {"t_s": t_s, "x": x, "y": y, "pupil": data["pupil_size"], "valid": valid}, sidecar


def _time_unit(sidecar: dict, where="sidecar") -> str:
    t_unit = (sidecar.get("timestamp") or {}).get("Units", "s") if isinstance(sidecar.get("timestamp"), dict) else "s"
    if t_unit not in _TIME_UNITS:
        raise InputError(f"{where}: timestamp Units {t_unit!r} not understood (expected one of {list(_TIME_UNITS)})")
    return t_unit


def _read_physioevents(tsv: Path):
    """Rows of the ``_physioevents.tsv.gz`` beside a ``_physio.tsv.gz`` as dicts (None if there is none)."""
    name = tsv.name
    if "_physio.tsv" not in name:
        return None
    path = tsv.with_name(name.replace("_physio.tsv", "_physioevents.tsv"))
    if not path.is_file():
        return None
    side = path.with_name(path.name.split(".tsv")[0] + ".json")
    columns = list(PHYSIOEVENT_COLUMNS)
    if side.is_file():
        try:
            columns = json.loads(side.read_text("utf-8")).get("Columns") or columns
        except (ValueError, AttributeError) as exc:
            raise InputError(f"{side}: invalid JSON ({exc})") from None
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            return [dict(zip(columns, r)) for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r]
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


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
    t0 = g3d.get("t0_host_ns", 0)
    # an integer (bool is not), as gaze3d's export writes it; an int64 clock in ns
    if isinstance(t0, bool) or not isinstance(t0, int) or not 0 <= t0 < 2 ** 62:
        raise InputError(f"{_sidecar_for(tsv)}: gaze3d.t0_host_ns: expected a non-negative integer "
                         f"(nanoseconds), got {t0!r}")
    t_ns = t0 + np.round(cols["t_s"] * 1e9).astype(np.int64)
    if not isinstance(g3d.get("meta") or {}, dict):
        raise InputError(f"{_sidecar_for(tsv)}: gaze3d.meta: expected a JSON object, got {g3d['meta']!r}"[:300])
    source = str((g3d.get("meta") or {}).get("source", "bids"))
    samples = []
    for i in range(len(t_ns)):
        ok = bool(cols["valid"][i])
        x, y, p = float(cols["x"][i]), float(cols["y"][i]), float(cols["pupil"][i])
        s = {"topic": TOPIC_GAZE_2D, "v": SCHEMA_VERSION, "source": source, "session": "imported", "seq": i,
             "t_device": float(cols["t_s"][i]), "t_host_ns": int(t_ns[i]), "gaze": [x, y], "valid": ok}
        if math.isfinite(p):
            s["pupil_mm"] = p
        samples.append(s)
    stem = _stem(tsv)
    t_unit = _TIME_UNITS[_time_unit(sidecar)]
    physioevents = _read_physioevents(tsv)
    if not out_path.parent.is_dir():
        raise InputError(f"{out_path}: folder {out_path.parent} does not exist")
    with recording_tmp(out_path) as tmp:
        _write_import(str(tmp), samples, physioevents, tsv, stem, t0, t_unit, source, sidecar, g3d)
    return out_path


def _write_import(tmp: str, samples, physioevents, tsv: Path, stem: str, t0: int, t_unit: float, source: str,
                  sidecar: dict, g3d: dict) -> None:
    """The imported recording, written to the temporary path ``tmp`` (:func:`~gaze3d.recording.recording_tmp`)."""
    with RecordingWriter(tmp, commit_interval_s=3600) as w:
        for start in range(0, len(samples), 10_000):
            w.add_samples(samples[start:start + 10_000])
        if physioevents is not None:  # events and cameras, on the timestamp axis
            for i, row in enumerate(physioevents):
                kind = row.get("trial_type", "n/a")
                if kind == "recording" or "onset" not in row:
                    continue
                t_ns = t0 + int(round(_float(row["onset"], f"physioevents row {i + 1} onset") * t_unit * 1e9))
                try:
                    body = json.loads(row.get("message", ""))
                except ValueError:  # another tool's free-text message
                    body = row.get("message")
                if kind == "camera" and isinstance(body, dict):
                    w.add_camera(t_ns, body)
                    continue
                event = body if isinstance(body, dict) else {"message": body}
                if kind not in (None, "n/a"):
                    event.setdefault("type", kind)
                w.add_event(t_ns, event)
        else:  # gaze3d's earlier flat export: _events.tsv (event_json) and _cameras.tsv
            for row in _read_onsets(tsv.with_name(f"{stem}_events.tsv")):
                if row.get("trial_type") == "recording":
                    continue
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
