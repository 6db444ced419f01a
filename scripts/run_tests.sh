#!/usr/bin/env bash
# Run the whole test suite in .venv. Exit code 5 (no tests collected) is an error
# here: the suite must never silently test nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
"${VENV:-.venv}/bin/python" -m pytest -q "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
