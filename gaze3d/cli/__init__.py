"""The ``gaze3d`` command line.

Each subcommand lives in its own module in this package and defines::

    def register(subparsers) -> argparse.ArgumentParser:
        p = subparsers.add_parser("name", help="one line", description="more")
        ...
        p.set_defaults(func=run)

    def run(args) -> int | None: ...

Modules are discovered automatically, so adding a command is adding a file.
Command modules import heavy packages (torch, VTK, Open3D) inside ``run``
only: ``gaze3d --help`` and ``gaze3d tracker`` stay lean.

User mistakes raise :class:`gaze3d.errors.Gaze3DError` (or ``FileNotFoundError``)
and are printed as one line, exit code 2; anything else is a bug and keeps
its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import Gaze3DError


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except (Gaze3DError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"gaze3d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gaze3d {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and closed early: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
