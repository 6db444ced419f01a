"""Clients of the tracker process: a gaze subscriber (SUB) and a control client (REQ).

One class per socket role. Both reconnect on their own when the tracker is
restarted at the same addresses (ZeroMQ reconnects in the background).

>>> sub = GazeSubscriber(tracker.pub_address)             # doctest: +SKIP
>>> ctl = TrackerControl(tracker.ctrl_address)            # doctest: +SKIP
>>> sync = ctl.sync_clock()                                # doctest: +SKIP
>>> topic, sample = sub.recv(timeout_s=1.0)                # doctest: +SKIP
>>> t_local = sync.to_client_ns(sample["t_host_ns"])       # doctest: +SKIP
"""
from __future__ import annotations

import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import zmq

from ..errors import Gaze3DError
from ..protocol import (GAZE_PREFIX, SCHEMA_VERSION, ProtocolError, VersionError, control_request, decode, unpack)
from . import keys as _keys
from .timesync import ClockSync, estimate_offset


class TrackerError(Gaze3DError):
    """The tracker answered a control request with an error."""


class TrackerTimeout(Gaze3DError, TimeoutError):
    """The tracker did not answer a control request in time (not running, or busy)."""


def _context(context: Optional[zmq.Context]) -> zmq.Context:
    return context if context is not None else zmq.Context.instance()


