"""Per-point or per-voxel value arrays from ``.npy``, ``.txt`` and ``.csv`` files (attention, mostly).

One reader for every command that takes such a file, so a file that is not a
plain array of real numbers is the same one-line :class:`InputError` everywhere.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ._common import check_regular, extension

#: the extensions :func:`read_array` reads
ARRAY_EXTENSIONS = (".npy", ".txt", ".csv")


def read_array(path, what: str = "") -> np.ndarray:
    """``(n, ...)`` float32 array of real numbers from a ``.npy``, ``.txt`` or ``.csv`` file.

    Parameters
    ----------
    path : str or Path
        The file (``.txt``: whitespace-separated, ``.csv``: comma-separated,
        one row per line).
    what : str
        The option that named it (``"--attention"``), for the message.

    Raises
    ------
    InputError
        Missing or not a regular file, unreadable, truncated, not numeric
        (strings, objects, pickles, complex numbers) or a single number.
    """
    p = Path(path)
    where = f"{what} {p}" if what else str(p)
    ext = extension(p)
    if ext not in ARRAY_EXTENSIONS:
        raise InputError(f"{where}: expected a {', '.join(ARRAY_EXTENSIONS)} file, got {ext or 'no extension'!r}")
    try:
        check_regular(p)
    except InputError as exc:
        raise InputError(f"{what + ' ' if what else ''}{exc}") from None
    try:
        if ext == ".npy":
            a = np.load(p, allow_pickle=False)
        else:
            a = np.loadtxt(p, delimiter="," if ext == ".csv" else None, ndmin=1)
    except (ValueError, EOFError, OSError) as exc:
        # truncated .npy, pickled/object data, text that is not numbers: numpy's reason, on one line
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"{where}: not a readable array of numbers ({reason})") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
        kind = getattr(a, "dtype", type(a))
        raise InputError(f"{where}: expected real numbers, got {kind} values")
    if a.ndim == 0:
        raise InputError(f"{where}: expected an array (one value per point or voxel), got a single number")
    return a.astype(np.float32, copy=False)
