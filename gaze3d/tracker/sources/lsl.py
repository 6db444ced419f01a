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
    ``pupil`` (mm), ``left_x``, ``left_y``, ``right_x``, ``right_y``; and 3D
    gaze rays as headset relays publish them: ``ox, oy, oz, dx, dy, dz``
    (combined ray origin and direction) and ``left_ox`` ... ``left_dz``,
    ``right_ox`` ... ``right_dz`` (per eye). A stream with 3D channels is
    published on ``gaze.3d``: ``ray_origin``/``ray_direction`` (direction
    normalised) and per eye ``origin``/``direction``, in the stream's own units
    and frame (``x``/``y`` are then optional). A ray is mapped only when all
    six of its channels are.
threshold : float
    For the ``valid``/``confidence`` channel, default 0.5.
flip_y : bool
    The stream's y grows upwards (origin bottom-left): use ``1 - y``.
scale : "w,h"
    The stream gives pixels: divide x by w and y by h.
resolve_timeout : seconds to look for the stream, default 5.
head_name, head_type, head_source_id : str
    A second stream with the **head pose** (VR), joined to the 3D gaze on
    LSL timestamps: each gaze sample gets ``head_pose`` interpolated at its
    capture time (:class:`gaze3d.vr.posejoin.PoseJoin`; a sample newer than
    the newest pose waits up to ``head_wait_s`` for the next one).
head_channels : str
    ``px,py,pz`` (position) and ``qx,qy,qz,qw`` (orientation quaternion)
    indices, default ``px:0,py:1,pz:2,qx:3,qy:4,qz:5,qw:6``.
head_max_gap_s, head_wait_s : seconds, default 0.1 and 0.1.
gaze_frame : ``world`` (default: the rays are in the tracking space, like
    OpenXR's gaze pose) or ``head`` (rays relative to the head, like Varjo,
    SRanipal or Pico: turned into world rays through the joined pose; a
    sample without a pose is then invalid).
convention : ``openxr`` (default: right-handed, +Y up, head looks along -Z)
    or ``unity`` (left-handed, +Z forward: positions, rotations and rays are
    mirrored in Z, see :mod:`gaze3d.vr.frames`).
lsl_config : ``loopback`` (default), ``system`` or a file path
    Which liblsl configuration this process uses, see *Network* below.

Times: ``t_device`` is the LSL timestamp (the sender's ``local_clock`` at
capture). LSL delivers samples in chunks, so the arrival time says nothing
about when a sample was taken (a 250 Hz stream arriving in chunks looked like
112 kHz): ``t_host_ns`` is the **capture** time on this host's
``time.monotonic_ns`` -- the LSL timestamp plus the inlet's
``time_correction`` (refreshed every ``CORRECTION_EVERY_S``) mapped from
``pylsl.local_clock`` to ``time.monotonic`` -- so rates and exported timestamps
follow the device. ``t_capture_ns`` repeats it (as other sources name it) and
``t_arrival_ns`` keeps the arrival time. A mapped time that is negative or
more than ``MAX_FUTURE_S`` after the arrival (a broken sender clock) falls
back to the arrival time and is counted (``time_fallbacks`` in ``counters()``).
A stream that disappears (the outlet is destroyed or its host is gone) makes
``read`` raise :class:`SourceError`.

Network: liblsl reads its configuration once per process, from the file named
by the ``LSLAPICFG`` environment variable. With ``lsl_config=loopback``
gaze3d writes :data:`LOOPBACK_CONFIG` to a private file and points
``LSLAPICFG`` at it before pylsl is imported: IPv6 off, discovery scope
``machine``, multicast responder on ``127.0.0.1``, the only known peer
``127.0.0.1`` -- discovery queries stay on this machine and no IPv6 socket is
opened. liblsl still opens an unconnected UDP socket on ``0.0.0.0`` (an
ephemeral port, for discovery replies and time probes; liblsl has no setting
to bind it to loopback) and the inlet's TCP connection to the outlet; an
inlet opens no listening TCP socket. ``system`` leaves liblsl to its own
search (``lsl_api.cfg`` in the working folder, ``~/lsl_api/``,
``/etc/lsl_api/``; default: site-wide multicast discovery, IPv4 and IPv6);
a path uses that file. The setting only affects streams on this host unless
the outlet's host is listed in the file's ``KnownPeers``.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

