"""The end-to-end demo: simulated gaze on a real LiDAR tile, live over ZMQ.

1. load the bundled IGN LiDAR HD tile (classified: ground, building, unclassified);
2. start the tracker as a separate OS process (``gaze3d tracker --source sim``)
   whose simulator looks at the buildings from a scripted orbiting camera;
3. subscribe, put each sample with the camera frame shown at its time, and
   accumulate occlusion-aware foveal attention during fixations;
4. write ``attention.ply``, an offscreen screenshot with the attention heat,
   the session recording, and a summary (samples, losses, fixations, share of
   attention on each LAS class).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .camera import Camera, CameraPath
from .errors import Gaze3DError
from .protocol import TOPIC_GAZE_2D, TOPIC_GAZE_3D

FRAME_RATE_HZ = 60.0           # the viewer's camera updates (one camera per 16.7 ms)
BUILDING = 6                   # ASPRS class code


def bundled_tile() -> Path:
    """Path of the bundled IGN LiDAR HD tile."""
    return Path(str(resources.files("gaze3d") / "data" / "ign_lidarhd" / "870000_6618000.subset.50mx100m.las"))


def demo_camera_path(bounds: np.ndarray, duration_s: float, width: int = 1024, height: int = 768) -> CameraPath:
    """A camera orbiting a quarter turn around the tile, 40 degrees above the horizon."""
    center = bounds.mean(axis=0)
    radius = 1.0 * float(np.linalg.norm(bounds[1, :2] - bounds[0, :2]))
    return CameraPath.orbit(center, radius=radius, elevation_deg=40.0, duration_s=duration_s, turns=0.25,
                            start_azimuth_deg=-60.0, vfov_deg=40.0, width=width, height=height,
                            near=1.0, far=10 * radius)


def overview_camera(camera: Camera, bounds: np.ndarray) -> Camera:
    """``camera`` moved back along its view direction until the whole bounding sphere fits the view."""
    center = bounds.mean(axis=0)
    radius = 0.5 * float(np.linalg.norm(bounds[1] - bounds[0]))
    half_fov = np.radians(min(camera.vfov_deg, camera.vfov_deg * camera.aspect) / 2)
    distance = 0.8 * radius / np.sin(half_fov)  # the sphere is loose around a flat tile
    return Camera(position=center - camera.forward * distance, focal_point=center, view_up=camera.up,
                  vfov_deg=camera.vfov_deg, width=camera.width, height=camera.height,
                  near=max(distance - 2 * radius, 1e-3), far=distance + 2 * radius)


@dataclass
class DemoSummary:
    samples_received: int
    samples_lost: int
    samples_valid: int
    fixations: int
    attention_share: Dict[str, float]
    point_share: Dict[str, float]
    outputs: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def format(self) -> str:
        lines = [_samples_line(self.samples_received, self.samples_lost, self.samples_valid),
                 f"fixations {self.fixations}",
                 *_share_table(self.attention_share, self.point_share, self.outputs, self.seconds)]
        return "\n".join(lines)


def _samples_line(received: int, lost: int, valid: int) -> str:
    """The summaries' first line: samples received, lost and valid (with the valid share)."""
    return f"samples received {received}, lost {lost}, valid {valid} ({100 * valid / max(received, 1):.1f}%)"


def _share_table(attention_share: Dict[str, float], point_share: Dict[str, float], outputs: Dict[str, str],
                 seconds: float) -> List[str]:
    """The summaries' common tail: per-class attention and point shares, the output files, the run time."""
    lines = [f"{'class':<14}{'attention':>10}{'points':>10}"]
    lines += [f"{name:<14}{100 * share:>9.1f}%{100 * point_share[name]:>9.1f}%"
              for name, share in attention_share.items()]
    lines += [f"{k}: {v}" for k, v in outputs.items()]
    lines.append(f"done in {seconds:.1f} s")
    return lines


def class_shares(labels: np.ndarray, weights: np.ndarray, names: Dict[int, str]) -> Dict[str, float]:
    """Share of ``weights`` (n,) summed per label code, keyed by class name."""
    total = float(weights.sum())
    return {names.get(int(c), str(int(c))): (float(weights[labels == c].sum()) / total if total > 0 else 0.0)
            for c in np.unique(labels)}


