"""Parsing of source options: strings from the CLI (``--opt key=value``) or typed values from Python.

Every parser names the source and the option in its error, for example
``sim option 'rate': expected a number in (0, 2000], got 'fast'``.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence, Tuple

from ...errors import InputError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Options:
    """The options given to one source; tracks which were used so typos are reported.

    Parameters
    ----------
    source : str
        The source name, for error messages.
    options : dict
        ``{name: value}``; values may be strings or already typed.
    """

    def __init__(self, source: str, options: dict):
        self.source = source
        self._opts = dict(options)
        self._used = set()

    def _bad(self, key: str, expected: str, value) -> InputError:
        return InputError(f"{self.source} option {key!r}: expected {expected}, got {value!r}")

    def has(self, key: str) -> bool:
        return key in self._opts and self._opts[key] is not None

    def raw(self, key: str, default=None):
        self._used.add(key)
        v = self._opts.get(key, default)
        return default if v is None else v

    def str(self, key: str, default: Optional[str] = None, choices: Optional[Sequence[str]] = None):
        v = self.raw(key, default)
        if v is None:
            return None
        v = str(v)
        if choices is not None and v not in choices:
            raise self._bad(key, "one of " + ", ".join(choices), v)
        return v

    def float(self, key: str, default: Optional[float] = None, low: Optional[float] = None,
              high: Optional[float] = None, low_open: bool = False, allow_inf: bool = False):
        v = self.raw(key, default)
        if v is None:
            return None
        want = "a number" + (f" in {'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"
                             if low is not None else "")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise self._bad(key, want, v) from None
        if math.isnan(f) or (math.isinf(f) and not allow_inf):
            raise self._bad(key, want, v)
        if low is not None and (f <= low if low_open else f < low):
            raise self._bad(key, want, v)
        if high is not None and f > high:
            raise self._bad(key, want, v)
        return f

    def int(self, key: str, default: Optional[int] = None, low: Optional[int] = None):
        v = self.raw(key, default)
        if v is None:
            return None
        try:
            i = int(str(v), 0) if isinstance(v, str) else int(v)
        except (TypeError, ValueError):
            raise self._bad(key, "an integer" + (f" >= {low}" if low is not None else ""), v) from None
        if isinstance(v, float) and v != i:
            raise self._bad(key, "an integer", v)
        if low is not None and i < low:
            raise self._bad(key, f"an integer >= {low}", v)
        return i

    def bool(self, key: str, default: bool = False) -> bool:
        v = self.raw(key, default)
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise self._bad(key, "true or false", v)

    def floats(self, key: str, n: int, default=None) -> Optional[Tuple[float, ...]]:
        """``n`` comma-separated numbers ("0.5,-0.2") or a sequence of numbers."""
        v = self.raw(key, default)
        if v is None:
            return None
        parts: Iterable = v.split(",") if isinstance(v, str) else v
        try:
            out = tuple(float(p) for p in parts)
        except (TypeError, ValueError):
            raise self._bad(key, f"{n} comma-separated numbers", v) from None
        if len(out) != n or not all(math.isfinite(x) for x in out):
            raise self._bad(key, f"{n} comma-separated finite numbers", v)
        return out

    def check_unused(self) -> None:
        """Raise if an option was given that the source does not know (a typo)."""
        unknown = sorted(set(self._opts) - self._used)
        if unknown:
            known = ", ".join(sorted(self._used))
            raise InputError(f"{self.source}: unknown option(s) {', '.join(map(repr, unknown))}; "
                             f"known options: {known}")
