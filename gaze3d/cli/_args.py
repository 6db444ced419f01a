"""One grammar for the command line: the options several commands share, parsed one way.

* Several numbers are written with commas: ``--viewport 0,0,1,1``,
  ``--screen-mm 527,296``. The older space-separated spellings
  (``--viewport 0 0 1 1``, ``--screen-mm 527 296``) still work: :func:`normalise_argv`
  joins them before parsing.
* Sizes in pixels are ``WIDTHxHEIGHT``: ``--window 1280x800``, ``--screen 1920x1080``.
* Display defaults (size, resolution, eye distance) come from
  :class:`gaze3d.display.DisplayGeometry`, written nowhere else.

Every parser raises :class:`argparse.ArgumentTypeError`, so a bad value is one
line naming the option, exit 2, like every other user mistake.
"""
from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..display import DisplayGeometry
from ..errors import InputError

#: the display every command assumes unless told otherwise (a 24" 16:9 monitor at 65 cm)
DISPLAY = DisplayGeometry()

#: options that take several numbers: how many (the space-separated spelling is joined for them)
MULTI_NUMBER = {"--viewport": 4, "--screen-mm": 2, "--screen-px": 2, "--viewer-window": 4}

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def normalise_argv(argv: Sequence[str]) -> List[str]:
    """``["--viewport", "0", "0", "1", "1"]`` -> ``["--viewport", "0,0,1,1"]`` (and likewise the others).

    Only a run of exactly as many plain numbers as the option takes is joined,
    so ``--viewport 0,0,1,1`` and anything else pass through unchanged.
    """
    argv = list(argv)
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        n = MULTI_NUMBER.get(token)
        run = argv[i + 1:i + 1 + n] if n else []
        if n and len(run) == n and all(_NUMBER.match(v) for v in run):
            out += [token, ",".join(run)]
            i += 1 + n
            continue
        out.append(token)
        i += 1
    return out


def numbers(n: int, *, positive: bool = False):
    """An argparse ``type``: ``"a,b,..."`` -> a tuple of ``n`` finite floats (``positive``: each > 0)."""
    def parse(text: str) -> Tuple[float, ...]:
        try:
            values = tuple(float(v) for v in str(text).split(","))
        except ValueError:
            values = ()
        if len(values) != n or not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}")
        if positive and not all(v > 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected {n} positive numbers, got {text!r}")
        return values
    parse.__name__ = f"{n} numbers"
    return parse


def size_wxh(text: str) -> Tuple[int, int]:
    """An argparse ``type``: ``"1280x800"`` -> ``(1280, 800)``, both positive integers."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels such as 1280x800, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive WIDTHxHEIGHT, got {text!r}")
    return w, h


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def add_viewport(p, help: str = "where the 3D view sat on the tracker's display, normalised "
                                "(default 0,0,1,1: the whole display)") -> None:
    """``--viewport X,Y,W,H`` (also ``X Y W H``) -> ``args.viewport`` tuple of 4 floats."""
    p.add_argument("--viewport", type=numbers(4), default=(0.0, 0.0, 1.0, 1.0), metavar="X,Y,W,H", help=help)


def add_display(p, *, screen_px: bool = False, optional: bool = False) -> None:
    """``--screen-mm W,H`` and ``--distance-mm D`` (and ``--screen-px W,H``), defaults from DisplayGeometry.

    ``optional``: the defaults are None (the command then uses ``DisplayGeometry()`` itself, e.g. to
    tell "not given" from the default), the help still names the values.
    """
    d = DISPLAY
    p.add_argument("--screen-mm", type=numbers(2, positive=True), metavar="W,H",
                   default=None if optional else (d.width_mm, d.height_mm),
                   help=f"size of the tracker's display area in mm (default {d.width_mm:g},{d.height_mm:g}: "
                        f"24\" 16:9)")
    if screen_px:
        p.add_argument("--screen-px", type=numbers(2, positive=True), metavar="W,H",
                       default=None if optional else (d.width_px, d.height_px),
                       help=f"its native resolution in pixels (default {d.width_px},{d.height_px})")
    p.add_argument("--distance-mm", type=positive_float, default=None if optional else d.distance_mm,
                   help=f"eye-to-screen distance in mm (default {d.distance_mm:g})")


def display_from_args(args) -> DisplayGeometry:
    """The :class:`DisplayGeometry` of ``--screen-mm``/``--distance-mm`` (defaults where not given)."""
    d = DISPLAY
    w_mm, h_mm = args.screen_mm if args.screen_mm is not None else (d.width_mm, d.height_mm)
    distance = args.distance_mm if args.distance_mm is not None else d.distance_mm
    return DisplayGeometry(width_mm=w_mm, height_mm=h_mm, distance_mm=distance)


def train_arguments(args, drop=()) -> list:
    """The options of ``args`` as ``gaze3d train`` arguments (a flag for True, nothing for False/None),
    less ``drop``: what a checkpoint's ``meta["command"]`` records and ``--members`` reruns per member."""
    out = []
    for k, v in vars(args).items():
        if k in ("func", "command") or k in drop or v is None or v is False:
            continue
        out += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return out


def _writable_ancestor(p: Path, what: str) -> None:
    """The nearest existing ancestor of ``p`` must be a writable folder (the writer creates the rest)."""
    first = p.parent
    while not first.exists() and first != first.parent:
        first = first.parent
    if not first.is_dir():
        raise InputError(f"{what} {p}: {first} is a file, not a folder")
    if not os.access(first, os.W_OK | os.X_OK):
        raise InputError(f"{what} {p}: folder {first} is not writable")


def output_file(path, what: str = "-o") -> Path:
    """Check, before any work, that a file (a checkpoint, say) can be written at ``path``.

    Missing folders are fine (the writer creates them); a folder at ``path``, a
    file where a folder must be, or an ancestor that is not writable is an
    :class:`~gaze3d.errors.InputError` naming ``what``, so a long run does not
    end in an error at its save.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p}: is a folder, expected an output file name")
    _writable_ancestor(p, what)
    return p


def output_folder(path, what: str = "--out") -> Path:
    """Like :func:`output_file` for an output folder: a name, not a file, with a writable existing ancestor."""
    if not str(path).strip():
        raise InputError(f"{what}: expected a folder name, got {str(path)!r}")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {p}: is a file, expected a folder (created if missing)")
    if not p.exists():
        _writable_ancestor(p, what)
    return p


def bounded_int(low: int, high: Optional[int] = None, what: str = "an integer"):
    """An argparse ``type``: an integer in ``low..high`` (no upper bound when ``high`` is None)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < low or (high is not None and v > high):
            span = f">= {low}" if high is None else f"in {low}..{high}"
            raise argparse.ArgumentTypeError(f"expected {what} {span}, got {text!r}")
        return v
    parse.__name__ = "integer"
    return parse


def bounded_float(low: float, high: float, *, low_open: bool = False, what: str = "a number"):
    """An argparse ``type``: a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        above = v > low if low_open else v >= low
        if not (math.isfinite(v) and above and v <= high):          # NaN fails too
            raise argparse.ArgumentTypeError(f"expected {what} in {'(' if low_open else '['}{low:g}, {high:g}], "
                                             f"got {text!r}")
        return v
    parse.__name__ = "number"
    return parse
