"""Launch the tracker as a real OS process (``python -m gaze3d tracker ...``).

>>> with start_tracker("sim", {"rate_hz": 1200}) as tracker:      # doctest: +SKIP
...     sub = GazeSubscriber(tracker.pub_address)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, Optional, Sequence

from ..errors import Gaze3DError


class TrackerStartError(Gaze3DError):
    """The tracker process exited or stayed silent instead of printing its addresses."""


class TrackerProcess:
    """A running ``gaze3d tracker`` subprocess.

    Attributes
    ----------
    pub_address, ctrl_address : str
        Bound addresses (with the real ports).
    info : dict
        The JSON line the tracker printed at start (pid, session, source...).
    popen : subprocess.Popen

    Thread-safety: :meth:`stop` and :meth:`kill` may be called from any thread.
    """

    def __init__(self, popen: subprocess.Popen, info: dict):
        self.popen = popen
        self.info = info
        self.pub_address: str = info["pub"]
        self.ctrl_address: str = info["ctrl"]
        self.pid: int = popen.pid
        self.curve_server_key: Optional[str] = info.get("curve_server_key")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM (clean shutdown: the recording is closed), SIGKILL after ``timeout_s``; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout_s)
        return self.popen.returncode

    def kill(self) -> int:
        """SIGKILL, like a crash: nothing is flushed or closed."""
        if self.popen.poll() is None:
            self.popen.kill()
        return self.popen.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def tracker_command(source: str, options: Optional[Dict[str, object]] = None, *, pub: str = "tcp://127.0.0.1:*",
                    ctrl: str = "tcp://127.0.0.1:*", record=None, curve_keys=None, bind_public: bool = False,
                    extra_args: Sequence[str] = (), python: str = sys.executable, record_dir=None) -> list:
    """The argv that :func:`start_tracker` runs."""
    cmd = [python, "-m", "gaze3d", "tracker", "--source", source, "--pub", pub, "--ctrl", ctrl]
    for key, value in (options or {}).items():
        cmd += ["--opt", f"{key}={value}"]
    if record is not None:
        cmd += ["--record", os.fspath(record)]
    if record_dir is not None:
        cmd += ["--record-dir", os.fspath(record_dir)]
    if bind_public:
        cmd.append("--bind-public")
    if curve_keys is not None:
        cmd += ["--curve-keys", os.fspath(curve_keys)]
    return cmd + list(extra_args)


def start_tracker(source: str, options: Optional[Dict[str, object]] = None, *, pub: str = "tcp://127.0.0.1:*",
                  ctrl: str = "tcp://127.0.0.1:*", record=None, curve_keys=None, bind_public: bool = False,
                  extra_args: Sequence[str] = (), python: str = sys.executable, env: Optional[dict] = None,
                  cwd=None, timeout_s: float = 30.0, record_dir=None) -> TrackerProcess:
    """Start ``gaze3d tracker`` in a new process and wait for its address line.

    Parameters
    ----------
    source, options
        ``--source`` and ``--opt key=value`` (values passed as ``str(value)``).
    pub, ctrl, record, record_dir, curve_keys, bind_public, extra_args
        The CLI flags of the same names (``record_dir``: the only folder where
        ``start_recording`` requests may create files; default the child's cwd).
    python : str
        Interpreter to run (for example the lean Python 3.10 Tobii environment).
    env, cwd
        Environment and working directory of the child (``PYTHONPATH`` for plugin sources).
    timeout_s : float
        How long to wait for the address line.

    The child's stderr is inherited; its stdout after the address line is
    drained by a daemon thread so it can never block on a full pipe.
    """
    cmd = tracker_command(source, options, pub=pub, ctrl=ctrl, record=record, curve_keys=curve_keys,
                          bind_public=bind_public, extra_args=extra_args, python=python, record_dir=record_dir)
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=cwd, text=True,
                             bufsize=1)
    box: dict = {}

    def read_first_line():
        box["line"] = popen.stdout.readline()
        for _ in popen.stdout:  # keep the pipe drained
            pass

    reader = threading.Thread(target=read_first_line, name="gaze3d-tracker-stdout", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while "line" not in box and time.monotonic() < deadline and popen.poll() is None:
        reader.join(0.02)
    reader.join(0.5)  # the child may have printed its line and exited in the same instant
    line = box.get("line")
    if not line:
        if popen.poll() is None:
            popen.kill()
        popen.wait(10)
        raise TrackerStartError(f"tracker did not start (exit code {popen.returncode}; command: {' '.join(cmd)}; "
                                "see its stderr above)")
    try:
        info = json.loads(line)
    except json.JSONDecodeError:
        popen.kill()
        popen.wait(10)
        raise TrackerStartError(f"tracker printed {line!r} instead of its address JSON line") from None
    return TrackerProcess(popen, info)
