"""Where a labeling session's record goes: the tracker process, or a recording file of the viewer's own.

:class:`LabelingSession` writes cameras, events, metadata and (local) samples
through one :class:`SessionSink` instead of branching on "is there a tracker,
is there a local recording" at every call:

* :class:`TrackerSink`: a running tracker (``--tracker``) takes the cameras,
  events and metadata over its control socket and, with ``--record``, writes
  the session recording itself; gaze comes from its PUB socket; the clock is
  the tracker host's.
* :class:`LocalSink`: no tracker (the mouse is the gaze); with ``--record`` the
  viewer writes the recording; the clock is this process's monotonic clock.
"""
from __future__ import annotations

import time
from typing import List, Optional

from gaze3d.batch.provenance import stamp_recording
from gaze3d.recording import RecordingWriter


class SessionSink:
    """The record of a session. ``from_tracker``: gaze and time come from a tracker process."""

    from_tracker = False
    recording = False            # a session recording is being written (by the tracker or locally)

    def now_ns(self) -> int:
        """Now on the session's clock (ns)."""
        return time.monotonic_ns()

    def poll(self) -> List[dict]:
        """Gaze samples that arrived since the last call (a tracker's)."""
        return []

    def camera(self, t_ns: int, camera) -> None:
        """The camera shown from ``t_ns`` on."""

    def event(self, t_ns: int, event: dict) -> None:
        """An annotation event at ``t_ns``."""

    def meta(self, key: str, value) -> None:
        """A metadata entry of the recording."""

    def samples(self, samples: List[dict]) -> None:
        """Samples of a local source (the mouse) to record."""

    def commit(self) -> None:
        """Once per frame: make what was written durable when due."""

    def close(self) -> None:
        """End the record (stop or close the recording). Idempotent."""


class TrackerSink(SessionSink):
    """A tracker process: it records (with ``record``), the viewer sends it cameras, events and metadata."""

    from_tracker = True

    def __init__(self, link, record=None, scan_source=None):
        self.link = link
        if record is not None:
            link.ctrl.start_recording(str(record))
            self.recording = True
            # the scan's path and SHA-256: `gaze3d batch` refuses to pair the recording with another scan
            stamp_recording(link.ctrl.set_meta, scan_source)
        self._closed = False

    def now_ns(self) -> int:
        return self.link.tracker_time_ns()

    def poll(self) -> List[dict]:
        return self.link.poll()

    def camera(self, t_ns: int, camera) -> None:
        self.link.send_camera(t_ns, camera)

    def event(self, t_ns: int, event: dict) -> None:
        self.link.send_event(event, t_ns)

    def meta(self, key: str, value) -> None:
        link = self.link
        link.request(lambda: link.ctrl.set_meta(key, value))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.recording:
            done = []
            self.link.request(lambda: done.append(self.link.ctrl.stop_recording()))
        self.link.flush(5.0)


class LocalSink(SessionSink):
    """No tracker: the viewer writes the recording itself (``record``), or nothing is recorded (None)."""

    def __init__(self, record=None, annotator: Optional[str] = None, scan_source=None):
        self.writer = None
        if record is not None:
            self.writer = RecordingWriter(record)
            self.recording = True
            self.writer.set_meta("annotator", annotator)
            self.writer.set_meta("scan", str(scan_source))
            stamp_recording(self.writer.set_meta, scan_source)

    def camera(self, t_ns: int, camera) -> None:
        if self.writer is not None:
            self.writer.add_camera(t_ns, camera)

    def event(self, t_ns: int, event: dict) -> None:
        if self.writer is not None:
            self.writer.add_event(t_ns, event)

    def meta(self, key: str, value) -> None:
        if self.writer is not None:
            self.writer.set_meta(key, value)

    def samples(self, samples: List[dict]) -> None:
        if self.writer is not None:
            self.writer.add_samples(samples)

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.maybe_commit()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
