"""gaze3d: label 3D scans with eye gaze.

The core package needs numpy, pyzmq and msgpack only; everything heavier
(Open3D, laspy, SimpleITK, VTK, torch) is imported on first use, so
``import gaze3d`` is cheap and the tracker process runs in a lean environment.
Names below are resolved lazily (PEP 562).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "PointCloud": "gaze3d.scan",
    "Mesh": "gaze3d.scan",
    "Volume": "gaze3d.scan",
    "Camera": "gaze3d.camera",
    "CameraPath": "gaze3d.camera",
    "load_scan": "gaze3d.io",
    "save_scan": "gaze3d.io",
    "load_volume": "gaze3d.io",
    "AttentionAccumulator": "gaze3d.attention",
    "accumulate_attention": "gaze3d.attention",
    "Gaze3DError": "gaze3d.errors",
    "InputError": "gaze3d.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gaze3d' has no attribute {name!r}")


def __dir__():
    return __all__
