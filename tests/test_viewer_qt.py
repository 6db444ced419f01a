"""The Qt side panel (pyvistaqt + PySide6) in a real X server (Xvfb), in a child process.

Qt's "offscreen" platform has no OpenGL for the VTK widget, so the test runs
the panel under ``xvfb-run`` with the xcb platform; it skips, saying why,
where Xvfb, the Qt packages or the xcb plugin's system libraries are missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.render, pytest.mark.slow, pytest.mark.timeout(120)]
HERE = Path(__file__).resolve().parent

CHILD = ("import json, sys; sys.path.insert(0, {here!r}); import viewer_helpers; "
         "print('RESULT ' + json.dumps(viewer_helpers.qt_child_session()))")


def _qt_env():
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run not installed (apt install xvfb): the Qt panel needs an X server with OpenGL")
    pytest.importorskip("pyvistaqt", reason="pyvistaqt not installed (pip install 'gaze3d[qt]')")
    pytest.importorskip("PySide6", reason="PySide6 not installed (pip install 'gaze3d[qt]')")
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    env.pop("PYVISTA_OFF_SCREEN", None)
    return env


def test_qt_panel_labels_by_typed_name_and_buttons():
    env = _qt_env()
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", sys.executable, "-c", CHILD.format(here=str(HERE))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=100)
    if "Could not load the Qt platform plugin" in proc.stderr:
        pytest.skip("Qt xcb platform plugin cannot load here (system libraries such as libxcb-icccm4, "
                    "libxcb-keysyms1, libxcb-cursor0 missing)")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}): {proc.stderr[-2000:]}"
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["labels_listed"] == 2
    assert "did you mean 'building'" in out["typo_status"]
    assert out["labelled"] > 20 and out["labelled_on_box"] >= 0.95 * out["labelled"]
    assert out["after_undo"] == 0 and out["after_redo"] == out["labelled"]
    assert out["image_std"] > 5          # the Qt view rendered the scene
    assert "no tracker (mouse as gaze)" in out["status"]
