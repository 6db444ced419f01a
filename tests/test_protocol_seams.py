"""The protocol as one source of truth: message shapes match what a real tracker sends; pub_address()."""
from __future__ import annotations

import typing

import pytest

from gaze3d import protocol
from gaze3d.tracker.client import GazeSubscriber, TrackerControl
from gaze3d.tracker.process import start_tracker

pytestmark = pytest.mark.timeout(60)


def _keys(td) -> set:
    return set(typing.get_type_hints(td))


def test_header_shape_is_the_required_fields():
    assert list(typing.get_type_hints(protocol.Header)) == list(protocol.REQUIRED_FIELDS)


def test_real_tracker_messages_fit_the_written_shapes():
    with start_tracker("sim", {"rate": 200, "duration": 5, "seed": 3}) as tracker, \
            TrackerControl(tracker.ctrl_address, timeout_s=5.0) as control:
        assert control.pub_address() == tracker.pub_address       # asked from the tracker's status
        status = control.status()
        assert control.pub_address(status) == tracker.pub_address  # or read from a status at hand
        with GazeSubscriber(tracker.pub_address, topics=(protocol.TOPIC_GAZE_2D, protocol.TOPIC_STATUS)) as sub:
            seen = {}
            for _ in range(400):
                msg = sub.recv(timeout_s=5)
                assert msg is not None
                seen.setdefault(msg[0], msg[1])
                if len(seen) == 2:
                    break
    gaze, heartbeat = seen[protocol.TOPIC_GAZE_2D], seen[protocol.TOPIC_STATUS]
    # every field a source sends is written down (sources may add fields; the sim adds none unnamed)
    assert set(gaze) <= _keys(protocol.GazeSample), set(gaze) - _keys(protocol.GazeSample)
    assert set(heartbeat) <= _keys(protocol.StatusMessage) | {"topic"}, \
        set(heartbeat) - _keys(protocol.StatusMessage)
    assert _keys(protocol.Header) <= set(gaze) and _keys(protocol.Header) <= set(heartbeat)


def test_pub_address_is_none_when_status_lacks_it():
    control = TrackerControl("tcp://127.0.0.1:1")
    try:
        assert control.pub_address({"pub": None}) is None
        assert control.pub_address({}) is None
        assert control.pub_address({"pub": "tcp://127.0.0.1:5"}) == "tcp://127.0.0.1:5"
    finally:
        control.close()
