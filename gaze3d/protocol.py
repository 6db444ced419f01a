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
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypedDict

import msgpack
import numpy as np

from .errors import Gaze3DError

SCHEMA_VERSION = 1

TOPIC_GAZE_2D = "gaze.2d"
TOPIC_GAZE_3D = "gaze.3d"
TOPIC_STATUS = "status"
TOPIC_EVENT = "event"
GAZE_TOPICS = (TOPIC_GAZE_2D, TOPIC_GAZE_3D)
GAZE_PREFIX = "gaze."   # subscription prefix of both gaze topics (ZeroMQ matches prefixes)

# Fields every PUB payload must carry, with the types a receiver accepts.
REQUIRED_FIELDS = ("v", "source", "session", "seq", "t_device", "t_host_ns")

MAX_TOPIC_BYTES = 64

# ---------------------------------------------------------------- control-request limits
# One source of truth for the limits the tracker enforces at its control socket
# (docs/protocol.md lists them). The REP socket gets MAX_REQUEST_BYTES as
# ZMQ_MAXMSGSIZE: ZeroMQ drops the connection of a peer that sends more, before
# the bytes reach Python.
MAX_REQUEST_BYTES = 1 << 20
MAX_SUBSCRIPTION_BYTES = 1024   # ZMQ_MAXMSGSIZE on the PUB/XPUB side (subscriptions only)
MAX_VALUE_DEPTH = 16            # nesting of an event/meta/args value
MAX_VALUE_ITEMS = 10_000        # containers' elements, summed over one value
MAX_STR_CHARS = 65_536          # one string inside a value
MAX_PATH_CHARS = 4096
MAX_KEY_CHARS = 256             # meta keys, calibrate action and arg names
T_HOST_NS_MAX = (1 << 63) - 1   # a signed 64-bit int: what SQLite and every client language hold


# ------------------------------------------------------------------ message shapes
# The payload maps written down as types (docs/protocol.md has the units). They
# describe, they do not check: :func:`validate` is the check a receiver runs.
class Header(TypedDict):
    """Fields every PUB payload carries (:data:`REQUIRED_FIELDS`)."""

    v: int
    source: str
    session: str
    seq: int
    t_device: Optional[float]
    t_host_ns: int


class EyeSample(TypedDict, total=False):
    """One eye of a gaze sample (``left``/``right``)."""

    gaze: List[float]           # [x, y], normalised display
    valid: bool
    pupil_mm: float
    origin_mm: List[float]      # [x, y, z], the tracker's 3D frame
    direction: List[float]      # unit vector, the tracker's 3D frame


class GazeSample(Header, total=False):
    """A ``gaze.2d`` / ``gaze.3d`` payload; sources may add fields, receivers ignore unknown ones."""

    topic: str
    gaze: Optional[List[float]]            # [x, y] normalised display, nil when invalid
    valid: bool                            # default true
    left: EyeSample
    right: EyeSample
    pupil_mm: float
    confidence: float
    ray_origin: List[float]                # gaze.3d: world-space ray origin (scene units)
    ray_direction: List[float]             # gaze.3d: world-space unit direction
    head_pose: List[float]                 # gaze.3d: row-major 4x4 world-from-head
    gaze_point: List[float]                # gaze.3d: where the ray met the scene, when the source knows
    truth: Dict[str, Any]                  # simulator only: ground truth for tests
    t_arrival_ns: int                      # chunked sources (LSL): arrival on the tracker clock


class StatusMessage(Header, total=False):
    """A ``status`` heartbeat payload."""

    state: str                  # connecting, running, disconnected, ended, failed
    samples: int
    recording: Optional[str]
    reconnects: int
    last_error: Optional[str]


class EventMessage(Header):
    """An ``event`` payload: whatever a client sent with the ``event`` command."""

    event: Dict[str, Any]


class ControlReply(TypedDict, total=False):
    """A control (REP) reply; ``error`` when ``ok`` is false, the command's fields otherwise."""

    v: int
    ok: bool
    error: str


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


def unpack_request(data: bytes) -> Any:
    """msgpack-decode a control request with the size limits above; raises :class:`ProtocolError`."""
    if len(data) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"request of {len(data)} bytes exceeds the limit of {MAX_REQUEST_BYTES}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True,
                               max_str_len=4 * MAX_STR_CHARS, max_bin_len=MAX_STR_CHARS,
                               max_array_len=MAX_VALUE_ITEMS, max_map_len=MAX_VALUE_ITEMS, max_ext_len=0)
    except Exception as exc:  # msgpack raises several unrelated types (and RecursionError on deep nesting)
        raise ProtocolError(f"payload is not valid msgpack within the limits ({type(exc).__name__}: {exc})") from None


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


