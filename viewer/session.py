"""The scriptable core of a labeling session (no window needed).

One :class:`LabelingSession` ties together: the gaze (a tracker process over
ZeroMQ through :class:`~gaze3d.viewer.tracker_link.TrackerLink`, or local
samples such as the mouse), the cameras shown (each frame's camera, stamped on
the tracker clock, goes to the session recording), per-element attention
(:class:`gaze3d.attention.AttentionAccumulator`), labels with undo/redo, and
annotation files with provenance events. The interactive window
(:mod:`gaze3d.viewer.app`) and the tests drive the same object:

>>> s = LabelingSession(scan, LabelSet.default(), tracker=link)   # doctest: +SKIP
>>> s.attach(scene); s.tick(); s.label_key("1"); s.undo()          # doctest: +SKIP
"""
from __future__ import annotations

import collections
import dataclasses
import getpass
import threading
import time
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from gaze3d.attention import AttentionAccumulator
from gaze3d.calib.profiles import ProfileStore
from gaze3d.camera import Camera
from gaze3d.errors import Gaze3DError, InputError
from gaze3d.io import load_scan, save_labels, save_scan
from gaze3d.protocol import TOPIC_GAZE_2D
from gaze3d.regions import NOT_BUILT, CloudNeighbours, grow_cloud_sparse, grow_region
from gaze3d.scan import Mesh, PointCloud, Volume

from . import regions as _regions  # noqa: F401  (scipy.spatial at start-up: the first label key stays fast)
from .calibration import SessionCalibration
from .history import LabelHistory
from .labels import Label, LabelSet
from .sink import LocalSink, SessionSink, TrackerSink

MAX_CAMERA_HISTORY = 512
#: where a label's region comes from (``LabelingSession(segmenter=...)``, ``gaze3d view --segmenter``)
SEGMENTERS = ("auto", "model", "walker", "grow")
MAX_PROVENANCE_SAMPLES = 200_000


@dataclass
class LabelAction:
    """One labeling step, enough to undo and redo it.

    Attributes
    ----------
    index : (k,) int64
        Flat element indices that were labelled.
    before : (k,) int32
        Their labels before.
    label : Label
    method : str
        ``"model"``, ``"walker"`` (volumes) or ``"grow"``.
    t_host_ns : int
        When it happened (tracker clock).
    """

    index: np.ndarray
    before: np.ndarray
    label: Label
    method: str
    t_host_ns: int



