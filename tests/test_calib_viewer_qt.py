"""The Qt panel lists the calibration profiles and switches between them (Xvfb, child process).

Like ``test_viewer_qt.py``: Qt's "offscreen" platform has no OpenGL for the
VTK widget, so the panel runs under ``xvfb-run`` with the xcb platform; the
test skips, saying why, where Xvfb or the Qt packages are missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.render, pytest.mark.timeout(90)]
HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys
sys.path.insert(0, {here!r})
from viewer_helpers import WINDOW, box_scene
from gaze3d.scan import PointCloud
from gaze3d.viewer.qt_panel import QtViewer, qt_application

qapp = qt_application()
xyz, _ = box_scene(2000, 400)
win = QtViewer(PointCloud(xyz), window_size=WINDOW, segmenter="grow", profile="alice")
win.show()
qapp.processEvents()
out = {{"items": [win.profile_box.itemText(i) for i in range(win.profile_box.count())],
        "current": win.profile_box.currentText(), "status0": win.status.text()}}
win.profile_box.setCurrentIndex(2)
win.profile_box.activated.emit(2)                     # the user picks "bob"
out["after_pick"] = win.app.session.calibration.profile.name
out["status1"] = win.status.text()
win.app.press("p")                                    # the key cycles on: after the last comes "none"
win.refresh_panel()
out["after_key"] = win.profile_box.currentText()
win.buttons["drift"].click()
out["drift_started"] = win.app.session.calibration.drift is not None
win.close()
qapp.processEvents()
print("RESULT " + json.dumps(out))
"""


def _write_profiles(config: Path) -> None:
    from gaze3d.calib.profiles import Profile, ProfileStore

    store = ProfileStore(config)
    for name, dx in (("alice", 0.01), ("bob", -0.02)):
        store.save(Profile(name, correction={"kind": "affine", "coef": [[dx, 0.0], [1.0, 0.0], [0.0, 1.0]]}))


def test_qt_panel_lists_and_selects_profiles(tmp_path):
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run not installed (apt install xvfb): the Qt panel needs an X server with OpenGL")
    pytest.importorskip("pyvistaqt", reason="pyvistaqt not installed (pip install 'gaze3d[qt]')")
    pytest.importorskip("PySide6", reason="PySide6 not installed (pip install 'gaze3d[qt]')")
    _write_profiles(tmp_path / "config")
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", GAZE3D_CONFIG_DIR=str(tmp_path / "config"))
    env.pop("PYVISTA_OFF_SCREEN", None)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", sys.executable, "-c", CHILD.format(here=str(HERE))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=80)
    if "Could not load the Qt platform plugin" in proc.stderr:
        pytest.skip("Qt xcb platform plugin cannot load here (system libraries missing)")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}): {proc.stderr[-2000:]}"
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["items"] == ["none", "alice", "bob"]
    assert out["current"] == "alice" and "profile alice (affine)" in out["status0"]
    assert out["after_pick"] == "bob" and "profile bob (affine)" in out["status1"]
    assert out["after_key"] == "none"
    assert out["drift_started"]