def _classified_scan(scan_path: Optional[str]):
    """``(path, cloud)``: the scan at ``scan_path`` (default: the bundled tile), which must carry class labels."""
    from .io import load_scan

    scan_path = str(scan_path or bundled_tile())
    cloud = load_scan(scan_path)
    if cloud.labels is None:
        raise Gaze3DError(f"{scan_path}: the demo needs a classified cloud (LAS classification)")
    return scan_path, cloud


def _fresh_recording(out: Path) -> Path:
    """``out/session.gaze3d``, removed if an earlier run left one (the tracker writes it anew)."""
    recording = out / "session.gaze3d"
    if recording.exists():
        recording.unlink()
    return recording


def _save_attention(cloud, attention: np.ndarray, out: Path, recording: Path):
    """Write ``out/attention.ply`` (``cloud`` with ``attention`` (n,) as a field).

    Returns the per-class attention shares, point shares and the output paths so far.
    """
    from .io import save_scan

    names = {int(k): v for k, v in cloud.label_names.items()}
    att_share = class_shares(cloud.labels, attention.astype(np.float64), names)
    pts_share = class_shares(cloud.labels, np.ones(len(cloud)), names)
    cloud.fields["attention"] = attention
    outputs = {"attention": str(out / "attention.ply"), "recording": str(recording)}
    save_scan(cloud, out / "attention.ply")
    return att_share, pts_share, outputs


def run_demo(out_dir: str | os.PathLike, duration_s: float = 20.0, rate_hz: float = 1200.0, seed: int = 0,
             scan_path: Optional[str] = None, render: Optional[Callable] = None,
             progress: bool = True) -> DemoSummary:
    """Run the demo end to end; see the module docstring. Returns the summary.

    ``render(cloud, attention, camera, png_path)``, if given, writes the screenshot.
    """
    from .attention import AttentionAccumulator
    from .events import EventType, classify_samples
    from .display import DisplayGeometry
    from .tracker.client import GazeSubscriber, TrackerControl
    from .tracker.process import start_tracker

    t0 = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scan_path, cloud = _classified_scan(scan_path)
    path = demo_camera_path(cloud.bounds, duration_s)
    path_file = out / "camera_path.json"
    path_file.write_text(json.dumps(path.to_dict()))
    recording = _fresh_recording(out)

    acc = AttentionAccumulator(cloud, sigma_deg=1.0, fixations_only=True)
    display = DisplayGeometry()
    options = {"scene": scan_path, "camera_path": str(path_file), "label": BUILDING, "rate": rate_hz,
               "duration": duration_s, "seed": seed, "realtime": True}
    cols = {"t_host_ns": [], "t_device": [], "x": [], "y": [], "valid": []}
    bar = _progress(duration_s, progress)
    # --wait-subscriber: the scripted session starts once we listen, so no sample goes unseen
    with start_tracker("sim", options, record=str(recording), extra_args=["--wait-subscriber"]) as tracker:
        control = TrackerControl(tracker.ctrl_address)
        # the recording names its scan (path, SHA-256) so `gaze3d batch` can check the pairing
        from .batch.provenance import stamp_recording
        stamp_recording(control.set_meta, scan_path)
        subscriber = GazeSubscriber(tracker.pub_address, topics=(TOPIC_GAZE_2D,))
        sent_frames = set()
        frame_ns = None             # frame k's start on the host clock, exact ints (set on the first sample)
        shown = None                # [k, camera, [sample arrays...]]: the frame still receiving samples

        def add_frame():
            # one call per camera frame with all its samples, as accumulate_attention replays it:
            # the same calls in the same order give bit-identical attention
            k, camera, parts = shown
            acc.add(camera, {name: np.concatenate([p[name] for p in parts]) for name in parts[0]})
        last_t = 0.0
        deadline = time.monotonic() + duration_s + 30.0
        while last_t < duration_s - 1.5 / rate_hz and time.monotonic() < deadline:
            first = subscriber.recv(timeout_s=0.2)
            if first is None:
                continue
            batch = [first] + subscriber.drain(20_000)
            msgs = [m for _, m in batch]
            t_dev = np.array([m["t_device"] for m in msgs], dtype=np.float64)
            t_host = np.array([m["t_host_ns"] for m in msgs], dtype=np.int64)
            xy = np.array([m.get("gaze") if m.get("gaze") is not None else (np.nan, np.nan) for m in msgs],
                          dtype=np.float64)
            valid = np.array([bool(m.get("valid")) for m in msgs])
            if frame_ns is None:
                # frame k was shown from k/60 s on the simulator's clock: on the host clock from
                # frame_ns(k), one integer per frame, fixed by the first sample
                offset = int(t_host[0]) - int(round(float(t_dev[0]) * 1e9))
                frame_ns = lambda k, o=offset: o + int(k) * 1_000_000_000 // int(FRAME_RATE_HZ)
            # each sample belongs to the last frame whose stamp is at or before its host time: the rule
            # accumulate_attention applies to the recording, so live and replay pair samples alike
            frames = np.floor((t_host - frame_ns(0)) * (FRAME_RATE_HZ / 1e9)).astype(np.int64)
            starts = np.array([frame_ns(k) for k in frames], dtype=np.int64)
            frames[starts > t_host] -= 1
            frames[np.array([frame_ns(k + 1) for k in frames], dtype=np.int64) <= t_host] += 1
            for k in np.unique(frames):
                sel = frames == k
                part = {"x": xy[sel, 0], "y": xy[sel, 1], "valid": valid[sel], "t_host_ns": t_host[sel]}
                if shown is not None and shown[0] == k:
                    shown[2].append(part)
                    continue
                if shown is not None:
                    add_frame()             # a later frame began: the previous one has all its samples
                camera = path.at(k / FRAME_RATE_HZ)
                if k not in sent_frames:
                    control.send_camera(frame_ns(k), camera)
                    sent_frames.add(k)
                shown = [k, camera, [part]]
            for name, arr in (("t_host_ns", t_host), ("t_device", t_dev), ("x", xy[:, 0]), ("y", xy[:, 1]),
                              ("valid", valid)):
                cols[name].append(arr)
            bar.update(max(0.0, float(t_dev.max()) - last_t))
            last_t = max(last_t, float(t_dev.max()))
        if shown is not None:
            add_frame()
        stats = dict(subscriber.stats)
        subscriber.close()
        control.close()
    bar.close()
    if not cols["t_device"]:
        raise Gaze3DError("no gaze samples arrived from the tracker process")

    data = {k: np.concatenate(v) for k, v in cols.items()}
    deg = display.norm_to_deg(np.c_[data["x"], data["y"]])
    events = classify_samples(data["t_device"], deg[:, 0], deg[:, 1], method="ivt")
    starts = np.flatnonzero((events == EventType.FIXATION) & (np.r_[-1, events[:-1]] != EventType.FIXATION))

    acc.flush()  # commit the samples still in the online fixation filter's lag buffer
    attention = acc.values
    att_share, pts_share, outputs = _save_attention(cloud, attention, out, recording)
    if render is not None:
        # drawing lives in gaze3d.viewer: the caller (the CLI) passes its renderer in
        shot = out / "attention.png"
        render(cloud, attention, overview_camera(path.at(duration_s / 2), cloud.bounds), shot)
        outputs["screenshot"] = str(shot)
    summary = DemoSummary(samples_received=int(stats["received"]), samples_lost=int(stats["dropped"]),
                          samples_valid=int(data["valid"].sum()), fixations=int(len(starts)),
                          attention_share=att_share, point_share=pts_share, outputs=outputs,
                          seconds=time.monotonic() - t0)
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2))
    return summary


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: float, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=round(total, 1), unit="s", desc="gaze session", bar_format="{l_bar}{bar}| {n:.1f}/{total} s")


