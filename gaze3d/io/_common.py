"""Shared helpers of the scan readers and writers: paths, errors, atomic writes."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from ..errors import ScanFormatError

# Longest first, so ".nii.gz" wins over ".gz".
_DOUBLE_SUFFIXES = (".nii.gz",)


def extension(path) -> str:
    """Lower-case extension of ``path`` including the dot, ``.nii.gz`` kept whole."""
    name = Path(path).name.lower()
    for suffix in _DOUBLE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


def check_readable(path, *, allow_dir: bool = False) -> Path:
    """Return ``path`` as a Path or raise a one-line :class:`ScanFormatError`."""
    p = Path(path)
    if not p.exists():
        raise ScanFormatError(f"{p}: no such file")
    if p.is_dir() and not allow_dir:
        raise ScanFormatError(f"{p}: is a folder, expected a scan file")
    if p.is_file() and p.stat().st_size == 0:
        raise ScanFormatError(f"{p}: empty file (0 bytes)")
    return p


def corrupt(path, kind: str, exc: BaseException | str) -> ScanFormatError:
    """A one-line error for a file that a library failed to parse."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    reason = " ".join(str(reason).split())  # libraries put newlines in messages
    if len(reason) > 200:
        reason = reason[:197] + "..."
    return ScanFormatError(f"{path}: corrupt or truncated {kind} file ({reason})")


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it over ``path`` on success.

    The temporary name keeps the full extension (libraries such as SimpleITK
    and trimesh pick the format from it) and lives in the same folder, so
    ``os.replace`` is atomic. On any error the temporary file is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        Final destination.
    """
    final = Path(path)
    folder = final.parent if str(final.parent) else Path(".")
    if not folder.is_dir():
        raise ScanFormatError(f"{final}: folder {folder} does not exist")
    ext = extension(final)
    stem = final.name[: len(final.name) - len(ext)] if ext else final.name
    tmp = folder / f".{stem}.{secrets.token_hex(4)}.tmp{ext}"
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
