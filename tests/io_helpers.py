"""Shared by the file-writing tests: a file's permission bits (the ``umask_027`` fixture is in conftest.py)."""
from __future__ import annotations

import os
import stat


def file_mode(path) -> int:
    """The permission bits of ``path`` (``stat.S_IMODE``)."""
    return stat.S_IMODE(os.stat(path).st_mode)
