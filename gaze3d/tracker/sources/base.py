"""The interface every gaze source implements (sim, mouse, replay, tobii, pupil, lsl).

A source turns a device (or a simulator, or a file) into *sample dicts*. The
tracker server polls it in its own thread, stamps each sample with the
sequence number, source id, schema version and host receive time, records it
and publishes it. Sources never touch sockets of the tracker's PUB side.

Sample dict fields (all optional unless marked; see ``docs/protocol.md``)
--------------------------------------------------------------------------
``topic`` (required)
    ``"gaze.2d"`` for display gaze, ``"gaze.3d"`` for VR world rays.
``t_device`` (required)
    The device's own timestamp, in **seconds** as float (converted by the source
    from the device's unit), or None if the device has none.
``t_host_ns``
    ``time.monotonic_ns()`` when the sample reached this host. The server fills
    it in if the source leaves it out.
``gaze``
    ``[x, y]`` combined gaze, normalised display coordinates, origin top-left
    (NaN or None if invalid).
``valid``
    bool, combined validity.
``left`` / ``right``
    per-eye dicts: ``gaze`` [x, y], ``valid`` bool, ``pupil_mm`` float,
    ``origin_mm`` [x, y, z] and ``direction`` [x, y, z] in the tracker's 3D
    frame when the device gives them.
``ray_origin`` / ``ray_direction``
    world-space gaze ray (VR, topic ``gaze.3d``).
``head_pose``
    16 floats, row-major 4x4 world-from-head (VR).
``truth``
    simulator only: ground-truth event label (``"fixation"``, ``"saccade"``,
    ``"pursuit"``, ``"blink"``) and target, for tests.

Thread-safety: a source instance is used by one thread at a time (the
tracker's acquisition thread); ``close`` may be called from another thread and
must make a blocked ``read`` return promptly.
"""
from __future__ import annotations

import abc
from typing import List


class SourceError(RuntimeError):
    """The device disconnected or failed; the server retries ``open`` with backoff."""


class GazeSource(abc.ABC):
    """Base class of gaze sources.

    Subclasses set ``name`` (the ``--source`` value) and implement ``open``,
    ``read`` and ``close``.
    """

    name: str = "base"

    @abc.abstractmethod
    def open(self) -> None:
        """Connect to the device. Raises :class:`SourceError` if it is not there."""

    @abc.abstractmethod
    def read(self, timeout_s: float) -> List[dict]:
        """Return the samples that arrived since the last call, waiting up to ``timeout_s``.

        Returns an empty list on timeout; raises :class:`SourceError` on disconnect;
        returns ``None`` when a finite source (replay, scripted sim) is exhausted.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device. Idempotent."""

    def info(self) -> dict:
        """Static description for the ``status`` reply (model, serial, rate...)."""
        return {"source": self.name}

    def counters(self) -> dict:
        """Live counters for the tracker's ``status`` reply (``source_counters``), e.g. decode failures.

        Called from the control thread while ``read`` runs: return a copy of
        plain ints/strings; the default has none.
        """
        return {}

    def calibrate(self, action: str, **params) -> dict:
        """Device calibration hook for the control socket's ``calibrate`` command.

        ``action`` is ``"start"``, ``"point"`` (with ``x``, ``y`` normalised
        display coordinates), ``"compute"`` or ``"stop"``; the reply is a plain
        dict with ``ok`` and, where the device says more, its result. Sources
        without a device calibration answer ``ok: False``.
        """
        return {"ok": False, "error": f"source {self.name!r} has no device calibration"}


class ThreadReleasedSource(GazeSource):
    """A source whose device handle is released by the thread that reads it.

    ``close`` may come from another thread while ``read`` waits on the device:
    it sets ``_closed`` (which subclasses' ``_read`` loops check, so the wait
    ends promptly) and the handle is released by ``close`` itself when no read
    is under way, else by ``read`` on its way out. Subclasses implement
    ``_read`` (the body of :meth:`read`) and ``_release`` (idempotent).
    """

    _closed = False
    _reading = False

    def read(self, timeout_s: float):
        self._reading = True
        try:
            return self._read(timeout_s)
        finally:
            self._reading = False
            if self._closed:
                self._release()

    def close(self) -> None:
        self._closed = True
        if not self._reading:
            self._release()

    @abc.abstractmethod
    def _read(self, timeout_s: float):
        """Like :meth:`GazeSource.read`."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Release the device handle; safe to call twice."""
