"""Run one batch item: attention replay, segmentation, consensus; outputs and report.

:class:`ItemRunner` is what every engine runs (in the main process, in a
process-pool worker or in a Ray actor), so the engines write the same bytes.
It keeps the model and the last scan loaded between items.

Outputs of item ``ID`` in ``OUTDIR/ID/`` (each written atomically; the report
last, so a report means the outputs it lists are complete):

* ``attention.npy`` (n,) float32 (``gaze3d attention``'s values),
* ``probability.npy`` (n,) float32 and ``labels.npy`` (n,) uint8 (segment),
* consensus: ``<annotator>.attention.npy`` / ``.probability.npy`` /
  ``.labels.npy`` per recording, ``majority.npy`` and ``staple.npy`` (n,) uint8,
* ``report.json``: status, inputs (paths and SHA-256 of scan, recordings and
  model; options), outputs (file, SHA-256, shape, dtype), timings, replay
  statistics, provenance, consensus agreement.
"""
from __future__ import annotations

import json
import os
import platform
import re
import time
import traceback
from pathlib import Path
from typing import Optional

import numpy as np

from .. import __version__
from ..errors import Gaze3DError, InputError
from ..io._common import atomic_path
from .manifest import BatchItem, full_options
from .provenance import check_scan_pairing, default_checkpoint, file_sha256, recording_sha256

REPORT = "report.json"
REPORT_VERSION = 1


def input_key(item: BatchItem, model: Optional[str]) -> dict:
    """What an item's outputs depend on: task, options, and the paths and SHA-256 of every input.

    ``--resume`` reruns an item unless its report holds exactly this dict.
    Raises ``FileNotFoundError`` for a missing input.
    """
    key = {"task": item.task, "options": _jsonable(full_options(item.options)),
           "scan": {"path": str(Path(item.scan).resolve()), "sha256": file_sha256(item.scan)},
           "recordings": [{"path": str(Path(r).resolve()), "sha256": recording_sha256(r)}
                          for r in item.recordings]}
    if item.task != "attention":
        m = Path(model) if model else default_checkpoint()
        key["model"] = {"path": str(m.resolve()), "sha256": file_sha256(m)}
    return key


def comparable_key(key: dict) -> dict:
    """``key`` without the paths: moved or re-mounted inputs with the same content still verify."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "path"}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    return strip(key)


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _peak_rss_mb() -> float:
    try:
        import resource             # POSIX only
    except ImportError:
        return float("nan")
    # ru_maxrss is KiB on Linux, bytes on macOS
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if platform.system() == "Darwin" else r / 1024.0


def one_line(exc: BaseException) -> str:
    """The one-line reason a failed item is reported with."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (Gaze3DError, FileNotFoundError, IsADirectoryError, PermissionError)):
        return text or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {text}"


def attention_options(scan, options: dict) -> dict:
    """:class:`~gaze3d.attention.AttentionAccumulator` options of an item, as ``gaze3d attention`` builds them."""
    from ..scan import PointCloud, Volume

    o = full_options(options)
    acc = dict(sigma_deg=o["sigma_deg"], fixations_only=not o["all_samples"], method=o["method"],
               visual_deg_per_camera_deg=o["visual_per_camera_deg"])
    if isinstance(scan, PointCloud):
        acc["point_size"] = o["point_size"]
    if isinstance(scan, Volume):
        acc["mode"] = o["volume_mode"]
    return acc


