"""The viewer's connection to a tracker process: gaze in, cameras and events out.

Gaze arrives on a SUB socket drained once per frame in the render thread.
Camera frames and annotation events go out through a background thread with
a bounded queue, so a dead or slow tracker never blocks rendering (the REQ
client recovers by itself when the tracker comes back; what was queued while
it was away is kept up to ``max_queue`` items, then the oldest are dropped and
counted). Live statistics for the status line come from :meth:`stats`.
"""
from __future__ import annotations

import collections
import queue
import threading
import time
from typing import List, Optional

import numpy as np

from gaze3d.errors import Gaze3DError, InputError
from gaze3d.protocol import GAZE_PREFIX
from gaze3d.tracker.client import GazeSubscriber, TrackerControl, TrackerTimeout

ALIVE_AFTER_S = 1.0   # no message for this long: the tracker counts as lost


def parse_tracker_address(address: str):
    """``"PUB,CTRL"`` -> ``(pub, ctrl)``; a single address is the control address (PUB asked by status)."""
    parts = [p.strip() for p in str(address).split(",") if p.strip()]
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 1:
        return None, parts[0]
    raise InputError(f"--tracker: expected 'CTRL_ADDRESS' or 'PUB_ADDRESS,CTRL_ADDRESS', got {address!r}")


