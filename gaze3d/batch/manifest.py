"""Batch manifests: which scan, which recording(s), which task, which options.

A manifest is a CSV or TSV file with a header row, or JSON lines (one object
per line), or a folder of recordings. Columns / keys:

``scan``
    The scan file (relative paths are relative to the manifest's folder).
``recording`` or ``recordings``
    One recording, or several separated by ``;`` (a JSON list in JSON lines).
``task`` (optional)
    ``attention`` (replay only), ``segment`` (replay + the model's mask, one
    item per recording) or ``consensus`` (several annotators' recordings of
    one scan: each one's attention and mask, then majority vote, STAPLE and
    agreement). Default: the ``--task`` of the command (``segment``).
``id`` (optional)
    The item's output folder name; default: the recording's file stem
    (``<scan stem>.consensus`` for consensus), prefixed by the scan's stem
    where stems repeat.
any of :data:`OPTIONS`
    Per-row options; an empty cell keeps the default.

A folder is read as one item per recording file (``gaze3d.recording.is_recording``)
paired with the scan each recording stores in its metadata (``scan_path``);
with ``task=consensus``, the recordings of each scan make one item.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import InputError
from ..protocol import GAZE_TOPICS, TOPIC_GAZE_2D

TASKS = ("attention", "segment", "consensus")


def _bool(text) -> bool:
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "y", "on"):
        return True
    if t in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _viewport(text) -> Tuple[float, float, float, float]:
    vals = text if isinstance(text, (list, tuple)) else re.split(r"[\s,]+", str(text).strip())
    vals = tuple(float(v) for v in vals)
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        raise ValueError(f"expected 'x y w h' with positive w, h, got {text!r}")
    return vals


def _positive(text) -> float:
    v = float(text)
    if not v > 0:
        raise ValueError(f"expected > 0, got {text!r}")
    return v


def _unit_open(text) -> float:
    v = float(text)
    if not 0.0 < v < 1.0:
        raise ValueError(f"expected a value in (0, 1), got {text!r}")
    return v


def _choice(*allowed) -> Callable:
    def parse(text):
        t = str(text).strip()
        if t not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {text!r}")
        return t
    return parse


#: per-row options: name -> (parser, default). The attention defaults are those of
#: ``gaze3d attention`` and the segmentation defaults those of ``gaze3d segment``, so a
#: batch item reproduces the two commands.
OPTIONS: Dict[str, Tuple[Callable, object]] = {
    "sigma_deg": (_positive, 1.0),
    "all_samples": (_bool, False),
    "method": (_choice("ivt", "idt", "ivdt", "ivvt"), "ivt"),
    "viewport": (_viewport, (0.0, 0.0, 1.0, 1.0)),
    "visual_per_camera_deg": (_positive, 1.0),
    "point_size": (_positive, 3.0),
    "volume_mode": (_choice("render", "mip", "slice"), "render"),
    "topic": (_choice(*GAZE_TOPICS), TOPIC_GAZE_2D),
    "threshold": (_unit_open, 0.5),
    "metres_per_unit": (_positive, 1.0),
}


@dataclass
class BatchItem:
    """One unit of work: a scan, its recording(s), a task and options.

    ``where`` names the manifest row (``manifest.csv:4``) for messages.
    """
    id: str
    task: str
    scan: str
    recordings: List[str]
    options: Dict[str, object] = field(default_factory=dict)
    where: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "task": self.task, "scan": self.scan, "recordings": list(self.recordings),
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
                "where": self.where}

    @classmethod
    def from_dict(cls, d: dict) -> "BatchItem":
        opts = dict(d.get("options", {}))
        if "viewport" in opts:
            opts["viewport"] = tuple(opts["viewport"])
        return cls(d["id"], d["task"], d["scan"], list(d["recordings"]), opts, d.get("where", ""))


def full_options(options: dict) -> dict:
    """``options`` with every default filled in (what an item actually ran with)."""
    return {name: options.get(name, default) for name, (_, default) in OPTIONS.items()}


def _parse_options(raw: dict, where: str) -> dict:
    out = {}
    for key, value in raw.items():
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        if key not in OPTIONS:
            raise InputError(f"{where}: unknown column {key!r} (expected scan, recording(s), task, id or "
                             f"one of {', '.join(OPTIONS)})")
        try:
            out[key] = OPTIONS[key][0](value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: column {key!r}: {exc}") from None
    return out


def _resolve(path: str, base: Path) -> str:
    p = Path(str(path).strip()).expanduser()
    return str(p if p.is_absolute() else (base / p))


def _rows_from_table(path: Path) -> List[Tuple[str, dict]]:
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    delim = "\t" if (path.suffix.lower() == ".tsv" or "\t" in first) else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delim)
    if not reader.fieldnames:
        raise InputError(f"{path}: empty manifest (expected a header row with 'scan' and 'recording')")
    rows = []
    for i, row in enumerate(reader, start=2):
        if None in row:
            raise InputError(f"{path}:{i}: more cells than header columns")
        if not any((v or "").strip() for v in row.values()):
            continue
        rows.append((f"{path}:{i}", {k.strip(): v for k, v in row.items() if k is not None}))
    return rows


def _rows_from_jsonl(path: Path) -> List[Tuple[str, dict]]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{i}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{i}: expected a JSON object per line, got {type(obj).__name__}")
        rows.append((f"{path}:{i}", obj))
    return rows


def _item_from_row(where: str, row: dict, base: Path, default_task: str) -> BatchItem:
    row = dict(row)
    scan = row.pop("scan", None)
    if scan is None or str(scan).strip() == "":
        raise InputError(f"{where}: missing 'scan'")
    recs = row.pop("recordings", None)
    one = row.pop("recording", None)
    if recs in (None, "") and one in (None, ""):
        raise InputError(f"{where}: missing 'recording' (or 'recordings')")
    if recs in (None, ""):
        recs = one
    if isinstance(recs, str):
        recs = [r for r in (s.strip() for s in recs.split(";")) if r]
    if not isinstance(recs, list) or not recs or not all(isinstance(r, str) for r in recs):
        raise InputError(f"{where}: 'recordings': expected a path or a list of paths, got {recs!r}")
    task = str(row.pop("task", "") or default_task).strip()
    if task not in TASKS:
        raise InputError(f"{where}: task {task!r}: expected one of {', '.join(TASKS)}")
    if task != "consensus" and len(recs) != 1:
        raise InputError(f"{where}: task {task!r} takes one recording, got {len(recs)} "
                         "(task 'consensus' combines several)")
    if task == "consensus" and len(recs) < 2:
        raise InputError(f"{where}: task 'consensus' needs at least 2 recordings, got {len(recs)}")
    item_id = str(row.pop("id", "") or "").strip()
    if item_id and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", item_id):
        raise InputError(f"{where}: id {item_id!r}: use letters, digits, '.', '_' and '-' only")
    options = _parse_options(row, where)
    return BatchItem(item_id, task, _resolve(scan, base), [_resolve(r, base) for r in recs], options, where)


def _safe(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "item"


def _stem(path: str) -> str:
    name = Path(path).name
    return name.split(".")[0] if not name.startswith(".") else name


def assign_ids(items: Sequence[BatchItem]) -> List[BatchItem]:
    """Give items without an ``id`` one (see the module docstring); duplicate ids are an error."""
    def natural(it):
        return (f"{_stem(it.scan)}.consensus" if it.task == "consensus" else _stem(it.recordings[0]))

    names = [natural(it) for it in items if not it.id]
    for it in items:
        if not it.id:
            name = natural(it)
            if names.count(name) > 1:
                name = f"{_stem(it.scan)}__{name}"
            it.id = _safe(name)
    seen: Dict[str, str] = {}
    for it in items:
        if it.id in seen:
            raise InputError(f"{it.where}: item id {it.id!r} is also the id of {seen[it.id]}; "
                             "give each row a distinct 'id'")
        seen[it.id] = it.where
    return list(items)


def _items_from_folder(folder: Path, default_task: str, options: dict) -> List[BatchItem]:
    from ..recording import Recording, is_recording
    from .provenance import META_SCAN_PATH

    files = sorted(p for p in folder.iterdir() if p.is_file() and is_recording(p))
    if not files:
        raise InputError(f"{folder}: no gaze3d recordings in this folder")
    by_scan: Dict[str, List[str]] = {}
    for p in files:
        # meta only: the checksums are compared when the item opens the recording to replay it
        with Recording(p, verify=False) as rec:
            scan = rec.meta.get(META_SCAN_PATH)
        if not scan:
            raise InputError(f"{p}: the recording does not store the scan it was made on "
                             f"(meta {META_SCAN_PATH!r}); list it in a manifest with its scan")
        by_scan.setdefault(str(scan), []).append(str(p))
    items = []
    for scan, recs in sorted(by_scan.items()):
        if default_task == "consensus":
            if len(recs) >= 2:
                items.append(BatchItem("", "consensus", scan, recs, dict(options), f"{folder} ({scan})"))
        else:
            items += [BatchItem("", default_task, scan, [r], dict(options), r) for r in recs]
    if not items:
        raise InputError(f"{folder}: task 'consensus' needs 2 or more recordings of one scan; found none")
    return items


def load_manifest(path, default_task: str = "segment", options: Optional[dict] = None) -> List[BatchItem]:
    """Items of a manifest file (CSV/TSV/JSON lines) or of a folder of recordings.

    Parameters
    ----------
    path : str or Path
    default_task : str
        For rows without a ``task``.
    options : dict, optional
        Options applied to every row (a row's own cells win).

    Raises
    ------
    InputError
        Unreadable manifest, missing column, bad value, unknown option,
        duplicate id; the message names the file and line.
    """
    if default_task not in TASKS:
        raise InputError(f"--task {default_task!r}: expected one of {', '.join(TASKS)}")
    p = Path(path)
    common = _parse_options(dict(options or {}), "options")
    if p.is_dir():
        return assign_ids(_items_from_folder(p, default_task, common))
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such manifest")
    ext = p.suffix.lower()
    if ext in (".jsonl", ".ndjson", ".json"):
        rows = _rows_from_jsonl(p)
    elif ext in (".csv", ".tsv", ".txt"):
        rows = _rows_from_table(p)
    else:
        raise InputError(f"{p}: unknown manifest format {ext!r} (expected .csv, .tsv, .jsonl or a folder)")
    if not rows:
        raise InputError(f"{p}: no items (empty manifest)")
    items = []
    for where, row in rows:
        it = _item_from_row(where, row, p.parent, default_task)
        it.options = {**common, **it.options}
        items.append(it)
    return assign_ids(items)
