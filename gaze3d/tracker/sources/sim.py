"""The ``sim`` source: simulated gaze (:mod:`gaze3d.simulate`) streamed like a device.

Without ``scene`` it plays a random viewing script (fixations, saccades,
pursuit, blinks) on the display, forever unless ``duration`` is set; with
``scene`` + ``camera_path`` the eye visits points of the scan (those with
``label``) while the camera follows the path, as a person looking at the
viewer would. Only loading the scan uses more than numpy.

Options (strings from the CLI or typed values)
-----------------------------------------------
rate : Hz, default 1200, at most 2000
duration : seconds, default infinite (scene: the camera path's duration)
seed : int, default 0
offset_deg : "dx,dy" accuracy offset in degrees, default "0,0"
precision_deg : RMS sample-to-sample precision in degrees, default 0.05
blink_rate : blinks per second, default 0.2
dropout : fraction of samples lost in short bursts, default 0
pursuit : fraction of time in smooth pursuit (random script), default 0.2
script : a target script: the eye fixates each target in turn (see :func:`load_script`)
script_units : ``norm`` (default: normalised display coordinates) or ``deg``, for text scripts
scene : a scan file (``gaze3d.io.load_scan``), with ``camera_path``
camera_path : JSON file of ``CameraPath.to_dict()``
label : only look at points with this label (e.g. 6, LAS buildings)
n_targets : how many points to visit, default 40
display : "width_mm,height_mm,distance_mm" of the simulated screen (default 527,296,650)
realtime : true (default) paces samples at ``rate``; false hands them out as fast as read
vr : true streams a VR session on ``scene`` as ``gaze.3d`` rays (no ``camera_path``): a head walks
    ``walk`` at ``walk_speed`` with eye-in-head gaze, VOR during head turns and fixations on visible
    scene points (:func:`gaze3d.vr.simulate.simulate_on_scan`); ``precision_deg`` is the ray noise per
    axis, ``duration`` defaults to 30 s
walk : VR head waypoints "x,y,z;x,y,z;..." in scene units (default: along the scan's middle, 1.7 m above ground)
walk_speed : VR walking speed, scene units per second, default 1.0

Each sample's ``t_host_ns`` is the host time at which it is due (``open`` time
+ ``t_device``), like a device's own capture time; with ``realtime=false``
these synthetic times run ahead of the clock, so dwell times stay right.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np

from ...camera import CameraPath
from ...display import DisplayGeometry
from ...errors import InputError
from ...events import EventType
from ...protocol import TOPIC_GAZE_2D
from ...simulate import simulate_gaze, simulate_scene_gaze
from ._options import Options
from ._pacing import Pacer
from .base import GazeSource

_NAMES = {int(e): e.name.lower() for e in EventType}
_CHUNK_S = 10.0


def load_script(path, units: str = "norm", display: Optional[DisplayGeometry] = None):
    """Read a fixation-target script.

    Formats: JSON -- a list of ``[x, y, dwell_s]`` or ``{"units": "norm" | "deg",
    "targets": [[x, y, dwell_s], ...]}``; or text (``.csv``, ``.tsv``, ``.txt``)
    with three numbers per line (comma, tab or space separated; ``#`` comments
    and a header line are skipped). ``norm`` positions are normalised display
    coordinates (origin top-left), ``deg`` degrees from the screen centre.

    Returns
    -------
    targets_deg : list of (x_deg, y_deg, dwell_s)
    rows : int
    """
    path = Path(path)
    display = display or DisplayGeometry()
    text = _read_option_file("script", path, "a JSON or text script")
    rows = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"sim option 'script': {path}: not JSON ({exc})") from None
        if isinstance(data, dict):
            units = data.get("units", units)
            data = data.get("targets")
        rows = data if isinstance(data, list) else []
    else:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(",", " ").replace("\t", " ").split()
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                if rows:              # only the first line may be a header
                    raise InputError(f"sim option 'script': {path}: bad line {line!r}, "
                                     f"expected three numbers x y dwell_s") from None
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros((0, 0))
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0 or not np.isfinite(arr).all() or np.any(arr[:, 2] <= 0):
        raise InputError(f"sim option 'script': {path}: expected rows of three numbers (x, y, dwell_s > 0)")
    if units not in ("norm", "deg"):
        raise InputError(f"sim option 'script': {path}: units must be 'norm' or 'deg', got {units!r}")
    xy = display.norm_to_deg(arr[:, :2]) if units == "norm" else arr[:, :2]
    return [(float(x), float(y), float(d)) for (x, y), d in zip(xy, arr[:, 2])], len(arr)


class SimSource(GazeSource):
    """Simulated gaze; see the module docstring for the options.

    Thread-safety: one reading thread; ``close`` may be called from another
    thread and makes a waiting ``read`` return at once.
    """

    name = "sim"

    def __init__(self, **options):
        o = Options("sim", options)
        self.rate = o.float("rate", 1200.0, 0.0, 2000.0, low_open=True)
        self.duration = o.float("duration", None, 0.0, None, low_open=True, allow_inf=True)
        if self.duration is not None and np.isinf(self.duration):
            self.duration = None
        self.seed = o.int("seed", 0, low=0)
        self.offset = o.floats("offset_deg", 2, (0.0, 0.0))
        self.precision = o.float("precision_deg", 0.05, 0.0, 10.0)
        self.blink_rate = o.float("blink_rate", 0.2, 0.0, 5.0)
        self.dropout = o.float("dropout", 0.0, 0.0, 0.5)
        self.pursuit = o.float("pursuit", 0.2, 0.0, 0.9)
        self.script = o.str("script")
        self.script_units = o.str("script_units", "norm", choices=("norm", "deg"))
        self.scene = o.str("scene")
        self.camera_path = o.str("camera_path")
        self.label = o.int("label")
        self.n_targets = o.int("n_targets", 40, low=1)
        disp = o.floats("display", 3)
        self.display = DisplayGeometry() if disp is None else DisplayGeometry(
            width_mm=disp[0], height_mm=disp[1], distance_mm=disp[2])
        self.realtime = o.bool("realtime", True)
        self.vr = o.bool("vr", False)
        self.walk = o.str("walk")
        self.walk_speed = o.float("walk_speed", 1.0, 0.0, 20.0)
        o.check_unused()
        if self.vr:
            if self.scene is None or self.camera_path is not None:
                raise InputError("sim option 'vr': needs 'scene' (the head walks through it), not 'camera_path'")
            self.walk = _parse_walk(self.walk)
            self.duration = 30.0 if self.duration is None else self.duration
        elif self.walk is not None:
            raise InputError("sim option 'walk': only meaningful with 'vr=true'")
        elif (self.scene is None) != (self.camera_path is None):
            raise InputError("sim options 'scene' and 'camera_path': give both (scene-driven gaze) or neither")
        if self.script is not None and self.scene is not None:
            raise InputError("sim options 'script' and 'scene': give one of them (a target script or a scene)")
        if self.label is not None and self.scene is None:
            raise InputError("sim option 'label': only meaningful with 'scene'")
        self._pacer = Pacer(speed=1.0 if self.realtime else 0.0, batch=1000)
        self._block: Optional[dict] = None
        self._pos = 0
        self._chunk = 0
        self._targets_world = None
        # The files the user named are read now, not in open(): the tracker retries a failing
        # open() for ever, and a file that cannot be parsed will not get better (the scan,
        # the one slow load, still waits for open(); its errors are InputErrors too).
        self._path = None if self.camera_path is None else _load_camera_path(self.camera_path)
        self._script = None if self.script is None else load_script(self.script, self.script_units,
                                                                       self.display)[0]

    # ------------------------------------------------------------ building
    def _vr_block(self) -> dict:
        """The whole VR session (``gaze.3d``), on the scene."""
        from ...io import load_scan            # lazily: the only non-numpy step
        from ...vr.simulate import simulate_on_scan

        scan = load_scan(self.scene)
        xyz = getattr(scan, "xyz", getattr(scan, "vertices", None))
        if xyz is None:
            raise InputError(f"sim option 'scene': {self.scene}: expected a point cloud or mesh")
        session, _ = simulate_on_scan(xyz, self.duration, self.rate, labels=getattr(scan, "labels", None),
                                      label=self.label, n_targets=self.n_targets, seed=self.seed,
                                      waypoints=self.walk, walk_speed=self.walk_speed, noise_deg=self.precision,
                                      blink_rate_hz=self.blink_rate)
        return {"t": session.t_s, "vr": session}

    def _load_scene(self):
        """Target points and camera path of the scene-driven mode (the scan is read once)."""
        if self._targets_world is not None:
            return
        from ...io import load_scan            # lazily: the only non-numpy step
        scan = load_scan(self.scene)
        xyz = getattr(scan, "xyz", None)
        if xyz is None:
            xyz = getattr(scan, "vertices", None)
        if xyz is None:
            raise InputError(f"sim option 'scene': {self.scene}: expected a point cloud or mesh")
        if self.label is not None:
            labels = getattr(scan, "labels", None)
            if labels is None:
                raise InputError(f"sim option 'label': {self.scene} has no labels")
            xyz = xyz[np.asarray(labels) == self.label]
            if len(xyz) == 0:
                raise InputError(f"sim option 'label': {self.scene} has no points with label {self.label}")
        rng = np.random.default_rng(self.seed)
        pick = rng.choice(len(xyz), size=min(self.n_targets, len(xyz)), replace=False)
        self._targets_world = np.asarray(xyz[np.sort(pick)], dtype=np.float64)

    def _make_block(self, k: int) -> Optional[dict]:
        """Chunk ``k`` of the stream as columns, or None past the end."""
        common = dict(accuracy_offset_deg=self.offset, precision_rms_deg=self.precision,
                      blink_rate_hz=self.blink_rate, dropout_rate=self.dropout)
        if self.vr:
            return self._vr_block() if k == 0 else None
        if self.scene is not None:
            if k > 0:
                return None
            self._load_scene()
            g = simulate_scene_gaze(self._targets_world, self._path, self.duration, self.rate,
                                    display=self.display, seed=self.seed, **common)
            return {"t": g.t_s - self._path.times[0], "xy": g.xy, "valid": g.valid, "truth": g.truth,
                    "target": g.target_xy, "index": g.target_index, "blink": g.blink}
        if self.script is not None:
            if k > 0:
                return None
            targets_deg = self._script
            g = simulate_gaze(self.duration, self.rate, seed=self.seed, targets=targets_deg, **common)
            xy = self.display.deg_to_norm(np.nan_to_num(np.c_[g.x_deg, g.y_deg]))
            xy[~g.valid] = np.nan
            tgt = np.c_[g.target_x_deg, g.target_y_deg]
            # which script row each sample belongs to: the target changes at each new row
            change = np.r_[0, np.cumsum(np.any(np.diff(tgt, axis=0) != 0, axis=1))]
            distinct = [0] + [i for i in range(1, len(targets_deg))
                              if tuple(targets_deg[i][:2]) != tuple(targets_deg[i - 1][:2])]
            index = np.asarray(distinct)[np.minimum(change, len(distinct) - 1)]
            return {"t": g.t_s, "xy": xy, "valid": g.valid, "truth": g.truth,
                    "target": self.display.deg_to_norm(tgt), "index": index, "blink": g.blink}
        if self.duration is not None:
            if k > 0:
                return None
            span, t0, seed, start = self.duration, 0.0, self.seed, (0.0, 0.0)
        else:
            span, t0 = _CHUNK_S, k * _CHUNK_S
            seed = np.random.SeedSequence([self.seed, k])
            start = (0.0, 0.0) if self._block is None else self._last_eye_deg
        g = simulate_gaze(span, self.rate, seed=seed, pursuit_fraction=self.pursuit, start_deg=start, **common)
        # the next chunk starts where the eye is (a saccade cut by the chunk end stops there)
        ex, ey = g.eye_x_deg[-1], g.eye_y_deg[-1]
        self._last_eye_deg = (float(np.clip(ex, -15, 15)), float(np.clip(ey, -10, 10)))
        xy = self.display.deg_to_norm(np.nan_to_num(np.c_[g.x_deg, g.y_deg]))
        xy[~g.valid] = np.nan
        target = self.display.deg_to_norm(np.c_[g.target_x_deg, g.target_y_deg])
        return {"t": g.t_s + t0, "xy": xy, "valid": g.valid, "truth": g.truth, "target": target,
                "index": None, "blink": g.blink}

    # ------------------------------------------------------------ interface
    def open(self) -> None:
        self._chunk = 0
        self._block = None
        self._block = self._make_block(0)
        self._pos = 0
        self._pacer.start(0.0)

    def read(self, timeout_s: float) -> Optional[List[dict]]:
        if self._block is None:
            return None
        if self._pos >= len(self._block["t"]):
            self._chunk += 1
            nxt = self._make_block(self._chunk)
            if nxt is None:
                return None
            self._block, self._pos = nxt, 0
        b = self._block
        stop = self._pacer.take(b["t"], self._pos, timeout_s)
        i0, self._pos = self._pos, stop
        if stop == i0:
            return []
        # Like a real device's system timestamp, each sample carries the host time at
        # which it happened (not the delivery time of its batch): dwell times need it.
        host = (self._pacer.t0_ns + np.round((b["t"][i0:stop] - self._pacer.stream_t0) * 1e9)).astype(np.int64)
        host = host.tolist()
        if "vr" in b:
            return [b["vr"].sample(i, i, h) for i, h in zip(range(i0, stop), host)]
        t = b["t"][i0:stop].tolist()
        xy = b["xy"][i0:stop].tolist()
        valid = b["valid"][i0:stop].tolist()
        truth = b["truth"][i0:stop].tolist()
        target = b["target"][i0:stop].tolist()
        blink = b["blink"][i0:stop].tolist()
        index = None if b["index"] is None else b["index"][i0:stop].tolist()
        out = []
        for j in range(stop - i0):
            event = "blink" if blink[j] else _NAMES[truth[j]]
            tr = {"event": event, "code": truth[j], "target": target[j]}
            if index is not None:
                tr["target_index"] = index[j]
            out.append({"topic": TOPIC_GAZE_2D, "t_device": t[j], "t_host_ns": host[j], "gaze": xy[j],
                        "valid": valid[j], "truth": tr})
        return out

    def close(self) -> None:
        self._pacer.stop()

    def info(self) -> dict:
        d = {"source": self.name, "model": "gaze3d simulator", "rate_hz": self.rate,
             "realtime": self.realtime, "seed": self.seed, "precision_deg": self.precision,
             "offset_deg": list(self.offset)}
        if self.scene is not None:
            d.update(scene=str(self.scene), camera_path=str(self.camera_path), label=self.label)
        if self.vr:
            d.update(vr=True, walk_speed=self.walk_speed)
        return d


def _read_option_file(option: str, path: Path, expected: str) -> str:
    """The text of the file a sim option names; a missing, folder or unreadable one is an InputError."""
    what = f"sim option {option!r}: {path}"
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError(f"{what}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what}: is a folder, expected {expected}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what}: cannot read {expected} ({exc})") from None


def _load_camera_path(name: str) -> CameraPath:
    """The ``camera_path`` option's file as a :class:`CameraPath`; InputError if it is not one."""
    path = Path(name)
    what = f"sim option 'camera_path': {path}"
    text = _read_option_file("camera_path", path, "a JSON file of CameraPath.to_dict()")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{what}: expected a JSON object of CameraPath.to_dict(), got {type(data).__name__}")
    try:
        return CameraPath.from_dict(data)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    except (TypeError, ValueError, IndexError, AttributeError) as exc:  # a field of the wrong type
        raise InputError(f"{what}: expected a camera path of CameraPath.to_dict() ({exc})") from None


def _parse_walk(text: Optional[str]):
    """``"x,y,z;x,y,z"`` -> (k, 3) float64 waypoints (None stays None)."""
    if text is None:
        return None
    try:
        w = np.array([[float(v) for v in p.split(",")] for p in str(text).split(";") if p.strip()])
    except ValueError:
        w = np.zeros((0, 0))
    if w.ndim != 2 or w.shape[1] != 3 or len(w) == 0 or not np.isfinite(w).all():
        raise InputError(f"sim option 'walk': expected waypoints 'x,y,z;x,y,z;...', got {text!r}")
    return w