# ------------------------------------------------------------ control-request schema
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_plain(value, where: str, depth: int = 0, budget: list = None) -> None:
    """A JSON-like value: nil, bool, int, float, str, list, map with str keys; no bytes, bounded size."""
    if budget is None:
        budget = [MAX_VALUE_ITEMS]
    if depth > MAX_VALUE_DEPTH:
        raise ProtocolError(f"{where}: nested deeper than {MAX_VALUE_DEPTH} levels")
    if value is None or isinstance(value, (bool, float)):
        return
    if isinstance(value, int):
        if not -(1 << 63) <= value <= T_HOST_NS_MAX:
            raise ProtocolError(f"{where}: integer {value} outside the signed 64-bit range")
        return
    if isinstance(value, str):
        if len(value) > MAX_STR_CHARS:
            raise ProtocolError(f"{where}: string of {len(value)} chars, limit {MAX_STR_CHARS}")
        return
    if isinstance(value, (list, tuple)):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise ProtocolError(f"{where}: more than {MAX_VALUE_ITEMS} elements")
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", depth + 1, budget)
        return
    if isinstance(value, dict):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise ProtocolError(f"{where}: more than {MAX_VALUE_ITEMS} elements")
        for k, item in value.items():
            if not isinstance(k, str) or len(k) > MAX_KEY_CHARS:
                raise ProtocolError(f"{where}: map keys must be strings of at most {MAX_KEY_CHARS} chars, "
                                    f"got {str(k)[:40]!r}")
            _check_plain(item, f"{where}.{k}", depth + 1, budget)
        return
    raise ProtocolError(f"{where}: expected nil, bool, int, float, str, list or map, got {type(value).__name__}")


def _f_t_host_ns(v, where):
    if not _is_int(v) or not 0 <= v <= T_HOST_NS_MAX:
        raise ProtocolError(f"{where}: expected an int in [0, 2**63 - 1] (tracker clock, ns), got {v!r}"[:200])


def _f_path(v, where):
    if not isinstance(v, str) or not 0 < len(v) <= MAX_PATH_CHARS or "\x00" in v:
        raise ProtocolError(f"{where}: expected a non-empty str of at most {MAX_PATH_CHARS} chars without NUL")


def _f_key(v, where):
    if not isinstance(v, str) or not 0 < len(v) <= MAX_KEY_CHARS:
        raise ProtocolError(f"{where}: expected a non-empty str of at most {MAX_KEY_CHARS} chars, got {v!r}"[:200])


def _f_map(v, where):
    if not isinstance(v, dict):
        raise ProtocolError(f"{where}: expected a map, got {type(v).__name__}")
    _check_plain(v, where)


def _f_plain(v, where):
    _check_plain(v, where)


def _f_args(v, where):
    _f_map(v, where)
    for k in v:
        if not k.isidentifier() or k == "action":
            raise ProtocolError(f"{where}: argument names must be identifiers other than 'action', got {k!r}")


# cmd -> {field: (checker, required)}. ``v`` and ``cmd`` are checked for every command;
# any other field is refused, so a typo never passes silently.
REQUEST_SCHEMA = {
    "status": {}, "ping": {}, "sync": {}, "list_sources": {}, "stop_recording": {}, "shutdown": {},
    "start_recording": {"path": (_f_path, True)},
    "camera": {"t_host_ns": (_f_t_host_ns, True), "camera": (_f_map, True)},
    "event": {"event": (_f_map, True), "t_host_ns": (_f_t_host_ns, False)},
    "meta": {"key": (_f_key, True), "value": (_f_plain, True)},
    "calibrate": {"action": (_f_key, True), "args": (_f_args, False)},
}


def validate_request(request: Any) -> dict:
    """Check a decoded control request against :data:`REQUEST_SCHEMA`; returns it or raises.

    Raises
    ------
    VersionError
        ``v`` is an int other than :data:`SCHEMA_VERSION`.
    ProtocolError
        Not a map, ``v`` not an int (``true``, ``1.0`` are not), unknown ``cmd``,
        a missing, unknown or ill-typed field, a value out of range or over a limit.
    """
    if not isinstance(request, dict):
        raise ProtocolError(f"request: expected a map, got {type(request).__name__}")
    v = request.get("v")
    if not _is_int(v):
        raise ProtocolError(f"request field 'v': expected the int {SCHEMA_VERSION}, got {v!r}"[:200])
    if v != SCHEMA_VERSION:
        raise VersionError(f"request: schema version {v}, tracker speaks {SCHEMA_VERSION}")
    cmd = request.get("cmd")
    if not isinstance(cmd, str):
        raise ProtocolError(f"request field 'cmd': expected a str, got {type(cmd).__name__}")
    fields = REQUEST_SCHEMA.get(cmd)
    if fields is None:
        raise ProtocolError(f"unknown command {cmd[:64]!r}; known: {', '.join(sorted(REQUEST_SCHEMA))}")
    for name in request:
        if name not in fields and name not in ("v", "cmd"):
            raise ProtocolError(f"{cmd}: unknown field {str(name)[:64]!r}; expected "
                                f"{', '.join(fields) or 'no fields'}")
    for name, (check, required) in fields.items():
        if name not in request or (request[name] is None and not required):
            if required:
                raise ProtocolError(f"{cmd}: field {name!r} is required")
            continue
        check(request[name], f"{cmd} field {name!r}")
    return request


def control_request(cmd: str, **fields) -> bytes:
    """Encode a control request ``{"v", "cmd", ...}``."""
    return pack({"v": SCHEMA_VERSION, "cmd": cmd, **fields})


def control_reply(ok: bool, **fields) -> bytes:
    """Encode a control reply ``{"v", "ok", ...}`` (``error`` str when not ok)."""
    return pack({"v": SCHEMA_VERSION, "ok": bool(ok), **fields})
