"""Helpers for the tracker tests: a real, paced gaze source the tracker subprocess loads as a plugin.

``gaze3d tracker --source module:tracker_helpers:SyntheticSource --opt rate_hz=1200``
(with this folder on ``PYTHONPATH``) serves it.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

from gaze3d.tracker.sources.base import GazeSource, SourceError

TESTS_DIR = Path(__file__).resolve().parent
PLUGIN = "module:tracker_helpers:SyntheticSource"


def plugin_env() -> dict:
    """Environment for a tracker subprocess that can import this module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


class SyntheticSource(GazeSource):
    """Gaze on a Lissajous path, created in real time at ``rate_hz`` (each sample stamped when created).

    Options (strings from the CLI): ``rate_hz``; ``fail_after`` (raise SourceError
    once after that many samples, as an unplugged device); ``fail_opens`` (number
    of ``open`` calls that fail after that disconnect); ``n`` (finite: end after n
    samples); ``bad_every`` (every that many samples, one extra sample the tracker
    cannot publish: alternately ``t_host_ns`` -5 and a value msgpack cannot encode).
    """

    name = "synthetic"

    def __init__(self, rate_hz="1000", fail_after="0", fail_opens="0", n="0", bad_every="0"):
        self.bad_every = int(bad_every)
        self.bad_sent = 0
        self.rate_hz = float(rate_hz)
        self.fail_after = int(fail_after)
        self.fail_opens = int(fail_opens)
        self.n = int(n)
        self.count = 0
        self.failed = False
        self.open_failures = 0
        self.is_open = False
        self._next = None

    def open(self):
        if self.failed and self.open_failures < self.fail_opens:
            self.open_failures += 1
            raise SourceError(f"synthetic device absent (try {self.open_failures})")
        self.is_open = True
        self._next = time.monotonic_ns()

    def read(self, timeout_s):
        if not self.is_open:
            raise SourceError("synthetic source not open")
        if self.n and self.count >= self.n:
            return None
        if self.fail_after and not self.failed and self.count >= self.fail_after:
            self.failed = True
            self.is_open = False
            raise SourceError("synthetic device unplugged")
        period = int(1e9 / self.rate_hz)
        now = time.monotonic_ns()
        wait = (self._next - now) / 1e9
        if wait > timeout_s:
            time.sleep(timeout_s)
            return []
        if wait > 0:
            time.sleep(wait)
        out = []
        now = time.monotonic_ns()
        while self._next <= now and (not self.n or self.count < self.n):
            t = self.count / self.rate_hz
            x = 0.5 + 0.3 * math.sin(2 * math.pi * 0.5 * t)
            y = 0.5 + 0.3 * math.sin(2 * math.pi * 0.3 * t)
            out.append({"topic": "gaze.2d", "t_device": t, "t_host_ns": time.monotonic_ns(), "gaze": [x, y],
                        "valid": True, "left": {"gaze": [x, y], "valid": True, "pupil_mm": 3.0},
                        "right": {"gaze": [x, y], "valid": True, "pupil_mm": 3.2}})
            self.count += 1
            self._next += period
            if self.bad_every and self.count % self.bad_every == 0:
                self.bad_sent += 1
                bad = {"topic": "gaze.2d", "t_device": t, "t_host_ns": time.monotonic_ns(), "gaze": [x, y]}
                if self.bad_sent % 2:
                    bad["t_host_ns"] = -5
                else:
                    bad["odd"] = object()
                out.append(bad)
            if self.fail_after and not self.failed and self.count >= self.fail_after:
                break
        return out

    def close(self):
        self.is_open = False

    def info(self):
        return {"source": self.name, "rate_hz": self.rate_hz, "pid": os.getpid(), "python": sys.version}

    def calibrate(self, action, **kw):
        return {"action": action, "kw": kw, "samples": self.count}
