#!/usr/bin/env bash
# `make test-latest`: install the newest release of every dependency (no lock) into
# a throw-away virtual environment and run the whole suite there. Not part of CI:
# it shows what the next upstream releases break before a fresh install does.
# torch stays the 2.13.0 CPU wheel: the newest torch on PyPI is a multi-GB CUDA build.
# The versions it installed are printed at the end (diff them against the lock).
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export VENV="$tmp/venv" LOCK=""
bash scripts/setup.sh || { echo "test-latest: installing the newest releases failed" >&2; exit 1; }
bash scripts/run_tests.sh "$@"
rc=$?
echo "test-latest: versions that differ from requirements/lock.txt:"
# one spelling for both lists: no markers, no local version label (torch's +cpu), PEP 503 names
norm() { sed -e 's/ *;.*//' -e 's/+[A-Za-z0-9.]*$//' -e 's/_/-/g' | tr 'A-Z' 'a-z' | grep -E '^[a-z0-9.-]+==' | sort -u; }
norm < requirements/lock.txt > "$tmp/lock.txt"
"$VENV/bin/python" -m pip freeze --exclude-editable 2>/dev/null | norm > "$tmp/latest.txt"
comm -13 "$tmp/lock.txt" "$tmp/latest.txt" | sed 's/^/  /'
exit "$rc"
