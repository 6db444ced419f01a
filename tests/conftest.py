"""Shared test fixtures: where the real data lives, offscreen rendering, VTK objects freed.

Tests that need ``../shared/data`` (the real scans beside the repo) use the
``shared_data`` fixture, which skips with a clear reason where it is absent.
The bundled demo tile is always there (``bundled_tile``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# No display here or in CI: VTK must render offscreen (EGL/OSMesa).
os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder ``../shared/data``; skips the test where it is absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real test data not found at {SHARED_DATA} (the shared/ folder beside the repo)")
    return SHARED_DATA


@pytest.fixture
def vtk_freed():
    """A ``viewer_helpers.VTKFreedGuard``: fail the test if a watched VTK object outlives its plotter."""
    from viewer_helpers import VTKFreedGuard

    guard = VTKFreedGuard()
    yield guard
    problems = guard.check()
    if problems:
        pytest.fail("VTK objects not freed after close: " + "; ".join(problems))


@pytest.fixture(autouse=True)
def _viewer_plotters_closed(request):
    """Every viewer test: no PyVista plotter may outlive it (the VTK-freed guard's plotter check, for all).

    Tests that watch more (actors, mappers, data sets) ask for ``vtk_freed``; this one costs nothing
    where the viewer is not loaded.
    """
    yield
    import sys

    plotting = sys.modules.get("pyvista.plotting.plotter")
    if plotting is None or not request.node.module.__name__.startswith(("test_viewer", "test_calib_viewer")):
        return
    import gc

    gc.collect()
    left = len(plotting._ALL_PLOTTERS)
    if left:
        plotting._ALL_PLOTTERS.clear()      # one leak fails one test, not every later one
        pytest.fail(f"{left} PyVista plotter(s) still open after the test: close them (app.close())")


@pytest.fixture
def umask_027():
    """Run the test under ``umask 027``; yields the mode a new file then gets (0o640)."""
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


@pytest.fixture(scope="session")
def bundled_tile() -> Path:
    """The IGN LiDAR HD tile shipped in the package for the demo."""
    from gaze3d.demo import bundled_tile as path

    p = path()
    assert p.is_file(), f"bundled demo tile missing: {p}"
    return p
