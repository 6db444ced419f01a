"""Import optional dependencies lazily, failing on first use with an install hint.

``import gaze3d`` must not import torch, VTK or Open3D (the tracker runs in a
lean environment), so heavy packages are imported where they are used::

    o3d = optional_import("open3d", extra="io")
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import OptionalDependencyError

# import name -> pip distribution name, where they differ
_DISTRIBUTION = {
    "open3d": "open3d-cpu",
    "SimpleITK": "SimpleITK",
    "laspy": "laspy[lazrs]",
    "zmq": "pyzmq",
    "vtk": "vtk",
    "torch": "torch==2.13.0",
    "PySide6": "PySide6-Essentials",
    "skimage": "scikit-image",
}


def optional_import(name: str, extra: str | None = None) -> ModuleType:
    """Import ``name`` or raise :class:`OptionalDependencyError` with an install hint.

    Parameters
    ----------
    name : str
        Module to import, for example ``"open3d"`` or ``"laspy"``.
    extra : str, optional
        The gaze3d extra that brings it (``io``, ``viewer``, ``models``...).
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        dist = _DISTRIBUTION.get(top, top)
        hint = f"pip install 'gaze3d[{extra}]'" if extra else f"pip install {dist}"
        raise OptionalDependencyError(
            f"{name} is needed for this feature but could not be imported ({exc}); "
            f"install it with: {hint}"
        ) from exc
