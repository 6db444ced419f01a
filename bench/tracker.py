"""Benchmark the tracker process: latency, recording completeness, CPU share.

For each rate (1200 and 2000 Hz by default) a real ``gaze3d tracker`` process
serves the ``sim`` source and records to a fresh file; this process subscribes
and measures, for every sample, ``receipt time - t_host_ns`` (the sample's
creation time in the source; the same CLOCK_MONOTONIC on one host). After the
run the recording is compared with the tracker's sequence numbers: samples
lost = stamped while recording (sequence numbers 0..max) - recorded, plus any
sample the subscriber got that the recording lacks. CPU share = tracker process CPU time / wall time
(100 % = one core).

Baseline, measured in the same run: a bare pyzmq PUB process sending the same
msgpack samples at the same rate (no source, no stamping, no recording), so
the ratio column shows what the tracker adds to raw ZeroMQ.

Run: ``.venv/bin/python bench/tracker.py [--duration 10] [--rates 1200 2000]``
Targets: p99 < 1 ms on loopback, 0 lost. The machine's load average is
printed before and after: latency percentiles on a shared machine are only
meaningful beside it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gaze3d.recording import Recording
from gaze3d.tracker.client import GazeSubscriber, TrackerControl
from gaze3d.tracker.process import start_tracker

RAW_PUBLISHER = r"""
import sys, time, zmq, msgpack
rate, duration = float(sys.argv[1]), float(sys.argv[2])
ctx = zmq.Context(); pub = ctx.socket(zmq.PUB); port = pub.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True); time.sleep(0.5)
period = int(1e9 / rate); nxt = time.monotonic_ns(); end = nxt + int(duration * 1e9); seq = 0
while nxt < end:
    now = time.monotonic_ns()
    if now < nxt:
        time.sleep((nxt - now) / 1e9); continue
    t = time.monotonic_ns()
    pub.send_multipart([b"gaze.2d", msgpack.packb({"v": 1, "source": "raw", "session": "raw", "seq": seq,
        "t_device": seq / rate, "t_host_ns": t, "gaze": [0.5, 0.5], "valid": True, "topic": "gaze.2d",
        "truth": {"event": "fixation", "target": 3}})])
    seq += 1; nxt += period
"""


def cpu_seconds(pid: int) -> float:
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except ImportError:  # /proc fallback
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(sub: GazeSubscriber, duration_s: float, warmup_s: float = 1.0):
    lat, seqs = [], []
    t_end_warm = time.monotonic() + warmup_s
    t_end = t_end_warm + duration_s
    while time.monotonic() < t_end:
        msg = sub.recv(0.1)
        if msg is None or msg[0] != "gaze.2d":
            continue
        now = time.monotonic_ns()
        if time.monotonic() >= t_end_warm:
            lat.append(now - msg[1]["t_host_ns"])
            seqs.append(msg[1]["seq"])
    return np.array(lat, dtype=np.int64), np.array(seqs)


def bench_tracker(rate: float, duration_s: float, tmp: Path) -> dict:
    path = tmp / f"bench-{int(rate)}.gaze3d"
    with start_tracker("sim", {"rate": rate}, record=path) as tr, GazeSubscriber(tr.pub_address) as sub, \
            TrackerControl(tr.ctrl_address) as ctl:
        time.sleep(0.3)
        c0, w0 = cpu_seconds(tr.pid), time.monotonic()
        lat, seqs = measure(sub, duration_s)
        cpu = (cpu_seconds(tr.pid) - c0) / (time.monotonic() - w0)
        reply = ctl.stop_recording()
    s = Recording(path).samples()
    max_seq = int(s["seq"].max()) if len(s["seq"]) else -1
    published = max_seq + 1  # samples stamped while recording (it started at seq 0)
    lost_in_recording = (max_seq + 1) - len(s["seq"])  # holes in 0..max_seq (recording started at seq 0)
    missing_received = int(np.sum(~np.isin(seqs[seqs <= max_seq], s["seq"])))
    return {"lat": lat, "received": len(lat), "sub_gaps": sub.stats["gaps"], "recorded": int(reply["samples"]),
            "published": published, "lost": lost_in_recording + missing_received, "cpu": cpu}


def bench_raw(rate: float, duration_s: float) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", RAW_PUBLISHER, str(rate), str(duration_s + 1.5)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with GazeSubscriber(f"tcp://127.0.0.1:{port}") as sub:
            c0, w0 = cpu_seconds(proc.pid), time.monotonic()
            lat, _ = measure(sub, duration_s, warmup_s=0.7)
            cpu = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - w0)
    finally:
        proc.wait(30)
    return {"lat": lat, "cpu": cpu}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per rate")
    ap.add_argument("--rates", type=float, nargs="+", default=[1200.0, 2000.0])
    args = ap.parse_args(argv)
    rows = []
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        for rate in args.rates:
            raw = bench_raw(rate, args.duration)
            trk = bench_tracker(rate, args.duration, Path(tmp))
            rows.append((rate, raw, trk))
    us = lambda a, q: np.percentile(a, q) / 1e3 if len(a) else float("nan")  # noqa: E731
    print(f"\ngaze3d tracker benchmark: sim source -> tracker process -> SUB on loopback, "
          f"{args.duration:g} s per rate, {os.cpu_count()} CPUs")
    print("baseline = bare pyzmq PUB process sending the same msgpack samples (same run); ratio = tracker / baseline")
    if load_before is not None:
        print("load average (1, 5, 15 min): before %.2f %.2f %.2f, after %.2f %.2f %.2f"
              % (*load_before, *os.getloadavg()))
    head = (f"{'rate Hz':>8} {'who':>9} {'recv':>7} {'p50 us':>8} {'p99 us':>8} {'max us':>8} {'p99 ratio':>9} "
            f"{'stamped':>9} {'recorded':>8} {'lost':>5} {'sub gaps':>8} {'CPU %':>6}")
    print(head)
    print("-" * len(head))
    ok = True
    for rate, raw, trk in rows:
        print(f"{rate:8.0f} {'baseline':>9} {len(raw['lat']):7d} {us(raw['lat'], 50):8.1f} {us(raw['lat'], 99):8.1f} "
              f"{us(raw['lat'], 100):8.1f} {1.0:9.2f} {'':>9} {'':>8} {'':>5} {'':>8} {100 * raw['cpu']:6.1f}")
        ratio = us(trk["lat"], 99) / us(raw["lat"], 99)
        print(f"{rate:8.0f} {'tracker':>9} {trk['received']:7d} {us(trk['lat'], 50):8.1f} {us(trk['lat'], 99):8.1f} "
              f"{us(trk['lat'], 100):8.1f} {ratio:9.2f} {trk['published']:9d} {trk['recorded']:8d} "
              f"{trk['lost']:5d} {trk['sub_gaps']:8d} {100 * trk['cpu']:6.1f}")
        ok &= us(trk["lat"], 99) < 1000 and trk["lost"] == 0
    print(f"\ntargets: p99 < 1000 us, 0 lost -> {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
