"""Gaze sources: ``get_source(name, **options)`` builds one by its ``--source`` name.

Each source lives in its own module, imported only when asked for, so device
SDKs (tobii_research, pylsl, python-xlib) are never imported by the others.
Options arrive as strings from the CLI (``--opt key=value``) or typed from
Python; each source parses and validates its own and rejects unknown ones.
See ``docs/sources.md``.
"""
from __future__ import annotations

import importlib

from ...errors import InputError
from .base import GazeSource, SourceError

#: source name -> "module:class" (relative to this package)
_REGISTRY = {
    "sim": "sim:SimSource",
    "mouse": "mouse:MouseSource",
    "replay": "replay:ReplaySource",
    "tobii": "tobii:TobiiSource",
    "pupil": "pupil:PupilSource",
    "lsl": "lsl:LslSource",
}

SOURCE_NAMES = tuple(_REGISTRY)


def source_class(name: str, /) -> type:
    """The :class:`GazeSource` subclass registered as ``name``."""
    if name not in _REGISTRY:
        raise InputError(f"gaze source {name!r}: unknown; expected one of {', '.join(SOURCE_NAMES)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def get_source(name: str, /, **options) -> GazeSource:
    """Build the source ``name`` with its options (validated now; the device is opened by ``open()``).

    Raises
    ------
    InputError
        Unknown source, unknown option or a bad option value.
    """
    return source_class(name)(**options)


__all__ = ["GazeSource", "SourceError", "SOURCE_NAMES", "get_source", "source_class"]
