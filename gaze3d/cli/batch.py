"""``gaze3d batch MANIFEST -o OUTDIR``: attention, segmentation and consensus of many recordings."""
from __future__ import annotations

import argparse

from ..errors import InputError


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch", help="replay, segment and aggregate many saved recordings (local pool or Ray)",
        description="Run the items of a manifest (CSV/TSV/JSON lines: scan, recording(s), task, "
                    "options; or a folder of recordings): attention replay (as gaze3d attention), "
                    "segmentation with a model (as gaze3d segment), consensus of several annotators. "
                    "A failing item is reported and the others go on. Exit 0 when every item "
                    "succeeded (or was verified with --resume), 1 when some failed, 2 for a bad "
                    "manifest or option. See docs/scale.md.")
    p.add_argument("manifest", help="manifest file (.csv, .tsv, .jsonl) or a folder of recordings")
    p.add_argument("-o", "--output", required=True, help="output folder (one sub-folder per item)")
    p.add_argument("--model", default=None, help="segmentation checkpoint (.safetensors); default: the shipped one")
    p.add_argument("--task", default="segment", choices=("attention", "segment", "consensus"),
                   help="task of rows without one, and of a folder's recordings (segment)")
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local process pool (default) or Ray (pip install 'gaze3d[ray]')")
    p.add_argument("--workers", type=int, default=1, help="worker processes or Ray actors (1)")
    p.add_argument("--address", default=None,
                   help="Ray: cluster to join (HOST:PORT of the head, or 'auto'); default: a local Ray")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="Ray: GPUs per actor; > 0 runs the model on cuda (0)")
    p.add_argument("--device", default="cpu", help="model device for the local engine (cpu, cuda)")
    p.add_argument("--threads-per-worker", type=int, default=1, help="torch threads per worker (1)")
    p.add_argument("--resume", action="store_true",
                   help="skip items whose outputs exist and match their inputs, model and options")
    p.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..batch import load_manifest, plan, run_batch
    from ..batch.engine import format_table

    if args.workers < 1:
        raise InputError(f"--workers: expected >= 1, got {args.workers}")
    if args.threads_per_worker < 1:
        raise InputError(f"--threads-per-worker: expected >= 1, got {args.threads_per_worker}")
    if args.gpus_per_worker < 0:
        raise InputError(f"--gpus-per-worker: expected >= 0, got {args.gpus_per_worker}")
    if args.engine == "local" and (args.address or args.gpus_per_worker):
        raise InputError("--address and --gpus-per-worker are Ray options: add --engine ray")
    items = load_manifest(args.manifest, default_task=args.task)
    if args.dry_run:
        rows = plan(items, args.output, args.model, args.resume)
        for it, what in rows:
            print(f"{what:<24} {it.id}  {it.task}  {it.scan}  <- {'; '.join(it.recordings)}")
        n_run = sum(not w.startswith("skip") for _, w in rows)
        print(f"{n_run} of {len(rows)} items would run ({args.engine}, {args.workers} worker(s)) -> {args.output}")
        return 0
    result = run_batch(items, args.output, model=args.model, engine=args.engine, workers=args.workers,
                       address=args.address, gpus_per_worker=args.gpus_per_worker, device=args.device,
                       threads=args.threads_per_worker, resume=args.resume, progress=args.progress)
    print(format_table(result.results))
    c = result.counts
    print(f"{c['ok']} ok, {c['skipped']} skipped (verified), {c['failed']} failed in {result.seconds:.1f} s "
          f"-> {result.outdir}/summary.tsv")
    return 0 if result.ok else 1
