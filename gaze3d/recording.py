"""Crash-safe gaze recordings: one SQLite file (WAL mode) per session.

A recording holds every gaze sample the tracker received (one row per sample:
indexed columns for fast reading plus the full msgpack payload), the viewer's
camera frames, annotation events and JSON metadata. Rows are committed in
small transactions (every ``commit_interval_s``, 50 ms by default), and SQLite
in WAL mode keeps every committed transaction when the writing process is
killed (``kill -9``), so a crash loses at most the last uncommitted interval
and never data already recorded.

Tables: ``samples(id, topic, seq, t_host_ns, t_device, x, y, valid, pupil_mm,
payload)``, ``cameras(id, t_host_ns, camera)``, ``events(id, t_host_ns,
event)``, ``meta(key, value)``. Payloads, cameras and events are msgpack, meta
values JSON. Timestamps ``t_host_ns`` are the tracker host's monotonic clock.

Only the standard library's sqlite3, numpy and msgpack are used (the tracker
process records).
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .camera import Camera
from .errors import InputError
from .protocol import TOPIC_GAZE_2D, TOPIC_GAZE_3D, pack, unpack

FORMAT_VERSION = 1
APPLICATION_ID = 0x67336472  # "g3dr"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, seq INTEGER, t_host_ns INTEGER NOT NULL,
    t_device REAL, x REAL, y REAL, valid INTEGER NOT NULL, pupil_mm REAL, payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS samples_topic_time ON samples(topic, t_host_ns);
CREATE TABLE IF NOT EXISTS cameras (id INTEGER PRIMARY KEY, t_host_ns INTEGER NOT NULL, camera BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, t_host_ns INTEGER NOT NULL, event BLOB NOT NULL);
"""


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
    pupils = []
    for eye in ("left", "right"):
        e = sample.get(eye)
        if isinstance(e, dict) and e.get("valid", True) and e.get("pupil_mm") is not None:
            p = _finite_or_none(e["pupil_mm"])
            if p is not None:
                pupils.append(p)
    pupil = sum(pupils) / len(pupils) if pupils else _finite_or_none(sample.get("pupil_mm"))
    seq = sample.get("seq")
    return (str(sample.get("topic", TOPIC_GAZE_2D)), None if seq is None else int(seq), t_host_ns,
            _finite_or_none(sample.get("t_device")), x, y, int(valid and x is not None), pupil)


