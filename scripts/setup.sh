#!/usr/bin/env bash
# Set up everything gaze3d needs on a fresh Debian/Ubuntu machine:
# system libraries for offscreen rendering and Open3D, a .venv with the CPU
# build of torch 2.13.0, and gaze3d with all extras in editable mode.
# Idempotent: re-running it only installs what is missing.
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

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The pin takes the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
touch .venv/.gaze3d-installed
