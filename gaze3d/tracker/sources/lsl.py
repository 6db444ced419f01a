"""The ``lsl`` source: a Lab Streaming Layer gaze stream (Varjo, HTC Vive Pro Eye, Pupil LSL relay...).

``pylsl`` is imported on ``open()``. The stream is found by ``name`` or by
``type`` (default ``Gaze``) or ``source_id``; its channels are mapped to
sample fields with ``channels``.

Options
-------
name, type, source_id : str
    Which stream to resolve (``type=Gaze`` when none is given).
channels : str
    ``field:index`` pairs, default ``x:0,y:1``. Fields: ``x``, ``y`` (combined
    gaze), ``valid`` or ``confidence`` (valid when >= ``threshold``),
    ``pupil`` (mm), ``left_x``, ``left_y``, ``right_x``, ``right_y``.
threshold : float
    For the ``valid``/``confidence`` channel, default 0.5.
flip_y : bool
    The stream's y grows upwards (origin bottom-left): use ``1 - y``.
scale : "w,h"
    The stream gives pixels: divide x by w and y by h.
resolve_timeout : seconds to look for the stream, default 5.

Times: ``t_device`` is the LSL timestamp (the sender's ``local_clock``);
``t_capture_ns`` is that instant on this host's ``time.monotonic_ns``, using
the inlet's ``time_correction``. A stream that disappears (the outlet is
destroyed or its host is gone) makes ``read`` raise :class:`SourceError`.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Dict, List

from ..._optional import optional_import
from ...errors import InputError
from ._options import Options
from .base import SourceError, ThreadReleasedSource

_FIELDS = ("x", "y", "valid", "confidence", "pupil", "left_x", "left_y", "right_x", "right_y")


def parse_channels(text) -> Dict[str, int]:
    """``"x:0,y:1,valid:2"`` -> ``{"x": 0, "y": 1, "valid": 2}`` (a dict passes through, checked)."""
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in str(text).split(","):
            if not part.strip():
                continue
            if ":" not in part:
                raise InputError(f"lsl option 'channels': expected field:index pairs like 'x:0,y:1', got {text!r}")
            k, v = part.split(":", 1)
            items.append((k.strip(), v.strip()))
    out = {}
    for k, v in items:
        if k not in _FIELDS:
            raise InputError(f"lsl option 'channels': unknown field {k!r}; expected some of {', '.join(_FIELDS)}")
        try:
            out[k] = int(v)
        except ValueError:
            raise InputError(f"lsl option 'channels': index of {k!r} must be an integer, got {v!r}") from None
        if out[k] < 0:
            raise InputError(f"lsl option 'channels': index of {k!r} must be >= 0, got {v!r}")
    if "x" not in out or "y" not in out:
        raise InputError(f"lsl option 'channels': 'x' and 'y' are required, got {text!r}")
    return out


class LslSource(ThreadReleasedSource):
    """An LSL gaze stream.

    Thread-safety: the inlet belongs to the reading thread; ``close`` from
    another thread sets a flag, and the waiting ``read`` returns within 50 ms
    and releases the inlet.
    """

    name = "lsl"

    def __init__(self, **options):
        o = Options("lsl", options)
        self.stream_name = o.str("name")
        self.stream_type = o.str("type")
        self.source_id = o.str("source_id")
        self.channels = parse_channels(o.raw("channels", "x:0,y:1"))
        self.threshold = o.float("threshold", 0.5)
        self.flip_y = o.bool("flip_y", False)
        self.scale = o.floats("scale", 2, (1.0, 1.0))
        if self.scale[0] <= 0 or self.scale[1] <= 0:
            raise InputError(f"lsl option 'scale': expected two positive numbers, got {self.scale}")
        self.resolve_timeout = o.float("resolve_timeout", 5.0, 0.0, None, low_open=True)
        o.check_unused()
        if self.stream_name is None and self.stream_type is None and self.source_id is None:
            self.stream_type = "Gaze"
        self._inlet = None
        self._lsl = None
        self._lock = threading.Lock()
        self._info = {}
        self._clock_offset = 0.0     # pylsl.local_clock() - time.monotonic()
        self._correction = 0.0

    def open(self) -> None:
        lsl = self._lsl = optional_import("pylsl", extra="lsl")
        self.close()
        self._closed = False
        pred = " and ".join(f"{p}='{v}'" for p, v in (("name", self.stream_name), ("type", self.stream_type),
                                                      ("source_id", self.source_id)) if v is not None)
        try:
            found = lsl.resolve_bypred(pred, 1, self.resolve_timeout)
        except Exception as exc:
            raise SourceError(f"lsl: resolving streams failed: {exc}") from exc
        if not found:
            raise SourceError(f"lsl: no stream with {pred} found within {self.resolve_timeout:g} s")
        info = found[0]
        n = info.channel_count()
        bad = {k: i for k, i in self.channels.items() if i >= n}
        if bad:
            raise InputError(f"lsl option 'channels': {bad} out of range; stream {info.name()!r} has {n} channels")
        try:
            inlet = lsl.StreamInlet(info, max_buflen=360, recover=False)
            inlet.open_stream(timeout=self.resolve_timeout)
            self._correction = float(inlet.time_correction(timeout=self.resolve_timeout))
        except Exception as exc:
            raise SourceError(f"lsl: opening stream {info.name()!r} failed: {exc}") from exc
        self._clock_offset = lsl.local_clock() - time.monotonic()
        self._inlet = inlet
        self._info = {"source": self.name, "stream": info.name(), "type": info.type(),
                      "source_id": info.source_id(), "rate_hz": info.nominal_srate(), "channels": n,
                      "hostname": info.hostname(), "mapping": dict(self.channels)}

    def _convert(self, row, ts: float) -> dict:
        ch = self.channels
        sx, sy = self.scale

        def coord(kx, ky):
            x, y = float(row[ch[kx]]) / sx, float(row[ch[ky]]) / sy
            return [x, 1.0 - y if self.flip_y else y]

        gaze = coord("x", "y")
        ok = all(math.isfinite(v) for v in gaze)
        flag = ch.get("valid", ch.get("confidence"))
        if flag is not None:
            ok = ok and float(row[flag]) >= self.threshold
        if not ok:
            gaze = [math.nan, math.nan]
        t_dev = float(ts)
        s = {"topic": "gaze.2d", "t_device": t_dev, "t_host_ns": time.monotonic_ns(), "gaze": gaze, "valid": ok,
             "t_capture_ns": int(round((t_dev + self._correction - self._clock_offset) * 1e9))}
        if "confidence" in ch:
            s["confidence"] = float(row[ch["confidence"]])
        if "pupil" in ch and math.isfinite(float(row[ch["pupil"]])):
            s["pupil_mm"] = float(row[ch["pupil"]])
        for side in ("left", "right"):
            if f"{side}_x" in ch and f"{side}_y" in ch:
                g = coord(f"{side}_x", f"{side}_y")
                good = all(math.isfinite(v) for v in g)
                s[side] = {"gaze": g if good else [math.nan, math.nan], "valid": good}
        return s

    def _read(self, timeout_s: float) -> List[dict]:
        if self._inlet is None:
            if self._closed:
                return []
            raise SourceError("lsl: read before open")
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not self._closed:
            wait = max(0.0, min(deadline - time.monotonic(), 0.05))
            try:
                rows, stamps = self._inlet.pull_chunk(timeout=wait, max_samples=4096)
            except Exception as exc:           # pylsl.LostError and friends
                if self._closed:
                    return []
                raise SourceError(f"lsl: stream {self._info.get('stream')!r} lost: {exc}") from exc
            if rows:
                return [self._convert(r, t) for r, t in zip(rows, stamps)]
            if time.monotonic() >= deadline:
                return []
        return []

    def _release(self) -> None:
        with self._lock:
            inlet, self._inlet = self._inlet, None
        if inlet is not None:
            try:
                inlet.close_stream()
            except Exception:
                pass
            del inlet

    def info(self) -> dict:
        return dict(self._info) if self._info else {"source": self.name, "name": self.stream_name, "type": self.stream_type}
