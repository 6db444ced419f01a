"""Benchmark ``gaze3d batch``: items per minute on the local engine (1 and 2 workers) and Ray (2 actors).

Inputs, built in a temporary folder: real LiDAR tiles (the bundled IGN LiDAR HD
tile, its east and west halves, and laspy's ``autzen_trim.laz`` from
``../shared/data`` when present, else the IGN tile's north half) and, on each,
``--annotators`` recordings of ``--seconds`` at 1200 Hz written by the eye
simulator (``gaze3d.batch.synthetic.simulate_session``: a camera orbiting the
tile at 60 frames/s, the eye fixating building points; each annotator has its
own targets and calibration offset). One ``segment`` item per recording
(attention replay + the shipped gaze-guided network), then one ``consensus``
item per scan.

Rows, all measured in this run on the same machine:

* ``local`` with 1 worker (in this process) and 2 workers (spawned processes),
  ``ray`` with 2 actors (a Ray started here with 2 CPUs; its start-up time is
  reported apart, and Ray's overhead is its wall time against local x2);
  each from an empty output folder; the three must write identical bytes.
* items/min = items / wall time of the batch; peak RSS per worker = the
  largest ``ru_maxrss`` a worker process reported.
* replay speed = samples / CPU seconds of the attention replay (per core), in
  multiples of real time for a 1200 Hz tracker, per scan, and at 1M points on
  ``bench/attention.py``'s synthetic city (same camera and gaze as there).

Run: ``.venv/bin/python bench/batch.py [--annotators 10] [--seconds 10] [--quick] [--no-ray]``
Goal: replay >= 100x real time per core at 1M points.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
RATE_HZ = 1200.0


def build_scans(folder: Path, quick: bool) -> list:
    """[(name, path, label looked at)] of the real tiles (see the module docstring)."""
    from gaze3d.batch.synthetic import crop_cloud
    from gaze3d.demo import bundled_tile
    from gaze3d.io import load_scan, save_scan

    tile_path = bundled_tile()
    tile = load_scan(tile_path)
    x, y = tile.xyz[:, 0], tile.xyz[:, 1]
    xm, ym = np.median(x), np.median(y)
    scans = [("ign_tile", Path(tile_path), 6)]
    for name, mask in (("ign_east", x > xm), ("ign_west", x <= xm)):
        p = folder / f"{name}.ply"
        save_scan(crop_cloud(tile, mask), p)
        scans.append((name, p, 6))
    autzen = SHARED / "pointcloud" / "laspy" / "autzen_trim.laz"
    if autzen.is_file() and not quick:
        scans.append(("autzen_trim", autzen, None))           # ground and unclassified: any point
    else:
        p = folder / "ign_north.ply"
        save_scan(crop_cloud(tile, y > ym), p)
        scans.append(("ign_north", p, 6))
    return scans


def build_recordings(folder: Path, scans, annotators: int, seconds: float) -> dict:
    """{scan name: [recording paths]}."""
    from gaze3d.batch.synthetic import simulate_session
    from gaze3d.io import load_scan

    out = {}
    for i, (name, path, label) in enumerate(scans):
        cloud = load_scan(path)
        out[name] = [simulate_session(path, folder / f"{name}.a{k:02d}.gaze3d", duration_s=seconds,
                                      rate_hz=RATE_HZ, seed=100 * i + k, annotator=f"a{k:02d}", label=label,
                                      scan=cloud)
                     for k in range(annotators)]
    return out


def write_manifest(path: Path, scans, recs, task: str) -> Path:
    lines = ["id\tscan\trecording\ttask"]
    for name, scan, _ in scans:
        if task == "consensus":
            lines.append(f"{name}.consensus\t{scan}\t{';'.join(map(str, recs[name]))}\tconsensus")
        else:
            lines += [f"{Path(r).name.split('.gaze3d')[0]}\t{scan}\t{r}\t{task}" for r in recs[name]]
    path.write_text("\n".join(lines) + "\n")
    return path


def outputs_of(outdir: Path) -> dict:
    return {str(p.relative_to(outdir)): p.read_bytes() for p in sorted(outdir.rglob("*.npy"))}


def run_engine(manifest: Path, outdir: Path, engine: str, workers: int) -> dict:
    from gaze3d.batch import load_manifest, run_batch

    items = load_manifest(manifest)
    t = time.perf_counter()
    res = run_batch(items, outdir, engine=engine, workers=workers, echo=None, progress=False)
    wall = time.perf_counter() - t
    reports = [json.loads(Path(r["report"]).read_text()) for r in res.results if r["report"]]
    by_pid = {}
    for rep in reports:
        w = rep["worker"]
        by_pid[w["pid"]] = max(by_pid.get(w["pid"], 0.0), w["peak_rss_mb"])
    return {"engine": engine, "workers": workers, "items": len(items), "ok": res.counts["ok"],
            "failed": res.counts["failed"], "wall_s": wall, "items_per_min": 60.0 * len(items) / wall,
            "mean_item_s": float(np.mean([r["seconds"] for r in res.results])),
            "peak_rss_mb": max(by_pid.values()) if by_pid else float("nan"), "reports": reports}


def replay_rates(reports, sizes: dict) -> dict:
    """{scan name: (points, samples per CPU second)} from the items' reports."""
    acc = {}
    for rep in reports:
        name = rep["id"].split(".a")[0]
        for key, stats in rep["replay"].items():
            suffix = "0" if key == "recording" else key
            cpu = rep["timings"].get(f"replay_cpu_s.{suffix}")
            if cpu:
                s, c = acc.get(name, (0, 0.0))
                acc[name] = (s + stats["samples"], c + cpu)
    return {name: (sizes.get(name), s / c) for name, (s, c) in acc.items()}


