"""The live attention accumulator: gaze samples + camera -> per-element attention.

Attention of element ``p`` (point, vertex or voxel) is

    A_p = sum over used samples i of  dwell_i * w_i(p)

where ``w_i(p)`` is the foveal weight of ``p`` for sample ``i`` (a Gaussian of
the visual angle from the gaze ray, cut at 3 sigma, given to visible elements
only; for volumes the compositing weight along the ray) and ``dwell_i`` the
time the sample stands for: the interval since the previous sample, capped at
``max_dt_s``. Units: seconds of (weighted) looking.

With ``fixations_only`` (default) only samples classified as fixations count.
The classification comes from an ``event`` column when the samples carry one;
otherwise the accumulator classifies online, in **object space** (gaze motion
relative to the scene point looked at, so following a point while the camera
turns is a fixation), with a lag buffer: a sample is committed once
``lag_s`` of newer samples exist, so :attr:`values` trails the stream by
``lag_s``; :meth:`flush` commits everything (end of a recording).

Per fixation (``fixations_only``): every run of consecutive fixation samples
is kept as a :class:`FixationRecord` (its event interval and the attention it
deposited, sparse), so a caller can mark a fixation negative ("I looked at
this to reject it"): :meth:`set_polarity`, :meth:`signed_values`. The total
:attr:`values` do not depend on the marks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..errors import InputError
from ..events import EventType, classify_samples, object_space_steps
from .engine import AttentionEngine, AttentionOptions, make_engine
from .foveal import FovealModel

_FIX = int(EventType.FIXATION)


@dataclass
class FixationRecord:
    """One fixation's contribution to the attention.

    Attributes
    ----------
    index : (k,) int64
        Flat element indices it deposited attention on (volumes: C order of the grid).
    attention : (k,) float32
        The attention it deposited there (same units as :attr:`AttentionAccumulator.values`).
    t_start_s, t_end_s : float
        Its first and last sample (the accumulator's stream clock, seconds).
    n_samples : int
        Fixation samples deposited.
    positive : bool
        True: the annotator looked at it as part of the target; False: to reject it.
    """

    index: np.ndarray
    attention: np.ndarray
    t_start_s: float
    t_end_s: float
    n_samples: int
    positive: bool = True


def _ray_camera(origin, directions, cut_rad, px_per_deg):
    from ..camera import Camera

    axis = directions.sum(axis=0)
    axis /= np.linalg.norm(axis)
    spread = float(np.max(np.arccos(np.clip(directions @ axis, -1.0, 1.0)))) if len(directions) else 0.0
    half = min(np.degrees(spread + cut_rad) * 1.5 + 1.0, 80.0)
    size = int(np.ceil(2 * half * px_per_deg))
    up = (0.0, 0.0, 1.0) if abs(axis[2]) < 0.99 else (0.0, 1.0, 0.0)
    return Camera(position=origin, focal_point=origin + axis, view_up=up, vfov_deg=2 * half,
                  width=size, height=size, near=1e-6, far=1e12)


class AttentionAccumulator:
    """Accumulate occlusion-aware foveal attention from gaze on a scan.

    Parameters
    ----------
    scan : PointCloud | Mesh | Volume
    sigma_deg : float
        Foveal Gaussian sigma in visual degrees (default 1.0), cut at ``cut_sigmas`` (3).
    fixations_only : bool
        Count fixation samples only (default True).
    method : str
        Online classifier (``"ivt"`` with Tobii defaults; see :mod:`gaze3d.events`).
    method_params : dict, optional
        Overrides of the classifier's defaults.
    visual_deg_per_camera_deg : float
        Visual degrees per degree of the viewer camera (default 1.0).
    display : DisplayGeometry, optional
        With ``viewport`` (normalised x, y, w, h on the display), derive the
        visual/camera factor per camera instead.
    max_dt_s : float
        Dwell cap per sample (default 0.05 s).
    rate_hz : float
        Nominal sample rate: the dwell of the very first sample, and the
        timestamps given to samples passed without any (default 1200).
    lag_s, history_s : float
        Online classification lag (0.2 s) and context kept (0.6 s).
    commit_interval_s : float
        Classify and commit pending samples in batches this long (0.05 s), so
        :attr:`values` trails the stream by ``lag_s`` to ``lag_s + commit_interval_s``.
    ray_px_per_deg : float
        Depth-buffer resolution of the virtual camera for VR rays (default 20).
    max_fixation_records : int
        Fixation records kept (default 512); older ones are dropped (their
        attention stays in :attr:`values` and counts as positive). Each record
        costs one pass over :attr:`values` when its fixation ends; 0 keeps none
        and skips that work.
    **engine_opts
        Passed to the engine: point clouds take ``point_size`` (3 px),
        ``depth_tolerance`` (0.001), ``max_slope`` (3), ``spacing_footprint`` (True); meshes and volumes see
        their modules.

    Notes
    -----
    Not thread-safe: one thread feeds it (the viewer's render loop or a
    replay). Deterministic: the same calls in the same order give
    bit-identical :attr:`values`.
    """

    def __init__(self, scan, sigma_deg: float = 1.0, fixations_only: bool = True, *,
                 cut_sigmas: float = 3.0, method: str = "ivt", method_params: Optional[dict] = None,
                 visual_deg_per_camera_deg: float = 1.0, display=None, viewport=(0.0, 0.0, 1.0, 1.0),
                 max_dt_s: float = 0.05, rate_hz: float = 1200.0, lag_s: float = 0.2,
                 history_s: float = 0.6, commit_interval_s: float = 0.05, ray_px_per_deg: float = 20.0,
                 max_fixation_records: int = 512, **engine_opts):
        self.foveal = FovealModel(sigma_deg=sigma_deg, cut_sigmas=cut_sigmas,
                                  visual_deg_per_camera_deg=visual_deg_per_camera_deg,
                                  display=display, viewport=viewport)
        for name, v in (("max_dt_s", max_dt_s), ("rate_hz", rate_hz), ("lag_s", lag_s),
                        ("history_s", history_s), ("ray_px_per_deg", ray_px_per_deg)):
            if not (np.isfinite(v) and v > 0):
                raise InputError(f"AttentionAccumulator {name}: expected a positive number, got {v}")
        if history_s < lag_s + 0.1:
            raise InputError(f"AttentionAccumulator history_s: expected at least lag_s + 0.1 = {lag_s + 0.1}, "
                             f"got {history_s}")
        self.method_params = dict(method_params or {})
        classify_samples([0.0, 0.001], [0.0, 0.0], [0.0, 0.0], method=method, **self.method_params)
        self.scan = scan
        self.fixations_only = bool(fixations_only)
        self.method = method
        self.max_dt_s, self.rate_hz = float(max_dt_s), float(rate_hz)
        self.lag_s, self.history_s = float(lag_s), float(history_s)
        self.commit_interval_s = max(0.0, float(commit_interval_s))
        self.ray_px_per_deg = float(ray_px_per_deg)
        if not (isinstance(max_fixation_records, (int, np.integer)) and max_fixation_records >= 0):
            raise InputError(f"AttentionAccumulator max_fixation_records: expected an int >= 0, "
                             f"got {max_fixation_records!r}")
        self.max_fixation_records = int(max_fixation_records)
        self.engine: AttentionEngine = make_engine(scan, self.foveal, **engine_opts)
        self._rows_ok = bool(self.engine.deposit_rows)      # deposit(..., use=): reuse the frame's cones
        # fixation records from the engine's journal of touched points (point clouds, meshes, volumes):
        # O(points touched) per fixation instead of copies of the whole attention array
        self._journal = hasattr(self.engine, "journal_take")
        self.reset()

    @classmethod
    def from_options(cls, scan, options=None, **extra) -> "AttentionAccumulator":
        """An accumulator for ``scan`` from :class:`AttentionOptions` (or a dict of them); ``extra``
        are further keyword arguments (``display``, ``viewport``, ``lag_s``...)."""
        return cls(scan, **AttentionOptions.coerce(options).accumulator_kwargs(scan), **extra)

    # ------------------------------------------------------------- what the viewer shows
    @property
    def is_volume(self) -> bool:
        """True when the scan is a volume (its attention follows how the volume is shown)."""
        return hasattr(self.engine, "set_slices")

    def set_volume_view(self, slices=None) -> None:
        """Volumes: attention on the three slice planes through voxel ``slices (3,)`` as shown, or (None)
        on what the volume rendering shows. No effect on point clouds and meshes."""
        if not self.is_volume:
            return
        if slices is None:
            self.engine.mode = "render"
            return
        planes = list(enumerate(int(i) for i in slices))
        if self.engine.mode != "slice" or self.engine.planes != planes:
            self.engine.set_slices(slices)
        self.engine.mode = "slice"

    def set_volume_opacity(self, opacity) -> None:
        """Volumes: the volume rendering's opacity ramp ((2, m) control points or a callable). Else no effect."""
        if self.is_volume:
            from .volume import make_opacity

            self.engine.opacity = make_opacity(opacity)

    # ------------------------------------------------------------- state
    def reset(self) -> None:
        """Zero the attention and forget the stream (timestamps, lag buffer)."""
        self.engine.reset()
        self._t0_ns = None
        self._t_last = None           # seconds, last sample seen
        self._prev_dir = None         # last valid sample's direction and hit (object space)
        self._prev_hit = None
        self._pos = np.zeros(2)       # object-space trajectory position, degrees
        self._hist_t = np.empty(0)
        self._hist_xy = np.empty((0, 2))
        self._pending = []            # [frame, t (k,), dirs (k,3), dwell (k,), origins (k,3)] chunks
        self.n_samples = 0            # samples seen
        self.n_used = 0               # samples whose attention was deposited
        self._cached = None
        self._records: List[FixationRecord] = []
        self._open = None             # [t_start, t_end, n] of the fixation being deposited
        self._snap = None             # flat values when the open fixation started
        self._last_fix_t = None       # time of the last fixation sample deposited

    @property
    def values(self) -> np.ndarray:
        """(n,) float32 attention per point / vertex / voxel (committed samples only, see :meth:`flush`)."""
        if self._cached is None:
            self._cached = self.engine.values()
        return self._cached

    @property
    def t0_ns(self) -> Optional[int]:
        """``t_host_ns`` of the stream's first sample: the origin of the records' ``t_start_s``/``t_end_s``
        (None before any sample with a time stamp)."""
        return self._t0_ns

    # ------------------------------------------------------ per fixation
    def fixations(self) -> List[FixationRecord]:
        """The fixations deposited so far, oldest first (the last may still be growing:
        it is included as it stands).

        Only with ``fixations_only``; a fixation is a run of consecutive fixation
        samples (an invalid sample or any other event ends it). At most
        ``max_fixation_records`` are kept.
        """
        out = list(self._records)
        if self._open is not None:
            out.append(self._make_record(None if self._journal else self._flat_values()))
        return out

    def set_polarity(self, i: int, positive: bool) -> FixationRecord:
        """Mark fixation ``i`` (index into :meth:`fixations`, negative counts from the end)
        as positive (on the target) or negative (rejected). Returns its record."""
        if self._open is not None:
            self._close()   # the fixation being marked ends here
        n = len(self._records)
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise InputError(f"fixation index: expected an int in [{-n}, {n}), got {i!r}")
        self._records[i].positive = bool(positive)
        return self._records[i]

    def signed_values(self) -> tuple:
        """(positive, negative) attention, each (n,) float32 flat: negative = the attention
        of the fixations marked negative, positive = the rest of :attr:`values`."""
        total = self._flat_values().astype(np.float32, copy=True)
        neg = np.zeros_like(total)
        rejected = [r for r in self._records if not r.positive]
        if not rejected:
            return total, neg       # max(total - 0, 0) is total (attention >= 0): two whole-array passes saved
        for r in rejected:
            neg[r.index] += r.attention
        return np.maximum(total - neg, 0.0), neg

    def nonzero_signed_values(self) -> tuple:
        """:meth:`signed_values` where the attention is nonzero, without building the whole array.

        A label needs the attended points only; at 1M points building
        :attr:`values` costs a scatter over the whole cloud. Point clouds read
        the engine's own array where it is nonzero; other engines go through
        :attr:`values`.

        Returns
        -------
        index : (k,) int64 ascending
            The elements whose :attr:`values` are nonzero (elsewhere both parts are 0).
        positive, negative : (k,) float32
            ``signed_values()[0][index]`` and ``signed_values()[1][index]``, bit for bit.
        """
        acc = getattr(self.engine, "acc", None)
        order = getattr(getattr(self.engine, "index", None), "order", None)
        if self._cached is None and isinstance(acc, np.ndarray) and isinstance(order, np.ndarray) \
                and acc.ndim == 1 and acc.shape == order.shape:
            # values() is acc (engine order) cast to float32 and put at order: do that where acc is nonzero
            sp = np.flatnonzero(acc)
            v = acc[sp].astype(np.float32)
            nz = v != 0
            flat = order[sp[nz]].astype(np.int64)
            mark = np.zeros(len(order), dtype=bool)
            mark[flat] = True
            index = np.flatnonzero(mark)
            at = np.empty(len(order), dtype=np.float32)
            at[flat] = v[nz]
            total = at[index]
        else:
            flat_values = self._flat_values()
            index = np.flatnonzero(flat_values)
            total = flat_values[index].astype(np.float32)
        neg = np.zeros_like(total)
        for r in self._records:
            if not r.positive:
                pos = np.minimum(np.searchsorted(index, r.index), max(len(index) - 1, 0))
                hit = (index[pos] == r.index) if len(index) else np.zeros(len(r.index), dtype=bool)
                neg[pos[hit]] += r.attention[hit]
        return index, np.maximum(total - neg, 0.0), neg

    def _flat_values(self) -> np.ndarray:
        return np.asarray(self.values).reshape(-1)

    def _make_record(self, now: Optional[np.ndarray]) -> FixationRecord:
        t0, t1, k = self._open
        if self._journal:
            idx, att = self.engine.journal_take()
            return FixationRecord(idx, att, float(t0), float(t1), int(k))
        base = self._snap if self._snap is not None else 0.0
        d = now - base
        idx = np.flatnonzero(d > 0)
        return FixationRecord(idx.astype(np.int64), d[idx].astype(np.float32), float(t0), float(t1), int(k))

    def _close(self) -> None:
        # a fixation is open only when records are kept (_deposit_run): max_fixation_records > 0 here
        if self._open is None:
            return
        if self._journal:
            self._records.append(self._make_record(None))
            del self._records[:-self.max_fixation_records]
            self.engine.journal_stop()
            self._open = None
            return
        now = self._flat_values().copy()
        self._records.append(self._make_record(now))
        del self._records[:-self.max_fixation_records]
        self._open, self._snap = None, now

    def _deposit_run(self, t_run, new_run: bool, deposit) -> None:
        """Deposit one run of fixation samples (times ``t_run``) through ``deposit()``:
        a new fixation when ``new_run``, else the open one continues."""
        if not self.max_fixation_records:     # records off: no snapshots (batch runs)
            deposit()
            self._cached = None
            self._last_fix_t = float(t_run[-1])
            return
        if new_run or self._open is None:
            self._close()
            if self._journal:
                self.engine.journal_start()
            elif self._snap is None:
                self._snap = self._flat_values().copy()
            self._open = [float(t_run[0]), float(t_run[-1]), 0]
        deposit()
        self._cached = None
        self._open[1] = float(t_run[-1])
        self._open[2] += len(t_run)
        self._last_fix_t = float(t_run[-1])

    @staticmethod
    def _run_bounds(is_fix: np.ndarray, breaks: np.ndarray) -> list:
        """(lo, hi) of the runs of True in ``is_fix`` (m,), also split where ``breaks`` (m,) is True."""
        if not is_fix.any():
            return []
        edge = np.ones(len(is_fix), dtype=bool)
        edge[1:] = (is_fix[1:] != is_fix[:-1]) | breaks[1:]
        starts = np.flatnonzero(edge)
        ends = np.append(starts[1:], len(is_fix))
        return [(int(a), int(b)) for a, b in zip(starts, ends) if is_fix[a]]

    # ------------------------------------------------------------ inputs
    def _parse(self, samples):
        """-> t (n,) seconds, xy (n, 2), valid (n,), event (n,) or None."""
        if isinstance(samples, dict):
            if "x" in samples and "y" in samples:
                xy = np.stack([np.asarray(samples["x"], dtype=np.float64).ravel(),
                               np.asarray(samples["y"], dtype=np.float64).ravel()], axis=1)
            elif "gaze" in samples:
                xy = np.asarray(samples["gaze"], dtype=np.float64).reshape(-1, 2)
            else:
                raise InputError(f"samples: expected columns 'x' and 'y' (normalised display coordinates), "
                                 f"got {sorted(samples)}")
            n = len(xy)
            valid = np.ones(n, dtype=bool)
            if samples.get("valid") is not None:
                valid = np.asarray(samples["valid"]).astype(bool).ravel()
                if len(valid) != n:
                    raise InputError(f"samples['valid']: expected {n} values, got {len(valid)}")
            t = None
            if samples.get("t_host_ns") is not None:
                ns = np.asarray(samples["t_host_ns"], dtype=np.int64).ravel()
                if len(ns) != n:
                    raise InputError(f"samples['t_host_ns']: expected {n} values, got {len(ns)}")
                if self._t0_ns is None and n:
                    self._t0_ns = int(ns[0])
                t = (ns - (self._t0_ns or 0)).astype(np.float64) * 1e-9
            elif samples.get("t_s") is not None:
                t = np.asarray(samples["t_s"], dtype=np.float64).ravel()
            event = samples.get("event")
            if event is not None:
                event = np.asarray(event).astype(np.int64).ravel()
                if len(event) != n:
                    raise InputError(f"samples['event']: expected {n} values, got {len(event)}")
        else:
            xy = np.asarray(samples, dtype=np.float64)
            if xy.ndim != 2 or xy.shape[1] != 2:
                raise InputError(f"samples: expected an (n, 2) array of normalised display coordinates "
                                 f"or a dict of columns, got shape {xy.shape}")
            n, valid, t, event = len(xy), np.ones(len(xy), dtype=bool), None, None
        if t is None:
            start = 0.0 if self._t_last is None else self._t_last + 1.0 / self.rate_hz
            t = start + np.arange(n) / self.rate_hz
        if t is not None and len(t) != n:
            raise InputError(f"samples timestamps: expected {n} values, got {len(t)}")
        valid &= np.isfinite(xy).all(axis=1)
        return t, xy, valid, event

    def _dwell(self, t: np.ndarray) -> np.ndarray:
        prev = np.empty_like(t)
        prev[1:] = t[:-1]
        prev[0] = t[0] - 1.0 / self.rate_hz if self._t_last is None else self._t_last
        dt = t - prev
        if np.any(dt <= 0) or not np.all(np.isfinite(t)):
            i = int(np.flatnonzero(~(dt > 0))[0])
            raise InputError(f"samples timestamps: expected strictly increasing finite times, sample {i} "
                             f"at {t[i]!r} s is not after {prev[i]!r} s")
        self._t_last = float(t[-1])
        return np.minimum(dt, self.max_dt_s)

    def add(self, camera, samples) -> None:
        """Add gaze samples seen while ``camera`` was the viewer's camera.

        Parameters
        ----------
        camera : gaze3d.camera.Camera
        samples : (n, 2) float or dict of (n,) columns
            Normalised display coordinates (top-left origin) of the viewport,
            or columns ``x``, ``y`` and optionally ``valid``, ``t_host_ns``
            (or ``t_s``), ``event`` (EventType codes) as from
            ``Recording.samples()``. Without timestamps, samples are spaced
            at ``rate_hz`` after the previous ones.
        """
        t, xy, valid, event = self._parse(samples)
        if len(t) == 0:
            return
        dwell = self._dwell(t)
        pix = camera.normalized_to_pixels(xy[valid])
        origins, dirs = camera.unproject(pix)
        self._ingest(t, valid, event, dwell, origins, dirs, camera, camera.right, camera.up)

    def add_rays(self, origins, directions, t_s=None, valid=None, event=None) -> None:
        """Add 3D gaze rays (VR) in world coordinates.

        Rays are grouped by identical origin; each group gets a virtual
        perspective camera at its origin for the visibility test (its depth
        buffer has ``ray_px_per_deg`` pixels per degree).

        Parameters
        ----------
        origins, directions : (n, 3) float64
        t_s : (n,) float64 seconds, optional
        valid : (n,) bool, optional
        event : (n,) int, optional
        """
        o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
        d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
        if len(o) != len(d):
            raise InputError(f"add_rays: origins and directions must have the same length, got {len(o)} and {len(d)}")
        cols = {"x": np.zeros(len(d)), "y": np.zeros(len(d)), "valid": valid, "event": event,
                "t_s": t_s}
        t, _, ok, ev = self._parse(cols)
        if len(t) == 0:
            return
        norm = np.linalg.norm(d, axis=1)
        ok &= np.isfinite(o).all(axis=1) & np.isfinite(norm) & (norm > 0)
        dwell = self._dwell(t)
        dn = np.zeros_like(d)
        dn[ok] = d[ok] / norm[ok, None]
        # split into runs of equal origin: one virtual camera per run
        key = np.where(ok[:, None], o, np.nan)
        change = np.ones(len(o), dtype=bool)
        change[1:] = ~np.all(key[1:] == key[:-1], axis=1)
        starts = np.flatnonzero(change)
        bounds = list(starts) + [len(o)]
        for s, e in zip(bounds[:-1], bounds[1:]):
            sel = ok[s:e]
            cam = None
            if sel.any():
                cam = _ray_camera(o[s], dn[s:e][sel], self.foveal.cut_rad(None), self.ray_px_per_deg)
                cam._ray_mode = True
            right, up = (cam.right, cam.up) if cam is not None else (None, None)
            self._ingest(t[s:e], sel, None if ev is None else ev[s:e], dwell[s:e],
                         o[s:e][sel], dn[s:e][sel], cam, right, up)

    # ---------------------------------------------------------- pipeline
    def _ingest(self, t, valid, event, dwell, origins, dirs, camera, right, up):
        self.n_samples += len(t)
        self._cached = None
        if not valid.any():
            if self.fixations_only and event is None:
                self._history(t, np.full((len(t), 2), np.nan))
                self._commit(final=False)
            elif event is not None:
                self._close()      # invalid samples end a fixation
            return
        frame = self.engine.frame(camera, dirs)
        tv, wv = t[valid], dwell[valid]
        if not self.fixations_only:
            self._deposit(frame, dirs, wv, origins)
            return
        if event is not None:
            # a fixation = a run of valid fixation samples in this call (continuing the
            # open one when the previous call ended inside it)
            fix = (event == _FIX) & valid
            rows = np.cumsum(valid) - 1          # row in dirs of each valid sample
            for lo, hi in self._run_bounds(fix, np.zeros(len(fix), dtype=bool)):
                r = rows[lo:hi]
                cont = lo == 0 and self._open is not None
                self._deposit_run(t[lo:hi], not cont, lambda r=r: self._deposit(
                    frame, dirs[r], wv[r], origins[r]))
                if hi < len(fix):
                    self._close()
            if len(fix) and not fix[-1]:
                self._close()
            return
        hits = self.engine.hit_points(frame, dirs, origins)
        steps = object_space_steps(origins, dirs, hits, self._prev_dir, self._prev_hit, rights=right, ups=up)
        steps *= self.foveal.visual_per_camera(camera)      # classifier thresholds are visual degrees
        self._prev_dir, self._prev_hit = dirs[-1].copy(), hits[-1].copy()
        xy = np.full((len(t), 2), np.nan)
        xy[valid] = self._pos + np.cumsum(steps, axis=0)
        self._pos = xy[valid][-1].copy()
        self._history(t, xy)
        self._pending.append([frame, tv, dirs, wv, origins])
        self._commit(final=False)

    def _history(self, t, xy):
        self._hist_t = np.concatenate([self._hist_t, t])
        self._hist_xy = np.concatenate([self._hist_xy, xy])

    def _deposit(self, frame, dirs, weights, origins):
        if len(dirs):
            self.engine.deposit(frame, dirs, weights, origins)
            self.n_used += len(dirs)

    def _commit(self, final: bool) -> None:
        if not self._pending or len(self._hist_t) == 0:
            return
        t_end = self._hist_t[-1]
        cutoff = np.inf if final else t_end - self.lag_s
        # classify in batches: wait until pending samples span commit_interval_s past the lag
        if not final and self._pending[0][1][0] > cutoff - self.commit_interval_s:
            return
        labels = classify_samples(self._hist_t, self._hist_xy[:, 0], self._hist_xy[:, 1],
                                  method=self.method, **self.method_params)
        keep = []
        for chunk in self._pending:
            frame, tc, dc, wc, oc = chunk
            whole = tc[-1] <= cutoff and self._rows_ok
            done = np.ones(len(tc), dtype=bool) if whole else tc <= cutoff
            if done.any():
                hi_idx = np.searchsorted(self._hist_t, tc[done])
                fix = labels[hi_idx] == _FIX
                # a fixation ends at any non-fixation sample, invalid ones included
                # (those are in the history, not in the chunk)
                gap = np.zeros(len(hi_idx), dtype=bool)
                gap[1:] = np.diff(hi_idx) != 1
                for lo, hi in self._run_bounds(fix, gap):
                    cont = (lo == 0 and self._open is not None and self._last_fix_t is not None
                            and hi_idx[0] > 0 and self._hist_t[hi_idx[0] - 1] == self._last_fix_t)
                    if whole:
                        # deposit from the very arrays the frame was built for, so the
                        # engine reuses the frame's cones
                        use = np.zeros(len(tc), dtype=bool)
                        use[lo:hi] = True
                        dep = lambda use=use: self.engine.deposit(frame, dc, wc, oc, use=use)
                    else:
                        sel = np.flatnonzero(done)[lo:hi]
                        dep = lambda sel=sel: self.engine.deposit(frame, dc[sel], wc[sel], oc[sel])
                    self._deposit_run(tc[done][lo:hi], not cont, dep)
                    self.n_used += hi - lo
                if self._open is not None and (not fix[-1] or self._last_fix_t != float(tc[done][-1])):
                    self._close()
            if not done.all():
                keep.append([frame, tc[~done], dc[~done], wc[~done], oc[~done]])
        self._pending = keep
        lo = np.searchsorted(self._hist_t, t_end - self.history_s, side="left")
        if self._pending:
            lo = min(lo, np.searchsorted(self._hist_t, self._pending[0][1][0] - (self.history_s - self.lag_s)))
        self._hist_t, self._hist_xy = self._hist_t[lo:], self._hist_xy[lo:]

    def flush(self) -> None:
        """Classify and commit every pending sample (call at the end of a stream)."""
        self._commit(final=True)
        self._cached = None
        self._close()
