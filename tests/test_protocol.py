"""Protocol encode/decode/validation (pure, no sockets)."""
import math

import msgpack
import numpy as np
import pytest

from gaze3d.protocol import (SCHEMA_VERSION, ProtocolError, VersionError, control_reply, control_request, decode,
                             encode, gaze_xy, pack, unpack)


def _sample(**kw):
    s = {"v": SCHEMA_VERSION, "source": "sim", "session": "abc", "seq": 3, "t_device": 1.5,
         "t_host_ns": 123456789, "gaze": [0.25, 0.75], "valid": True}
    s.update(kw)
    return s


def test_roundtrip_keeps_fields_and_numpy_types():
    s = _sample(gaze=np.array([0.25, 0.75], dtype=np.float32), seq=np.int64(3), left={"pupil_mm": np.float64(3.1)})
    topic, out = decode(encode("gaze.2d", s))
    assert topic == "gaze.2d"
    assert out["seq"] == 3 and isinstance(out["seq"], int)
    assert out["gaze"] == [0.25, 0.75]
    assert out["left"]["pupil_mm"] == pytest.approx(3.1)
    assert gaze_xy(out) == (0.25, 0.75)


def test_nan_gaze_survives_and_invalid_gives_nan():
    _, out = decode(encode("gaze.2d", _sample(gaze=[float("nan"), float("nan")], valid=False)))
    x, y = gaze_xy(out)
    assert math.isnan(x) and math.isnan(y)


def test_t_device_may_be_nil():
    _, out = decode(encode("status", _sample(t_device=None)))
    assert out["t_device"] is None


@pytest.mark.parametrize("frames, match", [
    ([b"gaze.2d"], "2 frames"),
    ([b"gaze.2d", b"x", b"y"], "2 frames"),
    ([b"", pack(_sample())], "topic"),
    ([b"\xff\xfe", pack(_sample())], "ASCII"),
    ([b"gaze.2d", b"\xc1garbage"], "msgpack"),
    ([b"gaze.2d", pack([1, 2, 3])], "map"),
    ([b"gaze.2d", pack({k: v for k, v in _sample().items() if k != "seq"})], "seq"),
    ([b"gaze.2d", pack(_sample(seq=-1))], "seq"),
    ([b"gaze.2d", pack(_sample(t_host_ns="now"))], "t_host_ns"),
    ([b"gaze.2d", pack(_sample(t_device="x"))], "t_device"),
    ([b"gaze.2d", pack(_sample(gaze=[1, 2, 3]))], "gaze"),
    ([b"gaze.2d", pack(_sample(valid=1))], "valid"),
    ([b"gaze.3d", pack(_sample(ray_origin=[0, 0]))], "ray_origin"),
    ([b"gaze.2d", pack(_sample(source=5))], "source"),
])
def test_malformed_messages_raise_protocol_error(frames, match):
    with pytest.raises(ProtocolError, match=match):
        decode(frames)


def test_wrong_version_is_a_version_error():
    with pytest.raises(VersionError, match="schema version 99"):
        decode([b"gaze.2d", pack(_sample(v=99))])
    with pytest.raises(ProtocolError, match="'v'"):
        decode([b"gaze.2d", pack({k: v for k, v in _sample().items() if k != "v"})])


def test_control_messages_carry_version():
    req = unpack(control_request("start_recording", path="/tmp/x"))
    assert req == {"v": SCHEMA_VERSION, "cmd": "start_recording", "path": "/tmp/x"}
    rep = msgpack.unpackb(control_reply(False, error="boom"))
    assert rep == {"v": SCHEMA_VERSION, "ok": False, "error": "boom"}


def test_unencodable_value_is_a_clear_error():
    with pytest.raises(TypeError, match="object"):
        pack({"x": object()})


