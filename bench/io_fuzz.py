"""Time and memory of every malformed-scan case (the table of ``tests/io_fuzz_cases.py``).

Two measurements per case:

* ``load s`` / ``peak MB``: :func:`gaze3d.load_scan` plus the in-process
  ``gaze3d info`` entry point, in one process that already imported the
  readers (what a parser costs: the time and peak RSS growth of that case
  alone, ``VmHWM`` reset before each case). The process's address space is
  capped at its imports plus ``--limit-mb``.
* ``cli s`` / ``cli MB`` (with ``--cli``): ``gaze3d info FILE`` (the CLI
  entry point the console script calls) in a fresh process per case, as a
  user runs it: wall time including interpreter start-up and the import of
  the reader's library (Open3D alone takes ~1.5 s on a loaded 2-core
  machine), the process's peak RSS (``VmHWM`` at exit), and its exit code
  (2 expected, 0 for valid seeds).

Run: ``.venv/bin/python bench/io_fuzz.py [--cli] [--repeat 3] [--only NAME ...]``
Target: every case completes in < 2 s (the in-process time; the CLI time is
reported beside it) with a peak RSS growth of a few MB (inputs are < 10 KiB),
one-line error, exit 2.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import io_fuzz_cases as fuzz  # noqa: E402

TARGET_S = 2.0


def in_process(folder: Path, names, limit_mb: float, timeout: float) -> dict:
    """Run the table in one subprocess; ``{name: row}`` (a case that hung: ``{"hung": True}``)."""
    cmd = [sys.executable, str(Path(fuzz.__file__)), str(folder), "--limit-mb", str(limit_mb), *names]
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, start_new_session=True)
        fuzz.wait_or_kill(proc, timeout)
        out.seek(0)
        rows, current = fuzz.read_results(out)
    if current:
        rows[current] = {"name": current, "hung": True}
    return rows


# ``gaze3d info`` as the console script runs it, plus the process's own peak RSS (VmHWM) at exit
# on a marked stderr line. (wait4's ru_maxrss would include this parent's RSS: Linux keeps the
# pre-exec high-water mark of the forked child.)
_CLI = ("import atexit, sys\n"
        "def _peak():\n"
        "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "    print('@@VmHWM', hwm[0], file=sys.stderr)\n"
        "atexit.register(_peak)\n"
        "from gaze3d.cli import main\n"
        "sys.exit(main())\n")


def cli(path: Path, timeout: float) -> dict:
    """``gaze3d info PATH`` in a fresh process: wall seconds, peak RSS MB, exit code, stderr lines."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _CLI, "info", str(path)], stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
        fuzz.wait_or_kill(proc, timeout)
        seconds = time.perf_counter() - t0
        err.seek(0)
        lines = err.read().splitlines()
    peak = [int(line.split()[1]) / 1024 for line in lines if line.startswith("@@VmHWM")]
    return {"seconds": seconds, "rss_mb": peak[0] if peak else float("nan"), "code": proc.returncode,
            "lines": sum(not line.startswith("@@VmHWM") for line in lines)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cli", action="store_true", help="also run gaze3d info per case in a fresh process")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the table; the max is reported")
    parser.add_argument("--only", nargs="*", default=[], help="case names")
    parser.add_argument("--limit-mb", type=float, default=1024.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for a whole in-process run")
    args = parser.parse_args(argv)
    cases = [c for c in fuzz.CASES if not args.only or c.name in args.only]
    with tempfile.TemporaryDirectory(prefix="gaze3d-fuzz-") as tmp:
        folder = Path(tmp) / "cases"
        fuzz.build(folder)
        worst = {}
        for _ in range(args.repeat):
            for name, row in in_process(folder, [c.name for c in cases], args.limit_mb, args.timeout).items():
                seen = worst.setdefault(name, row)
                if row.get("hung") or seen.get("hung"):
                    worst[name] = {"name": name, "hung": True}
                    continue
                peak = max(row["peak_rss_mb"] or 0, seen["peak_rss_mb"] or 0)   # worst of the runs
                worst[name] = dict(row if row["seconds"] > seen["seconds"] else seen, peak_rss_mb=peak)
        runs = {c.name: cli(folder / c.filename, 60.0) for c in cases} if args.cli else {}
    header = f"{'case':<30} {'load s':>7} {'peak MB':>8}"
    header += f" {'cli s':>7} {'cli MB':>7} {'exit':>4}" if args.cli else ""
    print(header + "  verdict")
    failed = []
    for c in cases:
        row = worst.get(c.name, {"hung": True})
        if row.get("hung"):
            verdict = "HUNG"
        elif c.valid:
            verdict = "loads" if row["ok"] else f"FAILS TO LOAD ({row['api']})"
        else:
            one_line = row["cli_code"] == 2 and len(row["cli_err"].splitlines()) == 1
            verdict = "one line, exit 2" if row["api"] == "ScanFormatError" and one_line else \
                f"WRONG ({row['api']}, exit {row['cli_code']})"
        if not row.get("hung") and row["seconds"] > TARGET_S:
            verdict += f" SLOW (> {TARGET_S} s)"
        line = f"{c.name:<30} {row.get('seconds', float('nan')):>7.3f} {row.get('peak_rss_mb') or 0:>8.2f}"
        if args.cli:
            r = runs[c.name]
            line += f" {r['seconds']:>7.2f} {r['rss_mb']:>7.0f} {r['code']:>4}"
            if r["code"] != (0 if c.valid else 2) or (not c.valid and r["lines"] != 1):
                verdict += f" CLI WRONG ({r['lines']} stderr lines)"
        print(f"{line}  {verdict}")
        if any(w in verdict for w in ("HUNG", "FAILS", "WRONG", "SLOW")):
            failed.append(c.name)
    done = [worst[c.name] for c in cases if not worst.get(c.name, {}).get("hung")]
    malformed = sum(not c.valid for c in cases)
    print(f"\n{len(cases)} cases ({malformed} malformed, {len(cases) - malformed} valid seeds), "
          f"{args.repeat} in-process runs: max load {max(r['seconds'] for r in done):.3f} s, "
          f"max peak RSS growth {max(r['peak_rss_mb'] or 0 for r in done):.2f} MB")
    if runs:
        print(f"CLI: max wall {max(r['seconds'] for r in runs.values()):.2f} s, "
              f"max RSS {max(r['rss_mb'] for r in runs.values()):.0f} MB "
              f"(interpreter and library imports included)")
    print(f"target < {TARGET_S} s per case: {'met' if not failed else 'NOT met: ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
