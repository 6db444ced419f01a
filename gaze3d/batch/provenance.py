"""Which scan a recording was made on, and content hashes of inputs and outputs.

A recording stores the scan it was made on in its metadata
(``scan_path``, ``scan_sha256``; :func:`scan_provenance` computes them), so a
batch that pairs it with another scan fails with a clear error instead of
writing a silent wrong answer (:func:`check_scan_pairing`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import InputError

#: metadata keys a recording stores about its scan (``RecordingWriter.set_meta``)
META_SCAN_PATH = "scan_path"
META_SCAN_SHA256 = "scan_sha256"

_CHUNK = 1 << 20
# (absolute path, size, mtime_ns) -> hex digest: a batch hashes each scan once,
# however many recordings are paired with it
_CACHE: Dict[Tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    digest = h.hexdigest()
    _CACHE[key] = digest
    return digest


def file_sha256(path) -> str:
    """SHA-256 (hex) of a file, or of a folder (a DICOM series: names and contents, sorted).

    Raises ``FileNotFoundError`` naming the path when it does not exist.
    """
    p = Path(path)
    if p.is_file():
        return _file_digest(p)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f.relative_to(p).as_posix().encode() + b"\0" + _file_digest(f).encode() + b"\n")
        return h.hexdigest()
    raise FileNotFoundError(f"{p}: no such file")


def recording_sha256(path) -> str:
    """SHA-256 of a recording: its SQLite file plus its write-ahead log when one is left beside it.

    A tracker killed mid-session leaves committed rows in ``<file>-wal``; they
    are part of the recording, so they are part of its hash.
    """
    p = Path(path)
    digest = file_sha256(p)
    wal = p.with_name(p.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        digest = hashlib.sha256((digest + file_sha256(wal)).encode()).hexdigest()
    return digest


def scan_provenance(scan_path) -> dict:
    """``{"scan_path": absolute path, "scan_sha256": hex}``: the metadata a recording stores about its scan."""
    p = Path(scan_path)
    return {META_SCAN_PATH: str(p.resolve()), META_SCAN_SHA256: file_sha256(p)}


def stamp_recording(set_meta, scan_path) -> Optional[dict]:
    """Store :func:`scan_provenance` through ``set_meta(key, value)`` (a writer's or a tracker control's).

    Returns the stored dict, or None when ``scan_path`` is None or not a file
    on this machine (an in-memory scan has nothing to pair with).
    """
    if scan_path is None or not Path(str(scan_path)).exists():
        return None
    meta = scan_provenance(scan_path)
    for key, value in meta.items():
        set_meta(key, value)
    return meta


def check_scan_pairing(recording_path, meta: dict, scan_path, scan_sha256: str) -> str:
    """Check that a recording was made on ``scan_path``; return how it was checked.

    Parameters
    ----------
    recording_path : path, for messages
    meta : dict
        The recording's metadata (``Recording.meta``).
    scan_path : path, for messages
    scan_sha256 : str
        Hash of the scan the batch pairs the recording with.

    Returns
    -------
    "sha256" when the recording's stored hash matched, "unchecked" when the
    recording stores none (recordings made before pairing was recorded).

    Raises
    ------
    InputError
        The recording stores another scan's hash.
    """
    want = meta.get(META_SCAN_SHA256)
    if not want:
        return "unchecked"
    if str(want) != scan_sha256:
        made_on = meta.get(META_SCAN_PATH, "an unnamed scan")
        raise InputError(f"{recording_path}: recorded on {made_on} (scan_sha256 {str(want)[:12]}...), "
                         f"but paired with {scan_path} (sha256 {scan_sha256[:12]}...): wrong scan")
    return "sha256"


def default_checkpoint() -> Path:
    """The shipped interactive checkpoint, found without importing torch.

    The same file as ``gaze3d.models.interactive.DEFAULT_CHECKPOINT`` (which
    imports torch); ``tests/test_batch.py`` checks that they agree.
    """
    import importlib.util

    spec = importlib.util.find_spec("gaze3d.models")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("--model: gaze3d.models is not installed (pip install 'gaze3d[models]'); "
                         "give a checkpoint or use task 'attention'")
    return Path(list(spec.submodule_search_locations)[0]) / "checkpoints" / "interactive_unet14.safetensors"


def environ_threads(n: int) -> None:
    """Pin BLAS/OpenMP pools to ``n`` threads in this process (set before torch/numpy spin them up)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
