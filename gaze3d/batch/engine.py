"""Run a batch of items: plan (resume), dispatch (local process pool or Ray), summary.

Every engine runs the same :class:`~gaze3d.batch.item.ItemRunner`, so the
outputs are byte-identical whichever engine ran them. The local engine runs
one item at a time in this process (``workers=1``) or in a pool of spawned
processes; the Ray engine (:mod:`gaze3d.batch.ray_engine`) in Ray actors.
"""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import InputError
from ..io._common import atomic_path
from .item import REPORT, ItemRunner, comparable_key, input_key, one_line
from .manifest import BatchItem
from .provenance import file_sha256

ENGINES = ("local", "ray")
SUMMARY_COLUMNS = ("id", "task", "status", "seconds", "detail")


@dataclass
class BatchResult:
    """What a batch did: one result dict per item, in manifest order (see ``ItemRunner.run``)."""
    results: List[dict]
    outdir: Path
    seconds: float
    engine: str
    workers: int
    counts: Dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no item failed (skipped items were verified)."""
        return all(r["status"] in ("ok", "skipped") for r in self.results)


def verify_item(item: BatchItem, outdir, model: Optional[str]) -> Tuple[bool, str]:
    """Whether ``item``'s outputs in ``outdir`` exist and match its current inputs.

    Returns ``(True, "verified")`` or ``(False, why it must run)``: no report,
    a failed run, changed inputs / options / model, or an output whose
    SHA-256 differs from the one in the report.
    """
    folder = Path(outdir) / item.id
    try:
        report = json.loads((folder / REPORT).read_text())
    except FileNotFoundError:
        return False, "no report"
    except (OSError, json.JSONDecodeError) as exc:
        return False, f"unreadable report ({exc})"
    if report.get("status") != "ok":
        return False, "previous run failed"
    try:
        key = comparable_key(json.loads(json.dumps(input_key(item, model))))
    except (OSError, InputError) as exc:
        return False, one_line(exc)
    had = comparable_key(report.get("inputs") or {})
    if had != key:
        changed = [k for k in key if had.get(k) != key[k]]
        return False, f"inputs changed ({', '.join(changed) or 'format'})"
    outputs = report.get("outputs") or {}
    if not outputs:
        return False, "report lists no outputs"
    for name, out in outputs.items():
        p = folder / out["file"]
        if not p.is_file():
            return False, f"output {out['file']} missing"
        if file_sha256(p) != out["sha256"]:
            return False, f"output {out['file']} differs from its report"
    return True, "verified"


def plan(items: Sequence[BatchItem], outdir, model: Optional[str], resume: bool) -> List[Tuple[BatchItem, str]]:
    """``(item, "run" | "skip: verified" | "run: <why>")`` for each item."""
    out = []
    for it in items:
        if resume:
            ok, why = verify_item(it, outdir, model)
            out.append((it, "skip: verified" if ok else f"run: {why}"))
        else:
            out.append((it, "run"))
    return out


# ------------------------------------------------------------------ local engine
_RUNNER: Optional[ItemRunner] = None


def _init_worker(kwargs: dict) -> None:
    global _RUNNER
    from .provenance import environ_threads

    environ_threads(kwargs.get("threads", 1))
    _RUNNER = ItemRunner(**kwargs)


def _run_in_worker(item_dict: dict) -> dict:
    return _RUNNER.run(BatchItem.from_dict(item_dict))


def _failed(item: BatchItem, reason: str) -> dict:
    return {"id": item.id, "task": item.task, "status": "failed", "error": reason, "seconds": 0.0,
            "summary": reason, "report": None, "peak_rss_mb": None}


def run_local(items: Sequence[BatchItem], runner_kwargs: dict, workers: int, on_result: Callable) -> None:
    """Run ``items`` here (``workers <= 1``) or in a pool of ``workers`` spawned processes.

    At most ``workers`` items are in flight, so when a worker process dies
    (killed, out of memory) only the items it could have been running are
    reported failed, and a fresh pool takes the rest.
    """
    if workers <= 1:
        runner = ItemRunner(**runner_kwargs)
        for it in items:
            on_result(it, runner.run(it))
        return
    import multiprocessing

    # spawn, not fork: a forked child would inherit the parent's threads (tqdm, torch pools)
    ctx = multiprocessing.get_context("spawn")
    todo = list(items)[::-1]
    while todo:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(runner_kwargs,))
        running: Dict = {}
        broken = False
        try:
            while todo or running:
                while todo and len(running) < workers and not broken:
                    try:
                        running[pool.submit(_run_in_worker, todo[-1].to_dict())] = todo[-1]
                        todo.pop()
                    except BrokenProcessPool:     # a worker died while idle: the item waits for a fresh pool
                        broken = True
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    it = running.pop(fut)
                    try:
                        on_result(it, fut.result())
                    except BrokenProcessPool:
                        broken = True
                        on_result(it, _failed(it, "worker process died while running this item "
                                                  "(killed or out of memory); rerun with --resume"))
                    except Exception as exc:  # e.g. a result that cannot be sent back: the item failed
                        on_result(it, _failed(it, one_line(exc)))
                if broken and not running:
                    break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------ the batch
def _progress(total: int, enabled: Optional[bool]):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="item", desc="batch", file=sys.stderr, dynamic_ncols=True)


def format_line(r: dict) -> str:
    """One status line of an item: ``[status] id  seconds  detail``."""
    return f"[{r['status']:>7}] {r['id']}  {r['seconds']:.1f} s  {r['summary']}"


def format_table(results: Sequence[dict]) -> str:
    """The summary table (fixed-width text) printed at the end of a batch."""
    rows = [("id", "task", "status", "s", "detail")]
    rows += [(r["id"], r["task"], r["status"], f"{r['seconds']:.1f}", r["summary"] or "") for r in results]
    w = [max(len(str(row[i])) for row in rows) for i in range(4)]
    return "\n".join(f"{a:<{w[0]}}  {b:<{w[1]}}  {c:<{w[2]}}  {d:>{w[3]}}  {e}" for a, b, c, d, e in rows)


def write_summary(result: BatchResult) -> Tuple[Path, Path]:
    """``summary.tsv`` and ``summary.json`` in the output folder, written atomically."""
    out = result.outdir
    tsv = out / "summary.tsv"
    with atomic_path(tsv) as tmp:
        lines = ["\t".join(SUMMARY_COLUMNS)]
        for r in result.results:
            detail = (r["summary"] or "").replace("\t", " ").replace("\n", " ")
            lines.append("\t".join([r["id"], r["task"], r["status"], f"{r['seconds']:.3f}", detail]))
        tmp.write_text("\n".join(lines) + "\n")
    js = out / "summary.json"
    with atomic_path(js) as tmp:
        tmp.write_text(json.dumps({"engine": result.engine, "workers": result.workers,
                                   "seconds": result.seconds, "counts": result.counts, "ok": result.ok,
                                   "items": result.results}, indent=1))
    return tsv, js


def run_batch(items: Sequence[BatchItem], outdir, *, model: Optional[str] = None, engine: str = "local",
              workers: int = 1, address: Optional[str] = None, gpus_per_worker: float = 0.0,
              device: str = "cpu", threads: int = 1, resume: bool = False,
              progress: Optional[bool] = None, echo: Optional[Callable[[str], None]] = print) -> BatchResult:
    """Run every item (skipping verified ones with ``resume``) and write the summary.

    Parameters
    ----------
    items : sequence of BatchItem
        From :func:`~gaze3d.batch.manifest.load_manifest`.
    outdir : path
        Created if missing; item ``ID`` writes to ``outdir/ID``.
    model : path, optional
        Segmentation checkpoint (default: the shipped one).
    engine : {"local", "ray"}
    workers : int
        Local processes, or Ray actors.
    address : str, optional
        Ray: the cluster to join (``auto``, ``HOST:PORT``); default: start a
        local Ray with ``workers`` CPUs.
    gpus_per_worker : float
        Ray: GPUs per actor (the model then runs on ``cuda``).
    device, threads : model device and torch threads per worker.
    resume : bool
        Skip items whose outputs verify (:func:`verify_item`).
    progress : bool, optional
        tqdm bar on stderr (default: when stderr is a terminal).
    echo : callable, optional
        Receives one status line per finished item (None: silent).

    Returns
    -------
    BatchResult
    """
    if engine not in ENGINES:
        raise InputError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if workers < 1:
        raise InputError(f"--workers: expected >= 1, got {workers}")
    if model is not None and not Path(model).is_file():
        raise FileNotFoundError(f"--model {model}: no such checkpoint")
    t0 = time.perf_counter()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    planned = plan(items, out, model, resume)
    results: Dict[str, dict] = {}
    for it, what in planned:
        if what.startswith("skip"):
            results[it.id] = {"id": it.id, "task": it.task, "status": "skipped", "error": None,
                              "seconds": 0.0, "summary": "outputs verified (--resume)",
                              "report": str(out / it.id / REPORT), "peak_rss_mb": None}
    # one scan's items together: a worker keeps the last scan (and its backbone features) loaded
    todo = sorted((it for it, what in planned if not what.startswith("skip")), key=lambda it: it.scan)
    bar = _progress(len(todo), progress)

    def on_result(it: BatchItem, r: dict) -> None:
        results[it.id] = r
        if bar is not None:
            bar.set_postfix_str(f"{it.id}: {r['status']}", refresh=False)
            bar.update(1)
            if echo is not None:
                bar.write(format_line(r), file=sys.stderr)
        elif echo is not None:
            echo(format_line(r))

    if gpus_per_worker > 0 and not device.startswith("cuda"):
        device = "cuda"
    runner_kwargs = dict(outdir=str(out), model=model, device=device, threads=threads, engine=engine)
    try:
        if engine == "local":
            run_local(todo, runner_kwargs, workers, on_result)
        else:
            from .ray_engine import run_ray

            run_ray(todo, runner_kwargs, workers, on_result, address=address, gpus_per_worker=gpus_per_worker)
    finally:
        if bar is not None:
            bar.close()
    ordered = [results.get(it.id) or _failed(it, "not run (batch interrupted)") for it in items]
    counts = {s: sum(r["status"] == s for r in ordered) for s in ("ok", "skipped", "failed")}
    result = BatchResult(ordered, out, time.perf_counter() - t0, engine, workers, counts)
    write_summary(result)
    return result
