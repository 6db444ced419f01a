"""The ``gaze3d`` command line.

Each subcommand lives in its own module in this package and defines::

    def register(subparsers) -> argparse.ArgumentParser:
        p = subparsers.add_parser("name", help="one line", description="more")
        ...
        p.set_defaults(func=run)

    def run(args) -> int | None: ...

Modules are discovered automatically, so adding a command is adding a file.
Every command module is imported to build the parser, so at their top they
import only the standard library, numpy, :mod:`gaze3d.errors` and
:mod:`gaze3d.protocol` (what ``import gaze3d.cli`` loads anyway); the rest
(I/O, recordings, the viewer / models / calib rooms, and heavy packages such
as torch, VTK, Open3D, ray) inside ``run`` only: ``gaze3d --help`` and the
``gaze3d tracker`` process stay lean (numpy, pyzmq, msgpack), and the drivers
keep the room rule (rooms inside functions, ``tests/test_architecture.py``).

User mistakes raise :class:`gaze3d.errors.Gaze3DError` (or ``FileNotFoundError``)
and are printed as one line, exit code 2; anything else is a bug and keeps
its traceback. One exception, handled here and nowhere else: a checkpoint the
user named (a command sets ``model_option``) that the model code cannot use
(a tensor of the wrong shape, a config it does not know) fails inside torch or
safetensors with their own error types; that is the user's file, not a bug, so
it is one line naming the file too (``GAZE3D_DEBUG=1`` shows the traceback).

Shared options (viewport, display size, ``WxH`` sizes) are parsed by
:mod:`._args`; :func:`._args.normalise_argv` accepts their older
space-separated spellings.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
import warnings
from pathlib import Path

from .. import __version__
from ._args import normalise_argv
from ..errors import Gaze3DError, Gaze3DWarning


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (like every other bad input), exit 2.

    Subcommand parsers inherit the class, so ``gaze3d view --window 12`` prints
    ``gaze3d view: error: argument --window: expected WIDTHxHEIGHT ...`` and nothing else.
    """

    def error(self, message):
        command = " ".join(self.prog.split()[:2])      # "gaze3d calibrate", as for errors raised in run()
        self.exit(2, f"{command}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gaze3d",
        description="Label 3D scans with eye gaze: stream gaze, accumulate occlusion-aware "
                    "attention on point clouds, meshes and volumes, and segment with it.",
    )
    parser.add_argument("--version", action="version", version=f"gaze3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(normalise_argv(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:      # a usage error (one line, 2) or --help/--version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            code = args.func(args)
    # the OSErrors a path the user named can cause (an output folder under a file, say): one line each
    except (Gaze3DError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
            PermissionError) as exc:
        print(f"gaze3d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        message = _user_model_error(args, exc)
        if message is None:
            raise
        print(f"gaze3d {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gaze3d {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and closed early: not an error of ours

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(code or 0)


def _one_line_warnings(command: str, show):
    """``warnings.showwarning`` that prints gaze3d's own warnings (about the user's data) as one
    ``gaze3d COMMAND: warning: ...`` line, like its errors, and hands any other to ``show``."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, Gaze3DWarning):
            print(f"gaze3d {command}: warning: {message}", file=sys.stderr if file is None else file)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def _user_model_error(args, exc: BaseException):
    """One line for an error raised by the model code while it used a checkpoint the user named, else None.

    The command names its checkpoint option with ``set_defaults(model_option="model")``. Only
    errors raised inside the models room (``gaze3d.models``) qualify, so a bug in the command's
    own code keeps its traceback; ``GAZE3D_DEBUG=1`` keeps it always.
    """
    option = getattr(args, "model_option", None)
    path = getattr(args, option, None) if option else None
    if path is None or os.environ.get("GAZE3D_DEBUG"):
        return None

    room = sys.modules.get("gaze3d.models")     # not loaded: the error cannot come from it
    if room is None or not getattr(room, "__file__", None):
        return None
    models = str(Path(room.__file__).resolve().parent)      # installed beside gaze3d/, not inside it
    here = {str(Path(f.filename).resolve()) for f in traceback.extract_tb(exc.__traceback__)}
    if not any(f.startswith(models + os.sep) for f in here):
        return None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    flag = "--" + option.replace("_", "-")
    return (f"{flag} {path}: this checkpoint cannot be used ({type(exc).__name__}: {first[:300]}); "
            f"was it written by this gaze3d version's `gaze3d train`?")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
