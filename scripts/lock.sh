#!/usr/bin/env bash
# Regenerate requirements/lock.txt: the exact versions of every dependency (all
# extras, plus pip and setuptools) for Python 3.10-3.12 in one file, with
# environment markers where the versions differ between Pythons. Resolved by
# uv (pinned below) from PyPI in a throw-away environment; torch is held at
# 2.13.0 by requirements/overrides.txt. After regenerating, run `make test` on
# the new lock before committing it: the lock records versions the suite passed with.
#
#   bash scripts/lock.sh            # or: make lock (keeps today's pins, adds what is new)
#   UPGRADE=1 bash scripts/lock.sh  # every dependency at its newest release
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/uv"
"$tmp/uv/bin/python" -m pip install -q "uv==$UV_VERSION"
# uv prefers the versions already in its output file: seeded with today's lock, a new dependency
# is added without moving the others; UPGRADE=1 resolves everything anew (newest releases).
if [ "${UPGRADE:-0}" != 1 ] && [ -f requirements/lock.txt ]; then
  grep -v '^# ' requirements/lock.txt > "$tmp/lock.txt" || true
fi
"$tmp/uv/bin/uv" pip compile pyproject.toml requirements/tools.in \
    --all-extras --universal --python-version 3.10 \
    --overrides requirements/overrides.txt \
    --no-header --quiet \
    -o "$tmp/lock.txt"
# Only Pythons 3.10-3.12 are supported and tested; the markers say which line applies.
{
  echo "# The tested versions of every gaze3d dependency (all extras) for Python 3.10-3.12."
  echo "# Used as pip constraints by scripts/setup.sh (make demo, make test, CI):"
  echo "#   pip install -c requirements/lock.txt torch==2.13.0 -e '.[dev]'"
  echo "# Regenerate with: make lock   (scripts/lock.sh, uv $UV_VERSION pip compile --universal)"
  echo "# The nvidia-* lines belong to PyPI's CUDA build of torch, which setup.sh never installs."
  cat "$tmp/lock.txt"
} > requirements/lock.txt.tmp
mv requirements/lock.txt.tmp requirements/lock.txt
echo "wrote requirements/lock.txt ($(grep -c '==' requirements/lock.txt) pins)"
