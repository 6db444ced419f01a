"""Benchmark recordings: what checksums and checkpoints cost, what a crash leaves in the main file.

1. Write ``--minutes`` of 1200 Hz gaze the way the tracker's recorder does
   (24 samples per commit, every commit with its checksum block, a WAL
   checkpoint every second) and time it against real time: the recorder must
   keep up with a large margin.
2. Open it: time ``Recording.verify()`` (every checksum block) next to
   ``Recording.samples()`` (the read every command does anyway).
3. ``check_recording`` (SQLite integrity_check + checksums) and ``salvage``.
4. Crash: a real ``gaze3d tracker --source sim --opt rate=1200`` recording
   process is killed with SIGKILL after ~3 s; samples in main file + WAL vs
   the main file copied alone (what a user gets copying one file).

Run: ``.venv/bin/python bench/recording.py [--minutes 2]``
Targets: writing >= 20x faster than real time; verify no slower than
``samples()``; the main file alone lacks < 1 s of samples (checkpoint
interval). The machine's load average is printed: timings on a shared
machine are only meaningful beside it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

RATE = 1200.0
BATCH = 24  # samples per 20 ms commit at 1200 Hz


def _sample(i: int) -> dict:
    return {"topic": "gaze.2d", "seq": i, "t_host_ns": 10**9 + int(i * 1e9 / RATE), "t_device": i / RATE,
            "gaze": [0.3 + 1e-6 * i, 0.6], "valid": True, "left": {"pupil_mm": 3.0, "valid": True},
            "right": {"pupil_mm": 3.1, "valid": True}, "source": "sim", "v": 1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    args = ap.parse_args(argv)
    from gaze3d.recording import Recording, RecordingWriter, check_recording, salvage
    from gaze3d.tracker.client import TrackerControl
    from gaze3d.tracker.process import start_tracker

    print(f"load average before: {os.getloadavg()}")
    n = int(args.minutes * 60 * RATE)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "bench.gaze3d"
        t = time.perf_counter()
        with RecordingWriter(path, commit_interval_s=0) as w:
            for b in range(0, n, BATCH):
                w.add_samples([_sample(i) for i in range(b, min(n, b + BATCH))])
        write_s = time.perf_counter() - t
        print(f"write {n} samples ({args.minutes:g} min at 1200 Hz, {n // BATCH} commits): {write_s:.2f} s, "
              f"{args.minutes * 60 / write_s:.0f}x real time, {path.stat().st_size / 1e6:.1f} MB")
        rec = Recording(path, verify=False)
        t = time.perf_counter()
        report = rec.verify()
        verify_s = time.perf_counter() - t
        t = time.perf_counter()
        rec.samples()
        samples_s = time.perf_counter() - t
        rec.close()
        print(f"verify {report.blocks} blocks: {verify_s:.2f} s; samples(): {samples_s:.2f} s "
              f"(ratio {verify_s / samples_s:.2f})")
        t = time.perf_counter()
        ok = check_recording(path)["ok"]
        print(f"check_recording: {time.perf_counter() - t:.2f} s (ok={ok})")
        t = time.perf_counter()
        salvage(path, tmp / "salvaged.gaze3d")
        print(f"salvage: {time.perf_counter() - t:.2f} s")

        crash = tmp / "crash.gaze3d"
        tr = start_tracker("sim", {"rate": 1200}, record=crash)
        with TrackerControl(tr.ctrl_address) as ctl:
            deadline = time.monotonic() + 30
            while ctl.status()["recorded_samples"] < 3 * RATE and time.monotonic() < deadline:
                time.sleep(0.05)
        os.kill(tr.popen.pid, signal.SIGKILL)
        tr.popen.wait()
        full = len(Recording(crash, verify=False))
        (tmp / "alone").mkdir()
        shutil.copy(crash, tmp / "alone" / crash.name)
        alone = len(Recording(tmp / "alone" / crash.name, verify=False))
        print(f"crash after ~3 s at 1200 Hz: main + WAL {full} samples, main file alone {alone} "
              f"(lacks {full - alone} = {(full - alone) / RATE:.2f} s)")
        try:
            tr.__exit__(None, None, None)
        except Exception:  # already killed
            pass
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
