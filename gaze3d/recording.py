"""Crash-safe gaze recordings: one SQLite file (WAL mode while written) per session, ``.gaze3d``.

A recording holds every gaze sample the tracker received (one row per sample:
indexed columns for fast reading plus the full msgpack payload), the viewer's
camera frames, annotation events and JSON metadata. Rows are committed in
small transactions (every ``commit_interval_s``, 50 ms by default), and SQLite
in WAL mode keeps every committed transaction when the writing process is
killed (``kill -9``), so a crash loses at most the last uncommitted interval
and never data already recorded.

While it is written (and after a crash) a recording is three files:
``SESSION.gaze3d``, ``SESSION.gaze3d-wal`` and ``SESSION.gaze3d-shm``; the
newest committed rows live in the ``-wal`` file. The writer copies them into
the main file every ``checkpoint_interval_s`` (1 s), so the main file alone
lacks at most the last second; a clean :meth:`RecordingWriter.close` leaves one
self-contained file (rollback-journal mode, no sidecars). ``gaze3d record
check SESSION --salvage OUT`` makes one self-contained file from any recording,
including crashed and damaged ones.

Tables: ``samples(id, topic, seq, t_host_ns, t_device, x, y, valid, pupil_mm,
payload)``, ``cameras(id, t_host_ns, camera)``, ``events(id, t_host_ns,
event)``, ``meta(key, value)`` and ``checksums(tbl, first_id, last_id, n,
crc)``. Payloads, cameras and events are msgpack, meta values JSON.
Timestamps ``t_host_ns`` are the tracker host's monotonic clock.

Integrity: every commit stores, per table, the CRC-32 of the rows it added
(``samples``/``cameras``/``events``: one block = the id range of one commit;
``meta``: the whole table). :class:`Recording` verifies them when it opens a
file and warns (:class:`RecordingIntegrityWarning`) naming how many blocks
fail, so bit rot that SQLite itself does not notice is reported rather than
read silently. Format version 1 recordings (no checksums) stay readable.
Damage that SQLite notices ("database disk image is malformed") becomes an
:class:`~gaze3d.errors.InputError` naming the file.

Only the standard library's sqlite3, zlib, numpy and msgpack are used (the
tracker process records).
"""
from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import msgpack
import numpy as np

from .camera import Camera
from .errors import Gaze3DWarning, InputError
from .protocol import TOPIC_GAZE_2D, TOPIC_GAZE_3D, pack, unpack

FORMAT_VERSION = 2  # 2: checksums table; 1 (no checksums) is still read
READABLE_VERSIONS = (1, 2)
APPLICATION_ID = 0x67336472  # "g3dr" in the SQLite header: how a recording is recognised
CHECKPOINT_INTERVAL_S = 1.0  # the main file alone lacks at most this much of a crashed recording
SIDECARS = ("-wal", "-shm")  # SQLite's WAL files next to a recording being written or left by a crash

_DATA_TABLES = ("samples", "cameras", "events")  # rows appended with explicit, contiguous ids from 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, seq INTEGER, t_host_ns INTEGER NOT NULL,
    t_device REAL, x REAL, y REAL, valid INTEGER NOT NULL, pupil_mm REAL, payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS samples_topic_time ON samples(topic, t_host_ns);
