#!/usr/bin/env bash
# Set up everything gaze3d needs on a fresh Debian/Ubuntu machine:
# system libraries for offscreen rendering and Open3D, a .venv with the CPU
# build of torch 2.13.0, and gaze3d with all extras in editable mode, at the
# versions of requirements/lock.txt. Idempotent: re-running it only installs what
# is missing or moves a package to its locked version.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# libusb: `import open3d` fails without it; libgl1-mesa-dri + libegl1: VTK's
# EGL offscreen path; libosmesa6: VTK's OSMesa fallback; libgomp1: torch/open3d.
# xvfb: a virtual X display for the X11 mouse-as-gaze and Qt panel tests;
# the libxcb*/libxkbcommon-x11/fontconfig/dbus set: Qt's xcb platform plugin.
DEBS="libusb-1.0-0 libgl1 libegl1 libgl1-mesa-dri libosmesa6 libgomp1 xvfb
      libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0
      libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3"
if command -v dpkg-query >/dev/null 2>&1; then
  missing=""
  for p in $DEBS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "installing system packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
fi

VENV=${VENV:-.venv}
# LOCK=requirements/lock.txt (default) installs the versions the suite passed with;
# LOCK= (empty) installs the newest releases instead (make test-latest).
LOCK=${LOCK-requirements/lock.txt}
CONSTRAINTS=()
[ -z "$LOCK" ] || CONSTRAINTS=(-c "$LOCK")
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# pip and setuptools come from the lock too, and the package builds with that
# setuptools (no build isolation), so no new release can change the install.
"$VENV/bin/python" -m pip install -q --upgrade "${CONSTRAINTS[@]}" pip "setuptools>=77"
# The pin takes the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q "${CONSTRAINTS[@]}" "torch==2.13.0"
"$VENV/bin/python" -m pip install -q --no-build-isolation "${CONSTRAINTS[@]}" -e ".[dev]"
touch "$VENV/.gaze3d-installed"
