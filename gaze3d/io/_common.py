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


def umask() -> int:
    """The process umask, read without changing it where the OS allows (``os.umask`` is process-global)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)      # no /proc (macOS, Windows): read it by setting it back at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it over ``path`` on success.

    The temporary name keeps the full extension (libraries such as SimpleITK
    and trimesh pick the format from it) and lives in the same folder, so
    ``os.replace`` is atomic. Before the move the file gets the usual mode
    (``0o666 & ~umask``, as ``open`` gives; ``mkstemp``-style 0600 would hide
    an export from its readers) and is flushed to disk (``fsync`` of the file,
    then of the folder), so a crash leaves the old file or the new one. On any
    error the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        Final destination; its folder must exist.
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
        if not tmp.is_file():       # a writer that silently wrote nothing must not replace the target
            raise ScanFormatError(f"{final}: the writer produced no file")
        os.chmod(tmp, 0o666 & ~umask())
        _fsync(tmp)
        os.replace(tmp, final)
        _fsync(folder, directory=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync(path: Path, directory: bool = False) -> None:
    """Flush ``path`` to disk; folders cannot be opened on Windows and some filesystems refuse, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)