class ItemRunner:
    """Runs items one after another in one process, keeping the model and the last scan loaded.

    Parameters
    ----------
    outdir : path
        Items write to ``outdir / item.id``.
    model : path, optional
        Segmentation checkpoint; default: the shipped one. Loaded on the
        first item that needs it, once per runner.
    device : str
        Torch device of the model (``cpu``, ``cuda``).
    threads : int
        Torch intra-op threads (1 by default: workers are the parallelism,
        and a fixed count keeps the model's sums in the same order everywhere).
    engine : str
        Recorded in the reports.
    """

    def __init__(self, outdir, model: Optional[str] = None, device: str = "cpu", threads: int = 1,
                 engine: str = "local"):
        self.outdir = Path(outdir)
        self.model = str(model) if model else None
        self.device = device
        self.threads = int(threads)
        self.engine = engine
        self._segmenter = None
        self._seg_scan_key = None
        self._scan_key = None
        self._scan = None
        self.model_load_s = 0.0

    # ------------------------------------------------------------ resources
    def _load_scan(self, path: str, sha: str):
        from ..io import load_scan

        key = (str(Path(path).resolve()), sha)
        if key != self._scan_key:
            self._scan, self._scan_key = None, None
            self._scan = load_scan(path)
            self._scan_key = key
        return self._scan

    def _segmenter_for(self, scan, scan_key, metres_per_unit: float, timings: dict):
        from ..scan import PointCloud

        if not isinstance(scan, PointCloud):
            raise InputError(f"scan: segmentation needs a point cloud, got a {type(scan).__name__} "
                             "(use task 'attention')")
        if self._segmenter is None:
            t = time.perf_counter()
            import torch                 # first use in this worker: importing torch is part of the cost

            from ..models.interactive import InteractiveSegmenter

            torch.set_num_threads(self.threads)
            self._segmenter = InteractiveSegmenter(self.model, device=self.device,
                                                   metres_per_unit=metres_per_unit)
            self.model_load_s = time.perf_counter() - t
            timings["model_load_s"] = self.model_load_s
        seg = self._segmenter
        if seg.metres_per_unit != metres_per_unit or self._seg_scan_key != (scan_key, metres_per_unit):
            seg.metres_per_unit = metres_per_unit
            t = time.perf_counter()
            self._seg_scan_key = None
            seg.set_scan(scan)
            self._seg_scan_key = (scan_key, metres_per_unit)
            timings["backbone_s"] = timings.get("backbone_s", 0.0) + time.perf_counter() - t
        return seg

    # ------------------------------------------------------------ outputs
    def _save(self, folder: Path, name: str, array: np.ndarray, outputs: dict) -> None:
        with atomic_path(folder / name) as tmp:
            np.save(tmp, array, allow_pickle=False)
        # hash what is on disk: that is what --resume verifies
        outputs[name.rsplit(".npy", 1)[0]] = {"file": name, "sha256": file_sha256(folder / name),
                                              "shape": list(array.shape), "dtype": str(array.dtype)}

    @staticmethod
    def _clean(folder: Path) -> None:
        """Remove a previous run's report and any temporary file a killed run left."""
        for p in folder.glob(".*.tmp*"):
            p.unlink(missing_ok=True)
        (folder / REPORT).unlink(missing_ok=True)

    # ------------------------------------------------------------ one item
    def run(self, item: BatchItem) -> dict:
        """Run ``item``; never raises for a bad input (the result says ``failed`` and why).

        Returns
        -------
        dict
            ``id``, ``status`` (``ok`` / ``failed``), ``error`` (one line or
            None), ``seconds``, ``summary`` (one short line), ``report`` (path
            or None), ``peak_rss_mb``.
        """
        t0 = time.perf_counter()
        folder = self.outdir / item.id
        report = {"report_version": REPORT_VERSION, "id": item.id, "task": item.task, "where": item.where,
                  "status": "failed", "error": None, "outputs": {}, "timings": {}}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._clean(folder)
            report["inputs"] = input_key(item, self.model)
            summary = self._run(item, folder, report)
            report["status"] = "ok"
        except Exception as exc:  # a failing item never stops the batch: reported with its reason
            report["error"] = one_line(exc)
            summary = report["error"]
            if not isinstance(exc, (Gaze3DError, FileNotFoundError, IsADirectoryError, PermissionError)):
                report["traceback"] = traceback.format_exc()
        report["timings"]["total_s"] = time.perf_counter() - t0
        report["worker"] = {"engine": self.engine, "host": platform.node(), "pid": os.getpid(),
                            "peak_rss_mb": _peak_rss_mb(), "device": self.device, "threads": self.threads}
        report["provenance"] = {**report.get("provenance", {}), "gaze3d_version": __version__,
                                "python": platform.python_version()}
        path = None
        if folder.is_dir():
            path = folder / REPORT
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(report, indent=1, default=_json_default))
        return {"id": item.id, "task": item.task, "status": report["status"], "error": report["error"],
                "seconds": report["timings"]["total_s"], "summary": summary,
                "report": str(path) if path else None, "peak_rss_mb": report["worker"]["peak_rss_mb"]}

    def _replay(self, scan, scan_path: str, scan_sha: str, rec_path: str, options: dict, timings: dict,
                key: str) -> tuple:
        from ..attention import AttentionAccumulator
        from ..attention.batch import replay
        from ..recording import Recording

        o = full_options(options)
        t, c = time.perf_counter(), time.process_time()
        with Recording(rec_path) as rec:
            meta = rec.meta
            pairing = check_scan_pairing(rec_path, meta, scan_path, scan_sha)
            acc = AttentionAccumulator(scan, **attention_options(scan, options))
            stats = replay(acc, rec, topic=o["topic"], viewport=o["viewport"], progress=False)
        stats["used"] = int(acc.n_used)
        timings[f"replay_s.{key}"] = time.perf_counter() - t
        # CPU seconds of this process: replay speed per core, whatever else runs on the machine
        timings[f"replay_cpu_s.{key}"] = time.process_time() - c
        prov = {"annotator": meta.get("annotator"), "pairing": pairing,
                "created_unix_s": meta.get("created_unix_s"), "source": meta.get("source"),
                "scan_path": meta.get("scan_path")}
        return acc.values, stats, prov

    def _run(self, item: BatchItem, folder: Path, report: dict) -> str:
        timings = report["timings"]
        o = full_options(item.options)
        scan_sha = report["inputs"]["scan"]["sha256"]
        t = time.perf_counter()
        scan = self._load_scan(item.scan, scan_sha)
        timings["load_scan_s"] = time.perf_counter() - t
        n = int(scan.xyz.shape[0]) if hasattr(scan, "xyz") else None
        report["n_points"] = n
        outputs = report["outputs"]
        replays, prov = {}, {}
        if item.task == "consensus":
            names = _annotator_names(item)
        else:
            names = [""]
        atts, masks = [], []
        for name, rec in zip(names, item.recordings):
            att, stats, p = self._replay(scan, item.scan, scan_sha, rec, item.options, timings, name or "0")
            replays[name or "recording"], prov[name or "recording"] = stats, p
            prefix = f"{name}." if name else ""
            self._save(folder, f"{prefix}attention.npy", att, outputs)
            atts.append(att)
            if item.task in ("segment", "consensus"):
                seg = self._segmenter_for(scan, (item.scan, scan_sha), o["metres_per_unit"], timings)
                ts = time.perf_counter()
                prob = seg.update(att)
                mask = (prob >= o["threshold"]).astype(np.uint8)
                timings[f"segment_s.{name or '0'}"] = time.perf_counter() - ts
                self._save(folder, f"{prefix}probability.npy", prob.astype(np.float32), outputs)
                self._save(folder, f"{prefix}labels.npy", mask, outputs)
                masks.append(mask)
        report["replay"] = replays
        report["provenance"] = {"recordings": prov}
        if item.task != "attention":
            report["provenance"]["model_meta"] = getattr(self._segmenter, "meta", None)
        if item.task == "attention":
            a = atts[0]
            return f"attention > 0 on {int(np.count_nonzero(a))} of {a.size}, max {float(a.max()):.4g} s"
        if item.task == "segment":
            return f"{int(masks[0].sum())} of {masks[0].size} points in the mask"
        from .consensus import agreement, majority_vote, staple

        t = time.perf_counter()
        maj, ties = majority_vote(masks)
        st, conf = staple(masks)
        self._save(folder, "majority.npy", maj, outputs)
        self._save(folder, "staple.npy", st, outputs)
        agree = agreement(masks, names, st)
        for j, name in enumerate(names):
            c = conf[j]
            if c.shape[1] >= 2:   # columns: truth background, object
                agree["per_annotator"][name]["staple_sensitivity"] = float(c[1, 1])
                agree["per_annotator"][name]["staple_specificity"] = float(c[0, 0])
        agree["majority_points"] = int(maj.sum())
        agree["majority_ties"] = ties
        agree["staple_points"] = int(st.sum())
        agree["dice_majority_staple"] = float(2 * int((maj & st).sum()) / max(1, int(maj.sum() + st.sum())))
        timings["consensus_s"] = time.perf_counter() - t
        report["consensus"] = agree
        k = agree["fleiss_kappa"]
        return (f"{len(names)} annotators: majority {int(maj.sum())}, STAPLE {int(st.sum())} points; "
                f"Fleiss kappa {'n/a' if k is None else f'{k:.3f}'}, "
                f"mean pairwise Dice {agree['mean_pairwise_dice']:.3f}")


def _annotator_names(item: BatchItem):
    """Distinct, file-safe names for a consensus item's recordings (their file stems)."""
    names = []
    for r in item.recordings:
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(r).name.split(".")[0]) or "annotator"
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
