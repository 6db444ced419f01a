"""Which correction was in force when: one rule for live sessions and for their replays.

A live session starts with a profile's correction and may switch (the viewer's
``p`` key); each switch is a timeline entry stamped on the tracker clock.
Every sample is corrected with the entry in force at *its own* time stamp
(samples older than the first entry get the first entry), live and in the
replay alike, so a sample still in flight when the profile changes is
corrected the same way in both.

The whole timeline is stored in the recording's metadata under
``"calibration"`` (``TrackerControl.set_meta`` when the tracker process
records, ``RecordingWriter.set_meta`` otherwise): the last entry's
profile/correction at the top level (what :func:`~.profiles.recording_correction`
reads) plus ``history``, the list of entries. Older recordings without
``history`` are read as before: the ``calibration`` meta entry, then the
``calibration`` events in time order.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from gaze3d.errors import InputError
from gaze3d.protocol import TOPIC_GAZE_2D

from .correction import Correction
from .profiles import CALIBRATION_EVENT, META_KEY, Profile, calibration_meta, recording_correction

_BEFORE_ALL = int(np.iinfo(np.int64).min)


class CorrectionTimeline:
    """Corrections in force over a session, by time (tracker clock, ns).

    Thread-safety: not thread-safe; owned by the viewer's render thread.
    """

    def __init__(self):
        self.times: List[int] = []
        self.corrections: List[Correction] = []
        self.entries: List[dict] = []          # meta form: t_host_ns, profile, profile_snapshot, correction

    def __len__(self) -> int:
        return len(self.times)

    def set(self, t_host_ns: int, profile: Optional[Profile] = None,
            correction: Optional[Correction] = None) -> dict:
        """From ``t_host_ns`` on, correct with ``correction`` (default: the profile's; identity without one)."""
        t = int(t_host_ns)
        if self.times and t < self.times[-1]:
            raise InputError(f"correction timeline: t_host_ns {t} is before the previous entry {self.times[-1]}")
        entry = {"t_host_ns": t, **calibration_meta(profile, correction)}
        self.times.append(t)
        self.corrections.append(Correction.from_dict(entry["correction"]))
        self.entries.append(entry)
        return entry

    @property
    def current(self) -> Correction:
        """The correction in force now (identity before any entry)."""
        return self.corrections[-1] if self.corrections else Correction()

    @property
    def profile_name(self) -> Optional[str]:
        return self.entries[-1]["profile"] if self.entries else None

    def index_at(self, t_host_ns) -> np.ndarray:
        """(n,) int: the entry in force at each time (0 for times before the first entry)."""
        t = np.asarray(t_host_ns, dtype=np.int64).reshape(-1)
        idx = np.searchsorted(np.asarray(self.times, dtype=np.int64), t, side="right") - 1
        return np.maximum(idx, 0)

    def apply(self, t_host_ns, xy) -> np.ndarray:
        """Correct gaze by time.

        Parameters
        ----------
        t_host_ns : (n,) int64
            Sample time stamps, tracker clock.
        xy : (n, 2) float64
            Measured tracker coordinates (NaN rows stay NaN).

        Returns
        -------
        (n, 2) float64
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if not self.corrections:
            return xy.copy()
        if len(self.corrections) == 1:
            return self.corrections[0].apply(xy)
        out = np.empty_like(xy)
        idx = self.index_at(t_host_ns)
        for k in np.unique(idx):
            sel = idx == k
            out[sel] = self.corrections[k].apply(xy[sel])
        return out

    def apply_columns(self, columns: dict) -> dict:
        """A copy of ``Recording.samples()`` style columns with ``x``/``y`` corrected by time."""
        for key in ("t_host_ns", "x", "y"):
            if key not in columns:
                raise InputError(f"gaze columns: missing {key!r} (have {sorted(columns)})")
        xy = self.apply(columns["t_host_ns"], np.c_[columns["x"], columns["y"]])
        out = dict(columns)
        out["x"], out["y"] = xy[:, 0], xy[:, 1]
        return out

    def to_meta(self) -> dict:
        """The ``"calibration"`` meta entry: the current profile/correction plus ``history``."""
        if not self.entries:
            return {**calibration_meta(None), "history": []}
        last = self.entries[-1]
        return {"profile": last["profile"], "profile_snapshot": last["profile_snapshot"],
                "correction": last["correction"], "history": list(self.entries)}

    @classmethod
    def from_meta_and_events(cls, meta: dict, events=()) -> "CorrectionTimeline":
        """The timeline a recording was made with (its ``meta`` and ``events()``)."""
        tl = cls()
        entry = meta.get(META_KEY)
        if isinstance(entry, dict) and entry.get("history"):
            for h in entry["history"]:
                try:
                    t = int(h["t_host_ns"])
                    corr = Correction.from_dict(h["correction"])
                except (KeyError, TypeError, ValueError):
                    raise InputError(f"recording meta {META_KEY!r}: bad history entry {h!r}") from None
                tl._append(t, corr, h)
            return tl
        # older recordings: the meta entry, then "calibration" events (see replay rules in profiles.py)
        evs = [e for e in events if e.get("type") == CALIBRATION_EVENT]
        base = recording_correction(meta) if (META_KEY in meta or not evs) else recording_correction({META_KEY: evs[0]})
        tl._append(_BEFORE_ALL, base, {"t_host_ns": None, "correction": base.to_dict()})
        for e in evs:
            tl._append(int(e["t_host_ns"]), recording_correction({META_KEY: e}), e)
        return tl

    @classmethod
    def from_recording(cls, recording) -> "CorrectionTimeline":
        return cls.from_meta_and_events(recording.meta, recording.events())

    def _append(self, t: int, corr: Correction, entry: dict) -> None:
        self.times.append(t)
        self.corrections.append(corr)
        self.entries.append(entry)


def timeline_segments(timeline: CorrectionTimeline) -> List[Tuple[Optional[int], Optional[str], str]]:
    """(start t_host_ns or None, profile, correction kind) per entry: a readable summary."""
    return [(None if t == _BEFORE_ALL else t, e.get("profile"), c.kind)
            for t, e, c in zip(timeline.times, timeline.entries, timeline.corrections)]


def replay_samples(recording, topic: str = TOPIC_GAZE_2D) -> dict:
    """``recording.samples(topic)`` corrected as they were live.

    Recordings made by the viewer store the whole correction timeline in the
    ``calibration`` meta entry (``history``; :class:`CorrectionTimeline`): each
    sample gets the entry in force at its ``t_host_ns`` (the first entry
    before it). Older recordings: samples get the correction of the last
    ``calibration`` event at or before their ``t_host_ns``; samples before
    the first such event get the one in the recording's ``calibration`` meta
    entry, else the first event's; identity if neither.
    """
    return CorrectionTimeline.from_recording(recording).apply_columns(recording.samples(topic))
