"""CurveZMQ key files and the loopback rule (no sockets bound)."""
import os
import stat

import pytest
import zmq

from gaze3d.errors import InputError
from gaze3d.tracker.keys import client_keys, generate_keys, load_server_keys, public_key
from gaze3d.tracker.plugins import make_source, parse_options
from gaze3d.tracker.server import TrackerServer, is_loopback
from tracker_helpers import SyntheticSource


def test_generate_and_load_keys(tmp_path):
    paths = generate_keys(tmp_path / "k")
    pub, sec = load_server_keys(tmp_path / "k")
    assert len(pub) == 40 and len(sec) == 40
    assert public_key(paths["server_public"]) == pub == public_key(tmp_path / "k") == public_key(pub.decode())
    assert stat.S_IMODE(os.stat(paths["server_secret"]).st_mode) == 0o600
    cpub, csec = client_keys(tmp_path / "k")
    assert public_key(paths["client_public"]) == cpub and len(csec) == 40
    assert len(client_keys(None)[0]) == 40  # ephemeral pair
    with pytest.raises(InputError, match="already exist"):
        generate_keys(tmp_path / "k")
    generate_keys(tmp_path / "k", overwrite=True)
    assert load_server_keys(tmp_path / "k")[0] != pub
    with pytest.raises(InputError, match="server.key_secret"):
        load_server_keys(tmp_path)
    with pytest.raises(InputError, match="z85"):
        public_key("too-short")
    with pytest.raises(InputError, match="no secret"):
        client_keys(paths["client_public"])


@pytest.mark.parametrize("address, expected", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.0.0.1:*", True), ("tcp://localhost:1", True),
    ("tcp://[::1]:5555", True), ("ipc:///tmp/g3d", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://192.168.1.4:5555", False),
    ("tcp://eth0:5555", False), ("udp://127.0.0.1:1", False)])
def test_is_loopback(address, expected):
    assert is_loopback(address) is expected


def test_server_refuses_public_bind_without_keys_and_bad_arguments():
    with pytest.raises(InputError, match="CurveZMQ"):
        TrackerServer(SyntheticSource(), pub="tcp://0.0.0.0:*")
    with pytest.raises(InputError, match="GazeSource"):
        TrackerServer(object())
    with pytest.raises(InputError, match="key=value"):
        parse_options(["rate"])
    assert parse_options(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    assert isinstance(make_source("tracker_helpers:SyntheticSource", {"rate_hz": "10"}), SyntheticSource)
    with pytest.raises(InputError, match="unknown"):
        make_source("no-such-source")


def test_in_process_server_serves_and_stops(tmp_path):
    """TrackerServer is also usable inside a process (threads), e.g. by an app embedding it."""
    from gaze3d.tracker.client import GazeSubscriber, TrackerControl

    with TrackerServer(SyntheticSource(rate_hz="500"), record=tmp_path / "r.sqlite") as server:
        with GazeSubscriber(server.pub_address) as sub, TrackerControl(server.ctrl_address) as ctl:
            assert sub.recv(3.0) is not None
            assert ctl.status()["recording"].endswith("r.sqlite")
    assert server.stopped.is_set()
    assert zmq.Context.instance() is not None
