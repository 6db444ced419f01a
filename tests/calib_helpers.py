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


# --- recorded sessions and spiky gaze, for the validation tests ------------------------------
def write_session_recording(path, data, presentations, t0_ns: int = 5_000_000_000, targets=None) -> None:
    """Write simulated gaze plus ``calib.target``/``calib.end`` events to a real recording file.

    ``targets`` overrides the ``(index, x, y)`` written in each target event
    (e.g. a target off the display); default: those of ``presentations``.
    """
    from gaze3d.calib.session import END_EVENT, TARGET_EVENT
    from gaze3d.recording import RecordingWriter

    t_ns = t0_ns + np.round(data.t_s * 1e9).astype(np.int64)
    with RecordingWriter(path) as w:
        w.add_samples([{"topic": "gaze.2d", "seq": i, "t_host_ns": int(t), "t_device": float(ts),
                        "gaze": xy.tolist(), "valid": bool(v)}
                       for i, (t, ts, xy, v) in enumerate(zip(t_ns, data.t_s, data.xy, data.valid))])
        for k, p in enumerate(presentations):
            index, x, y = targets[k] if targets is not None else (p.index, p.x, p.y)
            w.add_event(t0_ns + int(round(p.onset_s * 1e9)),
                        {"type": TARGET_EVENT, "index": int(index), "x": float(x), "y": float(y)})
        w.add_event(t0_ns + int(round(presentations[-1].offset_s * 1e9)), {"type": END_EVENT})


def inject_spikes(data, presentations, display, n: int = 4, amp_deg=(2.0, 6.0), seed: int = 0,
                  window_s=(0.5, 1.5), run: int = 1):
    """A copy of ``data`` with ``n`` spikes of ``amp_deg`` degrees (random direction) inside selection windows.

    Each spike moves ``run`` consecutive samples (1: single-sample spikes) and
    is placed where the 50 ms around it are valid, so none is hidden in a blink
    margin. Returns ``(spiky_data, first_sample_index_of_each_spike)``.
    """
    from gaze3d.calib.validation import GazeData

    rng = np.random.default_rng(seed)
    in_win = np.zeros(len(data), dtype=bool)
    for p in presentations:
        in_win |= (data.t_s >= p.onset_s + window_s[0]) & (data.t_s < min(p.onset_s + window_s[1], p.offset_s))
    half = max(1, int(round(0.05 * (data.rate_hz or 600.0))))
    valid = np.r_[np.zeros(half, bool), data.valid, np.zeros(half + run, bool)]
    clear = np.all([valid[half + o:half + o + len(data)] for o in range(-half, half + run)], axis=0)
    cand = np.flatnonzero(in_win & clear)
    starts = np.sort(rng.choice(cand[: len(cand) - run], n, replace=False))
    xy = data.xy.copy()
    for i in starts:
        amp, ang = rng.uniform(*amp_deg), rng.uniform(0.0, 2.0 * np.pi)
        deg = display.norm_to_deg(xy[i:i + run]) + [amp * np.cos(ang), amp * np.sin(ang)]
        xy[i:i + run] = display.deg_to_norm(deg)
    return GazeData(data.t_s, xy, data.valid, data.origin_mm, data.rate_hz), starts
