"""Helpers for the gaze-source tests: a Pupil Remote test server (a real process) and small utilities.

``python tests/sources_helpers.py pupil-server [--offset S] [--rate HZ]`` runs
a server speaking the Pupil Core network API on random loopback ports:

* REP (Pupil Remote) answering ``SUB_PORT``, ``PUB_PORT``, ``t`` (Pupil time),
  ``T <time>`` (set Pupil time), ``C``/``c`` (calibration start/stop),
  ``R``/``r``, ``v``;
* PUB publishing gaze datums as multipart ``[topic, msgpack payload]`` at
  ``--rate`` Hz, plus one malformed message every 100. The datums have the
  shapes Pupil Capture publishes, written from the Pupil Core network API
  documentation (not from gaze3d's decoder): with ``--shapes bino3d`` every
  datum is binocular 3D (``gaze.3d.01.``, ``eye_centers_3d`` and
  ``gaze_normals_3d`` keyed by the **integers** 0 and 1, as Pupil's msgpack
  has them); with ``--shapes mixed`` datum ``k`` has the shape
  :func:`pupil_shape` ``(k)``: 60 % binocular 3D, then monocular 3D of each
  eye, binocular 2D and monocular 2D.

Pupil time is the server's ``time.monotonic() + offset``. Datum ``k`` looks at
:func:`pupil_norm_pos` (origin bottom-left, as Pupil reports) with confidence
0.3 on every 5th datum and 0.95 otherwise. The server prints one JSON line
``{"remote_port": ..., "sub_port": ...}`` when ready.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
FAKES_DIR = TESTS_DIR / "fakes"


def pupil_norm_pos(k: int):
    """Pupil's ``norm_pos`` (bottom-left origin) of datum ``k``."""
    w = 2 * math.pi * k / 400.0
    return 0.5 + 0.3 * math.cos(w), 0.5 + 0.2 * math.sin(w)


def pupil_confidence(k: int) -> float:
    return 0.3 if k % 5 == 0 else 0.95


PUPIL_EYE_CENTERS = {0: [20.0, 15.0, -20.0], 1: [-40.0, 15.0, -20.0]}   # eye 0 = right eye, 1 = left eye
PUPIL_NORMALS = {0: [0.0, 0.0, 1.0], 1: [0.1, 0.0, 0.995]}


def pupil_shape(k: int, shapes: str = "mixed") -> str:
    """Topic of datum ``k``: ``gaze.3d.01.``, ``gaze.3d.0.``, ``gaze.3d.1.``, ``gaze.2d.01.`` or ``gaze.2d.1.``."""
    if shapes == "bino3d" or k % 10 < 6:
        return "gaze.3d.01."
    return ("gaze.3d.0.", "gaze.3d.1.", "gaze.2d.01.", "gaze.2d.1.")[k % 10 - 6]


def _pupil_datum(k: int, t: float, shapes: str, calibrating: bool) -> dict:
    """Pupil Core's gaze datum of shape :func:`pupil_shape` (fields as the network API documents them)."""
    x, y = pupil_norm_pos(k)
    topic = pupil_shape(k, shapes)
    conf = pupil_confidence(k)
    eyes = [0, 1] if topic.endswith(".01.") else [int(topic[-2])]
    base = [{"topic": f"pupil.{e}.{topic[5:7]}", "id": e, "confidence": conf, "norm_pos": [0.5, 0.5],
             "timestamp": t - 0.002, "diameter": 40.0, "method": "2d c++",
             "ellipse": {"center": [96.0, 96.0], "axes": [40.0, 38.0], "angle": 10.0}} for e in eyes]
    datum = {"topic": topic, "norm_pos": [x, y], "confidence": conf, "timestamp": t, "base_data": base,
             "calibrating": calibrating}
    if topic.startswith("gaze.3d.01."):
        datum.update(gaze_point_3d=[10.0 * x, 10.0 * y, 500.0], eye_centers_3d=dict(PUPIL_EYE_CENTERS),
                     gaze_normals_3d=dict(PUPIL_NORMALS))
    elif topic.startswith("gaze.3d."):
        datum.update(gaze_point_3d=[10.0 * x, 10.0 * y, 500.0], eye_center_3d=PUPIL_EYE_CENTERS[eyes[0]],
                     gaze_normal_3d=PUPIL_NORMALS[eyes[0]])
    return datum


