"""Packaging: a lean ``import gaze3d``, the namespaced rooms, the wheel layout, the CLI."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "vtk", "vtkmodules", "pyvista", "open3d", "laspy", "SimpleITK", "trimesh")


def _python(code: str, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def test_import_gaze3d_is_lean():
    code = ("import sys, json, gaze3d, gaze3d.scan, gaze3d.camera, gaze3d.errors, gaze3d.io; "
            f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [], "heavy modules imported by import gaze3d"


def test_lazy_names_resolve_without_heavy_imports():
    code = ("import sys, json, gaze3d; gaze3d.PointCloud, gaze3d.Camera, gaze3d.load_scan, gaze3d.save_scan; "
            f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("room", ["gaze3d.viewer", "gaze3d.models", "gaze3d.calib"])
def test_rooms_import_under_the_gaze3d_namespace(room):
    r = _python(f"import importlib, os; m = importlib.import_module({room!r}); print(m.__file__)")
    assert r.returncode == 0, r.stderr
    folder = room.split(".")[1]
    assert Path(r.stdout.strip().splitlines()[-1]).parent.name == folder


def test_no_generic_top_level_names_importable():
    """``models``/``viewer``/``calib`` must not be importable as top-level packages from site-packages."""
    code = ("import importlib.util, json; "
            "print(json.dumps({n: (importlib.util.find_spec(n).origin if importlib.util.find_spec(n) else None) "
            "for n in ('viewer', 'models', 'calib')}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    found = {k: v for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items() if v}
    assert not found, f"generic top-level packages installed: {found}"


def test_cli_help_lists_subcommands():
    r = subprocess.run([sys.executable, "-m", "gaze3d", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    commands = sorted(p.stem for p in (REPO / "gaze3d" / "cli").glob("*.py") if not p.stem.startswith("_"))
    assert {"info", "convert"} <= set(commands)
    listed = r.stdout.split("COMMAND", 1)[-1]
    missing = [c for c in commands if c not in listed]
    assert not missing, f"subcommands missing from gaze3d --help: {missing}\n{r.stdout}"
    r = subprocess.run([sys.executable, "-m", "gaze3d", "info", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "--labels" in r.stdout


def test_cli_help_is_lean():
    code = ("import sys, json, contextlib, io\nfrom gaze3d.cli import build_parser\nbuild_parser()\n"
            f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [], "a CLI module imports heavy packages at import time"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_has_rooms_only_under_gaze3d(tmp_path):
    # build from a copy: setuptools writes build/ and *.egg-info into the source tree
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "demo_output", "out"))
    # without build isolation setuptools comes from this environment and no index is needed
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", *isolation,
                        "-w", str(tmp_path / "wheel")], capture_output=True, text=True, timeout=280)
    tmp_path = tmp_path / "wheel"
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheels = list(tmp_path.glob("gaze3d-*.whl"))
    assert len(wheels) == 1, list(tmp_path.iterdir())
    names = zipfile.ZipFile(wheels[0]).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"gaze3d"}, f"unexpected top-level entries in the wheel: {sorted(tops)}"
    for room in ("viewer", "models", "calib"):
        assert f"gaze3d/{room}/__init__.py" in names, f"gaze3d/{room} missing from the wheel"
    assert "gaze3d/io/__init__.py" in names and "gaze3d/cli/info.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gaze3d = gaze3d.cli:main" in zipfile.ZipFile(wheels[0]).read(entry_points).decode()