from ..._optional import optional_import
from ...errors import InputError
from ...protocol import TOPIC_GAZE_2D, TOPIC_GAZE_3D
from ._options import Options
from .base import SourceError, ThreadReleasedSource

log = logging.getLogger("gaze3d.tracker.lsl")

_RAY = ("ox", "oy", "oz", "dx", "dy", "dz")
_RAY_FIELDS = _RAY + tuple(f"{side}_{f}" for side in ("left", "right") for f in _RAY)
_FIELDS = ("x", "y", "valid", "confidence", "pupil", "left_x", "left_y", "right_x", "right_y") + _RAY_FIELDS

CORRECTION_EVERY_S = 5.0   # how often the inlet's clock correction is re-read
MAX_FUTURE_S = 1.0         # a capture time this far after arrival is a broken clock, not a capture time

# liblsl settings of ``lsl_config=loopback`` (see the module docstring, "Network").
LOOPBACK_CONFIG = """; written by gaze3d: liblsl restricted to this machine (gaze3d.tracker.sources.lsl)
[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
ListenAddress = 127.0.0.1
[lab]
KnownPeers = {127.0.0.1}
"""


def loopback_config_path() -> str:
    """Write :data:`LOOPBACK_CONFIG` to a folder only this user can write; returns the file path.

    The folder is ``$XDG_RUNTIME_DIR/gaze3d`` or ``<tempdir>/gaze3d-<uid>``
    (mode 700; refused if it is a symlink or belongs to someone else). The file
    is written to a temporary name and renamed, so a reader never sees half of it.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = os.path.join(base, "gaze3d") if base and os.path.isdir(base) else \
        os.path.join(tempfile.gettempdir(), f"gaze3d-{os.getuid() if hasattr(os, 'getuid') else 'user'}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    if os.path.islink(folder) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
        raise InputError(f"lsl option 'lsl_config': {folder} is not a private folder of this user; "
                         "pass lsl_config=PATH to a liblsl config file")
    path = os.path.join(folder, "lsl_api_loopback.cfg")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(LOOPBACK_CONFIG)
    os.replace(tmp, path)
    return path


def configure_liblsl(mode: str) -> Optional[str]:
    """Point ``LSLAPICFG`` at the configuration ``mode`` names; returns the file in use (None: liblsl's own).

    Must run before liblsl first reads its configuration (in practice: before
    pylsl is imported in this process); a warning is logged otherwise.
    """
    if mode == "system":
        return os.environ.get("LSLAPICFG")
    if mode == "loopback":
        path = loopback_config_path()
    else:
        path = os.path.abspath(mode)
        if not os.path.isfile(path):
            raise InputError(f"lsl option 'lsl_config': {mode!r} is not 'loopback', 'system' or an existing file")
    if "pylsl" in sys.modules and os.environ.get("LSLAPICFG") != path:
        log.warning("lsl: pylsl was imported before the source set LSLAPICFG=%s; if liblsl has already read "
                    "its configuration in this process, the setting does not apply", path)
    os.environ["LSLAPICFG"] = path
    return path


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
    rays = [prefix for prefix in ("", "left_", "right_") if any(f"{prefix}{f}" in out for f in _RAY)]
    for prefix in rays:
        missing = [f"{prefix}{f}" for f in _RAY if f"{prefix}{f}" not in out]
        if missing:
            raise InputError(f"lsl option 'channels': a 3D ray needs all six channels; missing "
                             f"{', '.join(missing)} in {text!r}")
    if ("x" in out) != ("y" in out) or ("x" not in out and not rays):
        raise InputError(f"lsl option 'channels': 'x' and 'y' (or the six channels of a 3D ray) are required, "
                         f"got {text!r}")
    return out


def _parse_head_channels(text) -> Dict[str, int]:
    """``"px:0,...,qw:6"`` -> indices of the seven head-pose channels (all required)."""
    need = ("px", "py", "pz", "qx", "qy", "qz", "qw")
    items = text.items() if isinstance(text, dict) else [p.split(":", 1) for p in str(text).split(",") if p.strip()]
    out = {}
    for item in items:
        if len(item) != 2 or item[0].strip() not in need:
            raise InputError(f"lsl option 'head_channels': expected field:index pairs of {', '.join(need)}, "
                             f"got {text!r}")
        try:
            out[item[0].strip()] = int(str(item[1]).strip())
        except ValueError:
            raise InputError(f"lsl option 'head_channels': index of {item[0]!r} must be an integer") from None
    missing = [k for k in need if k not in out]
    if missing or min(out.values()) < 0:
        raise InputError(f"lsl option 'head_channels': need all of {', '.join(need)} with indices >= 0, "
                         f"got {text!r}")
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
        self.lsl_config = o.str("lsl_config", "loopback")
        self.head = {k: o.str(f"head_{k}") for k in ("name", "type", "source_id")}
        self.head_channels = _parse_head_channels(o.raw("head_channels", "px:0,py:1,pz:2,qx:3,qy:4,qz:5,qw:6"))
        self.head_max_gap_s = o.float("head_max_gap_s", 0.1, 0.0, 10.0)
        self.head_wait_s = o.float("head_wait_s", 0.1, 0.0, 10.0)
        self.gaze_frame = o.str("gaze_frame", "world", choices=("world", "head"))
        self.convention = o.str("convention", "openxr", choices=("openxr", "unity"))
        o.check_unused()
        self.topic = TOPIC_GAZE_3D if any(k in self.channels for k in _RAY_FIELDS) else TOPIC_GAZE_2D
        self._head_wanted = any(v is not None for v in self.head.values())
        if (self._head_wanted or self.gaze_frame == "head" or self.convention != "openxr") \
                and self.topic != TOPIC_GAZE_3D:
            raise InputError("lsl options 'head_*', 'gaze_frame' and 'convention': only for 3D gaze (ray channels)")
        if self.gaze_frame == "head" and not self._head_wanted:
            raise InputError("lsl option 'gaze_frame=head': needs a head-pose stream (head_name, head_type or "
                             "head_source_id)")
        self._head_inlet = None
        self._head_correction = 0.0
        self._join = None
        self._config_path: Optional[str] = None
        self._counts = {"samples": 0, "chunks": 0, "time_fallbacks": 0}
        self._next_correction = 0.0
        if self.stream_name is None and self.stream_type is None and self.source_id is None:
            self.stream_type = "Gaze"
        self._inlet = None
        self._lsl = None
        self._lock = threading.Lock()
        self._info = {}
        self._clock_offset = 0.0     # pylsl.local_clock() - time.monotonic()
        self._correction = 0.0

    def open(self) -> None:
        self._config_path = configure_liblsl(self.lsl_config)     # before pylsl loads liblsl
        lsl = self._lsl = optional_import("pylsl", extra="lsl")
        self.close()
        self._closed = False
        pred = " and ".join(f"{p}='{v}'" for p, v in (("name", self.stream_name), ("type", self.stream_type),
                                                      ("source_id", self.source_id)) if v is not None)
        info, inlet, self._correction = self._open_inlet(lsl, pred, self.channels, "channels", "stream", "streams")
        n = info.channel_count()
        self._clock_offset = self._measure_clock_offset(lsl)
        self._next_correction = time.monotonic() + CORRECTION_EVERY_S
        self._inlet = inlet
        if self._head_wanted:
            self._open_head(lsl)
        self._info = {"source": self.name, "stream": info.name(), "type": info.type(),
                      "source_id": info.source_id(), "rate_hz": info.nominal_srate(), "channels": n,
                      "hostname": info.hostname(), "mapping": dict(self.channels), "topic": self.topic,
                      "lsl_config": self._config_path or "liblsl defaults",
                      "time_base": "t_host_ns = LSL capture time on the host clock; t_arrival_ns = arrival"}
        if self._head_inlet is not None:
            self._info.update(head_stream=self._head_info, gaze_frame=self.gaze_frame, convention=self.convention)

    def _open_inlet(self, lsl, pred: str, channels: Dict[str, int], option: str, kind: str, resolving: str):
        """Resolve the first stream matching ``pred``, check that ``channels`` fit it, open an inlet on it.

        Returns ``(info, inlet, time_correction_s)``. ``option`` names the
        channel option, ``kind`` the stream and ``resolving`` the search in the
        errors (the gaze and the head-pose stream share this path).
        """
        try:
            found = lsl.resolve_bypred(pred, 1, self.resolve_timeout)
        except Exception as exc:
            raise SourceError(f"lsl: resolving {resolving} failed: {exc}") from exc
        if not found:
            raise SourceError(f"lsl: no {kind} with {pred} found within {self.resolve_timeout:g} s")
        info = found[0]
        n = info.channel_count()
        bad = {k: i for k, i in channels.items() if i >= n}
        if bad:
            raise InputError(f"lsl option '{option}': {bad} out of range; stream {info.name()!r} has {n} channels")
        try:
            inlet = lsl.StreamInlet(info, max_buflen=360, recover=False)
            inlet.open_stream(timeout=self.resolve_timeout)
            correction = float(inlet.time_correction(timeout=self.resolve_timeout))
        except Exception as exc:
            raise SourceError(f"lsl: opening {kind} {info.name()!r} failed: {exc}") from exc
        return info, inlet, correction

    def _open_head(self, lsl) -> None:
        """Resolve and open the head-pose stream; the join starts empty."""
        from ...vr.posejoin import PoseJoin

        pred = " and ".join(f"{p}='{v}'" for p, v in self.head.items() if v is not None)
        info, inlet, self._head_correction = self._open_inlet(lsl, pred, self.head_channels, "head_channels",
                                                              "head-pose stream", "the head-pose stream")
        self._head_inlet = inlet
        self._head_info = {"stream": info.name(), "type": info.type(), "rate_hz": info.nominal_srate(),
                           "mapping": dict(self.head_channels)}
        self._join = PoseJoin(max_gap_s=self.head_max_gap_s, wait_s=self.head_wait_s)

    def _pull_head(self) -> None:
        """Move the head poses that arrived into the join (on the gaze inlet's clock)."""
        import numpy as np

        try:
            rows, stamps = self._head_inlet.pull_chunk(timeout=0.0, max_samples=4096)
        except Exception as exc:
            raise SourceError(f"lsl: head-pose stream {self._head_info['stream']!r} lost: {exc}") from exc
        if not rows:
            return
        a = np.asarray(rows, dtype=np.float64)
        ch = self.head_channels
        p = a[:, [ch["px"], ch["py"], ch["pz"]]]
        q = a[:, [ch["qx"], ch["qy"], ch["qz"], ch["qw"]]]
        if self.convention == "unity":       # mirror Z: position (x, y, -z), rotation M R M = (-qx, -qy, qz, qw)
            p = p * [1.0, 1.0, -1.0]
            q = q * [-1.0, -1.0, 1.0, 1.0]
        # both streams on the gaze clock: head LSL time + its correction - the gaze inlet's correction
        self._join.add_poses(np.asarray(stamps) + self._head_correction - self._correction, p, q)

    def _joined(self, samples: List[dict], stamps, flush: bool = False) -> List[dict]:
        """Samples through the head-pose join, then into the world frame."""
        import numpy as np

        from ...vr.frames import MIRROR_Z
        from ...vr.posejoin import apply_head_frame

        self._pull_head()
        now = time.monotonic()
        for s, t in zip(samples, stamps):
            self._join.add_sample(t, s, now)
        out = self._join.ready(now, flush=flush)
        for s in out:
            if self.gaze_frame == "head":
                apply_head_frame(s, MIRROR_Z if self.convention == "unity" else None)
            elif self.convention == "unity":
                for d, ko, kd in [(s, "ray_origin", "ray_direction")] + [
                        (s[e], "origin", "direction") for e in ("left", "right") if isinstance(s.get(e), dict)]:
                    for k in (ko, kd):
                        if d.get(k) is not None:
                            d[k] = (np.asarray(d[k]) * [1.0, 1.0, -1.0]).tolist()
        return out

    @staticmethod
    def _measure_clock_offset(lsl, rounds: int = 5) -> float:
        """``pylsl.local_clock() - time.monotonic()``: the tightest bracket of a few readings."""
        best = None
        for _ in range(rounds):
            a = time.monotonic()
            lc = lsl.local_clock()
            b = time.monotonic()
            if best is None or b - a < best[0]:
                best = (b - a, lc - 0.5 * (a + b))
        return best[1]

    def counters(self) -> dict:
        join = {} if self._join is None else {f"head_{k}": v for k, v in self._join.counts.items()}
        return {**self._counts, "time_correction_s": self._correction, **join}

    def _refresh_correction(self) -> None:
        """Re-read the inlet's clock correction (liblsl updates it in the background); keep the old on timeout."""
        self._next_correction = time.monotonic() + CORRECTION_EVERY_S
        try:
            self._correction = float(self._inlet.time_correction(timeout=0.05))
        except Exception as exc:  # pylsl.TimeoutError while liblsl has no fresh estimate
            log.debug("lsl: time_correction not refreshed: %s", exc)

    def _ray(self, row, prefix: str):
        """``(origin [3], unit direction [3])`` of a mapped ray, or None when not finite / zero length."""
        ch = self.channels
        o = [float(row[ch[f"{prefix}o{a}"]]) for a in "xyz"]
        d = [float(row[ch[f"{prefix}d{a}"]]) for a in "xyz"]
        norm = math.sqrt(sum(v * v for v in d))
        if not (all(math.isfinite(v) for v in o + d) and norm > 0):
            return None
        return o, [v / norm for v in d]

    def _convert(self, row, ts: float, t_arrival_ns: int) -> dict:
        ch = self.channels
        sx, sy = self.scale

        def coord(kx, ky):
            x, y = float(row[ch[kx]]) / sx, float(row[ch[ky]]) / sy
            return [x, 1.0 - y if self.flip_y else y]

        flag = ch.get("valid", ch.get("confidence"))
        flag_ok = flag is None or float(row[flag]) >= self.threshold
        gaze = None
        if "x" in ch:
            gaze = coord("x", "y")
            ok = flag_ok and all(math.isfinite(v) for v in gaze)
            if not ok:
                gaze = [math.nan, math.nan]
        t_dev = float(ts)
        t_cap = int(round((t_dev + self._correction - self._clock_offset) * 1e9))
        if not 0 <= t_cap <= t_arrival_ns + int(MAX_FUTURE_S * 1e9):
            self._counts["time_fallbacks"] += 1
            t_cap = t_arrival_ns
        s = {"topic": self.topic, "t_device": t_dev, "t_host_ns": t_cap, "t_capture_ns": t_cap,
             "t_arrival_ns": t_arrival_ns}
        if self.topic == TOPIC_GAZE_3D:
            eyes_ok = []
            for side in ("left", "right"):
                if f"{side}_ox" in ch:
                    eye = self._ray(row, f"{side}_")
                    s[side] = {"valid": eye is not None and flag_ok}
                    eyes_ok.append(s[side]["valid"])
                    if eye is not None:
                        s[side]["origin"], s[side]["direction"] = eye
            if "ox" in ch:           # the combined ray decides validity
                ray = self._ray(row, "")
                ok = flag_ok and ray is not None
                if ray is not None:
                    s["ray_origin"], s["ray_direction"] = ray
            elif gaze is None:       # per-eye rays only: valid when an eye is
                ok = any(eyes_ok)
        if gaze is not None:
            s["gaze"] = gaze
        s["valid"] = bool(ok)
        if "confidence" in ch:
            s["confidence"] = float(row[ch["confidence"]])
        if "pupil" in ch and math.isfinite(float(row[ch["pupil"]])):
            s["pupil_mm"] = float(row[ch["pupil"]])
        for side in ("left", "right"):
            if f"{side}_x" in ch and f"{side}_y" in ch:
                g = coord(f"{side}_x", f"{side}_y")
                good = all(math.isfinite(v) for v in g)
                eye = s.setdefault(side, {})
                eye["gaze"] = g if good else [math.nan, math.nan]
                eye["valid"] = good and eye.get("valid", True)
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
                t_arrival = time.monotonic_ns()
                if time.monotonic() >= self._next_correction:
                    self._refresh_correction()
                self._counts["chunks"] += 1
                self._counts["samples"] += len(rows)
                if self._join is not None:
                    return self._joined([self._convert(r, t, t_arrival) for r, t in zip(rows, stamps)], stamps)
                return [self._convert(r, t, t_arrival) for r, t in zip(rows, stamps)]
            if self._join is not None and self._join.pending:
                out = self._joined([], [])          # samples whose pose came late or whose wait is over
                if out:
                    return out
            if time.monotonic() >= deadline:
                return []
        if self._join is not None and self._join.pending and self._head_inlet is not None:
            return self._joined([], [], flush=True)  # closing: hand over the waiting samples, not drop them
        return []

    def _release(self) -> None:
        with self._lock:
            inlet, self._inlet = self._inlet, None
            head, self._head_inlet = self._head_inlet, None
        for one in (inlet, head):
            if one is not None:
                try:
                    one.close_stream()
                except Exception:
                    pass
        del inlet, head

    def info(self) -> dict:
        return dict(self._info) if self._info else {"source": self.name, "name": self.stream_name, "type": self.stream_type}