class GazeSubscriber:
    """Receive tracker messages (gaze samples, status heartbeats, events).

    Parameters
    ----------
    address : str
        The tracker's PUB address, for example ``"tcp://127.0.0.1:5555"``.
    topics : sequence of str
        Topic prefixes to subscribe to (``"gaze."`` = ``gaze.2d`` and ``gaze.3d``;
        ``""`` = everything).
    curve_server_key : str, bytes or path, optional
        The tracker's public key (z85, ``server.key`` file or keys folder) when it runs with CURVE.
    curve_client_cert : path, optional
        This client's ``client.key_secret`` (or keys folder) when the tracker only accepts listed clients.
    rcvhwm : int
        Messages queued in this process before ZeroMQ drops new ones (seen as gaps).
    rcvbuf : int, optional
        Kernel receive buffer in bytes (OS default if None).

    Messages that are not valid protocol messages are dropped and counted in
    ``stats["malformed"]``; other schema versions in ``stats["wrong_version"]``.
    Sequence-number jumps count in ``stats["gaps"]`` (events) and
    ``stats["dropped"]`` (messages lost, all topics); a new tracker session
    (restart) counts in ``stats["restarts"]`` and ``stats["gaps"]``.
    ``per_topic[topic]`` counts ``received`` and ``lost`` (``seq`` gaps) per
    topic in the current session; :meth:`compare` sets them beside the
    tracker's per-topic sent counts (``status()["published"]``).

    Losses happen when this subscriber does not read fast enough: ZeroMQ
    never blocks the tracker, it drops what this subscriber's queues
    (``rcvhwm`` here, ``--sndhwm`` on the tracker) cannot hold.

    Thread-safety: not thread-safe (a ZeroMQ socket belongs to one thread);
    use one subscriber per thread. ``stats`` may be read from any thread.
    """

    def __init__(self, address: str, topics: Sequence[str] = (GAZE_PREFIX,), curve_server_key=None,
                 curve_client_cert=None, rcvhwm: int = 100_000, rcvbuf: Optional[int] = None,
                 context: Optional[zmq.Context] = None):
        if isinstance(topics, str):
            topics = (topics,)
        self.address = address
        self._sock = _context(context).socket(zmq.SUB)
        self._sock.linger = 0
        self._sock.rcvhwm = int(rcvhwm)
        if rcvbuf is not None:
            self._sock.setsockopt(zmq.RCVBUF, int(rcvbuf))
        self._sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if curve_server_key is not None:
            _keys.configure_client(self._sock, curve_server_key, curve_client_cert)
        for t in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, t.encode("ascii"))
        self._sock.connect(address)
        self._last: Dict[str, Tuple[str, int]] = {}
        self.stats = {"received": 0, "gaps": 0, "dropped": 0, "malformed": 0, "wrong_version": 0,
                      "restarts": 0, "out_of_order": 0}
        # topic -> {"received", "lost", "first_seq", "last_seq"} in the current session
        self.per_topic: Dict[str, Dict[str, int]] = {}
        self.last_message_monotonic: Optional[float] = None

    def _account(self, topic: str, payload: dict) -> None:
        session, seq = payload["session"], payload["seq"]
        last = self._last.get(topic)
        counts = self.per_topic.get(topic)
        if last is not None:
            if last[0] != session:
                self.stats["restarts"] += 1
                self.stats["gaps"] += 1
                counts = None                # a new session numbers from 0 again
            elif seq > last[1] + 1:
                self.stats["gaps"] += 1
                self.stats["dropped"] += seq - last[1] - 1
                counts["lost"] += seq - last[1] - 1
            elif seq <= last[1]:
                self.stats["out_of_order"] += 1
        if counts is None:
            counts = self.per_topic[topic] = {"received": 0, "lost": 0, "first_seq": seq, "last_seq": seq}
        counts["received"] += 1
        counts["last_seq"] = max(counts["last_seq"], seq)
        self._last[topic] = (session, seq)

    def lost(self, topic: Optional[str] = None) -> int:
        """Messages lost (``seq`` gaps) on ``topic``, or on all topics, in the current session."""
        if topic is None:
            return sum(c["lost"] for c in self.per_topic.values())
        return self.per_topic.get(topic, {}).get("lost", 0)

    def compare(self, status: dict) -> Dict[str, Dict[str, int]]:
        """This subscriber's counts beside the tracker's, per topic.

        Parameters
        ----------
        status : dict
            A ``status`` reply (:meth:`TrackerControl.status`) of the same session.

        Returns
        -------
        ``{topic: {"sent", "before_subscribing", "received", "lost", "not_yet_received"}}``:
        ``sent`` is the tracker's count; ``before_subscribing`` went out before
        this subscriber's first message; ``lost`` are the ``seq`` gaps seen here;
        ``not_yet_received`` were sent after the last message seen here (still
        queued, or lost at the tail).
        """
        out = {}
        for topic, sent in (status.get("published") or {}).items():
            c = self.per_topic.get(topic)
            if c is None:
                out[topic] = {"sent": int(sent), "before_subscribing": int(sent), "received": 0, "lost": 0,
                              "not_yet_received": 0}
                continue
            out[topic] = {"sent": int(sent), "before_subscribing": c["first_seq"], "received": c["received"],
                          "lost": c["lost"], "not_yet_received": max(0, int(sent) - 1 - c["last_seq"])}
        return out

    def _parse(self, frames) -> Optional[Tuple[str, dict]]:
        try:
            topic, payload = decode(frames)
        except VersionError:
            self.stats["wrong_version"] += 1
            return None
        except ProtocolError:
            self.stats["malformed"] += 1
            return None
        self.stats["received"] += 1
        self.last_message_monotonic = time.monotonic()
        self._account(topic, payload)
        return topic, payload

    def recv(self, timeout_s: Optional[float] = None) -> Optional[Tuple[str, dict]]:
        """The next valid message ``(topic, payload)``, or None after ``timeout_s`` (None = wait forever)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait_ms = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._sock.poll(wait_ms, zmq.POLLIN):
                return None
            parsed = self._parse(self._sock.recv_multipart(copy=True))
            if parsed is not None:
                return parsed
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def drain(self, max_n: int = 10_000) -> List[Tuple[str, dict]]:
        """Every valid message already queued (at most ``max_n``), without waiting."""
        out = []
        while len(out) < max_n:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            parsed = self._parse(frames)
            if parsed is not None:
                out.append(parsed)
        return out

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TrackerControl:
    """Control client of the tracker (REQ socket): status, clock sync, recording, camera/events, calibration.

    Parameters
    ----------
    address : str
        The tracker's control address.
    timeout_s : float
        How long each request waits for its reply before :class:`TrackerTimeout`.
    curve_server_key, curve_client_cert
        As for :class:`GazeSubscriber`.

    On a timeout the socket is closed and a fresh one connected (the "lazy
    pirate" pattern), so the client recovers when the tracker comes back.

    Thread-safety: thread-safe; requests from several threads are serialised by
    an internal lock.
    """

    def __init__(self, address: str, timeout_s: float = 2.0, curve_server_key=None, curve_client_cert=None,
                 context: Optional[zmq.Context] = None):
        self.address = address
        self.timeout_s = float(timeout_s)
        self._ctx = _context(context)
        self._curve = (curve_server_key, curve_client_cert)
        self._lock = threading.Lock()
        self._sock = None
        self.clock: Optional[ClockSync] = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._ctx.socket(zmq.REQ)
            sock.linger = 0
            if self._curve[0] is not None:
                _keys.configure_client(sock, *self._curve)
            sock.connect(self.address)
            self._sock = sock
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def _roundtrip(self, data: bytes, timeout_s: Optional[float]) -> bytes:
        sock = self._socket()
        sock.send(data)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            self._reset()
            raise TrackerTimeout(f"tracker at {self.address} did not answer within {timeout:g} s")
        return sock.recv()

    def request(self, cmd: str, timeout_s: Optional[float] = None, **fields) -> dict:
        """Send ``{"cmd": cmd, **fields}`` and return the reply; raises :class:`TrackerError` if not ok."""
        with self._lock:
            reply = unpack(self._roundtrip(control_request(cmd, **fields), timeout_s))
        if not isinstance(reply, dict) or reply.get("v") != SCHEMA_VERSION:
            raise TrackerError(f"tracker at {self.address}: unexpected reply {reply!r}")
        if not reply.get("ok"):
            raise TrackerError(f"tracker {cmd}: {reply.get('error', 'failed')}")
        return reply

    # ---------------------------------------------------------------- commands
    def status(self) -> dict:
        """State, source info, counters, recording path, addresses."""
        return self.request("status")

    def pub_address(self, status: Optional[dict] = None) -> Optional[str]:
        """The tracker's PUB address as its ``status`` reports it (field ``pub``), None if it does not.

        Parameters
        ----------
        status : dict, optional
            A ``status`` reply already at hand; asked from the tracker when None.
        """
        status = self.status() if status is None else status
        pub = status.get("pub")
        return pub if isinstance(pub, str) and pub else None

    def list_sources(self) -> List[str]:
        return list(self.request("list_sources")["sources"])

    def sync_clock(self, rounds: int = 16) -> ClockSync:
        """Estimate this process's clock offset to the tracker host (min-RTT over ``rounds``).

        Returns a :class:`ClockSync` ``(offset_ns, rtt_ns, accuracy_ns)`` with
        ``t_tracker = t_client + offset_ns``; it is also kept in ``self.clock``.
        """
        with self._lock:
            request = control_request("sync")

            def exchange():
                reply = unpack(self._roundtrip(request, None))
                if not isinstance(reply, dict) or not reply.get("ok"):
                    raise TrackerError(f"tracker sync: unexpected reply {reply!r}")
                return int(reply["t_recv_ns"]), int(reply["t_send_ns"])

            self.clock = estimate_offset(exchange, rounds)
        return self.clock

    def start_recording(self, path) -> dict:
        """Start recording to a new file ``path`` (on the tracker host)."""
        return self.request("start_recording", path=str(path))

    def stop_recording(self) -> dict:
        """Stop recording; the reply has ``path`` and ``samples`` (number written)."""
        return self.request("stop_recording")

    def send_camera(self, t_host_ns: int, camera) -> dict:
        """Record the viewer camera shown from ``t_host_ns`` (tracker clock) on."""
        cam = camera.to_dict() if hasattr(camera, "to_dict") else dict(camera)
        return self.request("camera", t_host_ns=int(t_host_ns), camera=cam)

    def send_event(self, event: dict, t_host_ns: Optional[int] = None) -> dict:
        """Record an annotation event (and publish it on ``event``); default time: now on the tracker clock."""
        if t_host_ns is None:
            t_host_ns = self.tracker_time_ns()
        return self.request("event", t_host_ns=int(t_host_ns), event=dict(event))

    def set_meta(self, key: str, value) -> dict:
        """Store ``key`` = ``value`` (JSON-like) in the recording's metadata, e.g. the calibration profile used."""
        return self.request("meta", key=str(key), value=value)

    def calibrate(self, action: str, **kw) -> dict:
        """Forward a device calibration action (``start``, ``point`` with ``x``, ``y``, ``compute``, ``stop``).

        Returns the reply; ``reply["result"]`` is the source's answer (``ok``, ``error``, results).
        """
        return self.request("calibrate", action=str(action), args=kw, timeout_s=max(self.timeout_s, 10.0))

    def tracker_time_ns(self) -> int:
        """Now, on the tracker host's clock (needs :meth:`sync_clock`; synchronises once if not done)."""
        if self.clock is None:
            self.sync_clock()
        return self.clock.to_tracker_ns(time.monotonic_ns())

    def close(self) -> None:
        with self._lock:
            self._reset()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["GazeSubscriber", "TrackerControl", "TrackerError", "TrackerTimeout", "ClockSync"]
