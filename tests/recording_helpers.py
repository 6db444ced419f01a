"""Shared by the recording tests: a real writer process killed with SIGKILL mid-stream."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

# writes one sample every ~0.5 ms forever; prints "ready" after argv[2] samples
_WRITER = r"""
import json, sys, time
from gaze3d.recording import RecordingWriter
w = RecordingWriter(sys.argv[1], **json.loads(sys.argv[3]))
ready_after = int(sys.argv[2])
i = 0
while True:
    w.add_samples([{"seq": i, "t_host_ns": time.monotonic_ns(), "t_device": None, "gaze": [0.5, 0.5]}])
    i += 1
    if i == ready_after:
        print("ready", flush=True)
    time.sleep(0.0005)
"""


def kill_writer_mid_stream(path, ready_after: int, run_s: float, **writer_options) -> int:
    """Run a ``RecordingWriter(path, **writer_options)`` process, SIGKILL it ``run_s`` after ``ready_after`` samples.

    Returns the host clock (``time.monotonic_ns``) at the kill.
    """
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(ready_after), json.dumps(writer_options)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(run_s)
        t_kill = time.monotonic_ns()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
        proc.stdout.close()
    return t_kill
