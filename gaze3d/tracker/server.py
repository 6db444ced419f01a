"""The tracker server: polls a gaze source, stamps, records and publishes every sample.

Three threads, each owning its resources:

* **acquisition** owns the source and the PUB socket: ``source.read`` ->
  stamp ``v``, ``source``, ``session``, per-topic ``seq`` and ``t_host_ns`` ->
  publish (non-blocking, bounded send queue per subscriber: a stalled
  subscriber loses messages, seen as ``seq`` gaps on its side, and never slows
  the others) -> hand to the recorder. It also sends the ``status`` heartbeat
  and reopens a disconnected device with exponential backoff.
* **recorder** owns the :class:`~gaze3d.recording.RecordingWriter`; it commits
  at least every ``commit_interval_s`` (20 ms), so ``kill -9`` loses at most
  that much. Its queue is unbounded: a slow disk costs memory, never samples.
* **control** owns the REP socket and answers commands (see ``docs/protocol.md``).
  Every request is checked against :data:`gaze3d.protocol.REQUEST_SCHEMA`
  before it reaches a handler, requests over
  :data:`~gaze3d.protocol.MAX_REQUEST_BYTES` are cut off by ZeroMQ
  (``ZMQ_MAXMSGSIZE``), and nothing a client sends can stop a thread: a
  sample or event that cannot be encoded is counted and skipped.

Binds to loopback by default; any other address needs CurveZMQ keys.
Recordings started by a client are confined to ``record_dir``.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import queue
import socket as _socket
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Dict, List, Optional

import zmq

from .. import __version__
from ..errors import InputError
from ..protocol import (MAX_REQUEST_BYTES, MAX_SUBSCRIPTION_BYTES, SCHEMA_VERSION, T_HOST_NS_MAX, TOPIC_EVENT,
                        TOPIC_GAZE_2D, TOPIC_STATUS, control_reply, encode, unpack_request, validate_request)
from ..recording import RecordingWriter
from . import keys as _keys
from .sources.base import GazeSource

log = logging.getLogger("gaze3d.tracker")

ACK_TIMEOUT_S = 5.0   # how long a camera/event/meta request waits for the recorder to confirm the write


def is_loopback(address: str) -> bool:
    """True for ``ipc://``/``inproc://`` and ``tcp://`` on 127.0.0.0/8, ``localhost`` or ``[::1]``."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    host = address[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name
        return False


def _json_safe(value):
    """``value`` with anything JSON cannot hold turned into its ``str`` (descriptive metadata)."""
    import json

    return json.loads(json.dumps(value, default=str))


def list_source_names() -> List[str]:
    """Names accepted by ``--source`` (plus ``module:pkg.mod:Class`` plugins)."""
    try:
        from .sources import SOURCE_NAMES
    except ImportError:
        return []
    return list(SOURCE_NAMES)