CREATE TABLE IF NOT EXISTS cameras (id INTEGER PRIMARY KEY, t_host_ns INTEGER NOT NULL, camera BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, t_host_ns INTEGER NOT NULL, event BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checksums (
    tbl TEXT NOT NULL, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL, n INTEGER NOT NULL,
    crc INTEGER NOT NULL, PRIMARY KEY (tbl, first_id));
"""
_COLUMNS = {"samples": "id, topic, seq, t_host_ns, t_device, x, y, valid, pupil_mm, payload",
            "cameras": "id, t_host_ns, camera", "events": "id, t_host_ns, event"}


class RecordingIntegrityWarning(Gaze3DWarning):
    """Rows of a recording no longer match the checksums written with them."""


def rows_crc(rows: Sequence[tuple]) -> int:
    """CRC-32 of rows as SQLite returns them (tuples of None/int/float/str/bytes).

    Computed from what is read back, on write and on verify alike, so that
    SQLite's type affinity can never make an intact block look changed.
    """
    # tuples pack as msgpack arrays, the same bytes as lists, without copying each row
    return zlib.crc32(msgpack.packb(rows if isinstance(rows, list) else list(rows), use_bin_type=True,
                                    use_single_float=False))


def sidecars(path) -> List[Path]:
    """The SQLite WAL sidecar files (``-wal``, ``-shm``) that exist next to ``path``."""
    path = Path(path)
    return [p for p in (path.with_name(path.name + s) for s in SIDECARS) if p.exists()]


def wal_pending(path) -> bool:
    """True if ``path-wal`` holds rows (a recording being written, or left by a crash).

    An empty ``-wal`` (left by a read-only reader after a clean close) holds nothing.
    """
    wal = Path(str(path) + "-wal")
    try:
        return wal.stat().st_size > 0
    except OSError:
        return False


@contextlib.contextmanager
def recording_tmp(out) -> Iterator[Path]:
    """A temporary path beside ``out`` for a recording written in one go; moved over ``out`` at the end.

    Through :func:`gaze3d.io._common.atomic_path` (the umask's mode, ``fsync``,
    rename); the SQLite ``-wal``/``-shm`` sidecars of the temporary file are
    removed before the move and after a failure, so the result is one file
    and nothing is left behind. Importers and :func:`salvage` write through it.
    """
    from .io._common import atomic_path

    with atomic_path(out) as tmp:
        try:
            yield tmp
        finally:
            for p in sidecars(tmp):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def _damaged(path, exc: Exception) -> InputError:
    return InputError(f"{path}: recording is damaged ({exc}); `gaze3d record check {path} --salvage OUT` "
                      "copies the readable rows into a new file")


def _finite_or_none(value) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def sample_columns(sample: dict) -> tuple:
    """The indexed columns of one sample dict: ``(topic, seq, t_host_ns, t_device, x, y, valid, pupil_mm)``.

    ``pupil_mm`` is the mean pupil diameter of the valid eyes (None if none).
    Raises :class:`InputError` if ``t_host_ns`` is missing.
    """
    try:
        t_host_ns = int(sample["t_host_ns"])
    except KeyError:
        raise InputError("recording sample: missing field 't_host_ns' (host monotonic ns)") from None
    valid = bool(sample.get("valid", True))
    gaze = sample.get("gaze")
    x = y = None
    if gaze is not None and valid:
        x, y = _finite_or_none(gaze[0]), _finite_or_none(gaze[1])
    topic = str(sample.get("topic", TOPIC_GAZE_2D))
    pupils = []
    for eye in ("left", "right"):
        e = sample.get(eye)
        if isinstance(e, dict) and e.get("valid", True) and e.get("pupil_mm") is not None:
            p = _finite_or_none(e["pupil_mm"])
            if p is not None:
                pupils.append(p)
    pupil = sum(pupils) / len(pupils) if pupils else _finite_or_none(sample.get("pupil_mm"))
    seq = sample.get("seq")
    # a VR sample is usable through its world ray; a 2D display point is optional there
    usable = (_ray_ok(sample.get("ray_origin"), sample.get("ray_direction")) if topic == TOPIC_GAZE_3D
              else x is not None)
    return (topic, None if seq is None else int(seq), t_host_ns,
            _finite_or_none(sample.get("t_device")), x, y, int(valid and usable), pupil)


def _ray_ok(origin, direction) -> bool:
    """True if ``origin`` and ``direction`` are finite 3-vectors and the direction is not zero."""
    try:
        o = [float(v) for v in origin]
        d = [float(v) for v in direction]
    except (TypeError, ValueError):  # None, not a sequence, not numbers
        return False
    return (len(o) == 3 and len(d) == 3 and all(map(math.isfinite, o + d))
            and any(v != 0.0 for v in d))


class RecordingWriter:
    """Append samples, camera frames, events and metadata to a new recording file.

    Parameters
    ----------
    path : str or Path
        The ``.gaze3d`` file to create. One session = one recording: an existing
        file is never overwritten or appended to (raises :class:`InputError`).
    commit_interval_s : float
        ``add_*`` calls commit when this much time has passed since the last
        commit; call :meth:`commit` (or :meth:`maybe_commit`) from a timer when
        samples may stop arriving.
    checkpoint_interval_s : float
        A commit copies the WAL into the main file (``PRAGMA
        wal_checkpoint(PASSIVE)``, never blocking readers) when this much time
        has passed since the last copy, so the main file alone of a crashed
        recording lacks at most this much.

    Thread-safety: not thread-safe; use one writer from one thread at a time
    (the tracker's recorder thread owns its writer).
    """

    def __init__(self, path, *, commit_interval_s: float = 0.05,
                 checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S):
        self.path = Path(path)
        if self.path.exists():
            raise InputError(f"{self.path}: recording already exists; one session = one recording, "
                             "choose a new file name")
        if not self.path.parent.is_dir():
            raise InputError(f"{self.path}: folder {self.path.parent} does not exist")
        self.commit_interval_s = float(commit_interval_s)
        self.checkpoint_interval_s = float(checkpoint_interval_s)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        # header fields first: they then reach the main file with the first checkpoint below
        self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        self._db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a process crash
        # (only an OS crash/power loss can lose the last ones); no fsync per commit.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._in_tx = False
        self._wal_rows = False  # committed rows not yet copied into the main file
        self._last_commit = self._last_checkpoint = time.monotonic()
        self._next_id = {t: 1 for t in _DATA_TABLES}
        self._checked = {t: 0 for t in _DATA_TABLES}  # last id covered by a checksum block
        self._dirty: set = set()
        self.n_samples = 0
        self.set_meta("format_version", FORMAT_VERSION)
        self.set_meta("created_unix_s", time.time())
        self.commit()
        # the main file holds the header and schema from the start: a copy of it alone is a recording
        self.checkpoint()

    # ------------------------------------------------------------------ writes
    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True

    def _insert(self, table: str, rows: List[tuple]) -> None:
        """Insert rows (without id) into a data table, ids assigned contiguously."""
        first = self._next_id[table]
        cols = _COLUMNS[table]
        marks = ", ".join("?" * (cols.count(",") + 1))
        self._begin()
        self._db.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})",
                             [(first + i,) + tuple(r) for i, r in enumerate(rows)])
        self._next_id[table] = first + len(rows)
        self._dirty.add(table)

    def add_samples(self, samples: Sequence[dict], payloads: Optional[Sequence[bytes]] = None) -> None:
        """Append sample dicts (see ``gaze3d.tracker.sources.base``); each needs ``t_host_ns``.

        ``payloads``, if given, are the samples' already msgpack-encoded bytes
        (the tracker passes what it published, so nothing is encoded twice).
        """
        if not samples:
            return
        if payloads is None:
            payloads = [pack(s) for s in samples]
        rows = [sample_columns(s) + (p,) for s, p in zip(samples, payloads)]
        self._insert("samples", rows)
        self.n_samples += len(rows)
        self.maybe_commit()

    def add_camera(self, t_host_ns: int, camera) -> None:
        """Record the camera shown from ``t_host_ns`` on (a :class:`Camera` or its ``to_dict()``)."""
        d = camera.to_dict() if isinstance(camera, Camera) else Camera.from_dict(camera).to_dict()
        self._insert("cameras", [(int(t_host_ns), pack(d))])
        self.maybe_commit()

    def add_event(self, t_host_ns: int, event: dict) -> None:
        """Record an annotation event (any msgpack-able dict) at ``t_host_ns``."""
        if not isinstance(event, dict):
            raise InputError(f"recording event: expected a dict, got {type(event).__name__}")
        self._insert("events", [(int(t_host_ns), pack(event))])
        self.maybe_commit()

    def set_meta(self, key: str, value) -> None:
        """Set a metadata entry; ``value`` must be JSON-serialisable."""
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"recording meta {key!r}: value is not JSON-serialisable ({exc})") from None
        self._begin()
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (str(key), text))
        self._dirty.add("meta")

    def _copy_rows(self, table: str, rows: List[tuple]) -> None:
        """Insert rows read from another recording, ids included (salvage); ids must increase."""
        if not rows:
            return
        cols = _COLUMNS[table]
        marks = ", ".join("?" * (cols.count(",") + 1))
        self._begin()
        self._db.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
        self._next_id[table] = max(self._next_id[table], int(rows[-1][0]) + 1)
        self._dirty.add(table)

    def _write_checksums(self) -> None:
        """Inside the open transaction: one checksum block per table changed since the last commit."""
        for table in sorted(self._dirty):
            if table == "meta":
                rows = self._db.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
                self._db.execute("INSERT OR REPLACE INTO checksums VALUES ('meta', 0, 0, ?, ?)",
                                 (len(rows), rows_crc(rows)))
                continue
            rows = self._db.execute(f"SELECT {_COLUMNS[table]} FROM {table} WHERE id > ? ORDER BY id",
                                    (self._checked[table],)).fetchall()
            if rows:
                self._db.execute("INSERT INTO checksums VALUES (?, ?, ?, ?, ?)",
                                 (table, rows[0][0], rows[-1][0], len(rows), rows_crc(rows)))
                self._checked[table] = rows[-1][0]
        self._dirty.clear()

    def maybe_commit(self) -> None:
        """Commit if ``commit_interval_s`` has passed since the last commit; checkpoint if one is due.

        Call it from a timer: when samples stop arriving, the rows of the last
        commits still reach the main file within ``checkpoint_interval_s``.
        """
        now = time.monotonic()
        if self._in_tx and now - self._last_commit >= self.commit_interval_s:
            self.commit()
        elif not self._in_tx and self._wal_rows and now - self._last_checkpoint >= self.checkpoint_interval_s:
            self.checkpoint()

    def commit(self) -> None:
        """Make everything added so far durable against a crash of this process (with its checksums).

        Also copies the WAL into the main file when ``checkpoint_interval_s``
        has passed since the last copy.
        """
        if self._in_tx:
            self._write_checksums()
            self._db.execute("COMMIT")
            self._in_tx = False
            self._wal_rows = True
        self._last_commit = time.monotonic()
        if self._last_commit - self._last_checkpoint >= self.checkpoint_interval_s:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Copy committed rows from the WAL into the main file now (``PRAGMA wal_checkpoint(PASSIVE)``)."""
        busy, log, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self._wal_rows = bool(busy) or copied < log  # a reader's snapshot can hold pages back: retry later
        self._last_checkpoint = time.monotonic()

    def close(self) -> None:
        """Commit, checkpoint the WAL into the main file and close, leaving one file. Idempotent.

        When no reader has the file open, the file is switched back to a
        rollback journal, so it is one self-contained file that opens anywhere
        (with a reader attached it stays in WAL mode; SQLite removes the
        sidecars when the last connection closes).
        """
        if self._db is None:
            return
        try:
            self.commit()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            self._db.execute("PRAGMA busy_timeout=0")  # a reader attached: stay in WAL mode, don't wait
            try:
                self._db.execute("PRAGMA journal_mode=DELETE").fetchall()
            except sqlite3.OperationalError:
                pass
        finally:
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_recording(path, samples: Sequence[dict], meta: dict) -> Path:
    """Write a whole recording at once (an importer's): ``samples`` in order, then the ``meta`` entries.

    Written to a temporary file beside ``path`` and renamed
    (:func:`gaze3d.io._common.atomic_path`), so a failed import leaves no
    half-written recording. Returns ``path``.
    """
    with recording_tmp(path) as tmp:
        with RecordingWriter(tmp, commit_interval_s=3600) as w:
            for start in range(0, len(samples), 10_000):
                w.add_samples(samples[start:start + 10_000])
            for key, value in meta.items():
                w.set_meta(key, value)
    return Path(path)


@dataclass
class IntegrityReport:
    """What :meth:`Recording.verify` found.

    ``checksummed`` is False for format-1 recordings (nothing to compare);
    ``failed`` lists ``(table, first_id, last_id)`` of blocks whose rows
    changed or vanished; ``unverified`` counts rows no checksum block covers
    (a checksum row itself lost).
    """

    checksummed: bool
    blocks: int = 0
    failed: List[Tuple[str, int, int]] = field(default_factory=list)
    failed_rows: int = 0
    unverified: int = 0
    unreadable: bool = False  # the checksums table itself cannot be read

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unverified and not self.unreadable

    def describe(self) -> str:
        if self.unreadable:
            return "the checksums table itself cannot be read"
        if not self.checksummed:
            return "no checksums (format 1 recording): changes cannot be detected"
        if self.ok:
            return f"all {self.blocks} checksum blocks match"
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} of {self.blocks} checksum blocks fail "
                         f"({self.failed_rows} rows changed or missing)")
        if self.unverified:
            parts.append(f"{self.unverified} rows not covered by any checksum")
        return "; ".join(parts)