def _serve_pupil(offset: float, rate: float, shapes: str = "bino3d", t_delay: float = 0.0) -> None:
    import msgpack
    import zmq

    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep_port = rep.bind_to_random_port("tcp://127.0.0.1")
    pub = ctx.socket(zmq.PUB)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    print(json.dumps({"remote_port": rep_port, "sub_port": pub_port, "pid": os.getpid()}), flush=True)
    period = 1.0 / rate
    k = 0
    start = time.monotonic()
    calibrating = False
    n_t = 0
    while True:
        due = start + k * period
        wait_ms = max(0, int((due - time.monotonic()) * 1000))
        if rep.poll(wait_ms, zmq.POLLIN):
            cmd = rep.recv_string()
            if cmd == "SUB_PORT":
                reply = str(pub_port)
            elif cmd == "PUB_PORT":
                reply = str(pub_port)
            elif cmd == "t":
                n_t += 1
                reply = repr(time.monotonic() + offset)
                if t_delay and n_t % 2 == 0:
                    time.sleep(t_delay)         # the reply leaves late: a long, asymmetric round trip
            elif cmd.startswith("T "):
                offset = float(cmd[2:]) - time.monotonic()
                reply = "Timesync successful."
            elif cmd in ("C", "c"):
                calibrating = cmd == "C"
                reply = "OK"
            elif cmd in ("R", "r"):
                reply = "OK"
            elif cmd == "v":
                reply = "3.5.0-test"
            else:
                reply = "Unknown command."
            rep.send_string(reply)
            continue
        if time.monotonic() < due:
            continue
        datum = _pupil_datum(k, due + offset, shapes, calibrating)
        pub.send_multipart([datum["topic"].encode("ascii"), msgpack.packb(datum, use_bin_type=True)])
        if k % 100 == 99:
            pub.send_multipart([b"gaze.3d.01.", b"\xc1 not msgpack"])
        k += 1


def start_pupil_server(offset: float = 12345.0, rate: float = 200.0, timeout_s: float = 10.0, shapes: str = "bino3d",
                       t_delay_s: float = 0.0):
    """Start the Pupil test server as a real process; returns ``(Popen, info dict)``.

    ``t_delay_s``: Pupil Remote answers every second ``t`` request that much
    later (a busy network), which only a min-RTT clock estimate ignores.
    """
    return start_helper("pupil-server", "--offset", str(offset), "--rate", str(rate), "--shapes", shapes,
                        "--t-delay", str(t_delay_s), timeout_s=timeout_s)


