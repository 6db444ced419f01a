"""The one place where gaze3d imports VTK and PyVista.

Everything else in :mod:`gaze3d.viewer` takes ``pv`` and the VTK classes it
needs from here, so the dependency is visible in one file and the rest of the
package (and ``import gaze3d``) stays importable without VTK.
"""
from __future__ import annotations

import copy

from gaze3d._optional import optional_import

pv = optional_import("pyvista", extra="viewer")
optional_import("vtk", extra="viewer")

from vtkmodules.vtkCommonCore import vtkLogger, vtkLookupTable, vtkObject  # noqa: E402
from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction  # noqa: E402
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor  # noqa: E402
from vtkmodules.vtkFiltersSources import vtkRegularPolygonSource  # noqa: E402
from vtkmodules.vtkRenderingCore import (vtkActor2D, vtkColorTransferFunction,  # noqa: E402
                                         vtkPolyDataMapper2D, vtkTextActor)
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402

__all__ = ["pv", "vtkLogger", "vtkLookupTable", "vtkObject", "vtkPiecewiseFunction",
           "vtkScalarBarActor", "vtkColorTransferFunction", "vtkRegularPolygonSource", "vtkActor2D",
           "vtkPolyDataMapper2D", "vtkTextActor", "vtk_to_numpy", "make_plotter",
           "quiet_offscreen_warnings"]


def quiet_offscreen_warnings() -> None:
    """Hide VTK's "bad X server connection" warning when it falls back to EGL offscreen."""
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)


def make_plotter(off_screen: bool = True, window_size=(1024, 768), **kw):
    """A ``pyvista.Plotter`` with multi-sampling off (EGL/OSMesa offscreen render it reliably).

    Parameters
    ----------
    off_screen : bool
        Render into an offscreen buffer (tests, screenshots, headless machines).
    window_size : (2,) int
        ``(width, height)`` in pixels.
    """
    if off_screen:
        quiet_offscreen_warnings()
    theme = kw.pop("theme", None) or copy.deepcopy(pv.global_theme)
    theme.multi_samples = 0
    return pv.Plotter(off_screen=off_screen, window_size=[int(window_size[0]), int(window_size[1])],
                      theme=theme, **kw)
