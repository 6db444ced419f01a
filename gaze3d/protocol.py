"""The gaze3d wire protocol: topics, schema version, message encode/decode and validation.

Every message on the tracker's PUB socket is a two-frame ZeroMQ multipart
``[topic, payload]``: ``topic`` is ASCII (``gaze.2d``, ``gaze.3d``, ``status``,
``event``), ``payload`` a msgpack map. Every payload carries

``v`` int
    Schema version, :data:`SCHEMA_VERSION`. Receivers drop other versions.
``source`` str
    Source id (``sim``, ``tobii``...).
``session`` str
    Id of the tracker run; changes when the tracker restarts.
``seq`` int
    Per-topic sequence number, starting at 0 in each session; a jump is a gap.
``t_device`` float or None
    The device's own timestamp in seconds.
``t_host_ns`` int
    Tracker host ``CLOCK_MONOTONIC`` (``time.monotonic_ns()``) in nanoseconds.

Control requests and replies (REQ/REP) are single-frame msgpack maps, see
``docs/protocol.md``. This module is pure (no sockets) and needs only msgpack
and numpy, so it runs in the lean tracker environment.
"""
from __future__ import annotations

import math
from typing import Any, Sequence, Tuple

import msgpack
import numpy as np

from .errors import Gaze3DError

SCHEMA_VERSION = 1

TOPIC_GAZE_2D = "gaze.2d"
TOPIC_GAZE_3D = "gaze.3d"
TOPIC_STATUS = "status"
TOPIC_EVENT = "event"
GAZE_TOPICS = (TOPIC_GAZE_2D, TOPIC_GAZE_3D)

# Fields every PUB payload must carry, with the types a receiver accepts.
REQUIRED_FIELDS = ("v", "source", "session", "seq", "t_device", "t_host_ns")

MAX_TOPIC_BYTES = 64


class ProtocolError(Gaze3DError):
    """A message that does not follow the protocol (bad frames, msgpack or fields)."""


class VersionError(ProtocolError):
    """A well-formed message with a schema version this side does not speak."""


def _to_builtin(obj: Any):
    """msgpack ``default`` hook: numpy scalars and arrays -> Python numbers and lists."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} in a gaze3d message")


def pack(obj: dict) -> bytes:
    """msgpack-encode a dict (numpy scalars/arrays allowed, floats as float64)."""
    return msgpack.packb(obj, default=_to_builtin, use_bin_type=True, use_single_float=False)


def unpack(data: bytes) -> Any:
    """msgpack-decode ``data``; raises :class:`ProtocolError` if it is not valid msgpack."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"payload is not valid msgpack ({type(exc).__name__}: {exc})") from None


def encode(topic: str, payload: dict) -> list:
    """Two frames ``[topic bytes, msgpack payload]`` ready for ``send_multipart``."""
    return [topic.encode("ascii"), pack(payload)]


def validate(topic: str, payload: Any) -> dict:
    """Check a decoded PUB payload; returns it or raises :class:`ProtocolError`/:class:`VersionError`."""
    if not isinstance(payload, dict):
        raise ProtocolError(f"topic {topic!r}: payload is a {type(payload).__name__}, expected a map")
    v = payload.get("v")
    if not isinstance(v, int) or isinstance(v, bool):
        raise ProtocolError(f"topic {topic!r}: field 'v' missing or not an int")
    if v != SCHEMA_VERSION:
        raise VersionError(f"topic {topic!r}: schema version {v}, this side speaks {SCHEMA_VERSION}")
    for name in REQUIRED_FIELDS:
        if name not in payload:
            raise ProtocolError(f"topic {topic!r}: missing field {name!r}")
    if not isinstance(payload["source"], str) or not isinstance(payload["session"], str):
        raise ProtocolError(f"topic {topic!r}: fields 'source' and 'session' must be strings")
    for name in ("seq", "t_host_ns"):
        value = payload[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError(f"topic {topic!r}: field {name!r} must be a non-negative int, got {value!r}")
    td = payload["t_device"]
    if td is not None and (not isinstance(td, (int, float)) or isinstance(td, bool)):
        raise ProtocolError(f"topic {topic!r}: field 't_device' must be a number or nil, got {td!r}")
    if topic in GAZE_TOPICS:
        _validate_gaze(topic, payload)
    return payload


def _validate_gaze(topic: str, payload: dict) -> None:
    gaze = payload.get("gaze")
    if gaze is not None and (not isinstance(gaze, (list, tuple)) or len(gaze) != 2):
        raise ProtocolError(f"topic {topic!r}: field 'gaze' must be [x, y] or nil, got {gaze!r}")
    valid = payload.get("valid", True)
    if not isinstance(valid, bool):
        raise ProtocolError(f"topic {topic!r}: field 'valid' must be a bool, got {valid!r}")
    for name in ("ray_origin", "ray_direction"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, (list, tuple)) or len(value) != 3):
            raise ProtocolError(f"topic {topic!r}: field {name!r} must be [x, y, z], got {value!r}")


def decode(frames: Sequence[bytes]) -> Tuple[str, dict]:
    """Parse and validate a received multipart message -> ``(topic, payload)``.

    Raises
    ------
    ProtocolError
        Wrong number of frames, non-ASCII or over-long topic, bad msgpack, bad fields.
    VersionError
        A schema version other than :data:`SCHEMA_VERSION`.
    """
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames [topic, payload], got {len(frames)}")
    raw_topic = bytes(frames[0])
    if not raw_topic or len(raw_topic) > MAX_TOPIC_BYTES:
        raise ProtocolError(f"topic must be 1..{MAX_TOPIC_BYTES} bytes, got {len(raw_topic)}")
    try:
        topic = raw_topic.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("topic is not ASCII") from None
    return topic, validate(topic, unpack(bytes(frames[1])))


def gaze_xy(payload: dict) -> Tuple[float, float]:
    """Combined gaze ``(x, y)`` of a sample payload, NaN when invalid or absent."""
    gaze = payload.get("gaze")
    if gaze is None or not payload.get("valid", True):
        return math.nan, math.nan
    x, y = gaze
    return (math.nan if x is None else float(x)), (math.nan if y is None else float(y))


def control_request(cmd: str, **fields) -> bytes:
    """Encode a control request ``{"v", "cmd", ...}``."""
    return pack({"v": SCHEMA_VERSION, "cmd": cmd, **fields})


def control_reply(ok: bool, **fields) -> bytes:
    """Encode a control reply ``{"v", "ok", ...}`` (``error`` str when not ok)."""
    return pack({"v": SCHEMA_VERSION, "ok": bool(ok), **fields})
