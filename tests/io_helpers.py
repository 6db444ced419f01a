"""Shared by the file-writing tests: a 027 umask for the duration of a test, and a file's permission bits."""
from __future__ import annotations

import os
import stat

import pytest


@pytest.fixture
def umask_027():
    """Run the test under ``umask 027``; yields the mode a new file then gets (0o640)."""
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def file_mode(path) -> int:
    """The permission bits of ``path`` (``stat.S_IMODE``)."""
    return stat.S_IMODE(os.stat(path).st_mode)