def _grow_weights(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Region-growing weights from signed attention: rejected parts (more negative than positive
    attention) can neither seed nor join a region."""
    if not neg.any():       # nothing rejected: ``pos`` itself (a 256^3 volume: ~0.3 s of whole-grid passes)
        return pos.astype(np.float32, copy=False)
    return np.where(neg > pos, 0.0, pos).astype(np.float32)

class LabelingSession:
    """Gaze -> attention -> labels for one scan.

    Parameters
    ----------
    scan : PointCloud, Mesh or Volume
    label_set : LabelSet, optional
        Default: the scan's ``label_names`` if any, else ``class1`` ... ``class9``.
    tracker : TrackerLink, optional
        Live gaze and the remote session recording. None: local samples only
        (:meth:`add_samples`, e.g. mouse-as-gaze).
    record : path, optional
        Without a tracker: write a local recording (samples, cameras, events)
        there. With a tracker: ask the tracker to record there.
    annotator : str, optional
        Name stored in the provenance (default: the OS user name).
    segmenter : {"auto", "model", "walker", "grow"}
        Where the labelled region comes from: ``"auto"`` tries the interactive
        model (point clouds; volumes: the shipped volume model, which refines
        the ROI random walker) and falls back to region growing (volumes: to
        that walker). ``"model"``: the network only. ``"walker"`` (volumes):
        the ROI random walker (:func:`gaze3d.volume_regions.random_walk_roi`).
        ``"grow"``: region growing (volumes: the flood fill).
    rel_threshold : float
        Region growing: elements join while attention >= this fraction of the peak.
    attention_options : AttentionOptions, optional
        How attention is accumulated (:class:`gaze3d.attention.AttentionOptions`;
        a dict of ``AttentionAccumulator`` keyword arguments is accepted too).
    viewport : (4,) float
        ``(x0, y0, width, height)`` of the render viewport in normalised display
        coordinates of the tracker's display (default: the viewport fills it).
    profile : Profile or str, optional
        Calibration profile whose correction is applied to the tracker's gaze
        (see :class:`~gaze3d.viewer.calibration.SessionCalibration`).
    profile_store : ProfileStore, optional
        Where profiles are listed (default: the user config folder).
    display : DisplayGeometry, optional
        The tracker's display, for the drift check's degrees.
    drift_threshold_deg, drift_dwell_s : float
        Drift check (:meth:`start_drift_check`): alert threshold and target duration.

    Thread-safety: not thread-safe; drive it from the render thread. Its own
    threads: the cloud's kNN graph is built in the background (:attr:`neighbours`),
    and :meth:`begin_label` grows a label's region in a worker that owns the
    attention until :meth:`finish_label` (tick holds new gaze meanwhile).
    """

    def __init__(self, scan, label_set: Optional[LabelSet] = None, *, tracker=None, record=None,
                 annotator: Optional[str] = None, segmenter: str = "auto", rel_threshold: float = 0.25,
                 attention_options: Optional[dict] = None, viewport=(0.0, 0.0, 1.0, 1.0),
                 camera: Optional[Camera] = None, profile=None, profile_store=None, display=None,
                 drift_threshold_deg: float = 1.0, drift_dwell_s: float = 1.5):
        if not isinstance(scan, (PointCloud, Mesh, Volume)):
            raise InputError(f"scan: expected a PointCloud, Mesh or Volume, got {type(scan).__name__}")
        if segmenter not in SEGMENTERS:
            raise InputError(f"segmenter: expected one of {SEGMENTERS}, got {segmenter!r}")
        if segmenter == "walker" and not isinstance(scan, Volume):
            raise InputError("segmenter: 'walker' (the ROI random walker) is for volumes; on point clouds "
                             "and meshes use 'auto', 'model' or 'grow'")
        if not 0 < rel_threshold <= 1:
            raise InputError(f"rel_threshold: expected a value in (0, 1], got {rel_threshold}")
        vp = np.asarray(viewport, dtype=np.float64)
        if vp.shape != (4,) or not (vp[2] > 0 and vp[3] > 0):
            raise InputError(f"viewport: expected (x0, y0, width, height) with positive size, got {viewport}")
        self.scan = scan
        self.kind = "volume" if isinstance(scan, Volume) else ("mesh" if isinstance(scan, Mesh) else "cloud")
        self.shape = scan.shape if self.kind == "volume" else (len(scan),)
        if label_set is None:
            label_set = LabelSet.from_names(scan.label_names) if scan.label_names else LabelSet.default()
        self.label_set = label_set
        self.tracker = tracker
        self.annotator = annotator or _user_name()
        self.segmenter_mode = segmenter
        self.rel_threshold = float(rel_threshold)
        self.viewport = vp
        self.accumulator = AttentionAccumulator.from_options(scan, attention_options)
        # what region growing needs that does not depend on the attention (the cloud's kNN graph),
        # built once in a background thread while the annotator looks around: a label then
        # builds no tree (the same region; until it is built, a tree per label as before)
        self.neighbours: Optional[CloudNeighbours] = (CloudNeighbours(scan.xyz, background=True)
                                                      if self.kind == "cloud" else None)
        base = scan.labels if scan.labels is not None else np.zeros(self.shape, dtype=np.int32)
        self.labels = np.array(base, dtype=np.int32).reshape(-1)
        self.history: LabelHistory[LabelAction] = LabelHistory()
        self.scene = None
        self.camera = camera
        self.message = ""
        self._segmenter = None
        self._segmenter_error: Optional[str] = None
        self._fallback_note: Optional[str] = None
        self._cam_times: List[int] = []
        self._cams: List[Camera] = []
        self._last_sent: Optional[dict] = None
        # (t_host_ns, x, y, valid) since the last label/clear; bounded (~100 s at 2 kHz)
        self._gaze: "collections.deque" = collections.deque(maxlen=MAX_PROVENANCE_SAMPLES)
        self.last_gaze: Optional[tuple] = None
        self.n_samples = 0
        self._mouse_times: "collections.deque" = collections.deque(maxlen=1000)   # monotonic s, mouse samples
        self._last_t_ns: Optional[int] = None
        self._pending: Optional[dict] = None      # a label whose region a worker thread is growing
        if isinstance(profile, str):       # a missing profile fails before any recording starts
            profile = (profile_store if profile_store is not None else ProfileStore()).load(profile)
        # one sink for cameras, events, metadata and local samples (viewer/sink.py)
        source = getattr(scan, "source", None)
        self.sink: SessionSink = (TrackerSink(tracker, record, source) if tracker is not None
                                  else LocalSink(record, self.annotator, source))
        self.record_event({"type": "session_start", "annotator": self.annotator,
                     "scan": str(getattr(scan, "source", None)),
                     "labels": {str(k): v for k, v in self.label_set.names_by_id().items()}})
        self.calibration = SessionCalibration(self, profile, profile_store, display, drift_threshold_deg,
                                              drift_dwell_s)

    # ---------------------------------------------------------------- clock
    def now_ns(self) -> int:
        """Now on the shared clock (the tracker's if there is one, else local monotonic)."""
        return self.sink.now_ns()

    # ---------------------------------------------------------------- scene
    def attach(self, scene) -> None:
        """Show attention and labels in a :class:`~gaze3d.viewer.scene.Scene` and take cameras from it."""
        self.scene = scene
        scene.label_colors = self.label_set.colors()
        scene.set_labels(self.labels.reshape(self.shape) if self.kind == "volume" else self.labels)

    def current_camera(self) -> Camera:
        if self.scene is not None:
            return self.scene.camera()
        if self.camera is None:
            raise InputError("session: no camera (attach a scene or pass camera=)")
        return self.camera

    def _note_camera(self, t_ns: int) -> Camera:
        cam = self.current_camera()
        d = cam.to_dict()
        if d != self._last_sent:
            self._last_sent = d
            self._cam_times.append(t_ns)
            self._cams.append(cam)
            if len(self._cams) > MAX_CAMERA_HISTORY:
                del self._cam_times[0], self._cams[0]
        self.sink.camera(t_ns, cam)
        return cam

    def camera_at(self, t_ns: int) -> Camera:
        """The camera shown at ``t_ns`` (shared clock)."""
        if not self._cams:
            return self.current_camera()
        i = int(np.searchsorted(np.asarray(self._cam_times), t_ns, side="right")) - 1
        return self._cams[max(i, 0)]

    # ----------------------------------------------------------------- gaze
    def add_samples(self, samples: List[dict]) -> int:
        """Accumulate attention from sample dicts (``gaze`` [x, y] normalised display, ``valid``, ``t_host_ns``).

        Samples from local sources (mouse) are also written to the local recording.
        Returns the number of valid 2D samples used.
        """
        rows = []
        for s in samples:
            if s.get("topic", TOPIC_GAZE_2D) != TOPIC_GAZE_2D:
                continue
            g = s.get("gaze")
            valid = bool(s.get("valid", g is not None)) and g is not None
            x, y = (float(g[0]), float(g[1])) if g is not None else (np.nan, np.nan)
            if not (np.isfinite(x) and np.isfinite(y)):
                valid = False
            rows.append((int(s["t_host_ns"]), x, y, valid, s.get("source") != "mouse"))
        if not rows:
            return 0
        # the accumulator needs strictly increasing times: sort, and drop samples that
        # are not newer than what it has seen (a late tracker sample after mouse gaze)
        rows.sort(key=lambda r: r[0])
        kept, last = [], self._last_t_ns
        for r in rows:
            if last is None or r[0] > last:
                kept.append(r)
                last = r[0]
        if not kept:
            return 0
        rows = kept
        self._last_t_ns = last
        arr = np.array(rows, dtype=np.float64)
        t_ns = np.array([r[0] for r in rows], dtype=np.int64)
        valid = arr[:, 3] > 0
        self.calibration.collect(t_ns, arr[:, 1:3], valid)          # raw gaze for a drift check
        valid &= ~self.calibration.on_drift_target(t_ns)             # looking at the target is not attention
        # the profile's correction (tracker samples), then display -> viewport coordinates
        gxy = self.calibration.correct(t_ns, arr[:, 1:3], arr[:, 4] > 0)
        x = (gxy[:, 0] - self.viewport[0]) / self.viewport[2]
        y = (gxy[:, 1] - self.viewport[1]) / self.viewport[3]
        valid &= (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)
        self._gaze.extend(zip(t_ns.tolist(), x.tolist(), y.tolist(), valid.tolist()))
        good = np.flatnonzero(valid)
        if len(good):
            self.last_gaze = (float(x[good[-1]]), float(y[good[-1]]))
        # group by the camera shown at each sample's time
        if self._cams:
            cam_idx = np.searchsorted(np.asarray(self._cam_times), t_ns, side="right") - 1
            cam_idx = np.maximum(cam_idx, 0)
        else:
            cam_idx = np.zeros(len(t_ns), dtype=np.int64)
        for ci in np.unique(cam_idx):
            sel = cam_idx == ci
            cam = self._cams[ci] if self._cams else self.current_camera()
            self.accumulator.add(cam, {"x": x[sel], "y": y[sel], "valid": valid[sel], "t_host_ns": t_ns[sel]})
        self.n_samples += int(valid.sum())
        return int(valid.sum())

    def mouse_sample(self, x_norm: float, y_norm: float, t_ns: Optional[int] = None) -> dict:
        """A local gaze sample dict from a cursor position in normalised viewport coordinates."""
        t = self.now_ns() if t_ns is None else int(t_ns)
        gx = self.viewport[0] + float(x_norm) * self.viewport[2]
        gy = self.viewport[1] + float(y_norm) * self.viewport[3]
        return {"topic": TOPIC_GAZE_2D, "source": "mouse", "t_host_ns": t, "t_device": t / 1e9,
                "gaze": [gx, gy], "valid": True}

    def tick(self, local_samples: Optional[List[dict]] = None, refresh: bool = True) -> dict:
        """One frame: note the camera, take in new gaze, refresh the overlay.

        Parameters
        ----------
        local_samples : list of dict, optional
            Samples from a local source (mouse) to use as well.
        refresh : bool
            Push the new attention into the scene now; False: the caller calls
            :meth:`refresh` before it draws (the window skips that work in the
            frames it does not draw).

        Returns
        -------
        dict with ``samples`` (valid samples used) and ``recoloured`` (elements redrawn).
        """
        t = self.now_ns()
        self._note_camera(t)
        samples = self.sink.poll()
        if local_samples:
            self.sink.samples(local_samples)
            samples = list(samples) + list(local_samples)
            self._mouse_times.extend([time.monotonic()] * len(local_samples))
        if self._pending is not None and samples:
            # a label's worker owns the attention: gaze after the key waits for the label, as it
            # would have if the label had been made at once (it starts the next label's attention)
            self._pending["held"].append(list(samples))      # per tick: the same add_samples calls
            samples = []
        used = self.add_samples(samples) if samples else 0
        recoloured = self.refresh() if used and refresh else 0
        self.calibration.poll()
        self.sink.commit()
        return {"samples": used, "recoloured": recoloured}

    def commit_attention(self) -> int:
        """Count the samples still in the accumulator's classification lag now (before labeling)."""
        if hasattr(self.accumulator, "flush"):
            self.accumulator.flush()
        return self.refresh()

    @property
    def attention(self) -> np.ndarray:
        """Attention per element, float32, flat (volumes: C order of ``scan.shape``)."""
        return np.asarray(self.accumulator.values).reshape(-1)

    def refresh(self) -> int:
        """Push the current attention into the scene overlay (if attached; not while a label is pending)."""
        if self.scene is None or self._pending is not None:
            return 0
        return self.scene.update_attention(self.attention)

    def recent_gaze(self) -> dict:
        """Gaze since the last label or clear, as used (corrected, viewport coordinates).

        Returns
        -------
        dict of ``t_host_ns`` (n,) int64, ``x``, ``y`` (n,) float64, ``valid`` (n,) bool
        """
        rows = list(self._gaze)
        return {"t_host_ns": np.array([r[0] for r in rows], dtype=np.int64),
                "x": np.array([r[1] for r in rows], dtype=np.float64),
                "y": np.array([r[2] for r in rows], dtype=np.float64),
                "valid": np.array([r[3] for r in rows], dtype=bool)}

    # ---------------------------------------------------------- calibration
    def select_profile(self, profile) -> None:
        """Apply ``profile``'s correction (a Profile, a name, or None) to the tracker's gaze from now on."""
        self.calibration.select(profile)

    def cycle_profile(self) -> Optional[str]:
        """Select the next calibration profile (after the last: none); returns its name."""
        return self.calibration.cycle()

    def start_drift_check(self, x: Optional[float] = None, y: Optional[float] = None) -> dict:
        """Show a drift target (display coordinates, default the viewport centre); :meth:`tick` finishes it."""
        return self.calibration.start_drift_check(x, y)

    def clear_attention(self) -> None:
        """Forget the attention so far (and the gaze kept for provenance)."""
        self.finish_label()
        self.accumulator.reset()
        self._gaze.clear()
        if self.scene is not None:
            self.scene.clear_attention()
        self.record_event({"type": "clear_attention"})
        self.say("attention cleared")

    # -------------------------------------------------------------- regions
    def _model_region(self, positive: np.ndarray, negative: np.ndarray):
        """The network's :class:`~gaze3d.models.segment.SegmentResult` (status says if it is usable)."""
        if self._segmenter is None:
            # torch, on the first label only: the viewer opens without it (and works without it: grow)
            if self.kind == "volume":
                # the shipped volume model (docs/volumes.md): it won over the walker on validation, and
                # updates a 256^3 volume in ~0.15 s on one core
                from gaze3d.models.volume_net import VolumeSegmenter

                seg = VolumeSegmenter()
                seg.set_volume(self.scan.array, self.scan.spacing)
            else:
                from gaze3d.models.interactive import InteractiveSegmenter

                seg = InteractiveSegmenter()
                seg.set_scan(self.scan)
            self._segmenter = seg
        if self.kind == "volume":
            from dataclasses import replace

            res = self._segmenter.segment(positive.reshape(self.shape),
                                          negative.reshape(self.shape) if negative.any() else None)
            res = replace(res, mask=res.mask.reshape(-1), score=res.score.reshape(-1))
        else:
            res = self._segmenter.segment(positive, negative if negative.any() else None)
        if res.mask.shape != positive.shape:
            raise Gaze3DError(f"interactive model returned {res.mask.shape} mask for {positive.shape} points")
        return res

    def reject_last_fixation(self) -> bool:
        """Mark the most recent fixation negative ("not this": the annotator looked at a part
        wrongly included); the next label excludes it. False (with :attr:`message`) if none."""
        self.finish_label()
        self.commit_attention()
        fx = self.accumulator.fixations() if hasattr(self.accumulator, "fixations") else []
        if not fx:
            self.say("nothing to reject: look at the wrongly included part, then press n")
            return False
        rec = self.accumulator.set_polarity(-1, False)
        self.record_event({"type": "reject_fixation", "t_start_s": rec.t_start_s, "t_end_s": rec.t_end_s,
                     "n_elements": int(len(rec.index))})
        n_neg = sum(not f.positive for f in self.accumulator.fixations())
        self.say(f"fixation rejected ({n_neg} negative so far): it will be left out of the next label")
        return True

    def attended_region(self) -> tuple:
        """(region (n,) bool, method) for the current attention; empty if nothing was looked at.

        Rejected fixations (:meth:`reject_last_fixation`) are negative attention. When
        the network's mask is empty or collapses, the region comes from region growing
        and :attr:`message` says so (method ``"grow"``, ``_segmenter_error`` the reason).
        """
        index, method = self._attended_index()
        region = np.zeros(int(np.prod(self.shape)), dtype=bool)
        region[index] = True
        return region, method

    def _wants_model(self) -> bool:
        return self.segmenter_mode == "model" or (
            self.segmenter_mode == "auto" and self.kind in ("cloud", "volume") and self._segmenter_error is None)

    def _attended_index(self) -> tuple:
        """(index (r,) int64 ascending, method): the elements of :meth:`attended_region`.

        Region growing on a cloud reads the nonzero attention only
        (``AttentionAccumulator.nonzero_signed_values``) and the cloud's kNN graph
        (:attr:`neighbours`): no array over the whole cloud, no tree per label.
        """
        if self.kind == "cloud" and not self._wants_model():
            index, pos, neg = self.accumulator.nonzero_signed_values()
            if not len(index) or not float(pos.max()) > 0:
                return np.zeros(0, dtype=np.int64), "none"
            grow_att = _grow_weights(pos, neg)
            return grow_cloud_sparse(self.scan.xyz, index, grow_att, self.rel_threshold,
                                     neighbours=self.neighbours), "grow"
        region, method = self._dense_region()
        return np.flatnonzero(region), method

    def _dense_region(self) -> tuple:
        att = self.attention
        if not att.size or not float(att.max()) > 0:
            return np.zeros(att.shape, dtype=bool), "none"
        if hasattr(self.accumulator, "signed_values"):
            pos, neg = self.accumulator.signed_values()
        else:
            pos, neg = att, np.zeros_like(att)
        if not float(pos.max()) > 0:
            return np.zeros(att.shape, dtype=bool), "none"
        want_model = self._wants_model()
        fallback_note = None
        if want_model:
            try:
                res = self._model_region(pos, neg)
                if res.ok:
                    return res.mask, "model"
                fallback_note = res.reason     # this label only: the model stays on
            except Exception as exc:   # missing torch/checkpoint or a model failure: fall back
                self._segmenter_error = f"{type(exc).__name__}: {exc}"
                if self.segmenter_mode == "model":
                    raise Gaze3DError(f"interactive model failed: {self._segmenter_error}") from exc
                fallback_note = self._segmenter_error
        grow_att = _grow_weights(pos, neg)
        if self.kind == "volume" and self.segmenter_mode != "grow":
            # volumes: the random walker on a region of interest (--segmenter walker, and where the network
            # is unusable; issue 14, docs/volumes.md: it beats the flood fill on the held-out CT and
            # updates a 256^3 volume in ~0.06 s); --segmenter grow floods
            from gaze3d.errors import OptionalDependencyError
            from gaze3d.volume_regions import random_walk_roi

            try:
                region = random_walk_roi(self.scan.array, grow_att.reshape(self.shape),
                                         neg.reshape(self.shape) if neg.any() else None, spacing=self.scan.spacing)
                return region.reshape(-1), "walker"
            except OptionalDependencyError as exc:    # no scikit-image: the flood fill, said why
                fallback_note = str(exc)
        kw = {"neighbours": self.neighbours} if self.kind == "cloud" else {}
        region = np.asarray(grow_region(self.scan, grow_att.reshape(self.shape), self.rel_threshold,
                                        **kw)).reshape(-1)
        if fallback_note:
            self._fallback_note = f"model fell back to region growing: {fallback_note}"
        return region, "grow"

    # ------------------------------------------------------------- labeling
    def resolve_label(self, label) -> Label:
        if isinstance(label, Label):
            return label
        if isinstance(label, (int, np.integer)):
            return self.label_set.by_id(int(label))
        text = str(label).strip()
        if len(text) == 1 and text in "123456789":
            return self.label_set.by_key(text)
        return self.label_set.by_name(text)

    def label_attended(self, label) -> Optional[LabelAction]:
        """Give the attended region a label (a :class:`Label`, id, key ``"1"``-``"9"`` or name).

        Returns the action, or None (with :attr:`message` saying why) when
        nothing has been looked at yet. Unknown names raise :class:`InputError`
        with a "did you mean" hint.
        """
        lab = self.resolve_label(label)
        self.finish_label()
        return self._label_apply(lab, self._label_work())

    def begin_label(self, label) -> None:
        """:meth:`label_attended` with the region grown in a worker thread: the window keeps drawing.

        The label (a bad name raises here) is resolved now; the worker counts
        the gaze still in the classification lag and grows the region (the
        attention is the worker's until then: :meth:`tick` holds new gaze for
        the next label, as a label made at once would have). :meth:`finish_label`
        applies it, in the render thread, once :meth:`label_ready`. Anything
        else that reads or changes labels or attention (undo, redo, clear,
        reject, another label, save, load, close) first finishes the pending
        label, so keys act in the order they were pressed.
        """
        lab = self.resolve_label(label)
        self.finish_label()
        pending = {"label": lab, "work": None, "error": None, "held": [], "done": threading.Event()}

        def work():
            try:
                pending["work"] = self._label_work()
            except BaseException as exc:     # the worker survives any input: finish_label raises it
                pending["error"] = exc
            finally:
                pending["done"].set()

        self._pending = pending
        threading.Thread(target=work, name="gaze3d-label", daemon=True).start()

    @property
    def label_pending(self) -> bool:
        """A label begun with :meth:`begin_label` is not applied yet."""
        return self._pending is not None

    def wait_label(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the pending label's region; True if it is grown (or none pending)."""
        p = self._pending
        return p is None or p["done"].wait(timeout_s)

    def label_ready(self) -> bool:
        """The pending label's region is grown: :meth:`finish_label` applies it without waiting."""
        return self._pending is not None and self._pending["done"].is_set()

    def finish_label(self) -> Optional[LabelAction]:
        """Apply the pending label (waiting for its worker if need be); then the gaze held meanwhile
        goes to the next label's attention. None if none pending."""
        p = self._pending
        if p is None:
            return None
        p["done"].wait()
        self._pending = None
        try:
            if p["error"] is not None:
                raise p["error"]
            return self._label_apply(p["label"], p["work"])
        finally:
            for samples in p["held"]:
                self.add_samples(samples)

    def _label_work(self) -> tuple:
        """What a label computes without changing labels: (index, method, fixations, graph path)."""
        # the samples still in the classification lag count (no overlay refresh: a label clears it)
        if hasattr(self.accumulator, "flush"):
            self.accumulator.flush()
        self._fallback_note = None
        if self.neighbours is not None:
            self.neighbours.last_path = ""
        index, method = self._attended_index()
        fixations = self.fixations() if len(index) else []
        return index, method, fixations, self.neighbours.last_path if self.neighbours is not None else ""

    def _label_apply(self, lab: Label, work: tuple) -> Optional[LabelAction]:
        index, method, fixations, path = work
        if len(index) == 0:
            self.refresh()
            self.say("nothing attended yet: look at a structure first")
            return None
        t = self.now_ns()
        action = LabelAction(index=index, before=self.labels[index].copy(), label=lab, method=method, t_host_ns=t)
        self._apply(index, np.int32(lab.id))
        self.history.push(action)
        self.record_event({"type": "label", "label_id": lab.id, "label_name": lab.name, "method": method,
                     "n_elements": int(len(index)), "annotator": self.annotator,
                     "time_unix_s": time.time(), "fixations": fixations,
                     "segmenter_note": self._fallback_note or self._segmenter_error}, t)
        self.say(f"labelled {len(index)} {'voxels' if self.kind == 'volume' else 'points'} as {lab.name} ({method})")
        if self._fallback_note:      # visible: the network did not produce this region
            self.message += f"; {self._fallback_note}"
        if path == NOT_BUILT:
            self.message += "; neighbour graph still building, so this label built its own (slower)"
        # the next label starts from fresh attention
        self.accumulator.reset()
        self._gaze.clear()
        if self.scene is not None:
            self.scene.clear_attention()
        return action

    def label_key(self, key: str) -> Optional[LabelAction]:
        """Label the attended region with the label of number key ``"1"`` ... ``"9"``."""
        return self.label_attended(self.label_set.by_key(key))

    def label_name(self, name: str) -> Optional[LabelAction]:
        """Label the attended region with a typed label name (unknown: InputError with a suggestion)."""
        return self.label_attended(self.label_set.by_name(name))

    def _apply(self, index: np.ndarray, values) -> None:
        self.labels[index] = values
        if self.scene is not None:
            labels = self.labels.reshape(self.shape) if self.kind == "volume" else self.labels
            self.scene.set_labels(labels, changed=index)

    def undo(self) -> bool:
        """Revert the last label action; False if there is none (a pending label is applied first)."""
        self.finish_label()
        a = self.history.undo()
        if a is None:
            self.say("nothing to undo")
            return False
        self._apply(a.index, a.before)
        self.record_event({"type": "undo", "label_id": a.label.id, "n_elements": int(len(a.index))})
        self.say(f"undid {a.label.name} ({len(a.index)})")
        return True

    def redo(self) -> bool:
        """Re-apply the last undone action; False if there is none."""
        self.finish_label()
        a = self.history.redo()
        if a is None:
            self.say("nothing to redo")
            return False
        self._apply(a.index, np.int32(a.label.id))
        self.record_event({"type": "redo", "label_id": a.label.id, "n_elements": int(len(a.index))})
        self.say(f"redid {a.label.name} ({len(a.index)})")
        return True

    @property
    def undo_stack(self) -> List[LabelAction]:
        """The actions that can be undone, oldest first (:class:`~gaze3d.viewer.history.LabelHistory`)."""
        return self.history.undo_stack

    @property
    def redo_stack(self) -> List[LabelAction]:
        """The actions that can be redone, last undone last."""
        return self.history.redo_stack

    # ----------------------------------------------------------- provenance
    def fixations(self) -> List[dict]:
        """The fixations that gated the attention since the last label or clear, for the label's provenance.

        They are the accumulator's own fixation runs (its online classifier, its
        method and parameters, in object-space visual degrees: the very filter that
        decided which samples counted), not a second filter in other units. Returns
        ``{"t_start_ns", "t_end_ns", "x", "y", "n", "positive"}`` per fixation, ``x``,
        ``y`` the mean gaze in normalised viewport coordinates over its samples.
        """
        recs = self.accumulator.fixations()
        t0 = self.accumulator.t0_ns
        if not recs or t0 is None:
            return []
        t = np.array([r[0] for r in self._gaze], dtype=np.int64)
        g = np.array([r[1:4] for r in self._gaze], dtype=np.float64).reshape(-1, 3)     # x, y, valid
        ok = (g[:, 2] > 0) & np.isfinite(g[:, :2]).all(axis=1)
        g = g[:, :2]
        out = []
        for rec in recs:
            ts, te = t0 + int(round(rec.t_start_s * 1e9)), t0 + int(round(rec.t_end_s * 1e9))
            sel = (t >= ts) & (t <= te) & ok
            xy = g[sel].mean(axis=0) if sel.any() else np.full(2, np.nan)
            out.append({"t_start_ns": ts, "t_end_ns": te, "x": round(float(xy[0]), 5), "y": round(float(xy[1]), 5),
                        "n": int(rec.n_samples), "positive": bool(rec.positive)})
        return out

    def record_event(self, event: dict, t_ns: Optional[int] = None) -> None:
        """Record an annotation event (``source`` gaze3d.viewer) at ``t_ns`` (default now) through the sink."""
        t = self.now_ns() if t_ns is None else int(t_ns)
        event = {"source": "gaze3d.viewer", **event}
        self.sink.event(t, event)

    # ----------------------------------------------------------- annotations
    def labelled_scan(self):
        """A copy of the scan carrying the current labels, label names and attention field."""
        names = {**dict(self.scan.label_names), **self.label_set.names_by_id()}
        fields = dict(self.scan.fields)
        fields["attention"] = self.attention.reshape(self.shape).astype(np.float32)
        return dataclasses.replace(self.scan, labels=self.labels.reshape(self.shape).copy(),
                                   label_names=names, fields=fields)

    def save_annotations(self, path) -> None:
        """Write the labels: PLY/LAS/... with labels for clouds and meshes, a label volume (NIfTI...) for volumes."""
        self.finish_label()
        scan = self.labelled_scan()
        if self.kind == "volume":
            save_labels(scan, path)
        else:
            save_scan(scan, path)
        self.record_event({"type": "save_annotations", "path": str(path), "annotator": self.annotator,
                     "time_unix_s": time.time(), "n_labelled": int((self.labels > 0).sum())})
        self.say(f"saved {path}")

    def load_annotations(self, path) -> None:
        """Read labels written by :meth:`save_annotations` (or any file of the same grid / point count)."""
        self.finish_label()
        other = load_scan(path)
        if self.kind == "volume":
            labels = np.asarray(other.array if other.labels is None else other.labels)
            if labels.shape != self.shape:
                raise InputError(f"{path}: label volume has shape {labels.shape}, the scan {self.shape}")
        else:
            if other.labels is None:
                raise InputError(f"{path}: has no labels (classification / label field)")
            labels = np.asarray(other.labels)
            if len(labels) != self.shape[0]:
                raise InputError(f"{path}: has {len(labels)} labelled elements, the scan {self.shape[0]}")
        new = np.rint(labels).astype(np.int32).reshape(-1)
        changed = np.flatnonzero(new != self.labels)
        action = LabelAction(index=changed, before=self.labels[changed].copy(),
                             label=Label(0, f"load {path}", (0, 0, 0)), method="load", t_host_ns=self.now_ns())
        self.labels[:] = new
        if self.scene is not None:
            self.scene.set_labels(self.labels.reshape(self.shape) if self.kind == "volume" else self.labels)
        self.history.clear()
        self.record_event({"type": "load_annotations", "path": str(path), "n_changed": int(len(changed))})
        self.say(f"loaded {path} ({len(changed)} labels changed)")
        del action

    # ---------------------------------------------------------------- status
    def status(self) -> dict:
        """Numbers for the status line."""
        st = {"source": "mouse", "alive": False, "rate_hz": float("nan"), "valid_pct": float("nan"),
              "latency_ms": float("nan"), "clock_offset_ms": float("nan"), "lost": 0}
        if self.tracker is not None:
            st.update(self.tracker.stats())
        # the mouse as gaze: its rate over the last second (one sample per frame), every sample valid
        now = time.monotonic()
        recent = sum(1 for t in self._mouse_times if now - t <= 1.0)
        st["mouse_hz"] = float(recent)
        st["samples"] = self.n_samples
        st["labelled"] = int((self.labels > 0).sum())
        return st

    def status_line(self) -> str:
        """``tracker sim | profile alice (affine) | 1200 Hz | valid 98% | latency 1.2 ms | offset 0.00 ms | lost 0``.

        Plus the last message on a second line (e.g. a ``DRIFT ALERT``).
        """
        st = self.status()
        if self.tracker is None:
            head = "no tracker (mouse as gaze)"
        elif not st["alive"]:
            head = f"tracker {st['source']} LOST (mouse as gaze)"
        else:
            head = f"tracker {st['source']}"
        if self.tracker is None or not st["alive"]:
            # what drives the attention now is the mouse: its numbers, not a tracker's blanks
            parts = [f"mouse {st['mouse_hz']:.0f} Hz"] + ([f"lost {st['lost']}"] if self.tracker is not None else [])
        else:
            parts = [f"{st['rate_hz']:.0f} Hz", f"valid {st['valid_pct']:.0f}%",
                     f"latency {st['latency_ms']:.1f} ms", f"offset {st['clock_offset_ms']:.2f} ms",
                     f"lost {st['lost']}"]
        numbers = [p.replace("nan%", "-").replace("nan", "-") for p in parts]
        line = " | ".join([head, self.calibration.status_text()] + numbers)
        return f"{line}\n{self.message}" if self.message else line

    def say(self, text: str) -> None:
        """Show ``text`` on the status line's second line (until the next message): the one way
        the window, the calibration and the session itself tell the annotator something."""
        self.message = str(text)

    def close(self) -> None:
        """End the session: stop the recording (remote or local) and the tracker link. Idempotent."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        try:
            self.finish_label()              # a label pressed before closing is kept (and recorded)
        except Gaze3DError:
            pass
        if self.neighbours is not None:
            self.neighbours.close()
        self.record_event({"type": "session_end", "annotator": self.annotator, "n_labelled": int((self.labels > 0).sum())})
        self.sink.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:   # no login name in some containers
        return "unknown"