# ------------------------------------------------------------------ control-request schema (issue 13)
def test_validate_request_accepts_what_the_client_sends():
    from gaze3d.protocol import REQUEST_SCHEMA, unpack_request, validate_request

    cam = {"position": [0, -5, 2], "focal_point": [0, 0, 0], "view_up": [0, 0, 1], "vfov_deg": 30.0,
           "width": 640, "height": 480}
    for cmd, fields in [("status", {}), ("sync", {}), ("start_recording", {"path": "a/b.sqlite"}),
                        ("camera", {"t_host_ns": 5, "camera": cam}), ("event", {"event": {"type": "x"}}),
                        ("event", {"event": {"a": [1, 2.5, None, "s", {"b": True}]}, "t_host_ns": (1 << 63) - 1}),
                        ("meta", {"key": "calibration", "value": None}), ("calibrate", {"action": "point",
                                                                             "args": {"x": 0.1, "y": 0.9}})]:
        assert cmd in REQUEST_SCHEMA
        req = unpack_request(control_request(cmd, **fields))
        assert validate_request(req) == {"v": SCHEMA_VERSION, "cmd": cmd, **fields}


@pytest.mark.parametrize("request_, exc, match", [
    ([1, 2], ProtocolError, "expected a map"),
    ({"cmd": "ping"}, ProtocolError, "'v'"),
    ({"v": True, "cmd": "ping"}, ProtocolError, "'v'"),
    ({"v": 1.0, "cmd": "ping"}, ProtocolError, "'v'"),
    ({"v": SCHEMA_VERSION + 1, "cmd": "ping"}, VersionError, "schema version"),
    ({"v": SCHEMA_VERSION, "cmd": 5}, ProtocolError, "'cmd'"),
    ({"v": SCHEMA_VERSION, "cmd": "frobnicate"}, ProtocolError, "unknown command"),
    ({"v": SCHEMA_VERSION, "cmd": "ping", "x": 1}, ProtocolError, "unknown field"),
    ({"v": SCHEMA_VERSION, "cmd": "event"}, ProtocolError, "'event' is required"),
    ({"v": SCHEMA_VERSION, "cmd": "event", "event": {}, "t_host_ns": 1e30}, ProtocolError, "t_host_ns"),
    ({"v": SCHEMA_VERSION, "cmd": "event", "event": {}, "t_host_ns": -5}, ProtocolError, "t_host_ns"),
    ({"v": SCHEMA_VERSION, "cmd": "event", "event": {}, "t_host_ns": True}, ProtocolError, "t_host_ns"),
    ({"v": SCHEMA_VERSION, "cmd": "event", "event": {"b": b"raw"}}, ProtocolError, "bytes"),
    ({"v": SCHEMA_VERSION, "cmd": "event", "event": {"s": "x" * 70_000}}, ProtocolError, "string"),
    ({"v": SCHEMA_VERSION, "cmd": "event", "event": {"l": list(range(10_001))}}, ProtocolError, "elements"),
    ({"v": SCHEMA_VERSION, "cmd": "camera", "t_host_ns": 1, "camera": "front"}, ProtocolError, "map"),
    ({"v": SCHEMA_VERSION, "cmd": "meta", "key": "", "value": 1}, ProtocolError, "'key'"),
    ({"v": SCHEMA_VERSION, "cmd": "start_recording", "path": ""}, ProtocolError, "'path'"),
    ({"v": SCHEMA_VERSION, "cmd": "start_recording", "path": "a\x00b"}, ProtocolError, "NUL"),
    ({"v": SCHEMA_VERSION, "cmd": "calibrate", "action": "x", "args": {"action": 1}}, ProtocolError, "identifiers"),
    ({"v": SCHEMA_VERSION, "cmd": "calibrate", "action": "x", "args": {"not id": 1}}, ProtocolError, "identifiers"),
])
def test_validate_request_refuses_with_a_clear_error(request_, exc, match):
    from gaze3d.protocol import validate_request

    with pytest.raises(exc, match=match):
        validate_request(request_)


def test_unpack_request_limits():
    from gaze3d.protocol import MAX_REQUEST_BYTES, unpack_request

    with pytest.raises(ProtocolError, match="exceeds the limit"):
        unpack_request(b"\x00" * (MAX_REQUEST_BYTES + 1))
    with pytest.raises(ProtocolError, match="msgpack"):
        unpack_request(b"\x91" * 100_000 + b"\x00")             # 100k nested arrays
    with pytest.raises(ProtocolError, match="msgpack"):
        unpack_request(msgpack.packb({1: 2}))                    # integer keys: not ours
