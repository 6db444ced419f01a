#!/usr/bin/env bash
# Run the whole test suite in .venv, on every core (pytest-xdist: one worker process per core, at
# most 4; PYTEST_WORKERS=N sets the count, 0 runs in this process). Tests that time something keep
# their own clocks and margins: the suite passed with two workers while two training runs shared the
# same 2 cores. Exit code 5 (no tests collected) is an error here: the suite must never silently test
# nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
workers=(-n auto --maxprocesses 4)
[ -z "${PYTEST_WORKERS:-}" ] || workers=(-n "$PYTEST_WORKERS")
"${VENV:-.venv}/bin/python" -m pytest -q "${workers[@]}" "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