def stop_process(proc, timeout_s: float = 5.0) -> None:
    """Terminate (then kill) a process started by a test, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()


def env_with_fakes() -> dict:
    """Environment whose ``PYTHONPATH`` finds the fake ``tobii_research`` first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(FAKES_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def read_all(source, limit_s: float = 10.0, max_samples: int = 10**7):
    """Read a finite source to its end (``read`` returning None); returns the samples."""
    out = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and len(out) < max_samples:
        got = source.read(0.1)
        if got is None:
            return out
        out.extend(got)
    raise AssertionError(f"source did not end within {limit_s} s ({len(out)} samples)")


def read_for(source, seconds: float, min_samples: int = 0):
    """Read a live source for ``seconds`` (longer until ``min_samples`` arrive, up to 10 s)."""
    out = []
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds and len(out) >= min_samples:
            return out
        if elapsed > max(seconds, 10.0):
            return out
        got = source.read(0.05)
        if got:
            out.extend(got)


def lsl_row(k: int, rays: bool = False) -> list:
    """Sample ``k`` of the LSL test outlet: ``x, y, valid`` (+ ``ox, oy, oz, dx, dy, dz`` with ``rays``).

    The ray's direction ``(0.3, 0.0, 0.4)`` is deliberately not unit length (0.5): the source must
    normalise it to ``(0.6, 0, 0.8)``.
    """
    row = [(k / 1000.0) % 1.0, 0.25, 0.0 if k % 4 == 0 else 1.0]
    if rays:
        row += [0.01 * k, 1.6, -0.2, 0.3, 0.0, 0.4]
    return row


def _serve_lsl(name: str, rate: float, chunk: int = 1, rays: bool = False) -> None:
    """An LSL outlet (type Gaze) pushing :func:`lsl_row` ``(k)`` at ``rate`` Hz.

    With ``chunk > 1`` samples are taken at ``rate`` (each stamped with its own
    capture time on ``pylsl.local_clock``) but sent ``chunk`` at a time, as
    headset relays and LSL's own buffering deliver them.
    """
    import pylsl

    n_ch = 9 if rays else 3
    info = pylsl.StreamInfo(name, "Gaze", n_ch, rate, "float32", f"{name}-uid")
    outlet = pylsl.StreamOutlet(info, chunk_size=max(1, chunk))
    print(json.dumps({"name": name, "pid": os.getpid()}), flush=True)
    k = 0
    start = time.monotonic()
    t0_lsl = pylsl.local_clock()
    while True:
        due = start + (k + chunk - 1) / rate           # when the last sample of this chunk is taken
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        for j in range(chunk):
            outlet.push_sample(lsl_row(k, rays), t0_lsl + k / rate, pushthrough=(j == chunk - 1))
            k += 1


def _hex_ip(text: str) -> str:
    """An address of ``/proc/net/{tcp,udp}[6]`` (hex, host byte order per 32-bit word) -> dotted or ``::`` text."""
    import ipaddress

    raw = bytes.fromhex(text)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def process_sockets(pid: int) -> list:
    """The INET sockets of process ``pid``, like ``ss -tuanp`` shows them, from ``/proc`` (Linux).

    Returns dicts ``{"proto": "tcp"|"udp"|"tcp6"|"udp6", "local": ip, "port": int,
    "remote": ip, "listening": bool}``; ``listening`` is the TCP LISTEN state
    (0x0A) or an unconnected UDP socket (remote ``0.0.0.0``/``::``).
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:                      # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for proto in ("tcp", "udp", "tcp6", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        except FileNotFoundError:            # no IPv6 in this kernel
            continue
        for line in lines:
            f = line.split()
            if f[9] not in inodes:
                continue
            local, lport = f[1].split(":")
            remote, _ = f[2].split(":")
            remote_ip = _hex_ip(remote)
            listening = f[3] == "0A" if proto.startswith("tcp") else remote_ip in ("0.0.0.0", "::")
            out.append({"proto": proto, "local": _hex_ip(local), "port": int(lport, 16), "remote": remote_ip,
                        "listening": listening})
    return out


def start_helper(mode: str, *args: str, timeout_s: float = 10.0):
    """Start ``sources_helpers.py MODE ARGS`` as a real process; returns ``(Popen, first JSON line)``."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), mode, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    line = ""
    while time.monotonic() < deadline and not line:
        line = proc.stdout.readline().strip()
        if proc.poll() is not None:
            break
    if not line:
        proc.kill()
        raise RuntimeError(f"helper {mode} did not start: {proc.stderr.read()}")
    return proc, json.loads(line)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pupil-server", "lsl-outlet"])
    ap.add_argument("--offset", type=float, default=12345.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--name", default="gaze3d-test")
    ap.add_argument("--shapes", choices=["bino3d", "mixed"], default="bino3d")
    ap.add_argument("--t-delay", type=float, default=0.0)
    ap.add_argument("--chunk", type=int, default=1)
    ap.add_argument("--rays", action="store_true")
    a = ap.parse_args()
    if a.mode == "pupil-server":
        _serve_pupil(a.offset, a.rate, a.shapes, a.t_delay)
    else:
        _serve_lsl(a.name, a.rate, a.chunk, a.rays)
