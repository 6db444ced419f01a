"""Make a gaze source from a ``--source`` value: a built-in name or a plugin class.

``--source sim`` asks :func:`gaze3d.tracker.sources.get_source`. A value of the
form ``module:pkg.mod:Class`` (or just ``pkg.mod:Class``) imports ``pkg.mod``
and instantiates ``Class(**options)``, so users can serve their own devices
without changing gaze3d: the class must subclass
:class:`gaze3d.tracker.sources.base.GazeSource`. Options arrive as strings from
the command line (``--opt rate_hz=1200``); the class parses its own.
"""
from __future__ import annotations

import importlib
from typing import Dict

from ..errors import InputError
from .sources.base import GazeSource


def parse_options(pairs) -> Dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; raises :class:`InputError` on a pair without ``=``."""
    out: Dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise InputError(f"--opt {pair!r}: expected key=value")
        out[key.strip()] = value
    return out


def make_source(spec: str, options: Dict[str, object] | None = None) -> GazeSource:
    """The source for ``spec`` (see the module docstring), not yet opened."""
    options = dict(options or {})
    # error messages quote ``spec`` as the user typed it
    target = spec[len("module:"):] if spec.startswith("module:") else spec
    if ":" in target:
        module_name, _, class_name = target.rpartition(":")
        if not module_name.strip(":") or not class_name:
            raise InputError(f"--source {spec}: expected module:pkg.mod:Class")
        try:
            module = importlib.import_module(module_name)
        except (ImportError, ValueError, TypeError) as exc:  # ValueError/TypeError: malformed names (".rel")
            raise InputError(f"--source {spec}: cannot import module {module_name!r} ({exc})") from None
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, GazeSource)):
            raise InputError(f"--source {spec}: {module_name}.{class_name} is not a GazeSource subclass")
        try:
            return cls(**options)
        except TypeError as exc:
            raise InputError(f"--source {spec}: bad options {sorted(options)} ({exc})") from None
    try:
        from .sources import get_source
    except ImportError:
        raise InputError(f"--source {spec}: built-in sources are not available in this installation") from None
    return get_source(target, **options)