class TrackerLink:
    """Subscriber + control client + sender thread for one tracker.

    Parameters
    ----------
    pub_address : str, optional
        The tracker's PUB address; asked from the tracker's ``status`` if None.
    ctrl_address : str
        The tracker's control (REP) address.
    topics : sequence of str
        Topics to receive (default gaze samples only).
    max_queue : int
        Camera frames / events kept while the tracker does not answer.

    Thread-safety: :meth:`poll` belongs to one thread (the render thread);
    :meth:`send_camera`, :meth:`send_event` and :meth:`stats` may be called
    from any thread.
    """

    def __init__(self, pub_address: Optional[str], ctrl_address: str, topics=(GAZE_PREFIX,),
                 max_queue: int = 10_000, timeout_s: float = 1.0, curve_server_key=None):
        self.ctrl = TrackerControl(ctrl_address, timeout_s=timeout_s, curve_server_key=curve_server_key)
        self.source = "?"
        if pub_address is None:
            status = self.ctrl.status()
            pub_address = self.ctrl.pub_address(status)
            if pub_address is None:
                raise InputError(f"--tracker: the tracker at {ctrl_address} did not report its PUB "
                                 f"address; pass 'PUB_ADDRESS,CTRL_ADDRESS'")
            self.source = str(status.get("source", {}).get("source", "?")
                              if isinstance(status.get("source"), dict) else status.get("source", "?"))
        self.pub_address, self.ctrl_address = pub_address, ctrl_address
        self.sub = GazeSubscriber(pub_address, topics=topics, curve_server_key=curve_server_key)
        self._queue: "queue.Queue" = queue.Queue()
        self.max_queue = int(max_queue)
        self._lock = threading.Lock()
        self._counters = {"cameras_sent": 0, "events_sent": 0, "send_failures": 0, "send_dropped": 0}
        self.ctrl_ok = False
        self.clock = None
        self._recent = collections.deque(maxlen=4_000)   # (local receive s, valid, latency ns): > 1 s at 2 kHz
        self._last_sample_ns: Optional[int] = None
        self._stop = threading.Event()
        self._last_restarts = 0
        self._thread = threading.Thread(target=self._run, name="gaze3d-tracker-link", daemon=True)
        self._thread.start()
        self._queue.put(("sync", None, None))

    # ------------------------------------------------------------ receiving
    def poll(self, max_n: int = 10_000) -> List[dict]:
        """Gaze sample payloads received since the last call (tracker clock in ``t_host_ns``)."""
        msgs = self.sub.drain(max_n)
        now = time.monotonic()
        out = []
        offset = self.clock.offset_ns if self.clock is not None else 0
        t_local = time.monotonic_ns()
        for topic, payload in msgs:
            if not topic.startswith(GAZE_PREFIX):
                continue
            payload["topic"] = topic
            out.append(payload)
            self.source = str(payload.get("source", self.source))
            t_sample = int(payload.get("t_host_ns", t_local + offset))
            latency = t_local + offset - t_sample
            if self._last_sample_ns is None or t_sample > self._last_sample_ns:
                self._last_sample_ns = t_sample
            self._recent.append((now, bool(payload.get("valid", False)), latency))
        if self.sub.stats["restarts"] != self._last_restarts:
            # a new tracker run: its clock may have changed host; synchronise again
            self._last_restarts = self.sub.stats["restarts"]
            self._queue.put(("sync", None, None))
        return out

    @property
    def alive(self) -> bool:
        """True if the newest gaze sample received is less than :data:`ALIVE_AFTER_S` seconds old.

        Judged by the sample's own time stamp (tracker clock), not by when it was
        read: samples queued before the tracker died do not make it look alive.
        """
        if self._last_sample_ns is None:
            return False
        return self.tracker_time_ns() - self._last_sample_ns < ALIVE_AFTER_S * 1e9

    def tracker_time_ns(self, t_local_ns: Optional[int] = None) -> int:
        """A local ``monotonic_ns`` reading on the tracker clock (offset 0 until synchronised)."""
        t = time.monotonic_ns() if t_local_ns is None else int(t_local_ns)
        return t + (self.clock.offset_ns if self.clock is not None else 0)

    # -------------------------------------------------------------- sending
    def _put(self, item) -> None:
        while self._queue.qsize() >= self.max_queue:
            try:
                self._queue.get_nowait()
                with self._lock:
                    self._counters["send_dropped"] += 1
            except queue.Empty:
                break
        self._queue.put(item)

    def send_camera(self, t_host_ns: int, camera) -> None:
        """Queue a camera frame (tracker clock) for the session recording."""
        self._put(("camera", int(t_host_ns), camera))

    def send_event(self, event: dict, t_host_ns: int) -> None:
        """Queue an annotation event (tracker clock) for the session recording."""
        self._put(("event", int(t_host_ns), dict(event)))

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the queue is empty (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return False

    def _run(self) -> None:
        pending = None
        while not self._stop.is_set():
            if pending is None:
                try:
                    pending = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
            kind, t_ns, payload = pending
            try:
                if kind == "sync":
                    self.clock = self.ctrl.sync_clock(rounds=8)
                elif kind == "camera":
                    self.ctrl.send_camera(t_ns, payload)
                    with self._lock:
                        self._counters["cameras_sent"] += 1
                elif kind == "event":
                    self.ctrl.send_event(payload, t_host_ns=t_ns)
                    with self._lock:
                        self._counters["events_sent"] += 1
                elif kind == "call":
                    payload()
                self.ctrl_ok = True
            except Gaze3DError as exc:
                self.ctrl_ok = False
                with self._lock:
                    self._counters["send_failures"] += 1
                    self._counters["last_error"] = str(exc)
                if isinstance(exc, TrackerTimeout):
                    # the tracker is away: keep the item and retry after a pause
                    self._stop.wait(0.2)
                    continue
            self._queue.task_done()
            pending = None

    def request(self, fn) -> None:
        """Run ``fn()`` (a control call) on the sender thread, in order with cameras and events."""
        self._put(("call", None, fn))

    # --------------------------------------------------------------- status
    def stats(self, window_s: float = 1.0) -> dict:
        """Live numbers for the status line (rates over the last ``window_s`` seconds)."""
        now = time.monotonic()
        recent = [r for r in list(self._recent) if now - r[0] <= window_s]
        n = len(recent)
        with self._lock:
            counters = dict(self._counters)
        return {
            "source": self.source, "alive": self.alive, "rate_hz": n / window_s,
            "valid_pct": 100.0 * sum(r[1] for r in recent) / n if n else float("nan"),
            "latency_ms": float(np.median([r[2] for r in recent])) / 1e6 if n else float("nan"),
            "clock_offset_ms": self.clock.offset_ns / 1e6 if self.clock is not None else float("nan"),
            "clock_accuracy_ms": self.clock.accuracy_ns / 1e6 if self.clock is not None else float("nan"),
            "lost": int(self.sub.stats["dropped"]), "gaps": int(self.sub.stats["gaps"]),
            "restarts": int(self.sub.stats["restarts"]), "ctrl_ok": self.ctrl_ok, **counters,
        }

    def close(self, flush_timeout_s: float = 2.0) -> None:
        """Send what is queued (up to ``flush_timeout_s``), stop the thread, close the sockets."""
        if self._stop.is_set():
            return
        self.flush(flush_timeout_s)
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.sub.close()
        self.ctrl.close()