def million_point_replay(folder: Path, seconds: float) -> list:
    """Replay speed at 1M points through the batch runner (the scene of bench/attention.py)."""
    sys.path.insert(0, str(HERE))
    from attention import bench_gaze, bench_path, synthetic_city

    from gaze3d.batch import BatchItem, ItemRunner
    from gaze3d.io import save_scan
    from gaze3d.protocol import TOPIC_GAZE_2D
    from gaze3d.recording import RecordingWriter
    from gaze3d.scan import PointCloud

    xyz = synthetic_city(1_000_000)
    scan = folder / "city_1m.ply"
    save_scan(PointCloud(xyz), scan)
    path = bench_path(xyz, seconds)
    t, xy, valid = bench_gaze(seconds)
    t0 = 10**12
    rec = folder / "city_1m.gaze3d"
    with RecordingWriter(rec, commit_interval_s=3600) as w:
        for k in range(int(seconds * 60) + 1):
            w.add_camera(t0 + int(round(k / 60 * 1e9)), path.at(k / 60.0))
        w.add_samples([{"topic": TOPIC_GAZE_2D, "t_host_ns": t0 + int(round(ti * 1e9)), "seq": i,
                        "gaze": [float(a), float(b)], "valid": bool(v)}
                       for i, (ti, a, b, v) in enumerate(zip(t, xy[:, 0], xy[:, 1], valid))])
    rows = []
    runner = ItemRunner(folder / "out_1m")
    for all_samples in (True, False):
        best = None
        for rep in range(2):
            item = BatchItem(f"city_{int(all_samples)}_{rep}", "attention", str(scan), [str(rec)],
                             {"all_samples": all_samples})
            r = runner.run(item)
            assert r["status"] == "ok", r
            report = json.loads(Path(r["report"]).read_text())
            cpu = report["timings"]["replay_cpu_s.0"]
            best = cpu if best is None else min(best, cpu)
        rows.append((all_samples, len(t), best))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--annotators", type=int, default=10, help="recordings per scan (10; 4 scans)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each recording (10 s)")
    ap.add_argument("--quick", action="store_true", help="3 annotators, 3 s recordings, no 1M-point row")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray row")
    ap.add_argument("--keep", default=None, help="build in this folder and keep it")
    args = ap.parse_args(argv)
    if args.quick:
        args.annotators, args.seconds = 3, 3.0
    from gaze3d.io import load_scan

    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    folder = Path(args.keep or tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    scans = build_scans(folder, args.quick)
    sizes = {name: len(load_scan(p)) for name, p, _ in scans}
    recs = build_recordings(folder, scans, args.annotators, args.seconds)
    n_rec = sum(len(v) for v in recs.values())
    print(f"inputs: {len(scans)} scans ({', '.join(f'{k} {v:,} pts' for k, v in sizes.items())}), "
          f"{n_rec} recordings of {args.seconds:g} s at {RATE_HZ:g} Hz, built in {time.perf_counter() - t:.1f} s")
    seg = write_manifest(folder / "segment.tsv", scans, recs, "segment")

    rows = [run_engine(seg, folder / "local1", "local", 1), run_engine(seg, folder / "local2", "local", 2)]
    ray_init_s = None
    if not args.no_ray:
        try:
            import ray
        except ImportError:
            print("ray not installed (pip install 'gaze3d[ray]'): no Ray row")
        else:
            t = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            ray_init_s = time.perf_counter() - t
            try:
                rows.append(run_engine(seg, folder / "ray2", "ray", 2))
            finally:
                ray.shutdown()
    ref = outputs_of(folder / "local1")
    same = {r["engine"] + str(r["workers"]): outputs_of(folder / f"{r['engine']}{r['workers']}") == ref
            for r in rows}

    print(f"\n### gaze3d batch, {rows[0]['items']} segment items (CPU; {os.cpu_count()} cores on this machine)\n")
    print("| engine | workers | wall s | items/min | mean s/item | peak RSS per worker MB | failed | same bytes as local x1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['workers']} | {r['wall_s']:.1f} | {r['items_per_min']:.1f} | "
              f"{r['mean_item_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['failed']} | "
              f"{'yes' if same[r['engine'] + str(r['workers'])] else 'NO'} |")
    local2 = rows[1]
    if len(rows) > 2:
        print(f"\nRay start-up (ray.init, 2 CPUs): {ray_init_s:.1f} s, not in the Ray row; "
              f"Ray overhead against local x2: {rows[2]['wall_s'] - local2['wall_s']:+.1f} s "
              f"({100 * (rows[2]['wall_s'] / local2['wall_s'] - 1):+.0f} %)")
    # where an item's time goes (local x1)
    keys = {}
    for rep in rows[0]["reports"]:
        for k, v in rep["timings"].items():
            base = k.split(".")[0]
            keys[base] = keys.get(base, 0.0) + v
    n = len(rows[0]["reports"])
    print("\nper item, local x1 (mean s): " + ", ".join(f"{k} {v / n:.3f}" for k, v in keys.items()))

    print("\n### attention replay speed (CPU time of the replay, one core; 1200 Hz tracker)\n")
    print("| scan | points | samples/s | x real time |")
    print("|---|---|---|---|")
    for name, (pts, rate) in replay_rates(rows[0]["reports"], sizes).items():
        print(f"| {name} | {pts:,} | {rate:,.0f} | {rate / RATE_HZ:.1f} |")
    if not args.quick:
        for all_samples, n_samples, cpu in million_point_replay(folder, args.seconds):
            what = "all valid samples" if all_samples else "fixations only (batch default)"
            print(f"| synthetic city, {what} | 1,000,000 | {n_samples / cpu:,.0f} | "
                  f"{n_samples / cpu / RATE_HZ:.1f} |")

    t = time.perf_counter()
    cons = run_engine(write_manifest(folder / "consensus.tsv", scans, recs, "consensus"),
                      folder / "consensus", "local", 2)
    print(f"\n### consensus ({args.annotators} annotators per scan, local x2, {time.perf_counter() - t:.1f} s)\n")
    print("| scan | majority pts | STAPLE pts | Fleiss kappa | mean pairwise Dice |")
    print("|---|---|---|---|---|")
    for rep in cons["reports"]:
        c = rep.get("consensus") or {}
        k = c.get("fleiss_kappa")
        print(f"| {rep['id']} | {c.get('majority_points')} | {c.get('staple_points')} | "
              f"{'n/a' if k is None else f'{k:.3f}'} | {c.get('mean_pairwise_dice', float('nan')):.3f} |")
    if tmp is not None:
        tmp.cleanup()
    return 0 if all(same.values()) and all(r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
