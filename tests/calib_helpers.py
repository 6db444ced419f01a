"""Helpers for the calibration tests: a simulated person in front of the screen, as a tracker plugin source.

``gaze3d tracker --source module:calib_helpers:FollowerSource --opt screen=FILE ...`` (this
folder on ``PYTHONPATH``) serves gaze that *looks at whatever target the test
shows*: the test "draws" a target by writing ``{"x": .., "y": ..}`` to
``screen`` (atomically), and the source, in the tracker process, sees it
within a few milliseconds, saccades to it after ``latency_s`` and reports it
with a systematic error ``offset_deg`` and white noise, like a tracker with
known accuracy and precision. The person is simulated; the tracker process,
its sockets, clock sync and recording are real.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from gaze3d.display import DisplayGeometry
from gaze3d.tracker.sources.base import GazeSource


def show_on_screen(path, x: float, y: float) -> None:
    """Draw a target for the follower: atomic write of its position."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"x": x, "y": y}, f)
    os.replace(tmp, path)


class FollowerSource(GazeSource):
    """Paced gaze that follows the target in ``screen``; options arrive as strings.

    Options: ``screen`` (file), ``rate_hz`` (default 300), ``offset_deg`` ("dx,dy"),
    ``noise_deg`` (per-axis SD of white noise, default 0.03), ``latency_s`` (0.2), ``seed``.
    """

    name = "follower"

    def __init__(self, screen, rate_hz="300", offset_deg="0,0", noise_deg="0.03", latency_s="0.2", seed="0"):
        self.screen = screen
        self.rate_hz = float(rate_hz)
        self.offset = np.array([float(v) for v in offset_deg.split(",")])
        self.noise = float(noise_deg)
        self.latency_ns = int(float(latency_s) * 1e9)
        self.rng = np.random.default_rng(int(seed))
        self.display = DisplayGeometry()
        self._target = None          # (seen_at_ns, (x, y)) of the newest target
        self._prev = None            # the one before, still looked at during the latency
        self._mtime = None
        self._next = None
        self.count = 0

    def open(self):
        self._next = time.monotonic_ns()

    def _poll_screen(self, now: int) -> None:
        try:
            m = os.stat(self.screen).st_mtime_ns
        except FileNotFoundError:
            return
        if m == self._mtime:
            return
        self._mtime = m
        try:
            with open(self.screen) as f:
                d = json.load(f)
        except (OSError, ValueError):
            return
        self._prev = self._target
        self._target = (now, (float(d["x"]), float(d["y"])))

    def _looking_at(self, t_ns: int):
        if self._target is None:
            return None
        if t_ns - self._target[0] >= self.latency_ns or self._prev is None:
            return self._target[1]
        return self._prev[1]

    def read(self, timeout_s):
        period = int(1e9 / self.rate_hz)
        wait = (self._next - time.monotonic_ns()) / 1e9
        time.sleep(min(max(wait, 0.0), timeout_s))
        now = time.monotonic_ns()
        self._poll_screen(now)
        out = []
        while self._next <= now:
            target = self._looking_at(self._next)
            if target is None:
                gaze, valid = [None, None], False
            else:
                deg = self.display.norm_to_deg(target)[0] + self.offset + self.rng.normal(0, self.noise, 2)
                gaze, valid = self.display.deg_to_norm(deg)[0].tolist(), True
            out.append({"topic": "gaze.2d", "t_device": self.count / self.rate_hz, "t_host_ns": self._next,
                        "gaze": gaze, "valid": valid})
            self.count += 1
            self._next += period
        return out

    def close(self):
        pass

    def info(self):
        return {"source": self.name, "rate_hz": self.rate_hz}
