"""Label set files: label names -> integer ids and colours.

Formats, chosen by extension:

* ``.json``: ``{"labels": [{"name": "building", "id": 6, "color": [214, 39, 40]}, ...]}``,
  the short form ``{"building": 6, "ground": 2}``, a label map ``{"1": "spleen",
  "5": "liver"}`` (ids as keys, as medical label maps are written), or several
  named label maps (``{"total": {"1": "spleen", ...}, "lung": {...}}``, as
  TotalSegmentator ships them): pick one with ``FILE.json#total``; ``color`` optional.
* ``.txt``: one label per line, ``id name`` or just ``name`` (ids then count
  from 1); ``#`` starts a comment. An ITK-SNAP label description file
  (``IDX R G B A VIS MSH "NAME"`` per line) is read with its colours.
* ``.csv`` / ``.tsv``: ``id,name`` per row (a header row is skipped), as a
  volume's label table is often exported.

Id 0 means "unlabelled" and cannot be used. Keys 1-9 pick the first nine labels.
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from gaze3d.errors import InputError
from gaze3d.io._common import atomic_path

from .colors import label_color


@dataclass(frozen=True)
class Label:
    """One class: integer ``id`` (>= 1), ``name`` and an RGB ``color`` (3 ints, 0-255)."""

    id: int
    name: str
    color: tuple


class LabelSet:
    """An ordered set of labels with lookup by key, id and (fuzzy) name.

    Parameters
    ----------
    labels : sequence of Label
    source : str, optional
        File it came from, for error messages.
    """

    def __init__(self, labels: Sequence[Label], source: Optional[str] = None):
        self.source = source
        where = f"{source}: " if source else ""
        self._labels: List[Label] = list(labels)
        if not self._labels:
            raise InputError(f"{where}label set: expected at least one label")
        ids, names = {}, {}
        for lab in self._labels:
            if lab.id < 1:
                raise InputError(f"{where}label {lab.name!r}: id must be >= 1 (0 means unlabelled), got {lab.id}")
            if lab.id in ids:
                raise InputError(f"{where}label id {lab.id} used twice ({ids[lab.id]!r} and {lab.name!r})")
            key = lab.name.strip().lower()
            if not key:
                raise InputError(f"{where}label id {lab.id}: empty name")
            if key in names:
                raise InputError(f"{where}label name {lab.name!r} used twice")
            ids[lab.id] = lab.name
            names[key] = lab
        self._by_name: Dict[str, Label] = names
        self._by_id: Dict[int, Label] = {lab.id: lab for lab in self._labels}

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_names(cls, names: Sequence[str] | Dict[int, str]) -> "LabelSet":
        """Labels from names (ids 1, 2, ...) or from an ``{id: name}`` dict such as ``scan.label_names``.

        Keys 1-9 follow the order given (dict insertion order).
        """
        items = list(names.items()) if isinstance(names, dict) else list(enumerate(names, start=1))
        # colours by position, so the first keys get the most distinct palette colours
        return cls([Label(int(i), str(n), tuple(int(c) for c in label_color(pos)))
                    for pos, (i, n) in enumerate(items, start=1)])

    @classmethod
    def default(cls) -> "LabelSet":
        """Nine generic classes ``class1`` ... ``class9``."""
        return cls.from_names([f"class{i}" for i in range(1, 10)])

    @classmethod
    def load(cls, path) -> "LabelSet":
        """Read a ``.json``, ``.txt``, ``.csv`` or ``.tsv`` label set file (see the module docstring).

        ``FILE.json#KEY`` picks the label map ``KEY`` of a file holding several.
        """
        text_path = str(path)
        path, _, key = text_path.partition("#") if not Path(text_path).is_file() else (text_path, "", "")
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: label set file not found")
        suffix = path.suffix.lower()
        if key and suffix != ".json":
            raise InputError(f"{text_path}: '#{key}' picks a label map inside a .json file only")
        if suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
            return cls(_labels_from_json(data, path, key or None), source=text_path)
        if suffix == ".txt":
            return cls(_labels_from_txt(path.read_text(encoding="utf-8"), path), source=str(path))
        if suffix in (".csv", ".tsv"):
            return cls(_labels_from_table(path.read_text(encoding="utf-8"), path, suffix), source=str(path))
        raise InputError(f"{path}: expected a label set file ending in .json, .txt, .csv or .tsv")

    def save(self, path) -> None:
        """Write as JSON (atomically, with the usual file mode)."""
        data = {"labels": [{"id": lab.id, "name": lab.name, "color": list(lab.color)} for lab in self._labels]}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")

    # --------------------------------------------------------------- lookup
    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self):
        return iter(self._labels)

    @property
    def names(self) -> List[str]:
        return [lab.name for lab in self._labels]

    def by_id(self, label_id: int) -> Label:
        try:
            return self._by_id[int(label_id)]
        except KeyError:
            raise InputError(f"label id {label_id}: not in the label set (ids {sorted(self._by_id)})") from None

    def by_key(self, key: str) -> Label:
        """The label of a number key ``"1"`` ... ``"9"`` (the n-th label in file order)."""
        if len(key) != 1 or key not in "123456789":
            raise InputError(f"label key: expected '1'..'9', got {key!r}")
        n = int(key)
        if n > len(self._labels):
            raise InputError(f"label key {key}: the label set has only {len(self._labels)} labels")
        return self._labels[n - 1]

    def suggest(self, name: str, n: int = 3) -> List[str]:
        """Close label names for a mistyped ``name`` (difflib), best first."""
        keys = difflib.get_close_matches(name.strip().lower(), list(self._by_name), n=n, cutoff=0.5)
        return [self._by_name[k].name for k in keys]

    def by_name(self, name: str) -> Label:
        """Exact (case-insensitive) lookup; unknown names raise with a "did you mean" hint."""
        lab = self._by_name.get(name.strip().lower())
        if lab is not None:
            return lab
        hints = self.suggest(name)
        hint = f"; did you mean {' or '.join(repr(h) for h in hints)}?" if hints else \
            f"; known labels: {', '.join(self.names[:12])}"
        raise InputError(f"label {name!r}: not in the label set{hint}")

    def colors(self, max_id: Optional[int] = None) -> np.ndarray:
        """(max_id + 1, 3) uint8 colour table indexed by label id (row 0 grey)."""
        top = max(self._by_id) if max_id is None else int(max_id)
        table = np.full((top + 1, 3), 128, dtype=np.uint8)
        for lab in self._labels:
            if lab.id <= top:
                table[lab.id] = lab.color
        return table

    def names_by_id(self) -> Dict[int, str]:
        return {lab.id: lab.name for lab in self._labels}


def _color(value, where: str, lab_id: int) -> tuple:
    if value is None:
        return tuple(int(c) for c in label_color(lab_id))
    if isinstance(value, str):
        from matplotlib.colors import to_rgb     # only for colour names in a label file: no matplotlib at start-up

        try:
            return tuple(int(round(255 * c)) for c in to_rgb(value))
        except ValueError:
            raise InputError(f"{where}: color {value!r} is not a colour name or #rrggbb") from None
    c = list(value)
    if len(c) != 3 or not all(isinstance(v, (int, float)) and 0 <= v <= 255 for v in c):
        raise InputError(f"{where}: color must be [r, g, b] with values in 0-255, got {value!r}")
    return tuple(int(v) for v in c)


def _is_id_map(data) -> bool:
    """``{"1": "spleen", ...}``: integer ids (as JSON strings) to names."""
    return bool(data) and all(isinstance(k, str) and k.strip().isdigit() and isinstance(v, str)
                              for k, v in data.items())


def _labels_from_json(data, path: Path, key: Optional[str] = None) -> List[Label]:
    if isinstance(data, dict) and data and all(isinstance(v, dict) and _is_id_map(v) for v in data.values()):
        # several named label maps in one file: the caller says which
        if key is None:
            if len(data) > 1:
                raise InputError(f"{path}: holds {len(data)} label maps ({', '.join(data)}); "
                                 f"pick one as {path}#NAME")
            key = next(iter(data))
        if key not in data:
            raise InputError(f"{path}#{key}: no label map {key!r} (maps: {', '.join(data)})")
        data = data[key]
    elif key is not None:
        raise InputError(f"{path}#{key}: the file holds one label set, not named label maps")
    if isinstance(data, dict) and _is_id_map(data):
        items = sorted((int(k), v) for k, v in data.items())
        if items[0][0] < 1:
            items = [(i, n) for i, n in items if i >= 1]      # 0 is background / unlabelled
        return [Label(i, n, _color(None, str(path), i)) for i, n in items]
    if isinstance(data, dict) and "labels" in data:
        items = data["labels"]
        if not isinstance(items, list):
            raise InputError(f"{path}: 'labels' must be a list of {{'name', 'id', 'color'}} objects")
        out = []
        for n, item in enumerate(items, start=1):
            if not isinstance(item, dict) or "name" not in item:
                raise InputError(f"{path}: labels[{n - 1}] must be an object with at least a 'name'")
            lab_id = item.get("id", n)
            if not isinstance(lab_id, int):
                raise InputError(f"{path}: labels[{n - 1}].id must be an integer, got {lab_id!r}")
            out.append(Label(lab_id, str(item["name"]), _color(item.get("color"), f"{path}: labels[{n - 1}]", lab_id)))
        return out
    if isinstance(data, dict):
        out = []
        for name, lab_id in data.items():
            if not isinstance(lab_id, int):
                raise InputError(f"{path}: label {name!r}: expected an integer id, got {lab_id!r}")
            out.append(Label(lab_id, str(name), _color(None, str(path), lab_id)))
        return out
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return [Label(i, n, _color(None, str(path), i)) for i, n in enumerate(data, start=1)]
    raise InputError(f"{path}: expected {{'labels': [...]}}, {{name: id}} or a list of names")


# ITK-SNAP label description: IDX  R  G  B  A  VIS MSH  "LABEL"
_ITKSNAP = re.compile(r'^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+\s+\d+\s+\d+\s+"(.*)"\s*$')


def _labels_from_txt(text: str, path: Path) -> List[Label]:
    out = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        snap = _ITKSNAP.match(raw)
        if snap:
            lab_id, r, g, b, name = snap.groups()
            if int(lab_id) >= 1:                  # 0 is ITK-SNAP's "Clear Label"
                out.append(Label(int(lab_id), name, _color([int(r), int(g), int(b)], f"{path}:{lineno}", int(lab_id))))
            continue
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        if head.isdigit() and rest.strip():
            lab_id, name = int(head), rest.strip()
        elif head.isdigit():
            raise InputError(f"{path}:{lineno}: expected 'id name' or 'name', got {raw.strip()!r}")
        else:
            lab_id, name = len(out) + 1, line
        out.append(Label(lab_id, name, _color(None, str(path), lab_id)))
    return out


def _labels_from_table(text: str, path: Path, suffix: str) -> List[Label]:
    sep = "\t" if suffix == ".tsv" else ","
    out, seen_row = [], False
    for lineno, row in enumerate(csv.reader(io.StringIO(text), delimiter=sep), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        first, seen_row = not seen_row, True
        if len(cells) < 2:
            raise InputError(f"{path}:{lineno}: expected 'id{sep}name', got {sep.join(cells)!r}")
        if not cells[0].isdigit():
            if first:
                continue                      # a header row
            raise InputError(f"{path}:{lineno}: expected an integer label id, got {cells[0]!r}")
        if int(cells[0]) >= 1:                # 0 is background / unlabelled
            out.append(Label(int(cells[0]), cells[1], _color(None, f"{path}:{lineno}", int(cells[0]))))
    if not out:
        raise InputError(f"{path}: no labels (expected rows of 'id{sep}name')")
    return out
