"""Hand out pre-computed samples at their due time (real time, N x speed) or as fast as asked.

Used by the ``sim`` and ``replay`` sources.
"""
from __future__ import annotations

import threading
import time

import numpy as np


class Pacer:
    """Decides which samples of a time-ordered block are due.

    Parameters
    ----------
    speed : float
        1.0 plays in real time, 2.0 twice as fast; ``0`` (or ``realtime=False``
        in the sources) hands out ``batch`` samples per call without waiting.
    batch : int
        Samples per call when not paced.

    Thread-safety: :meth:`wait` may be interrupted from another thread by
    :meth:`stop`; everything else belongs to the reading thread.
    """

    def __init__(self, speed: float = 1.0, batch: int = 1000):
        self.speed = float(speed)
        self.batch = int(batch)
        self._stop = threading.Event()
        self.t0_ns = None           # host time of stream time 0
        self.stream_t0 = 0.0

    def start(self, stream_t0: float = 0.0) -> None:
        self.t0_ns = time.monotonic_ns()
        self.stream_t0 = float(stream_t0)
        self._stop.clear()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def due_ns(self, t_stream) -> np.ndarray:
        """Host monotonic ns at which stream times ``t_stream`` (s) are due."""
        rel = (np.asarray(t_stream, dtype=np.float64) - self.stream_t0) / self.speed
        return self.t0_ns + np.round(rel * 1e9).astype(np.int64)

    def take(self, t_stream: np.ndarray, start: int, timeout_s: float) -> int:
        """Index one past the last due sample of ``t_stream[start:]``, waiting up to ``timeout_s``.

        Returns ``start`` if nothing became due (timeout or :meth:`stop`).
        """
        n = len(t_stream)
        if start >= n:
            return start
        if self.speed <= 0:
            return min(n, start + self.batch)
        deadline = time.monotonic_ns() + int(max(0.0, timeout_s) * 1e9)
        while True:
            now = time.monotonic_ns()
            rel_now = (now - self.t0_ns) / 1e9 * self.speed + self.stream_t0
            stop = int(np.searchsorted(t_stream, rel_now, side="right", sorter=None))
            stop = max(stop, start)
            if stop > start or self._stop.is_set():
                return stop
            nxt = self.due_ns(t_stream[start])
            wait_ns = min(int(nxt), deadline) - now
            if now >= deadline:
                return start
            self._stop.wait(max(wait_ns, 0) / 1e9)
