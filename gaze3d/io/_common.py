"""Shared helpers of the scan readers and writers: paths, errors, atomic writes."""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from ..errors import InputError, ScanFormatError

# Longest first, so ".nii.gz" wins over ".gz".
_DOUBLE_SUFFIXES = (".nii.gz",)


def extension(path) -> str:
    """Lower-case extension of ``path`` including the dot, ``.nii.gz`` kept whole."""
    name = Path(path).name.lower()
    for suffix in _DOUBLE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


# Largest expansion of a deflate (zlib/gzip) stream: 1032 output bytes per input byte
# (258-byte matches coded in 2 bits). Compressed payloads cannot hold more than this.
DEFLATE_MAX_RATIO = 1032

_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular(path) -> os.stat_result:
    """Stat ``path`` (following links); raise unless it is a regular file.

    Reading a FIFO blocks forever and ``/dev/zero`` never ends, so every file
    a reader opens (the scan, and data files its header names) passes here
    first.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ScanFormatError(f"{p}: no such file") from None
    except OSError as exc:
        raise ScanFormatError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "not a file")
        raise ScanFormatError(f"{p}: not a regular file ({kind})")
    return st


def check_readable(path, *, allow_dir: bool = False) -> Path:
    """Return ``path`` as a Path or raise a one-line :class:`ScanFormatError`.

    Accepts a regular file (not empty), or with ``allow_dir`` a folder (a
    DICOM series); FIFOs, devices and sockets are refused before anything
    opens them.
    """
    p = Path(path)
    if not p.exists():
        raise ScanFormatError(f"{p}: no such file")
    if p.is_dir():
        if not allow_dir:
            raise ScanFormatError(f"{p}: is a folder, expected a scan file")
        return p
    if check_regular(p).st_size == 0:
        raise ScanFormatError(f"{p}: empty file (0 bytes)")
    return p


def referenced_file(header, name: str, what: str) -> os.stat_result:
    """Stat a data file that a header names (relative to the header's folder); must be regular.

    The error names the header first: ``ct.mhd: data file /data/ct.raw: no such file``.
    """
    try:
        return check_regular(Path(header).parent / name)
    except ScanFormatError as exc:
        raise ScanFormatError(f"{header}: {what} {exc}") from None


def too_short(path, kind: str, claim: str, need: int, have: int, where: str = "the file holds") -> ScanFormatError:
    """The one-line error for a header count that the file's size cannot hold.

    ``claim`` says what the header announces (``"header claims 4294967280
    points of 34 bytes"``); ``need`` and ``have`` are byte counts.
    """
    return ScanFormatError(f"{path}: corrupt or truncated {kind} file ({claim} = {need:,} bytes, "
                           f"{where} {have:,} bytes)")


@contextlib.contextmanager
def scan_errors(path=None) -> Iterator[None]:
    """Re-raise an :class:`InputError` from building a scan as a :class:`ScanFormatError`.

    The scan types validate on construction (face indices in range, finite
    coordinates); from a reader, such a failure is a problem of the file.
    """
    try:
        yield
    except ScanFormatError:
        raise
    except InputError as exc:
        msg = str(exc)
        if path is not None and str(path) not in msg:
            msg = f"{path}: {msg}"
        raise ScanFormatError(msg) from None


class CapturedStderr:
    """What C code wrote to file descriptor 2 inside :func:`quiet_stderr`."""

    text = ""

    @property
    def last_line(self) -> str:
        """The last non-empty line, without ITK/niftilib prefixes (``** ERROR:``)."""
        lines = [ln.strip() for ln in self.text.splitlines() if ln.strip()]
        return lines[-1].lstrip("*").strip() if lines else ""


@contextlib.contextmanager
def quiet_stderr() -> Iterator[CapturedStderr]:
    """Redirect file descriptor 2 to a temporary file for the duration of a library call.

    niftilib and MetaIO print ``** ERROR: ...`` / ``MetaImage: ...`` lines
    with ``fprintf(stderr)`` before ITK raises, so a user would see them
    above gaze3d's one-line error. The captured text is kept (``.text``,
    ``.last_line``) for the error message. Other threads' stderr goes to the
    same file meanwhile (kept only in ``.text``): the calls wrapped are ITK
    header and image reads, seconds at most. Sections
    are serialised by a lock: two threads swapping fd 2 at once could leave
    it pointing at a deleted temporary file.
    """
    captured = CapturedStderr()
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)          # C code writes to fd 2 whatever sys.stderr is
        except OSError:                # no fd 2 at all (pythonw, some daemons): nothing to hide
            yield captured
            return
        with _redirect_fd2(saved, captured):
            yield captured


_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def _redirect_fd2(saved: int, captured: CapturedStderr) -> Iterator[None]:
    """Point fd 2 at a temporary file; restore ``saved`` and keep the text in ``captured``."""
    with tempfile.TemporaryFile() as sink:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, ValueError, OSError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read(1 << 16).decode(errors="replace")


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