class Recording:
    """Read a recording (also one still being written, or left by a crashed tracker).

    Parameters
    ----------
    path : str or Path
        A file written by :class:`RecordingWriter`.
    verify : bool
        Compare every row with its checksum on open and warn
        (:class:`RecordingIntegrityWarning`) when blocks fail.

    Any SQLite error while reading ("database disk image is malformed") is an
    :class:`InputError` naming the file. Thread-safety: not thread-safe; open
    one ``Recording`` per thread.
    """

    def __init__(self, path, *, verify: bool = True):
        self.path = Path(path)
        self._db = None
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such recording")
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            app = self._db.execute("PRAGMA application_id").fetchone()[0]
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise InputError(f"{self.path}: not a gaze3d recording ({exc})") from None
        if app != APPLICATION_ID:
            self.close()
            raise InputError(f"{self.path}: not a gaze3d recording (SQLite application_id {app:#x})")
        if version not in READABLE_VERSIONS:
            self.close()
            raise InputError(f"{self.path}: recording format {version}, this gaze3d reads formats "
                             f"{', '.join(map(str, READABLE_VERSIONS))} (update gaze3d)")
        if verify:
            try:
                report = self.verify()
            except BaseException:
                self.close()
                raise
            if not report.ok:
                warnings.warn(f"{self.path}: {report.describe()}; `gaze3d record check {self.path}` "
                              "tells more", RecordingIntegrityWarning, stacklevel=2)

    def _rows(self, sql: str, params: tuple = ()) -> list:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from None

    def _decode(self, blob, what: str):
        try:
            return unpack(blob)
        except Exception as exc:
            raise _damaged(self.path, f"{what}: {exc}") from None

    def verify(self, *, tolerant: bool = False) -> IntegrityReport:
        """Compare every row with the checksum written with it (one consistent snapshot).

        With ``tolerant``, a block SQLite cannot read counts as failed instead
        of raising :class:`InputError` (``gaze3d record check``).
        """
        has = self._rows("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'checksums'")[0][0]
        if not has:
            return IntegrityReport(checksummed=False)
        try:
            self._db.execute("BEGIN")  # one read snapshot: a live writer may append meanwhile
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from None
        try:
            try:
                blocks = self._rows("SELECT tbl, first_id, last_id, n, crc FROM checksums ORDER BY tbl, first_id")
            except InputError:
                if not tolerant:
                    raise
                return IntegrityReport(checksummed=True, unreadable=True)
            report = IntegrityReport(checksummed=True, blocks=len(blocks))
            covered = {t: 0 for t in _DATA_TABLES}
            for table, first, last, n, crc in blocks:
                if table not in _DATA_TABLES and table != "meta":
                    continue
                covered[table] = covered.get(table, 0) + int(n)
                try:
                    rows = self._rows("SELECT key, value FROM meta ORDER BY key" if table == "meta" else
                                      f"SELECT {_COLUMNS[table]} FROM {table} WHERE id BETWEEN ? AND ? ORDER BY id",
                                      () if table == "meta" else (first, last))
                except InputError:
                    if not tolerant:
                        raise
                    rows = None
                if rows is None or len(rows) != n or rows_crc(rows) != crc:
                    report.failed.append((table, int(first), int(last)))
                    report.failed_rows += max(int(n), len(rows or ()))
            for table in _DATA_TABLES:
                try:
                    total = self._rows(f"SELECT count(*) FROM {table}")[0][0]
                except InputError:
                    if not tolerant:
                        raise
                    continue
                report.unverified += max(0, int(total) - covered[table])
            return report
        finally:
            try:
                self._db.execute("COMMIT")  # ends the read snapshot; nothing was written
            except sqlite3.DatabaseError:
                pass

    @property
    def meta(self) -> dict:
        """Metadata entries (JSON values)."""
        out = {}
        for k, v in self._rows("SELECT key, value FROM meta"):
            try:
                out[k] = json.loads(v)
            except (TypeError, ValueError) as exc:
                raise _damaged(self.path, f"meta {k!r}: {exc}") from None
        return out

    def topics(self) -> dict:
        """``{topic: number of samples}``."""
        return dict(self._rows("SELECT topic, COUNT(*) FROM samples GROUP BY topic"))

    def __len__(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM samples")[0][0])

    def samples(self, topic: str = TOPIC_GAZE_2D) -> dict:
        """Samples of one topic as numpy columns, in arrival order.

        Returns
        -------
        dict with ``t_host_ns (n,) int64``, ``t_device (n,) float64`` (s, NaN if
        none), ``x, y (n,) float64`` (normalised display coords, NaN if invalid),
        ``valid (n,) bool``, ``seq (n,) int64`` (-1 if none), ``pupil_mm (n,)
        float64``; for ``gaze.3d`` also ``ray_origin, ray_direction (n, 3)``
        and ``head_pose (n, 4, 4)`` (NaN where absent); there ``valid`` is the
        sample's own flag and a finite ray with a non-zero direction.
        """
        rows = self._rows(
            "SELECT seq, t_host_ns, t_device, x, y, valid, pupil_mm FROM samples WHERE topic = ? ORDER BY id",
            (topic,))
        cols = list(zip(*rows)) if rows else [()] * 7
        try:
            out = {
                "seq": np.array([-1 if s is None else s for s in cols[0]], dtype=np.int64),
                "t_host_ns": np.array(cols[1], dtype=np.int64),
                "t_device": np.array(cols[2], dtype=np.float64),
                "x": np.array(cols[3], dtype=np.float64),
                "y": np.array(cols[4], dtype=np.float64),
                "valid": np.array(cols[5], dtype=bool),
                "pupil_mm": np.array(cols[6], dtype=np.float64),
            }
        except (TypeError, ValueError, OverflowError) as exc:  # a damaged page read as wrong types
            raise _damaged(self.path, f"samples: {exc}") from None
        if topic == TOPIC_GAZE_3D:
            n = len(rows)
            origin = np.full((n, 3), np.nan)
            direction = np.full((n, 3), np.nan)
            pose = np.full((n, 4, 4), np.nan)
            flagged = np.ones(n, dtype=bool)
            for i, p in enumerate(self.payloads(topic)):
                try:
                    flagged[i] = bool(p.get("valid", True))
                    if p.get("ray_origin") is not None:
                        origin[i] = np.asarray(p["ray_origin"], dtype=np.float64)
                    if p.get("ray_direction") is not None:
                        direction[i] = np.asarray(p["ray_direction"], dtype=np.float64)
                    if p.get("head_pose") is not None:
                        pose[i] = np.asarray(p["head_pose"], dtype=np.float64).reshape(4, 4)
                except (AttributeError, TypeError, ValueError, IndexError) as exc:
                    raise _damaged(self.path, f"gaze.3d sample {i}: {exc}") from None
            # validity of a ray sample comes from its ray (recorders before December 2026 stored
            # valid = 0 for every gaze.3d sample without a 2D ``gaze`` point; read those right too)
            ray_ok = np.all(np.isfinite(origin), axis=1) & np.all(np.isfinite(direction), axis=1)
            ray_ok &= np.any(np.nan_to_num(direction) != 0.0, axis=1)
            out.update(ray_origin=origin, ray_direction=direction, head_pose=pose, valid=flagged & ray_ok)
        return out

    def payloads(self, topic: Optional[str] = TOPIC_GAZE_2D) -> Iterator[dict]:
        """The full sample dicts of ``topic`` (all topics if None), in arrival order."""
        try:
            if topic is None:
                cur = self._db.execute("SELECT payload FROM samples ORDER BY id")
            else:
                cur = self._db.execute("SELECT payload FROM samples WHERE topic = ? ORDER BY id", (topic,))
            while True:
                chunk = cur.fetchmany(4096)
                if not chunk:
                    return
                for (blob,) in chunk:
                    yield self._decode(blob, "sample payload")
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from None

    def camera_frames(self) -> Tuple[np.ndarray, List[Camera]]:
        """``(t_host_ns (k,) int64, cameras)``: each camera is shown from its time on."""
        rows = self._rows("SELECT t_host_ns, camera FROM cameras ORDER BY t_host_ns, id")
        cams = []
        for _, blob in rows:
            d = self._decode(blob, "camera")       # raises the "damaged" error itself: not wrapped again below
            try:
                cams.append(Camera.from_dict(d))
            except (InputError, TypeError, ValueError, AttributeError) as exc:
                raise _damaged(self.path, f"camera: {exc}") from None
        return np.array([r[0] for r in rows], dtype=np.int64), cams

    def events(self) -> List[dict]:
        """Annotation events in time order, each with its ``t_host_ns`` added."""
        out = []
        for t, blob in self._rows("SELECT t_host_ns, event FROM events ORDER BY t_host_ns, id"):
            event = self._decode(blob, "event")
            if not isinstance(event, dict):
                raise _damaged(self.path, f"event at t_host_ns {t}: not a map")
            out.append({**event, "t_host_ns": int(t)})
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def is_recording(path) -> bool:
    """True if ``path`` is a gaze3d recording file (checks the SQLite header and application id)."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError:
        return False
    return (len(head) == 100 and head.startswith(b"SQLite format 3\x00")
            and int.from_bytes(head[68:72], "big") == APPLICATION_ID)


# ------------------------------------------------------------ check and salvage
def _open_raw(path: Path) -> sqlite3.Connection:
    """A read-only connection to a file that must at least carry a recording's header."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recording")
    if not is_recording(path):
        raise InputError(f"{path}: not a gaze3d recording (no SQLite header with application_id "
                         f"{APPLICATION_ID:#x}); nothing can be checked or salvaged")
    try:
        return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, exc) from None


