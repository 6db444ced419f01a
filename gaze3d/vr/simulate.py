"""A simulated VR session: a head walking through a scene, eyes fixating visible objects, with VOR.

The head walks along waypoints at ``walk_speed`` and turns towards what the
eyes look at with a lag (``head_tau_s``), so during a fixation the head is
often still turning: the eye counter-rotates in the head (vestibulo-ocular
reflex) and the world-space gaze stays on the target while the eye-in-head
gaze moves. Between fixations, main-sequence saccades
(:func:`gaze3d.simulate.saccade_duration_s`, the same velocity profile as
the desktop simulator) rotate the world gaze from the old direction to the
new target; blinks are gaps. Fixation targets are drawn among the
``targets`` that are within ``max_eccentricity_deg`` of the head's forward
direction and, when ``visible`` is given (``visible(eye (3,), targets (k, 3))
-> (k,) bool``, e.g. a ray cast against the scan), visible from the eye.

The truth per sample is an :class:`gaze3d.events.EventType` code
(``FIXATION`` also during VOR, ``SACCADE``, ``GAP``) and the index of the
target looked at (-1 otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import InputError
from ..events import EventType
from ..protocol import TOPIC_GAZE_3D
from ..simulate import saccade_duration_s, saccade_position_fraction
from .frames import look_pose

_GAP, _FIX, _SAC = int(EventType.GAP), int(EventType.FIXATION), int(EventType.SACCADE)


@dataclass
class VRSession:
    """A simulated VR session (all in the world frame; ``n`` samples).

    t_s (n,), origin (n, 3) eye position, direction (n, 3) measured unit gaze
    (NaN in gaps), gaze_point (n, 3) measured point of regard (the measured
    ray at the target's distance; NaN in gaps), head_pose (n, 4, 4)
    world-from-head, eye_in_head (n, 3) measured gaze in the head frame,
    truth (n,) int8, target (n,) int64 (index into the targets, -1 if none),
    valid (n,) bool.
    """

    t_s: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    gaze_point: np.ndarray
    head_pose: np.ndarray
    eye_in_head: np.ndarray
    truth: np.ndarray
    target: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.t_s)

    def sample(self, i: int, seq: int, t_host_ns: int) -> dict:
        """Sample ``i`` as a ``gaze.3d`` message payload (protocol fields, ``truth`` for tests)."""
        ok = bool(self.valid[i])
        return {"topic": TOPIC_GAZE_3D, "seq": int(seq), "t_host_ns": int(t_host_ns), "t_device": float(self.t_s[i]),
                "valid": ok,
                "ray_origin": self.origin[i].tolist(),
                "ray_direction": self.direction[i].tolist() if ok else None,
                "head_pose": self.head_pose[i].ravel().tolist(),
                "gaze_point": self.gaze_point[i].tolist() if ok else None,
                "truth": {"event": EventType(int(self.truth[i])).name.lower(), "target": int(self.target[i])}}


def _unit(v):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-12, n, 1.0)


def _slerp(a, b, f):
    """Great-circle interpolation between unit vectors a and b at fraction f (arrays (m, 3), (m,))."""
    cos = np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)
    ang = np.arccos(cos)
    small = ang < 1e-9
    s = np.where(small, 1.0, np.sin(ang))
    wa = np.where(small, 1.0 - f, np.sin((1.0 - f) * ang) / s)
    wb = np.where(small, f, np.sin(f * ang) / s)
    return _unit(wa[:, None] * a + wb[:, None] * b)


def _angle_deg(a, b):
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b)), np.dot(a, b))))


def _perturb(d: np.ndarray, sigma_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate each unit direction by a Gaussian angular error (sigma_deg per axis, RMS sqrt(2) sigma)."""
    if sigma_deg <= 0:
        return d
    ref = np.where(np.abs(d[:, 2:3]) < 0.9, [[0.0, 0, 1]], [[1.0, 0, 0]])
    e1 = _unit(np.cross(d, ref))
    e2 = np.cross(d, e1)
    a = np.radians(rng.normal(0.0, sigma_deg, (len(d), 2)))
    return _unit(d + a[:, :1] * e1 + a[:, 1:] * e2)


def head_path(waypoints, t_s: np.ndarray, walk_speed: float) -> np.ndarray:
    """(n, 3) positions walking the (k, 3) waypoints at ``walk_speed`` (m/s), back and forth."""
    w = np.asarray(waypoints, dtype=np.float64).reshape(-1, 3)
    if len(w) == 1 or walk_speed == 0:
        return np.repeat(w[:1], len(t_s), 0)
    seg = np.linalg.norm(np.diff(w, axis=0), axis=1)
    s_cum = np.r_[0.0, np.cumsum(seg)]
    total = s_cum[-1]
    if total <= 0:
        return np.repeat(w[:1], len(t_s), 0)
    s = np.mod(t_s * walk_speed, 2 * total)
    s = np.where(s > total, 2 * total - s, s)          # walk back along the same path
    return np.stack([np.interp(s, s_cum, w[:, k]) for k in range(3)], axis=1)


def simulate_vr_session(targets, duration_s: float = 30.0, rate_hz: float = 90.0, *, seed=0,
                        waypoints=None, walk_speed: float = 0.5, up=(0.0, 0.0, 1.0),
                        noise_deg: float = 0.3, head_tau_s: float = 0.35, max_eccentricity_deg: float = 35.0,
                        fixation_median_s: float = 0.4, blink_rate_hz: float = 0.15,
                        visible: Optional[Callable] = None) -> VRSession:
    """Simulate a VR session looking at ``targets``.

    Parameters
    ----------
    targets : (k, 3) float64
        World points the eyes may fixate (objects' centres, scan points).
    duration_s, rate_hz : float
    waypoints : (m, 3) float64, optional
        Eye positions the head walks through (default: 5 m in front of the
        targets' centroid, at its height, not moving).
    walk_speed : float
        m/s (scene units per second).
    up : (3,)
        World up (the scan's: +Z for LiDAR, +Y for a Unity scene).
    noise_deg : float
        Tracker noise, Gaussian per axis, degrees (0.3: a head-mounted tracker's precision).
    head_tau_s : float
        Time constant of the head turning towards the gaze (the source of VOR).
    fixation_median_s : float
        Median of the log-normal fixation durations (clipped to 0.15-2 s).
    visible : callable, optional
        ``visible(eye (3,), targets (k, 3)) -> (k,) bool``.
    """
    tg = np.asarray(targets, dtype=np.float64).reshape(-1, 3)
    if len(tg) < 2:
        raise InputError(f"simulate_vr_session: need at least 2 targets, got {len(tg)}")
    if not (duration_s > 0 and rate_hz > 0):
        raise InputError(f"simulate_vr_session: duration_s and rate_hz must be positive, got {duration_s}, {rate_hz}")
    rng = np.random.default_rng(seed)
    up = _unit(np.asarray(up, dtype=np.float64))
    n = int(round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    if waypoints is None:
        c = tg.mean(axis=0)
        horiz = _unit(np.cross(up, np.cross(tg[0] - c, up)) + 1e-9)
        waypoints = [c - 5.0 * horiz]
    eye = head_path(waypoints, t, walk_speed)

    gaze = np.zeros((n, 3))
    truth = np.full(n, _FIX, dtype=np.int8)
    target = np.full(n, -1, dtype=np.int64)
    head_fwd = np.zeros((n, 3))

    def choose(i, current, fwd):
        to = tg - eye[i]
        dist = np.linalg.norm(to, axis=1)
        dirs = to / np.maximum(dist, 1e-9)[:, None]
        ecc = np.degrees(np.arccos(np.clip(dirs @ fwd, -1, 1)))
        ok = (ecc <= max_eccentricity_deg) & (dist > 0.3)
        if current >= 0:
            ok[current] = False
        if visible is not None and ok.any():
            cand = np.flatnonzero(ok)
            ok[cand] = np.asarray(visible(eye[i], tg[cand]), dtype=bool)
        if not ok.any():                  # nothing in view: turn to the nearest in angle (a large saccade)
            ecc = np.where(np.arange(len(tg)) == current, np.inf, ecc)
            return int(np.argmin(ecc))
        return int(rng.choice(np.flatnonzero(ok)))

    # the first target and fixation start at once; the head starts looking at it
    cur = choose(0, -1, _unit(tg.mean(axis=0) - eye[0]))
    fwd = _unit(tg[cur] - eye[0])
    i = 0
    dt = 1.0 / rate_hz
    while i < n:
        dwell = float(np.clip(rng.lognormal(np.log(fixation_median_s), 0.45), 0.15, 2.0))
        j = min(n, i + max(1, int(round(dwell * rate_hz))))
        for k in range(i, j):              # fixation: the world gaze holds the target; the head keeps turning
            gaze[k] = _unit(tg[cur] - eye[k])
            target[k] = cur
            fwd = _unit(fwd + (gaze[k] - fwd) * min(1.0, dt / head_tau_s))
            head_fwd[k] = fwd
        i = j
        if i >= n:
            break
        nxt = choose(i, cur, fwd)
        start = gaze[i - 1]
        amp = _angle_deg(start, _unit(tg[nxt] - eye[i]))
        m = max(1, int(round(saccade_duration_s(amp) * rate_hz)))
        k_end = min(n, i + m)
        tau = (np.arange(i, k_end) - i + 1) / m
        end_dirs = _unit(tg[nxt] - eye[i:k_end])
        gaze[i:k_end] = _slerp(np.repeat(start[None], k_end - i, 0), end_dirs,
                               saccade_position_fraction(tau, amp))
        truth[i:k_end] = _SAC
        for k in range(i, k_end):
            fwd = _unit(fwd + (gaze[k] - fwd) * min(1.0, dt / head_tau_s))
            head_fwd[k] = fwd
        # the last saccade sample lands on the target: the fixation starts with the next one
        cur = nxt
        i = k_end

    # measured signal: noise, gaps (blinks 100-300 ms)
    valid = np.ones(n, dtype=bool)
    n_blinks = rng.poisson(blink_rate_hz * duration_s)
    for onset, length in zip(rng.uniform(0, duration_s, n_blinks), rng.uniform(0.1, 0.3, n_blinks)):
        a, b = int(onset * rate_hz), min(n, int((onset + length) * rate_hz) + 1)
        valid[a:b] = False
    truth[~valid] = _GAP
    target[~valid] = -1
    measured = _perturb(gaze, noise_deg, rng)
    measured[~valid] = np.nan
    # the point of regard at the distance of what is looked at (the target, or mid-saccade the nearer one)
    dist = np.where(target >= 0, np.linalg.norm(tg[np.maximum(target, 0)] - eye, axis=1), np.nan)
    idx = np.arange(n)
    have = np.isfinite(dist)
    if have.any():
        dist = np.interp(idx, idx[have], dist[have])
    point = eye + measured * dist[:, None]
    pose = look_pose(eye, head_fwd, up=up)
    eye_in_head = np.einsum("nji,nj->ni", pose[:, :3, :3], measured)    # R^T d
    return VRSession(t_s=t, origin=eye, direction=measured, gaze_point=point, head_pose=pose,
                     eye_in_head=eye_in_head, truth=truth, target=target, valid=valid)


# --- on a scan ------------------------------------------------------------------------------------
EYE_HEIGHT_M = 1.7          # standing eye height above the local ground


def ground_height(xyz: np.ndarray, at_xy: np.ndarray, radius: float = 5.0, up_axis: int = 2) -> np.ndarray:
    """(m,) ground height under (m, 2) horizontal positions: the 5th percentile of the points' heights
    within ``radius`` (the whole cloud's if none is that near)."""
    horiz = [k for k in range(3) if k != up_axis]
    h = xyz[:, up_axis]
    out = np.empty(len(at_xy))
    for i, p in enumerate(np.asarray(at_xy, dtype=np.float64).reshape(-1, 2)):
        near = np.sum((xyz[:, horiz] - p) ** 2, axis=1) < radius ** 2
        out[i] = np.percentile(h[near] if near.sum() >= 10 else h, 5)
    return out


def default_walk(xyz: np.ndarray, up_axis: int = 2, n: int = 5) -> np.ndarray:
    """(n, 3) waypoints along the middle of the cloud's longer horizontal side, at eye height above ground."""
    horiz = [k for k in range(3) if k != up_axis]
    lo, hi = xyz[:, horiz].min(axis=0), xyz[:, horiz].max(axis=0)
    long_ = int(np.argmax(hi - lo))
    s = np.linspace(0.15, 0.85, n)
    xy = np.empty((n, 2))
    xy[:, long_] = lo[long_] + s * (hi[long_] - lo[long_])
    xy[:, 1 - long_] = 0.5 * (lo[1 - long_] + hi[1 - long_])
    out = np.empty((n, 3))
    out[:, horiz] = xy
    out[:, up_axis] = ground_height(xyz, xy, up_axis=up_axis) + EYE_HEIGHT_M
    return out


class PointOcclusion:
    """Line-of-sight through a point cloud (numpy only): a target is hidden when scan points lie
    within ``radius`` of the segment eye -> target, short of ``clearance`` before the target.

    Parameters
    ----------
    xyz : (n, 3) float64, the scan (sub-sampled to ``max_points``)
    radius : float, scene units (0.3: about LiDAR point spacing)
    """

    def __init__(self, xyz, radius: float = 0.3, clearance: float = 1.0, max_points: int = 40_000, seed: int = 0):
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        if len(xyz) > max_points:
            xyz = xyz[np.random.default_rng(seed).choice(len(xyz), max_points, replace=False)]
        self.xyz, self.radius, self.clearance = xyz, float(radius), float(clearance)

    def __call__(self, eye, targets) -> np.ndarray:
        eye = np.asarray(eye, dtype=np.float64).reshape(3)
        out = np.ones(len(targets), dtype=bool)
        rel = self.xyz - eye
        for k, tgt in enumerate(np.asarray(targets, dtype=np.float64).reshape(-1, 3)):
            seg = tgt - eye
            length = float(np.linalg.norm(seg))
            if length <= self.clearance:
                continue
            u = seg / length
            along = rel @ u
            sel = (along > 0.3) & (along < length - self.clearance)
            if not sel.any():
                continue
            perp = rel[sel] - along[sel, None] * u
            out[k] = not np.any(np.einsum("ij,ij->i", perp, perp) < self.radius ** 2)
        return out


def simulate_on_scan(xyz, duration_s: float, rate_hz: float = 90.0, *, labels=None, label=None,
                     n_targets: int = 40, seed=0, waypoints=None, up_axis: int = 2, **options):
    """A :func:`simulate_vr_session` walking through a point cloud, fixating visible scan points.

    Targets are ``n_targets`` points (those with ``label`` if given), the head
    walks ``waypoints`` (default :func:`default_walk`), and only targets in
    line of sight (:class:`PointOcclusion`) are chosen.

    Returns
    -------
    session : VRSession, targets : (k, 3) float64
    """
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    pool = xyz
    if label is not None:
        if labels is None:
            raise InputError("simulate_on_scan: 'label' needs the scan's labels")
        pool = xyz[np.asarray(labels) == label]
        if len(pool) == 0:
            raise InputError(f"simulate_on_scan: no point has label {label}")
    rng = np.random.default_rng(seed)
    targets = pool[np.sort(rng.choice(len(pool), size=min(n_targets, len(pool)), replace=False))]
    if waypoints is None:
        waypoints = default_walk(xyz, up_axis)
    up = np.eye(3)[up_axis]
    session = simulate_vr_session(targets, duration_s, rate_hz, seed=seed, waypoints=waypoints, up=up,
                                  visible=PointOcclusion(xyz, seed=seed), **options)
    return session, targets
