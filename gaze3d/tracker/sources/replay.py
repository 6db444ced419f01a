"""The ``replay`` source: a saved recording played back at 1x or N x speed.

Reads gaze3d recordings (:class:`gaze3d.recording.Recording`, the tracker's
SQLite files) and BIDS eye-tracking TSV files (``*_physio.tsv.gz``, ``*_eyetrack.tsv[.gz]``
with their JSON sidecar, through :mod:`gaze3d.bids`), so sessions recorded
elsewhere can be replayed into the viewer.

Options
-------
path : the recording (required)
speed : float, default 1 (real time); ``max`` (or 0) hands samples out as fast as they are read
loop : true/false, default false (else the source ends after the last sample)
topic : which gaze topic to replay, default ``gaze.2d``

Each sample is the recorded sample dict with the server's stamps (``v``,
``source``, ``session``, ``seq``) removed, so the tracker stamps it again;
``t_device`` is kept, the recorded host time is kept as ``t_recorded_ns``
and ``t_host_ns`` is the replay time. Timing follows the recorded host
times (the device times where those are missing).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from ...errors import InputError
from ...protocol import TOPIC_GAZE_2D
from ._options import Options
from ._pacing import Pacer
from .base import GazeSource

_SERVER_FIELDS = ("v", "source", "session", "seq")


def _load_recording(path: Path, topic: str) -> List[dict]:
    from ...recording import Recording, is_recording
    if is_recording(path):
        with Recording(path) as rec:
            return list(rec.payloads(topic))
    name = path.name.lower()
    if name.endswith((".tsv", ".tsv.gz")):
        try:
            from ... import bids
        except ImportError as exc:
            raise InputError(f"replay option 'path': {path}: BIDS import is not available ({exc})") from None
        return _bids_samples(bids, path, topic)
    raise InputError(f"replay option 'path': {path}: expected a gaze3d recording or a BIDS eye-tracking "
                     f"TSV (*_physio.tsv.gz, *_eyetrack.tsv[.gz])")


def _bids_samples(bids, path: Path, topic: str) -> List[dict]:
    """Samples of a BIDS TSV through gaze3d.bids (import into a recording, then read it)."""
    import tempfile
    from ...recording import Recording
    importer = getattr(bids, "import_bids", None)
    if importer is None:
        raise InputError("replay: gaze3d.bids has no import_bids(); cannot read BIDS TSV files")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "replay.gaze3d"
        importer(path, out)
        with Recording(out) as rec:
            return list(rec.payloads(topic))


class ReplaySource(GazeSource):
    """Replays a recording.

    Thread-safety: one reading thread; ``close`` from another thread makes a
    waiting ``read`` return at once.
    """

    name = "replay"

    def __init__(self, **options):
        o = Options("replay", options)
        path = o.str("path")
        speed = o.raw("speed", 1.0)
        self.loop = o.bool("loop", False)
        self.topic = o.str("topic", TOPIC_GAZE_2D)
        o.check_unused()
        if path is None:
            raise InputError("replay option 'path': required (the recording to play)")
        self.path = Path(path)
        if str(speed).strip().lower() in ("max", "inf", "0", "0.0"):
            self.speed = 0.0
        else:
            self.speed = Options("replay", {"speed": speed}).float("speed", 1.0, 0.0, 1e6, low_open=True)
        self._samples: Optional[List[dict]] = None
        self._t = np.zeros(0)
        self._pos = 0
        self._pacer = Pacer(speed=self.speed, batch=1000)

    def open(self) -> None:
        if not self.path.is_file():
            raise InputError(f"replay option 'path': {self.path}: no such file")
        if self._samples is None:
            samples = _load_recording(self.path, self.topic)
            if not samples:
                raise InputError(f"replay option 'path': {self.path}: no {self.topic!r} samples")
            host = np.array([s.get("t_host_ns", np.nan) for s in samples], dtype=np.float64)
            dev = np.array([np.nan if s.get("t_device") is None else s["t_device"] for s in samples],
                           dtype=np.float64)
            if np.isfinite(host).all():
                t = (host - host[0]) / 1e9
            elif np.isfinite(dev).all():
                t = dev - dev[0]
            else:
                t = np.arange(len(samples)) / 1000.0
            self._t = np.maximum.accumulate(t)        # never backwards
            self._samples = samples
        self._pos = 0
        self._pacer.start(0.0)

    def read(self, timeout_s: float) -> Optional[List[dict]]:
        if self._samples is None:
            return []
        if self._pos >= len(self._samples):
            if not self.loop:
                return None
            self._pos = 0
            self._pacer.start(0.0)
        stop = self._pacer.take(self._t, self._pos, timeout_s)
        i0, self._pos = self._pos, stop
        now = time.monotonic_ns()
        out = []
        for s in self._samples[i0:stop]:
            d = {k: v for k, v in s.items() if k not in _SERVER_FIELDS}
            if "t_host_ns" in d:
                d["t_recorded_ns"] = d["t_host_ns"]
            d["t_host_ns"] = now
            d.setdefault("topic", self.topic)
            out.append(d)
        return out

    def close(self) -> None:
        self._pacer.stop()

    def info(self) -> dict:
        n = 0 if self._samples is None else len(self._samples)
        return {"source": self.name, "path": str(self.path), "speed": self.speed or "max", "loop": self.loop,
                "samples": n, "duration_s": float(self._t[-1]) if n else 0.0}