def check_recording(path, *, quick: bool = False) -> dict:
    """Check a recording: SQLite's own structure check plus our per-block checksums.

    Parameters
    ----------
    path : path of the recording
    quick : bool
        Run ``PRAGMA quick_check`` (linear time, skips index-vs-table checks)
        instead of ``PRAGMA integrity_check``.

    Returns
    -------
    dict with ``path``, ``ok`` (bool), ``sqlite`` (list of SQLite's messages,
    empty when it finds nothing), ``checksums`` (one line), ``rows`` (``{table:
    count}``, what is readable in full), ``sidecars`` (WAL files next to it).
    Raises :class:`InputError` only when the file is not a recording at all.
    """
    path = Path(path)
    db = _open_raw(path)
    out = {"path": str(path), "sidecars": [p.name for p in sidecars(path)] if wal_pending(path) else [],
           "sqlite": [], "rows": {}}
    try:
        try:
            msgs = [r[0] for r in db.execute(f"PRAGMA {'quick_check' if quick else 'integrity_check'}(100)")]
            out["sqlite"] = [] if msgs == ["ok"] else msgs
        except sqlite3.DatabaseError as exc:
            out["sqlite"] = [str(exc)]
        for table in ("meta",) + _DATA_TABLES:
            try:
                out["rows"][table] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            except sqlite3.DatabaseError as exc:
                out["rows"][table] = f"unreadable ({exc})"
    finally:
        db.close()
    try:
        with Recording(path, verify=False) as rec:
            report = rec.verify(tolerant=True)
        out["checksums"] = report.describe()
        checks_ok = report.ok
    except InputError as exc:  # even the schema is unreadable
        out["checksums"] = f"cannot be verified ({exc})"
        checks_ok = False
    out["ok"] = not out["sqlite"] and checks_ok
    return out


