"""Offscreen screenshots of a scan, optionally with an attention heat map and colour bar.

``render_scan`` is what ``gaze3d render`` and the demo call; it opens an
offscreen plotter, draws, grabs the image and closes everything again.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gaze3d.camera import Camera
from gaze3d.errors import InputError
from gaze3d.io._common import atomic_path

from ._vtk import make_plotter, vtkLookupTable, vtkScalarBarActor
from .scene import Scene

BACKGROUND = "white"
TEXT_COLOR = (0.1, 0.1, 0.1)


def heat_scalar_bar(scene: Scene, title: str = "attention", text_color=TEXT_COLOR, font_px: int = 16):
    """A ``vtkScalarBarActor`` matching the overlay's heat colours from 0 to its scale."""
    ov = scene.overlay
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(256)
    blend_on_white = (255 * (256 - ov._alpha[:, None]) + ov._weighted_heat) >> 8
    for i, c in enumerate(blend_on_white):
        lut.SetTableValue(i, *(c / 255.0), 1.0)
    lut.SetRange(0.0, max(ov.scale, 1e-12))
    lut.Build()
    bar = vtkScalarBarActor()
    bar.SetLookupTable(lut)
    bar.SetTitle(title)
    bar.SetNumberOfLabels(5)
    bar.SetLabelFormat("%.3g")
    bar.SetOrientationToVertical()
    bar.SetPosition(0.87, 0.12)
    bar.SetWidth(0.1)
    bar.SetHeight(0.72)
    # fixed font sizes relative to the image height: VTK's automatic ones crowd the bar
    bar.SetUnconstrainedFontSize(True)
    bar.GetTitleTextProperty().SetFontSize(max(8, int(font_px * 1.1)))
    bar.GetLabelTextProperty().SetFontSize(max(7, int(font_px)))
    bar.SetVerticalTitleSeparation(max(2, int(font_px * 0.5)))
    for prop in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
        prop.SetColor(*text_color)
        prop.SetShadow(False)
        prop.SetItalic(False)
        prop.SetBold(False)
    return bar


def write_png(image: np.ndarray, out) -> Path:
    """Write an (h, w, 3) uint8 image as PNG atomically (temp file then rename)."""
    from PIL import Image     # Pillow on the first screenshot written: not at start-up

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InputError(f"out: expected a .png path, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:       # umask mode (a PNG is for sharing), fsync, rename
        Image.fromarray(image).save(tmp, format="PNG", optimize=True)
    return out


def render_scan(scan, scalars=None, camera: Camera | None = None, out=None, window_size=(1024, 768),
                cmap: str = "inferno", colorbar: bool = True, point_size: float = 3.0,
                title: str | None = None, volume_render: bool = True, labels=None,
                slices: bool = True, head_path=None, gaze_rays=None, up=None) -> np.ndarray:
    """Render a scan offscreen, with attention as a heat overlay.

    Parameters
    ----------
    scan : PointCloud, Mesh or Volume
    scalars : (n,) float, optional
        Attention (or any non-negative score) per point / vertex / voxel
        (volumes: shape ``scan.shape``); drawn as heat over the scan's colours.
    camera : Camera, optional
        World-coordinate camera; default a 3/4 view of the whole scan.
    out : path, optional
        Write the image here as PNG.
    window_size : (2,) int
        ``(width, height)`` in pixels.
    cmap : str
        Matplotlib colour map of the heat.
    colorbar : bool
        Draw a colour bar of the heat scale (only with ``scalars``).
    point_size : float
        Point size in pixels (point clouds).
    title : str, optional
        Text at the top of the image.
    volume_render : bool
        Volumes: add a volume rendering to the three slice planes.
    slices : bool
        Volumes: draw the three slice planes. Attention the planes do not show
        (from the volume rendering or MIP, or with ``slices=False``) is drawn
        as heat points inside the volume, on the same scale.
    labels : (n,) int, optional
        Labels to tint the scan with (default none: the scan's own colours).
    head_path : (m, 3) float, optional
        VR: head positions (world), drawn as a blue line.
    gaze_rays : ((m, 3), (m, 3)) or ((m, 3), (m, 3), length), optional
        VR: world gaze rays (origins, directions[, length per ray]), drawn as green segments
        (at most 400, evenly picked).
    up : (3,) float, optional
        The scene's up axis for the default view (without ``camera``); default
        :func:`~.scene.choose_up` (the file's convention or its data).

    Returns
    -------
    image : (h, w, 3) uint8
    """
    w, h = (int(v) for v in window_size)
    if w < 16 or h < 16:
        raise InputError(f"window_size: expected at least 16x16 pixels, got {w}x{h}")
    plotter = make_plotter(off_screen=True, window_size=(w, h))
    try:
        plotter.set_background(BACKGROUND)
        if labels is None:     # a heat figure shows the scan's own colours, untinted
            labels = np.zeros(scan.shape if type(scan).__name__ == "Volume" else len(scan), dtype=np.int32)
        scene = Scene(plotter, scan, point_size=point_size, labels=labels, volume_render=volume_render,
                      cmap=cmap)
        if scene.kind == "volume":
            if not (slices or volume_render):
                raise InputError("volumes: expected the slice planes, the volume rendering or both "
                                 "(not --no-slices with --no-volume-render)")
            scene.show_slices(slices)
        if scalars is not None:
            values = np.asarray(scalars, dtype=np.float32)
            expected = scan.shape if scene.kind == "volume" else (scene.n_elements,)
            if values.shape != tuple(expected):
                raise InputError(f"scalars: expected shape {tuple(expected)} (one per "
                                 f"{'voxel' if scene.kind == 'volume' else 'point'}), got {values.shape}")
            scene.overlay.headroom = 1.0
            scene.update_attention(values)
            if colorbar and scene.overlay.scale > 0:
                plotter.add_actor(heat_scalar_bar(scene, font_px=max(8, h // 45)))
        if title:
            plotter.add_text(title, position="upper_edge", font_size=max(6, h // 70), color=TEXT_COLOR)
        if head_path is not None or gaze_rays is not None:
            from .vr import add_vr_overlay     # here: vr imports render (its write_png), one arrow each way
            add_vr_overlay(plotter, scene, head_path, gaze_rays, line_px=max(2.0, h / 300))
        if camera is None:
            scene.default_camera(up)        # up None: the file's convention or its data (choose_up)
        else:
            scene.set_camera(camera)
        image = np.array(plotter.screenshot(return_img=True), dtype=np.uint8)[:, :, :3]
    finally:
        plotter.close()
        plotter.deep_clean()
    if out is not None:
        write_png(image, out)
    return image
