"""Colours: heat lookup tables, base colours of scans and the label palette.

Pure numpy (matplotlib only for named colour maps), so the overlay and the
label logic can be tested without a render window.
"""
from __future__ import annotations

import numpy as np

from gaze3d.errors import InputError

#: 20 well separated label colours (tab20 order, strong tones first); label 0 = unlabelled.
LABEL_PALETTE = np.array([
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [188, 189, 34], [23, 190, 207], [127, 127, 127],
    [174, 199, 232], [255, 187, 120], [152, 223, 138], [255, 152, 150], [197, 176, 213],
    [196, 156, 148], [247, 182, 210], [219, 219, 141], [158, 218, 229], [199, 199, 199],
], dtype=np.uint8)


def label_color(label_id: int) -> np.ndarray:
    """(3,) uint8 colour of a label id >= 1 (cycled through :data:`LABEL_PALETTE`)."""
    return LABEL_PALETTE[(int(label_id) - 1) % len(LABEL_PALETTE)]


def colormap_table(cmap: str = "inferno", n: int = 256, low: float = 0.0) -> np.ndarray:
    """(n, 3) uint8 colours sampled from a matplotlib colour map.

    Parameters
    ----------
    cmap : str
        A matplotlib colour map name.
    n : int
        Number of entries.
    low : float
        Fraction of the map to skip at the low end (``0.25`` drops inferno's black).
    """
    from matplotlib import colormaps     # matplotlib (~0.3 s) on first use: not at the viewer's start-up

    try:
        cm = colormaps[cmap]
    except KeyError:
        raise InputError(f"cmap: unknown colour map {cmap!r} (any matplotlib name, e.g. 'inferno', 'hot')") from None
    x = low + (1.0 - low) * np.linspace(0.0, 1.0, n)
    return np.round(cm(x)[:, :3] * 255).astype(np.uint8)


def _normalise(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(v.shape)
    lo, hi = np.percentile(v[finite], [1, 99])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((np.where(finite, v, lo) - lo) / (hi - lo), 0.0, 1.0)


def base_colors(scan, labels: np.ndarray | None = None) -> np.ndarray:
    """(n, 3) uint8 colours that show a point cloud or mesh without attention.

    The scan's own colours when it has them, else its intensity as grey, else
    its height as a muted blue-grey ramp. Elements with a label ``> 0`` (from
    ``labels`` or ``scan.labels`` when ``labels`` is None) are tinted with the
    label's palette colour.
    """
    colors = getattr(scan, "colors", None)
    intensity = getattr(scan, "intensity", None)
    xyz = scan.xyz if hasattr(scan, "xyz") else scan.vertices
    if colors is not None:
        rgb = np.clip(np.round(colors * 255), 0, 255).astype(np.uint8)
    elif intensity is not None:
        g = (40 + 180 * _normalise(intensity)).astype(np.uint8)
        rgb = np.repeat(g[:, None], 3, axis=1)
    else:
        h = _normalise(xyz[:, 2])
        lo, hi = np.array([70, 80, 95.0]), np.array([200, 205, 215.0])
        rgb = np.round(lo + h[:, None] * (hi - lo)).astype(np.uint8)
    if labels is not None:
        rgb = tint_labels(rgb, labels)
    return rgb


def tint_labels(rgb: np.ndarray, labels: np.ndarray, strength: float = 0.75,
                table: np.ndarray | None = None) -> np.ndarray:
    """(n, 3) uint8: ``rgb`` mixed with the colour of each element's label (``> 0``).

    ``table`` (k, 3) uint8 gives the colour of label id ``i`` in row ``i`` (a
    label set's colours); ids outside it use :data:`LABEL_PALETTE`.
    """
    labels = np.asarray(labels)
    out = rgb.copy()
    hit = np.flatnonzero(labels > 0)
    if len(hit):
        ids = labels[hit]
        pal = LABEL_PALETTE[(ids - 1) % len(LABEL_PALETTE)].astype(np.float32)
        if table is not None:
            known = ids < len(table)
            pal[known] = table[ids[known]]
        out[hit] = np.round((1 - strength) * rgb[hit] + strength * pal).astype(np.uint8)
    return out


def grey_window(values: np.ndarray, level: float, width: float) -> np.ndarray:
    """(n, 3) uint8 greys of ``values`` seen through a window ``level +- width / 2`` (CT display)."""
    g = np.clip((np.asarray(values, dtype=np.float32) - (level - width / 2.0)) / max(width, 1e-6), 0, 1)
    g = np.round(g * 255).astype(np.uint8)
    return np.repeat(g[:, None], 3, axis=1)


def looks_like_ct(array: np.ndarray) -> bool:
    """True for Hounsfield units: air near -1000 and values up to bone."""
    a = np.asarray(array)
    sample = a.ravel()[:: max(1, a.size // 200_000)]
    return bool(sample.min() <= -900 and np.percentile(sample, 99.5) >= 100)


def auto_window(array: np.ndarray) -> tuple[float, float]:
    """(level, width) for grey display: CT soft tissue (40, 400) for HU data, else the 2nd-98th percentiles."""
    a = np.asarray(array)
    if looks_like_ct(a):
        return 40.0, 400.0
    sample = a.ravel()[:: max(1, a.size // 200_000)].astype(np.float64)
    lo, hi = np.percentile(sample, [2, 98])
    if hi <= lo:
        hi = lo + 1.0
    return float((lo + hi) / 2.0), float(hi - lo)
