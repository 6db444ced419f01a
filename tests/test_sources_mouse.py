"""The ``mouse`` source: the X pointer of a real Xvfb server, the viewer's ZMQ feed, and stdin."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from gaze3d.errors import InputError
from gaze3d.tracker.sources import get_source
from gaze3d.tracker.sources.base import SourceError
from gaze3d.tracker.sources.mouse import MouseFeed
from sources_helpers import read_for, stop_process

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def xvfb():
    """A real X server (Xvfb, 1280x1024) on a free display; yields the display name."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    pytest.importorskip("Xlib", reason="python-xlib (gaze3d[mouse]) is not installed")
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    if not number:
        stop_process(proc)
        pytest.fail("Xvfb did not report a display number")
    yield f":{number}", proc
    stop_process(proc)


def _warp(display_name, x, y):
    """Move the X pointer as a separate X client would (xdotool mousemove)."""
    from Xlib import display as xdisplay
    d = xdisplay.Display(display_name)
    d.screen().root.warp_pointer(x, y)
    d.sync()
    d.close()


def test_mouse_x11_follows_the_pointer(xvfb):
    name, _ = xvfb
    src = get_source("mouse", backend="x11", display=name, rate="200")
    src.open()
    try:
        assert src.info()["screen_px"] == [1280, 1024]
        _warp(name, 320, 768)
        got = read_for(src, 0.15, min_samples=10)
        assert got[-1]["valid"] and got[-1]["gaze"] == pytest.approx([320.5 / 1280, 768.5 / 1024])
        _warp(name, 1279, 0)
        got = read_for(src, 0.1, min_samples=5)
        assert got[-1]["gaze"] == pytest.approx([1279.5 / 1280, 0.5 / 1024])
        dt = [b["t_device"] - a["t_device"] for a, b in zip(got, got[1:])]
        assert all(d == pytest.approx(1 / 200.0) for d in dt)
    finally:
        src.close()


def test_mouse_auto_uses_x11_when_display_set(xvfb, monkeypatch):
    name, _ = xvfb
    monkeypatch.setenv("DISPLAY", name)
    src = get_source("mouse")
    src.open()
    try:
        assert src.info()["backend"] == "x11"
    finally:
        src.close()


def test_mouse_x_server_gone_raises(xvfb):
    name, proc = xvfb
    src = get_source("mouse", backend="x11", display=name, rate="100")
    src.open()
    try:
        assert read_for(src, 0.05, min_samples=2)
        proc.kill()
        proc.wait(5)
        with pytest.raises(SourceError, match="went away"):
            for _ in range(200):
                src.read(0.05)
        with pytest.raises(SourceError, match="cannot open X display"):
            src.open()
    finally:
        src.close()


def test_mouse_feed_from_another_process():
    src = get_source("mouse", backend="feed", feed="tcp://127.0.0.1:*", rate="100")
    src.open()
    addr = src.info()["feed_address"]
    assert addr.startswith("tcp://127.0.0.1:") and not addr.endswith("*")
    sender = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from gaze3d.tracker.sources.mouse import MouseFeed\n"
         "f = MouseFeed(sys.argv[1])\n"
         "for i in range(40):\n"
         "    f.send(0.25, 0.6); time.sleep(0.01)\n"
         "f.send(0.9, 0.1); time.sleep(0.3); f.close()\n", addr])
    try:
        got, deadline = [], time.monotonic() + 15       # until the sender (a fresh Python) is up
        while not any(s["valid"] for s in got) and time.monotonic() < deadline:
            got += read_for(src, 0.1, min_samples=1)
        assert not got[0]["valid"] or got[0]["gaze"] == pytest.approx([0.25, 0.6])   # nothing known at first
        assert any(s["valid"] and s["gaze"] == pytest.approx([0.25, 0.6]) for s in got)
        sender.wait(10)
        got = read_for(src, 0.05, min_samples=2)
        assert got[-1]["gaze"] == pytest.approx([0.9, 0.1])       # the last position is held
    finally:
        stop_process(sender)
        src.close()


def test_mouse_feed_outside_display_is_invalid_and_malformed_ignored():
    import zmq
    src = get_source("mouse", backend="feed", feed="tcp://127.0.0.1:*", rate="200")
    src.open()
    feed = MouseFeed(src.info()["feed_address"])
    raw = zmq.Context.instance().socket(zmq.PUSH)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(src.info()["feed_address"])
    try:
        time.sleep(0.1)
        feed.send(1.5, 0.5)
        got = read_for(src, 0.05, min_samples=3)
        assert not got[-1]["valid"] and math.isnan(got[-1]["gaze"][0])
        raw.send(b"\xc1garbage")
        feed.send(0.5, 0.5)
        got = read_for(src, 0.05, min_samples=3)
        assert got[-1]["valid"] and got[-1]["gaze"] == pytest.approx([0.5, 0.5])
    finally:
        raw.close()
        feed.close()
        src.close()


def test_mouse_stdin_feed_in_a_subprocess():
    code = ("import json, time\n"
            "from gaze3d.tracker.sources import get_source\n"
            "s = get_source('mouse', backend='stdin', rate='50'); s.open(); out = []\n"
            "t0 = time.monotonic()\n"
            "while time.monotonic() - t0 < 1.0:\n"
            "    out += s.read(0.05)\n"
            "s.close(); print(json.dumps([o['gaze'] for o in out if o['valid']]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate('0.1 0.2\n{"x": 0.3, "y": 0.4}\n', timeout=20)
    assert proc.returncode == 0, err
    gazes = json.loads(out.strip().splitlines()[-1])
    assert gazes and gazes[-1] == pytest.approx([0.3, 0.4])


def test_mouse_close_from_other_thread_and_bad_options():
    src = get_source("mouse", backend="feed", feed="tcp://127.0.0.1:*", rate="1")
    src.open()
    src.read(0.0)
    threading.Timer(0.1, src.close).start()
    t0 = time.monotonic()
    assert src.read(5.0) == []
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(InputError, match="backend"):
        get_source("mouse", backend="wayland")
    with pytest.raises(InputError, match="feed"):
        get_source("mouse", feed="localhost:5571")


@pytest.mark.parametrize("feed", ["tcp://0.0.0.0:*", "tcp://*:5571", "tcp://[::]:5571", "tcp://192.168.1.7:5571",
                                  "tcp://eth0:5571"])
def test_mouse_feed_refuses_addresses_beyond_loopback(feed):
    # the feed has no authentication: like the tracker's own binds, it stays on this machine
    with pytest.raises(InputError, match="not a loopback address"):
        get_source("mouse", backend="feed", feed=feed)


def test_mouse_feed_refusal_is_a_one_line_cli_error():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "gaze3d", "tracker", "--source", "mouse", "--opt", "backend=feed",
                        "--opt", "feed=tcp://0.0.0.0:*"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a loopback address" in r.stderr and r.stderr.count("\n") == 1
    for ok in ("tcp://127.0.0.1:*", "tcp://[::1]:*", "ipc:///tmp/gaze3d-test-feed"):
        get_source("mouse", backend="feed", feed=ok)
