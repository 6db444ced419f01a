"""The ``mouse`` source: the cursor position as gaze, for annotators without a tracker and for development.

The position is sampled at ``rate`` Hz (the cursor resting on a spot is a
"fixation" that accumulates attention). Where it comes from (``backend``):

``x11``
    The X server's pointer (``DISPLAY``), through ``python-xlib`` (imported on
    ``open()``; ``pip install python-xlib`` or ``gaze3d[mouse]``), normalised
    by the size of the X screen.
``feed``
    Positions forwarded by another program -- normally the gaze3d viewer,
    which sends its mouse position in *its* normalised display coordinates
    (see :class:`MouseFeed`). The source binds a ZMQ PULL socket at ``feed``
    (default ``tcp://127.0.0.1:5571``; ``tcp://127.0.0.1:*`` picks a free port,
    reported as ``feed_address`` by ``info()``); each message is a msgpack dict
    ``{"x": float, "y": float}`` (normalised, origin top-left; optional
    ``"valid": bool``). Works everywhere (Wayland, macOS, Windows, no X).
    The feed has no authentication, so only loopback (``127.0.0.0/8``,
    ``[::1]``, ``localhost``) and ``ipc://`` addresses are accepted; messages
    over 1 KiB are cut off by ZeroMQ (``ZMQ_MAXMSGSIZE``).
``stdin``
    Lines ``x y`` or JSON ``{"x": .., "y": ..}`` on standard input, normalised.
``auto`` (default)
    ``x11`` when ``DISPLAY`` is set and python-xlib is installed, else ``feed``.

Options: ``backend``, ``rate`` (Hz, default 120), ``feed`` (address),
``display`` (X display name, default ``$DISPLAY``).

Samples: ``t_device`` = seconds since ``open``; ``valid`` = the position is
known and inside the display. An X server that goes away makes ``read``
raise :class:`SourceError`.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from typing import List, Optional, Tuple

import msgpack
import zmq

from ..._optional import optional_import
from ...errors import InputError
from ...protocol import TOPIC_GAZE_2D
from ._options import Options
from .base import SourceError, ThreadReleasedSource

DEFAULT_FEED = "tcp://127.0.0.1:5571"


class MouseFeed:
    """Sender side of the ``feed`` backend: what the viewer uses to forward its mouse position.

    Parameters
    ----------
    address : str
        The mouse source's feed address (``MouseSource.info()["feed_address"]``).

    ``send`` never blocks: with no source listening, positions are dropped.
    Thread-safety: not thread-safe (one ZMQ socket); use from one thread.
    """

    def __init__(self, address: str = DEFAULT_FEED):
        self._sock = zmq.Context.instance().socket(zmq.PUSH)
        self._sock.setsockopt(zmq.SNDHWM, 16)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(address)

    def send(self, x: float, y: float, valid: bool = True) -> bool:
        """Forward one position (normalised display coordinates, origin top-left); False if dropped."""
        try:
            self._sock.send(msgpack.packb({"x": float(x), "y": float(y), "valid": bool(valid)}), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def close(self) -> None:
        self._sock.close(linger=0)


class _X11Pointer:
    def __init__(self, display_name: Optional[str]):
        xdisplay = optional_import("Xlib.display", extra="mouse")
        self._xerror = optional_import("Xlib.error", extra="mouse")
        try:
            self._d = xdisplay.Display(display_name)
        except Exception as exc:        # Xlib raises DisplayNameError / DisplayConnectionError
            raise SourceError(f"mouse: cannot open X display {display_name or os.environ.get('DISPLAY')!r}: "
                              f"{exc}") from exc
        screen = self._d.screen()
        self._root = screen.root
        self.size = (screen.width_in_pixels, screen.height_in_pixels)
        self.name = self._d.get_display_name()

    def position(self) -> Tuple[float, float, bool]:
        try:
            p = self._root.query_pointer()
        except Exception as exc:        # ConnectionClosedError when the X server dies
            raise SourceError(f"mouse: X display {self.name!r} went away: {exc}") from exc
        w, h = self.size
        return (p.root_x + 0.5) / w, (p.root_y + 0.5) / h, bool(p.same_screen)

    def close(self):
        try:
            self._d.close()
        except Exception:
            pass


class _FeedPointer:
    def __init__(self, address: str):
        self._sock = zmq.Context.instance().socket(zmq.PULL)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, 1024)   # a position is ~30 bytes
        try:
            if address.endswith(":*"):
                port = self._sock.bind_to_random_port(address[:-2])
                address = f"{address[:-2]}:{port}"
            else:
                self._sock.bind(address)
        except zmq.ZMQError as exc:
            self._sock.close(linger=0)
            raise SourceError(f"mouse: cannot bind the feed socket at {address}: {exc}") from exc
        self.address = address
        self.last = (math.nan, math.nan, False)

    def wait(self, timeout_s: float) -> None:
        self._sock.poll(int(max(0.0, timeout_s) * 1000), zmq.POLLIN)

    def position(self) -> Tuple[float, float, bool]:
        while True:
            try:
                msg = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return self.last
            try:
                d = msgpack.unpackb(msg, raw=False)
                self.last = (float(d["x"]), float(d["y"]), bool(d.get("valid", True)))
            except Exception:           # malformed: ignore, keep the last position
                continue

    def close(self):
        self._sock.close(linger=0)


class _StdinPointer:
    def __init__(self, stream=None):
        self._stream = stream or sys.stdin
        self.last = (math.nan, math.nan, False)
        self._thread = threading.Thread(target=self._pump, name="mouse-stdin", daemon=True)
        self._thread.start()

    def _pump(self):
        for line in self._stream:
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("{"):
                    d = json.loads(line)
                    self.last = (float(d["x"]), float(d["y"]), bool(d.get("valid", True)))
                else:
                    x, y = line.replace(",", " ").split()[:2]
                    self.last = (float(x), float(y), True)
            except (ValueError, KeyError, TypeError):
                continue

    def position(self):
        return self.last

    def close(self):
        pass


class MouseSource(ThreadReleasedSource):
    """Cursor position as gaze; see the module docstring.

    Thread-safety: one reading thread; ``close`` from another thread sets a
    flag and the waiting ``read`` returns within 20 ms and releases the
    X connection or feed socket.
    """

    name = "mouse"

    def __init__(self, **options):
        o = Options("mouse", options)
        self.backend = o.str("backend", "auto", choices=("auto", "x11", "feed", "stdin"))
        self.rate = o.float("rate", 120.0, 0.0, 2000.0, low_open=True)
        self.feed = o.str("feed", DEFAULT_FEED)
        self.display = o.str("display")
        o.check_unused()
        if not self.feed.startswith(("tcp://", "ipc://", "inproc://")):
            raise InputError(f"mouse option 'feed': expected a ZMQ address like {DEFAULT_FEED}, got {self.feed!r}")
        from ..server import is_loopback   # the rule the tracker's own binds follow
        if not is_loopback(self.feed):
            # the feed has no authentication: anyone who reaches it steers the "gaze"
            raise InputError(f"mouse option 'feed': {self.feed} is not a loopback address; the feed socket has "
                             "no authentication, bind it on 127.0.0.1, [::1] or ipc://")
        self._pointer = None
        self._lock = threading.Lock()
        self._t0 = 0.0
        self._k = 0
        self._used = None

    def _choose(self) -> str:
        if self.backend != "auto":
            return self.backend
        if (self.display or os.environ.get("DISPLAY")):
            try:
                import Xlib.display  # noqa: F401
                return "x11"
            except ImportError:
                pass
        return "feed"

    def open(self) -> None:
        self.close()
        self._closed = False
        kind = self._choose()
        if kind == "x11":
            self._pointer = _X11Pointer(self.display)
        elif kind == "feed":
            self._pointer = _FeedPointer(self.feed)
        else:
            self._pointer = _StdinPointer()
        self._used = kind
        self._t0 = time.monotonic()
        self._k = 0

    def _read(self, timeout_s: float) -> List[dict]:
        p = self._pointer
        if p is None:
            if self._closed:
                return []
            raise SourceError("mouse: read before open")
        period = 1.0 / self.rate
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not self._closed:
            now = time.monotonic()
            due = self._t0 + self._k * period
            if due <= now:
                break
            if now >= deadline:
                return []
            wait = min(due, deadline) - now
            if isinstance(p, _FeedPointer):
                p.wait(min(wait, 0.02))
            else:
                time.sleep(min(wait, 0.02))
        if self._closed:
            return []
        now = time.monotonic()
        behind = int((now - self._t0) / period) - self._k + 1
        if behind > self.rate * 0.5:                # a stall: do not emit a burst of stale copies
            self._k += behind - 1
            behind = 1
        x, y, ok = p.position()
        ok = ok and math.isfinite(x) and math.isfinite(y) and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0
        t_host = time.monotonic_ns()
        out = []
        for _ in range(behind):
            out.append({"topic": TOPIC_GAZE_2D, "t_device": self._k * period, "t_host_ns": t_host,
                        "gaze": [x, y] if ok else [math.nan, math.nan], "valid": bool(ok)})
            self._k += 1
        return out

    def _release(self) -> None:
        with self._lock:
            p, self._pointer = self._pointer, None
        if p is not None:
            p.close()

    def info(self) -> dict:
        d = {"source": self.name, "backend": self._used or self.backend, "rate_hz": self.rate}
        p = self._pointer
        if isinstance(p, _FeedPointer):
            d["feed_address"] = p.address
        elif isinstance(p, _X11Pointer):
            d.update(display=p.name, screen_px=list(p.size))
        return d
