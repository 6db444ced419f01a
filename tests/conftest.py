"""Shared test fixtures: where the real data lives, offscreen rendering.

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


@pytest.fixture(scope="session")
def bundled_tile() -> Path:
    """The IGN LiDAR HD tile shipped in the package for the demo."""
    from gaze3d.demo import bundled_tile as path

    p = path()
    assert p.is_file(), f"bundled demo tile missing: {p}"
    return p