# --- VR ------------------------------------------------------------------------------------------------
VR_RATE_HZ = 90.0              # a typical headset eye tracker (Vive Pro Eye, Quest Pro, Pico 4E)


@dataclass
class VRDemoSummary:
    samples_received: int
    samples_lost: int
    samples_valid: int
    fixations: int
    kappa: Dict[str, float]
    head_path_m: float
    attention_share: Dict[str, float]
    point_share: Dict[str, float]
    outputs: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def format(self) -> str:
        lines = [f"gaze.3d {_samples_line(self.samples_received, self.samples_lost, self.samples_valid)}; "
                 f"head walked {self.head_path_m:.1f} m",
                 f"fixations {self.fixations} (world-space adaptive, head motion compensated); kappa vs simulator "
                 f"truth: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in self.kappa.items()),
                 *_share_table(self.attention_share, self.point_share, self.outputs, self.seconds)]
        return "\n".join(lines)


def run_vr_demo(out_dir: str | os.PathLike, duration_s: float = 30.0, rate_hz: float = VR_RATE_HZ, seed: int = 0,
                scan_path: Optional[str] = None, render: Optional[Callable] = None, progress: bool = True,
                walk_speed: float = 1.0, precision_deg: float = 0.1) -> VRDemoSummary:
    """The VR demo: the tracker process streams a simulated headset session as ``gaze.3d`` over ZMQ.

    The simulator (``sim`` source, ``vr=true``) walks a head through the scan
    at eye height, fixating building points in line of sight with VOR during
    head turns; this process subscribes, accumulates attention from the world
    rays (``AttentionAccumulator.add_rays``, fixations from the online filter),
    classifies the rays in world space (:mod:`gaze3d.vr.events`) and writes
    ``attention.ply``, ``session.gaze3d``, ``summary.json`` and, with
    ``render(cloud, attention, camera, png, head_positions, ray_directions, ray_lengths)``, a screenshot.
    """
    from .attention import AttentionAccumulator
    from .events import EventType, cohen_kappa
    from .tracker.client import GazeSubscriber
    from .tracker.process import start_tracker
    from .vr.events import classify_world

    t0 = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scan_path, cloud = _classified_scan(scan_path)
    recording = _fresh_recording(out)
    acc = AttentionAccumulator(cloud, sigma_deg=1.0, fixations_only=True)
    options = {"scene": scan_path, "vr": True, "label": BUILDING, "rate": rate_hz, "duration": duration_s,
               "seed": seed, "realtime": True, "walk_speed": walk_speed, "precision_deg": precision_deg}
    rows = []
    bar = _progress(duration_s, progress)
    last_t = 0.0
    with start_tracker("sim", options, record=str(recording), extra_args=["--wait-subscriber"]) as tracker:
        subscriber = GazeSubscriber(tracker.pub_address, topics=(TOPIC_GAZE_3D,))
        deadline = time.monotonic() + duration_s + 60.0
        while last_t < duration_s - 1.5 / rate_hz and time.monotonic() < deadline:
            first = subscriber.recv(timeout_s=0.2)
            if first is None:
                continue
            msgs = [m for _, m in [first] + subscriber.drain(20_000)]
            t_host = np.array([m["t_host_ns"] for m in msgs], dtype=np.int64)
            o = np.array([m["ray_origin"] for m in msgs], dtype=np.float64)
            d = np.array([m["ray_direction"] if m.get("ray_direction") is not None else (np.nan,) * 3
                          for m in msgs], dtype=np.float64)
            p = np.array([m["gaze_point"] if m.get("gaze_point") is not None else (np.nan,) * 3
                          for m in msgs], dtype=np.float64)
            valid = np.array([bool(m.get("valid")) for m in msgs])
            truth = np.array([int(EventType[m["truth"]["event"].upper()]) for m in msgs])
            acc.add_rays(o, d, t_s=t_host * 1e-9, valid=valid)
            rows.append((t_host, o, d, p, valid, truth))
            t_dev = max(float(m["t_device"]) for m in msgs)
            bar.update(max(0.0, t_dev - last_t))
            last_t = max(last_t, t_dev)
        stats = dict(subscriber.stats)
        subscriber.close()
    bar.close()
    if not rows:
        raise Gaze3DError("no gaze.3d samples arrived from the tracker process")
    t_host, o, d, p, valid, truth = (np.concatenate(c) for c in zip(*rows))
    acc.flush()
    attention = acc.values
    labels = classify_world((t_host - t_host[0]) * 1e-9, o, d, p, valid)      # the default: adaptive
    starts = np.flatnonzero((labels == EventType.FIXATION) & (np.r_[-1, labels[:-1]] != EventType.FIXATION))
    kappa = {c.name.lower(): cohen_kappa(truth, labels, int(c))
             for c in (EventType.FIXATION, EventType.SACCADE, EventType.GAP)}
    att_share, pts_share, outputs = _save_attention(cloud, attention, out, recording)
    if render is not None:
        shot = out / "attention.png"
        # the renderer's default 3/4 view (camera None): the desktop demo's overview looks along the walk;
        # each ray is drawn up to its point of regard
        render(cloud, attention, None, shot, o, np.where(valid[:, None], d, np.nan), np.linalg.norm(p - o, axis=1))
        outputs["screenshot"] = str(shot)
    summary = VRDemoSummary(samples_received=int(stats["received"]), samples_lost=int(stats["dropped"]),
                            samples_valid=int(valid.sum()), fixations=int(len(starts)), kappa=kappa,
                            head_path_m=float(np.linalg.norm(np.diff(o, axis=0), axis=1).sum()),
                            attention_share=att_share, point_share=pts_share, outputs=outputs,
                            seconds=time.monotonic() - t0)
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2))
    return summary
