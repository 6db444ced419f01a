"""Join gaze samples with a separate head-pose stream on their capture times (LSL timestamps).

Headset relays often publish eye gaze and head pose as two LSL streams
(different rates, separate chunks). :class:`PoseJoin` keeps the recent head
poses and gives each gaze sample the pose **interpolated at its capture
time** (position linearly, orientation by normalised quaternion lerp along the
shorter arc), so a sample taken between two poses gets the head where it was
then. A gaze sample newer than the newest pose waits (``wait_s``) for the
pose after it; past that, or when the nearest poses are more than
``max_gap_s`` away, it is released with the nearest pose within
``max_gap_s``, or without one.

Times are seconds on one clock (the LSL timestamps plus each inlet's
``time_correction``). numpy only: it runs in the tracker process.
"""
from __future__ import annotations

from collections import deque
from typing import List, Optional

import numpy as np

from ..errors import InputError
from .frames import pose_matrix, quat_to_matrix


def interpolate_pose(t, times, positions, quats, max_gap_s: float):
    """Pose at ``t`` from time-sorted (m,) ``times``, (m, 3) ``positions``, (m, 4) ``quats`` (x, y, z, w).

    Returns ``(position (3,), quat (4,))`` or None when no pose lies within
    ``max_gap_s`` of ``t`` (between two poses both must be within ``max_gap_s``
    of each other to interpolate; otherwise the nearer one within reach is used).
    """
    m = len(times)
    if m == 0:
        return None
    j = int(np.searchsorted(times, t, side="right"))
    if 0 < j < m and times[j] - times[j - 1] <= max_gap_s:
        t0, t1 = times[j - 1], times[j]
        f = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        q0, q1 = quats[j - 1], quats[j]
        if np.dot(q0, q1) < 0:          # the same rotation, other sign: take the shorter arc
            q1 = -q1
        q = (1 - f) * q0 + f * q1
        return (1 - f) * positions[j - 1] + f * positions[j], q / np.linalg.norm(q)
    cand = [k for k in (j - 1, j) if 0 <= k < m and abs(times[k] - t) <= max_gap_s]
    if not cand:
        return None
    k = min(cand, key=lambda k: abs(times[k] - t))
    return positions[k].copy(), quats[k] / np.linalg.norm(quats[k])


class PoseJoin:
    """Give gaze samples the head pose at their capture time.

    Parameters
    ----------
    max_gap_s : float
        A pose further than this from a sample is not used (0.1 s).
    wait_s : float
        How long (host seconds) a sample newer than the newest pose waits for a later pose (0.1 s).
    keep_s : float
        Poses older than this before the newest are forgotten (5 s).

    Thread-safety: one thread (the source's reading thread).
    """

    def __init__(self, max_gap_s: float = 0.1, wait_s: float = 0.1, keep_s: float = 5.0):
        for name, v in (("max_gap_s", max_gap_s), ("wait_s", wait_s), ("keep_s", keep_s)):
            if not (v >= 0):       # also refuses NaN; keep_s may be inf (a whole file at once)
                raise InputError(f"head pose join {name}: expected a number >= 0, got {v}")
        self.max_gap_s, self.wait_s, self.keep_s = float(max_gap_s), float(wait_s), float(keep_s)
        self._t = np.zeros(0)
        self._p = np.zeros((0, 3))
        self._q = np.zeros((0, 4))
        self._pending: deque = deque()      # (t_capture_s, arrival host s, sample)
        self.counts = {"joined": 0, "nearest": 0, "no_pose": 0, "poses": 0, "bad_poses": 0}

    def add_poses(self, times, positions, quats) -> None:
        """Append poses (times in s on the join clock); non-finite or zero quaternions are dropped."""
        t = np.asarray(times, dtype=np.float64).ravel()
        p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        q = np.asarray(quats, dtype=np.float64).reshape(-1, 4)
        good = np.isfinite(t) & np.isfinite(p).all(1) & np.isfinite(q).all(1) & (np.linalg.norm(q, axis=1) > 0)
        self.counts["bad_poses"] += int(np.count_nonzero(~good))
        self.counts["poses"] += int(np.count_nonzero(good))
        if not good.any():
            return
        t, p, q = np.r_[self._t, t[good]], np.r_[self._p, p[good]], np.r_[self._q, q[good]]
        order = np.argsort(t, kind="stable")
        t, p, q = t[order], p[order], q[order]
        keep = t >= t[-1] - self.keep_s
        self._t, self._p, self._q = t[keep], p[keep], q[keep]

    def add_sample(self, t_capture_s: float, sample: dict, now_s: float) -> None:
        """Queue a gaze sample taken at ``t_capture_s`` (join clock), arrived at host time ``now_s``."""
        self._pending.append((float(t_capture_s), float(now_s), sample))

    def pose_at(self, t: float):
        """``(position (3,), quat (4,))`` at ``t`` or None; see :func:`interpolate_pose`."""
        return interpolate_pose(t, self._t, self._p, self._q, self.max_gap_s)

    def ready(self, now_s: float, flush: bool = False) -> List[dict]:
        """Release, in order, the queued samples whose pose is known or whose wait is over.

        Each released sample gets ``head_pose`` (16 floats, row-major
        world-from-head) and ``head_pose_t`` when a pose was found; its
        ``head_join`` says ``interpolated``, ``nearest`` or ``none``.
        """
        out = []
        newest = self._t[-1] if len(self._t) else -np.inf
        while self._pending:
            t, arrived, s = self._pending[0]
            if t > newest and not flush and now_s - arrived < self.wait_s:
                break                                   # the pose after this sample may still come
            self._pending.popleft()
            pose = self.pose_at(t)
            if pose is None:
                s["head_join"] = "none"
                self.counts["no_pose"] += 1
            else:
                pos, q = pose
                s["head_pose"] = pose_matrix(pos, quat_to_matrix(q))[0].ravel().tolist()
                bracketed = len(self._t) and self._t[0] <= t <= newest
                s["head_join"] = "interpolated" if bracketed else "nearest"
                self.counts["joined" if bracketed else "nearest"] += 1
            out.append(s)
        return out

    @property
    def pending(self) -> int:
        return len(self._pending)


def apply_head_frame(sample: dict, mirror: Optional[np.ndarray] = None) -> None:
    """Rays of ``sample`` given relative to the head -> world, through its ``head_pose`` (in place).

    ``mirror`` (3, 3) first turns the rays' own axes into the gaze3d head frame
    (for example :data:`gaze3d.vr.frames.MIRROR_Z` for Unity/Varjo +Z-forward
    axes). Without a pose the sample becomes invalid (a head-relative ray
    alone says nothing about the world).
    """
    keys = [("ray_origin", "ray_direction", sample)]
    keys += [("origin", "direction", sample[side]) for side in ("left", "right") if isinstance(sample.get(side), dict)]
    pose = sample.get("head_pose")
    if pose is None:
        sample["valid"] = False
        for _, _, d in keys[1:]:
            d["valid"] = False
        return
    T = np.asarray(pose, dtype=np.float64).reshape(4, 4)
    R = T[:3, :3] if mirror is None else T[:3, :3] @ mirror
    for ko, kd, d in keys:
        if d.get(ko) is None or d.get(kd) is None:
            continue
        o = np.asarray(d[ko], dtype=np.float64)
        if mirror is not None:
            o = mirror @ o
        d[ko] = (T[:3, :3] @ o + T[:3, 3]).tolist()
        d[kd] = (R @ np.asarray(d[kd], dtype=np.float64)).tolist()