def _read_robust(db: sqlite3.Connection, table: str, cols: str, upper: int, chunk: int = 2048) -> List[tuple]:
    """Every row with rowid 1..upper that SQLite can still read, bisecting around damaged pages."""
    rows: List[tuple] = []

    def read(lo: int, hi: int) -> None:
        try:
            got = db.execute(f"SELECT {cols} FROM {table} WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
                             (lo, hi)).fetchall()
        except sqlite3.DatabaseError:
            if lo < hi:
                mid = (lo + hi) // 2
                read(lo, mid)
                read(mid + 1, hi)
            return
        rows.extend(got)
        if len(got) < hi - lo + 1 and lo < hi:
            # a damaged leaf can end a range scan early without an error: look the missing ids up one by one
            # (each lookup descends from the root, past the damaged page)
            have = {r[0] for r in got}
            for rowid in range(lo, hi + 1):
                if rowid not in have:
                    try:
                        rows.extend(db.execute(f"SELECT {cols} FROM {table} WHERE rowid = ?", (rowid,)).fetchall())
                    except sqlite3.DatabaseError:
                        pass

    for lo in range(1, upper + 1, chunk):
        read(lo, min(upper, lo + chunk - 1))
    rows.sort(key=lambda r: r[0])
    return [r for i, r in enumerate(rows) if i == 0 or r[0] != rows[i - 1][0]]