class RecordingWriter:
    """Append samples, camera frames, events and metadata to a new recording file.

    Parameters
    ----------
    path : str or Path
        The ``.sqlite`` file to create. One session = one recording: an existing
        file is never overwritten or appended to (raises :class:`InputError`).
    commit_interval_s : float
        ``add_*`` calls commit when this much time has passed since the last
        commit; call :meth:`commit` from a timer when samples may stop arriving.

    Thread-safety: not thread-safe; use one writer from one thread at a time
    (the tracker's recorder thread owns its writer).
    """

    def __init__(self, path, *, commit_interval_s: float = 0.05):
        self.path = Path(path)
        if self.path.exists():
            raise InputError(f"{self.path}: recording already exists; one session = one recording, "
                             "choose a new file name")
        if not self.path.parent.is_dir():
            raise InputError(f"{self.path}: folder {self.path.parent} does not exist")
        self.commit_interval_s = float(commit_interval_s)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a process crash
        # (only an OS crash/power loss can lose the last ones); no fsync per commit.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        self._db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        self._db.executescript(_SCHEMA)
        self._in_tx = False
        self._last_commit = time.monotonic()
        self.n_samples = 0
        self.set_meta("format_version", FORMAT_VERSION)
        self.set_meta("created_unix_s", time.time())
        self.commit()

    # ------------------------------------------------------------------ writes
    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True

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
        self._begin()
        self._db.executemany(
            "INSERT INTO samples (topic, seq, t_host_ns, t_device, x, y, valid, pupil_mm, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.n_samples += len(rows)
        self.maybe_commit()

    def add_camera(self, t_host_ns: int, camera) -> None:
        """Record the camera shown from ``t_host_ns`` on (a :class:`Camera` or its ``to_dict()``)."""
        d = camera.to_dict() if isinstance(camera, Camera) else Camera.from_dict(camera).to_dict()
        self._begin()
        self._db.execute("INSERT INTO cameras (t_host_ns, camera) VALUES (?, ?)", (int(t_host_ns), pack(d)))
        self.maybe_commit()

    def add_event(self, t_host_ns: int, event: dict) -> None:
        """Record an annotation event (any msgpack-able dict) at ``t_host_ns``."""
        if not isinstance(event, dict):
            raise InputError(f"recording event: expected a dict, got {type(event).__name__}")
        self._begin()
        self._db.execute("INSERT INTO events (t_host_ns, event) VALUES (?, ?)", (int(t_host_ns), pack(event)))
        self.maybe_commit()

    def set_meta(self, key: str, value) -> None:
        """Set a metadata entry; ``value`` must be JSON-serialisable."""
        try:
            text = json.dumps(value)
        except TypeError as exc:
            raise InputError(f"recording meta {key!r}: value is not JSON-serialisable ({exc})") from None
        self._begin()
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (str(key), text))

    def maybe_commit(self) -> None:
        """Commit if ``commit_interval_s`` has passed since the last commit."""
        if self._in_tx and time.monotonic() - self._last_commit >= self.commit_interval_s:
            self.commit()

    def commit(self) -> None:
        """Make everything added so far durable against a crash of this process."""
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False
        self._last_commit = time.monotonic()

    def close(self) -> None:
        """Commit, checkpoint the WAL into the main file and close. Idempotent."""
        if self._db is None:
            return
        self.commit()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Recording:
    """Read a recording (also one still being written, or left by a crashed tracker).

    Parameters
    ----------
    path : str or Path
        A file written by :class:`RecordingWriter`.

    Thread-safety: not thread-safe; open one ``Recording`` per thread.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such recording")
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            app = self._db.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a gaze3d recording ({exc})") from None
        if app != APPLICATION_ID:
            self._db.close()
            raise InputError(f"{self.path}: not a gaze3d recording (SQLite application_id {app:#x})")

    @property
    def meta(self) -> dict:
        """Metadata entries (JSON values)."""
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def topics(self) -> dict:
        """``{topic: number of samples}``."""
        return dict(self._db.execute("SELECT topic, COUNT(*) FROM samples GROUP BY topic"))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def samples(self, topic: str = TOPIC_GAZE_2D) -> dict:
        """Samples of one topic as numpy columns, in arrival order.

        Returns
        -------
        dict with ``t_host_ns (n,) int64``, ``t_device (n,) float64`` (s, NaN if
        none), ``x, y (n,) float64`` (normalised display coords, NaN if invalid),
        ``valid (n,) bool``, ``seq (n,) int64`` (-1 if none), ``pupil_mm (n,)
        float64``; for ``gaze.3d`` also ``ray_origin, ray_direction (n, 3)``
        and ``head_pose (n, 4, 4)`` (NaN where absent).
        """
        rows = self._db.execute(
            "SELECT seq, t_host_ns, t_device, x, y, valid, pupil_mm FROM samples WHERE topic = ? ORDER BY id",
            (topic,)).fetchall()
        cols = list(zip(*rows)) if rows else [()] * 7
        out = {
            "seq": np.array([-1 if s is None else s for s in cols[0]], dtype=np.int64),
            "t_host_ns": np.array(cols[1], dtype=np.int64),
            "t_device": np.array(cols[2], dtype=np.float64),
            "x": np.array(cols[3], dtype=np.float64),
            "y": np.array(cols[4], dtype=np.float64),
            "valid": np.array(cols[5], dtype=bool),
            "pupil_mm": np.array(cols[6], dtype=np.float64),
        }
        if topic == TOPIC_GAZE_3D:
            n = len(rows)
            origin = np.full((n, 3), np.nan)
            direction = np.full((n, 3), np.nan)
            pose = np.full((n, 4, 4), np.nan)
            for i, p in enumerate(self.payloads(topic)):
                if p.get("ray_origin") is not None:
                    origin[i] = np.asarray(p["ray_origin"], dtype=np.float64)
                if p.get("ray_direction") is not None:
                    direction[i] = np.asarray(p["ray_direction"], dtype=np.float64)
                if p.get("head_pose") is not None:
                    pose[i] = np.asarray(p["head_pose"], dtype=np.float64).reshape(4, 4)
            out.update(ray_origin=origin, ray_direction=direction, head_pose=pose)
        return out

    def payloads(self, topic: Optional[str] = TOPIC_GAZE_2D) -> Iterator[dict]:
        """The full sample dicts of ``topic`` (all topics if None), in arrival order."""
        if topic is None:
            cur = self._db.execute("SELECT payload FROM samples ORDER BY id")
        else:
            cur = self._db.execute("SELECT payload FROM samples WHERE topic = ? ORDER BY id", (topic,))
        for (blob,) in cur:
            yield unpack(blob)

    def camera_frames(self) -> Tuple[np.ndarray, List[Camera]]:
        """``(t_host_ns (k,) int64, cameras)``: each camera is shown from its time on."""
        rows = self._db.execute("SELECT t_host_ns, camera FROM cameras ORDER BY t_host_ns, id").fetchall()
        return (np.array([r[0] for r in rows], dtype=np.int64),
                [Camera.from_dict(unpack(r[1])) for r in rows])

    def events(self) -> List[dict]:
        """Annotation events in time order, each with its ``t_host_ns`` added."""
        rows = self._db.execute("SELECT t_host_ns, event FROM events ORDER BY t_host_ns, id").fetchall()
        return [{**unpack(blob), "t_host_ns": int(t)} for t, blob in rows]

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


__all__ = ["RecordingWriter", "Recording", "is_recording", "sample_columns", "FORMAT_VERSION"]