class TrackerServer:
    """Serve one gaze source over ZeroMQ, recording what it receives.

    Parameters
    ----------
    source : GazeSource
        Not yet opened; the server opens, reads and closes it.
    pub, ctrl : str
        ZeroMQ bind addresses of the PUB and the REP control socket
        (``tcp://127.0.0.1:*`` picks a free port).
    record : path, optional
        Start recording to this new file before the first sample.
    curve_keys : path, optional
        Keys folder from ``gaze3d keys``; required to bind a non-loopback address.
    heartbeat_s : float
        Interval of the ``status`` messages.
    sndhwm : int
        Messages queued per subscriber before that subscriber's messages are dropped.
    sndbuf : int, optional
        Kernel send buffer per subscriber connection in bytes (OS default if None);
        with ``sndhwm`` it bounds how much stale data a stalled subscriber gets.
    backoff_initial_s, backoff_max_s : float
        Reopen delays after a device error (doubling up to the maximum).
    wait_subscriber : bool
        Open the source only once a first subscriber has subscribed (the PUB
        socket is then an XPUB, which sees subscriptions). ZeroMQ subscribers
        miss what is published before they join; a finite source (replay, a
        scripted simulation) would otherwise start unseen.
    record_dir : path, optional
        The folder ``start_recording`` requests may write in (relative paths are
        resolved in it; paths that lead outside it, symlinks included, are
        refused). Default: the current working directory at construction.
        ``record`` (chosen by whoever starts the tracker) is not confined.

    Thread-safety: :meth:`start`, :meth:`stop`, :meth:`status` may be called
    from any thread; the sockets and the source are each used by one thread.
    """

    def __init__(self, source: GazeSource, *, pub: str = "tcp://127.0.0.1:*", ctrl: str = "tcp://127.0.0.1:*",
                 record=None, curve_keys=None, heartbeat_s: float = 0.5, sndhwm: int = 10_000, sndbuf: Optional[int] = None,
                 read_timeout_s: float = 0.02, commit_interval_s: float = 0.02,
                 backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0, wait_subscriber: bool = False,
                 record_dir=None):
        if not isinstance(source, GazeSource):
            raise InputError(f"tracker source: expected a GazeSource, got {type(source).__name__}")
        for name, address in (("--pub", pub), ("--ctrl", ctrl)):
            if not is_loopback(address) and curve_keys is None:
                raise InputError(f"{name} {address}: binding beyond loopback requires CurveZMQ keys "
                                 "(create them with `gaze3d keys DIR`, pass --curve-keys DIR)")
        if heartbeat_s <= 0 or read_timeout_s <= 0 or commit_interval_s <= 0:
            raise InputError("heartbeat_s, read_timeout_s and commit_interval_s must be > 0")
        self.source = source
        self.source_name = str(getattr(source, "name", type(source).__name__))
        self._bind = (pub, ctrl)
        self._record_at_start = record
        self.curve_keys = curve_keys
        self.heartbeat_s = float(heartbeat_s)
        self.sndhwm = int(sndhwm)
        self.sndbuf = sndbuf
        self.read_timeout_s = float(read_timeout_s)
        self.commit_interval_s = float(commit_interval_s)
        self.backoff = (float(backoff_initial_s), float(backoff_max_s))
        self.wait_subscriber = bool(wait_subscriber)
        record_dir = os.getcwd() if record_dir is None else os.fspath(record_dir)
        if not os.path.isdir(record_dir):
            raise InputError(f"--record-dir {record_dir}: not an existing folder")
        self.record_dir = os.path.realpath(record_dir)
        self.session = os.urandom(6).hex()
        self.pub_address: Optional[str] = None
        self.ctrl_address: Optional[str] = None
        self.stopped = threading.Event()
        self._stop = threading.Event()
        self._ctx: Optional[zmq.Context] = None
        self._auth = None
        self._threads: List[threading.Thread] = []
        self._outbox: "queue.SimpleQueue" = queue.SimpleQueue()   # (topic, body) to publish
        self._tasks: "queue.SimpleQueue" = queue.SimpleQueue()    # (fn, Future) to run on the source thread
        self._record_q: "queue.SimpleQueue" = queue.SimpleQueue()
        self._recording_path: Optional[str] = None
        self._recorded = 0
        self._seq: Dict[str, int] = {}
        self._lock = threading.Lock()
        self.state = "starting"
        self.last_error: Optional[str] = None
        self.reconnects = 0
        self.bad_requests = 0
        self.rejected_samples = 0   # samples/events the acquisition thread could not encode (skipped, counted)
        self._last_reject_log = 0.0  # monotonic time of the last "skipped" log line (one a second at most)
        self.samples_received = 0
        self.source_info: dict = {"source": self.source_name}
        self._t_start = time.monotonic()

    # ------------------------------------------------------------- lifecycle
    def start(self) -> "TrackerServer":
        """Bind both sockets, start the threads; returns self with the bound addresses set."""
        self._ctx = zmq.Context()
        pub = self._ctx.socket(zmq.XPUB if self.wait_subscriber else zmq.PUB)
        rep = self._ctx.socket(zmq.REP)
        try:
            if self.curve_keys is not None:
                public, secret = _keys.load_server_keys(self.curve_keys)
                self._auth = _keys.start_authenticator(self._ctx, self.curve_keys)
                for s in (pub, rep):
                    _keys.configure_server(s, public, secret)
            pub.sndhwm = self.sndhwm
            # inbound size limits: a peer that sends more is disconnected by ZeroMQ itself
            pub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
            rep.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
            if self.sndbuf is not None:
                pub.setsockopt(zmq.SNDBUF, int(self.sndbuf))
            pub.linger = 0
            rep.linger = 0
            for sock, address in ((pub, self._bind[0]), (rep, self._bind[1])):
                try:
                    sock.bind(address)
                except zmq.ZMQError as exc:
                    raise InputError(f"cannot bind {address}: {exc}") from None
            self.pub_address = pub.getsockopt_string(zmq.LAST_ENDPOINT)
            self.ctrl_address = rep.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            pub.close(0)
            rep.close(0)
            self._shutdown_context()
            raise
        if self._record_at_start is not None:
            self._start_recording_now(str(self._record_at_start))
        self._threads = [
            threading.Thread(target=self._record_loop, name="gaze3d-recorder", daemon=True),
            threading.Thread(target=self._acquire_loop, args=(pub,), name="gaze3d-acquisition", daemon=True),
            threading.Thread(target=self._control_loop, args=(rep,), name="gaze3d-control", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop acquisition, finish and close the recording, close the sockets. Idempotent."""
        self._stop.set()
        me = threading.current_thread()
        for t in self._threads:
            if t is not me and t.name != "gaze3d-recorder":
                t.join(timeout_s)
        self._record_q.put(("quit", None, None))
        for t in self._threads:
            if t is not me and t.name == "gaze3d-recorder":
                t.join(timeout_s)
        self._shutdown_context()
        self.stopped.set()

    def _shutdown_context(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Block until a ``shutdown`` command or :meth:`stop`; True if stopped."""
        return self._stop.wait(timeout_s)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ stamping
    def _stamp(self, seq: int, t_host_ns: int, t_device=None) -> dict:
        return {"v": SCHEMA_VERSION, "source": self.source_name, "session": self.session, "seq": seq,
                "t_device": t_device, "t_host_ns": int(t_host_ns)}

    def _header(self, topic: str, t_host_ns: int, t_device=None) -> dict:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        return self._stamp(seq, t_host_ns, t_device)

    def _reject(self, what: str, exc: BaseException) -> None:
        """Count and log (at most once a second) something the acquisition thread had to skip."""
        self.rejected_samples += 1
        now = time.monotonic()
        if now - self._last_reject_log >= 1.0:
            self._last_reject_log = now
            log.error("skipped a %s that cannot be published (%s: %s); %d skipped so far", what,
                      type(exc).__name__, exc, self.rejected_samples)

    def published(self) -> Dict[str, int]:
        return dict(self._seq)

    # --------------------------------------------------------- acquisition
    def _take_subscriptions(self, xpub: zmq.Socket, subscribed: bool) -> bool:
        """Read the XPUB's (un)subscription messages; True once anyone subscribed.

        Waits up to 50 ms while nobody has subscribed yet, never afterwards.
        """
        timeout_ms = 0 if subscribed else 50
        while xpub.poll(timeout_ms, zmq.POLLIN):
            if xpub.recv()[:1] == b"\x01":
                subscribed = True
            timeout_ms = 0
        return subscribed

    def _acquire_loop(self, pub: zmq.Socket) -> None:
        src = self.source
        is_open = False
        ended = False
        backoff = self.backoff[0]
        next_open = 0.0
        next_beat = 0.0
        repeated_open_error = None  # text of the open failure last logged: a retry failing alike is not logged again
        send = pub.send_multipart
        subscribed = not self.wait_subscriber
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                self._run_tasks(is_open)
                while True:  # events and other forwarded messages
                    try:
                        topic, body = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        self._publish(send, topic, {**self._header(topic, body.pop("t_host_ns")), **body})
                    except Exception as exc:  # validated at the door; never let one message stop acquisition
                        self._reject(f"{topic} message", exc)
                if now >= next_beat:
                    self._heartbeat(send)
                    next_beat = now + self.heartbeat_s
                if ended:
                    self._stop.wait(min(self.read_timeout_s, max(0.0, next_beat - now)))
                    continue
                if self.wait_subscriber:
                    subscribed = self._take_subscriptions(pub, subscribed)
                    if not subscribed:
                        self._set_state("waiting for a subscriber", None)
                        continue
                if not is_open:
                    if now < next_open:
                        self._stop.wait(min(next_open - now, max(0.0, next_beat - now), 0.05))
                        continue
                    try:
                        src.open()
                    except InputError as exc:  # a bad option (missing file...): retrying will not help
                        self._set_state("failed", exc)
                        self._stop.set()
                        break
                    except Exception as exc:  # SourceError, or a device SDK's own error
                        self._set_state("disconnected" if self.samples_received else "connecting", exc)
                        next_open = now + backoff
                        if str(exc) != repeated_open_error:  # said once, not once per retry (status has it)
                            log.warning("source %s: open failed (%s); retrying in %.1f s", self.source_name, exc,
                                        backoff)
                            repeated_open_error = str(exc)
                        backoff = min(backoff * 2, self.backoff[1])
                        continue
                    is_open = True
                    repeated_open_error = None
                    if self.state in ("disconnected", "connecting") and self.samples_received:
                        self.reconnects += 1
                        self._note_event({"type": "tracker.reconnected", "reconnects": self.reconnects})
                    backoff = self.backoff[0]
                    try:
                        self.source_info = dict(src.info())
                        if self._recording_path is not None:  # recording began before the source opened
                            self._record_q.put(("meta", "source_info", _json_safe(self.source_info)))
                    except Exception:  # info is descriptive only
                        pass
                    self._set_state("running", None)
                try:
                    samples = src.read(min(self.read_timeout_s, max(0.0005, next_beat - time.monotonic())))
                except Exception as exc:
                    log.warning("source %s: %s; reopening with backoff", self.source_name, exc)
                    self._set_state("disconnected", exc)
                    self._note_event({"type": "tracker.disconnected", "error": str(exc)})
                    self._close_source()
                    is_open = False
                    next_open = time.monotonic() + backoff
                    backoff = min(backoff * 2, self.backoff[1])
                    continue
                if samples is None:
                    ended = True
                    self._set_state("ended", None)
                    self._note_event({"type": "tracker.source_ended"})
                    continue
                if samples:
                    self._handle_samples(send, samples)
        except Exception as exc:  # a bug: report it in status instead of dying silently
            log.exception("acquisition thread failed")
            self._set_state("failed", exc)
        finally:
            self._close_source()
            pub.close(linger=0)

    def _handle_samples(self, send, samples: List[dict]) -> None:
        recording = self._recording_path is not None
        stamped, payloads = [], []
        for s in samples:
            try:
                topic = s.get("topic") or TOPIC_GAZE_2D
                t_host = s.get("t_host_ns")
                if t_host is None:
                    t_host = time.monotonic_ns()
                elif not 0 <= t_host <= T_HOST_NS_MAX:
                    raise ValueError(f"t_host_ns {t_host!r} outside [0, 2**63 - 1]")
                seq = self._seq.get(topic, 0)
                msg = {**s, **self._stamp(seq, t_host, s.get("t_device"))}
                msg["topic"] = topic
                frames = encode(topic, msg)
            except Exception as exc:  # a source bug or a device's odd value: count it, keep the stream
                self._reject("sample", exc)
                continue
            self._seq[topic] = seq + 1   # only now: a skipped sample leaves no seq gap
            data = frames[1]
            try:
                send(frames, zmq.NOBLOCK)
            except zmq.Again:  # PUB drops per subscriber and does not raise; kept for safety
                pass
            if recording:
                stamped.append(msg)
                payloads.append(data)
        self.samples_received += len(samples)
        if recording:
            self._record_q.put(("samples", stamped, payloads))

    def _publish(self, send, topic: str, payload: dict) -> None:
        try:
            send(encode(topic, payload), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _heartbeat(self, send) -> None:
        now_ns = time.monotonic_ns()
        body = {"state": self.state, "samples": self.samples_received, "recording": self._recording_path,
                "reconnects": self.reconnects, "last_error": self.last_error}
        self._publish(send, TOPIC_STATUS, {**self._header(TOPIC_STATUS, now_ns), **body})

    def _set_state(self, state: str, error) -> None:
        with self._lock:
            self.state = state
            if error is not None:
                self.last_error = f"{type(error).__name__}: {error}"

    def _note_event(self, event: dict) -> None:
        """Record a tracker event (disconnect, reconnect...) so recordings show their gaps."""
        if self._recording_path is not None:
            self._record_q.put(("event", time.monotonic_ns(), event))

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception as exc:
            log.warning("source %s: close failed: %s", self.source_name, exc)

    def _run_tasks(self, is_open: bool) -> None:
        while True:
            try:
                fn, fut = self._tasks.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                if not is_open:
                    raise RuntimeError(f"source {self.source_name} is not connected (state {self.state})")
                fut.set_result(fn())
            except Exception as exc:
                fut.set_exception(exc)

    # ------------------------------------------------------------ recorder
    def _start_recording_now(self, path: str) -> None:
        """Create the writer in the caller's thread (errors reach the caller), then hand it over."""
        writer = RecordingWriter(path, commit_interval_s=self.commit_interval_s)
        wall_ns, mono_ns = time.time_ns(), time.monotonic_ns()
        for key, value in {"source": self.source_name, "source_info": self.source_info,
                           "session": self.session, "schema_version": SCHEMA_VERSION,
                           "gaze3d_version": __version__, "host": _socket.gethostname(), "pid": os.getpid(),
                           "clock": "CLOCK_MONOTONIC ns of the tracker host",
                           "start_unix_ns": wall_ns, "start_t_host_ns": mono_ns}.items():
            try:
                writer.set_meta(key, value)
            except InputError:
                writer.set_meta(key, repr(value))
        writer.commit()
        self._recorded = 0
        self._record_q.put(("open", writer, None))
        self._recording_path = os.path.abspath(path)

    def _record_loop(self) -> None:
        writer: Optional[RecordingWriter] = None
        q = self._record_q
        while True:
            try:
                item = q.get(timeout=self.commit_interval_s / 2)
            except queue.Empty:
                item = None
            quit_after = False
            while item is not None:
                # (kind, a, b) or (kind, a, b, ack): ``ack`` is a Future told whether the write happened
                kind, a, b = item[:3]
                ack = item[3] if len(item) > 3 else None
                try:
                    if kind == "samples" and writer is not None:
                        writer.add_samples(a, b)
                        self._recorded += len(a)
                    elif kind == "camera" and writer is not None:
                        writer.add_camera(a, b)
                    elif kind == "event" and writer is not None:
                        writer.add_event(a, b)
                    elif kind == "meta" and writer is not None:
                        writer.set_meta(a, b)
                    elif kind == "open":
                        if writer is not None:
                            writer.close()
                        writer = a
                    elif kind in ("camera", "event", "meta"):
                        raise RuntimeError("not recording")
                    elif kind in ("close", "quit"):
                        if writer is not None:
                            writer.set_meta("stop_t_host_ns", time.monotonic_ns())
                            writer.set_meta("samples", writer.n_samples)
                            writer.close()
                            n = writer.n_samples
                            writer = None
                        else:
                            n = 0
                        if b is not None:
                            b.set_result(n)
                        quit_after = kind == "quit"
                    if ack is not None:
                        ack.set_result(None)
                except Exception as exc:  # disk full, ...: keep the tracker alive, say so in status
                    if not (kind in ("camera", "event", "meta") and writer is None):
                        log.exception("recording failed")
                        self._set_state(self.state, exc)
                    for fut in (b, ack):
                        if isinstance(fut, Future) and not fut.done():
                            fut.set_exception(exc)
                if quit_after:
                    return
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    item = None
            if writer is not None:
                try:
                    writer.maybe_commit()
                except Exception as exc:
                    log.exception("recording commit failed")
                    self._set_state(self.state, exc)

    # -------------------------------------------------------------- control
    def _control_loop(self, rep: zmq.Socket) -> None:
        while not self._stop.is_set():
            try:
                if not rep.poll(100, zmq.POLLIN):
                    continue
                # all frames: a multi-frame request must be read whole, or REP cannot answer it
                frames = rep.recv_multipart()
                t_recv = time.monotonic_ns()
                reply = self._answer(frames, t_recv)
                rep.send(reply)
            except Exception:  # a bug; the loop must go on answering (REP state is clean after send)
                log.exception("control request handling failed")
                self.bad_requests += 1
        rep.close(linger=0)

    def _answer(self, frames: List[bytes], t_recv: int) -> bytes:
        """The reply to one request (always a reply: errors become ``ok: false``)."""
        try:
            if len(frames) != 1:
                raise ValueError(f"expected one frame per request, got {len(frames)}")
            request = validate_request(unpack_request(frames[0]))
            cmd = request["cmd"]
            if cmd == "sync":
                return control_reply(True, t_recv_ns=t_recv, t_send_ns=time.monotonic_ns())
            return control_reply(True, **getattr(self, f"_cmd_{cmd}")(request))
        except Exception as exc:  # malformed request or failed command: answer, never crash
            self.bad_requests += 1
            return control_reply(False, error=f"{type(exc).__name__}: {exc}"[:2000])

    def status(self) -> dict:
        """What the ``status`` command answers."""
        return {"state": self.state, "source": self.source_name, "source_info": self.source_info,
                "session": self.session, "pid": os.getpid(), "pub": self.pub_address, "ctrl": self.ctrl_address,
                "curve": self.curve_keys is not None, "schema_version": SCHEMA_VERSION,
                "uptime_s": time.monotonic() - self._t_start, "t_host_ns": time.monotonic_ns(),
                "samples_received": self.samples_received, "published": self.published(),
                "recording": self._recording_path, "recorded_samples": self._recorded,
                "reconnects": self.reconnects, "last_error": self.last_error, "bad_requests": self.bad_requests,
                "rejected_samples": self.rejected_samples, "source_counters": self._source_counters(),
                "record_dir": self.record_dir, "python": sys.version.split()[0]}

    def _source_counters(self) -> dict:
        try:
            return dict(self.source.counters())
        except Exception as exc:  # descriptive only; a plugin's bug must not break status
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _cmd_status(self, request):
        return self.status()

    def _cmd_ping(self, request):
        return {"t_host_ns": time.monotonic_ns()}

    def _cmd_list_sources(self, request):
        return {"sources": list_source_names()}

    def confine(self, path: str) -> str:
        """``path`` (relative to ``record_dir`` or absolute) resolved inside ``record_dir``, or InputError."""
        # realpath resolves symlinks (a link inside the folder pointing out of it is refused too)
        full = os.path.realpath(os.path.join(self.record_dir, path))
        if full == self.record_dir or os.path.commonpath([full, self.record_dir]) != self.record_dir:
            raise InputError(f"start_recording path {path!r}: outside the recording folder {self.record_dir} "
                             "(start the tracker with --record-dir to choose another)")
        return full

    def _cmd_start_recording(self, request):
        path = self.confine(request["path"])
        if self._recording_path is not None:
            raise ValueError(f"already recording to {self._recording_path}; stop_recording first "
                             "(one session = one recording)")
        self._start_recording_now(path)
        return {"path": self._recording_path}

    def _record_acked(self, kind: str, a, b) -> dict:
        """Queue a write for the recorder and wait for it: the reply says whether it was stored."""
        if self._recording_path is None:
            return {"recorded": False, "reason": "not recording"}
        ack: Future = Future()
        self._record_q.put((kind, a, b, ack))
        try:
            ack.result(timeout=ACK_TIMEOUT_S)
        except FutureTimeout:
            return {"recorded": False,
                    "reason": f"the recorder did not confirm within {ACK_TIMEOUT_S:g} s (it may still be stored)"}
        except Exception as exc:
            return {"recorded": False, "reason": f"{type(exc).__name__}: {exc}"}
        return {"recorded": True}

    def _cmd_stop_recording(self, request):
        if self._recording_path is None:
            raise ValueError("not recording")
        path, self._recording_path = self._recording_path, None
        fut: Future = Future()
        self._record_q.put(("close", None, fut))
        return {"path": path, "samples": fut.result(timeout=30)}

    def _cmd_camera(self, request):
        from ..camera import Camera
        try:  # checked here, so a bad camera is an error reply, not a silent recorder failure
            camera = Camera.from_dict(request["camera"]).to_dict()
        except Exception as exc:
            raise ValueError(f"camera field 'camera': {exc}") from None
        return self._record_acked("camera", request["t_host_ns"], camera)

    def _cmd_event(self, request):
        event = request["event"]
        t = request.get("t_host_ns")
        if t is None:
            t = time.monotonic_ns()
        reply = self._record_acked("event", t, event)
        self._outbox.put((TOPIC_EVENT, {"t_host_ns": t, "event": event}))
        return reply

    def _cmd_meta(self, request):
        return self._record_acked("meta", request["key"], request["value"])

    def _cmd_calibrate(self, request):
        action = request["action"]
        args = request.get("args") or {}
        hook = getattr(self.source, "calibrate", None)
        if hook is None:
            raise ValueError(f"source {self.source_name} has no calibration hooks")
        fut: Future = Future()
        self._tasks.put((lambda: hook(action, **args), fut))
        return {"result": fut.result(timeout=60)}

    def _cmd_shutdown(self, request):
        self._stop.set()
        return {}