def _max_rowid(db: sqlite3.Connection, table: str) -> Optional[int]:
    try:
        value = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
        return None if value is None else int(value)
    except sqlite3.DatabaseError:
        return None


def _row_ok(table: str, row: tuple) -> bool:
    """Whether a row read from a damaged file still decodes as what its table holds."""
    try:
        if table == "meta":
            return isinstance(row[1], str) and isinstance(row[2], str) and (json.loads(row[2]) or True)
        if not isinstance(row[0], int) or not isinstance(row[-1], bytes):
            return False
        if table == "samples":
            d = unpack(row[-1])
            return isinstance(row[1], str) and isinstance(row[3], int) and isinstance(d, dict)
        if table == "cameras":
            return isinstance(row[1], int) and Camera.from_dict(unpack(row[2])) is not None
        return isinstance(row[1], int) and isinstance(unpack(row[2]), dict)
    except Exception:  # anything a flipped bit can make of a row
        return False


def salvage(path, out) -> dict:
    """Copy every readable row of a (possibly damaged or crashed) recording into a new one-file recording.

    Rows are read by id range, bisecting around pages SQLite cannot read;
    rows that no longer decode are dropped. Rows that decode but fail their
    checksum block are kept as read and counted as ``changed``. The new
    file has fresh checksums and a ``salvaged_from`` meta entry with this
    report; it is written to a temporary file and renamed (never half-written).

    Returns
    -------
    dict with ``out`` and, per table (``meta``, ``samples``, ``cameras``,
    ``events``): ``expected`` (rows the file should hold: its highest id or
    checksum count), ``recovered``, ``lost`` and ``changed``.
    """
    path, out = Path(path), Path(out)
    if out.exists():
        raise InputError(f"{out}: already exists; choose a new file for the salvaged recording")
    if not out.parent.is_dir():
        raise InputError(f"{out}: folder {out.parent} does not exist")
    if out.resolve() == path.resolve():
        raise InputError(f"{out}: the salvaged copy must be a new file, not the recording itself")
    db = _open_raw(path)
    report: dict = {"source": str(path), "out": str(out)}
    copied: dict = {}
    try:
        try:
            blocks = db.execute("SELECT tbl, first_id, last_id, n, crc FROM checksums").fetchall()
        except sqlite3.DatabaseError:  # format 1, or the checksums table itself damaged
            blocks = []
        for table in ("meta",) + _DATA_TABLES:
            cols = "rowid, key, value" if table == "meta" else _COLUMNS[table]
            mine = [b for b in blocks if b[0] == table]
            upper = max([_max_rowid(db, table) or 0] + [int(b[2]) for b in mine])
            if table == "meta":
                upper = max(upper, 64)  # rowids of replaced keys move up; a small table
            rows = _read_robust(db, table, cols, upper)
            good = [r for r in rows if _row_ok(table, r)]
            changed = 0
            if table == "meta":
                expected = max([int(b[3]) for b in mine] + [len(rows)])
                if mine and (len(good) != mine[0][3] or rows_crc(sorted((r[1], r[2]) for r in good)) != mine[0][4]):
                    changed = len(good)
            else:
                expected = upper
                by_id = {r[0]: r for r in good}
                for _, first, last, n, crc in mine:
                    got = [by_id[i] for i in range(int(first), int(last) + 1) if i in by_id]
                    if len(got) == n and rows_crc(got) != crc:
                        changed += len(got)
            copied[table] = good
            report[table] = {"expected": int(expected), "recovered": len(good),
                             "lost": max(0, int(expected) - len(good)), "changed": changed}
    finally:
        db.close()
    with recording_tmp(out) as tmp:
        with RecordingWriter(tmp, commit_interval_s=3600, checkpoint_interval_s=3600) as w:
            for _, key, value in copied["meta"]:
                if key not in ("format_version", "salvaged_from"):
                    w.set_meta(key, json.loads(value))
            for table in _DATA_TABLES:
                rows = copied[table]
                for start in range(0, len(rows), 10_000):
                    w._copy_rows(table, rows[start:start + 10_000])
                    w.commit()
            w.n_samples = len(copied["samples"])
            w.set_meta("salvaged_from", {k: v for k, v in report.items() if k != "out"})
    return report


__all__ = ["RecordingWriter", "write_recording", "recording_tmp", "Recording", "IntegrityReport",
           "RecordingIntegrityWarning", "is_recording", "sample_columns", "check_recording", "salvage", "sidecars",
           "wal_pending", "rows_crc", "FORMAT_VERSION"]
