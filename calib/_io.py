"""Atomic file writes for calibration files: :func:`gaze3d.io._common.atomic_path` with bytes or text.

One helper for the whole project (temporary file beside the target, the
umask's mode, ``fsync`` of the file and its folder, ``os.replace``); this
module only adds the missing folders and the bytes/text convenience.
"""
from __future__ import annotations

from pathlib import Path

from gaze3d.io._common import atomic_path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))
