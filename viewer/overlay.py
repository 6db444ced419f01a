"""Live attention heat overlay: recolour a VTK colour array in place.

The geometry (points, triangles, slice planes) is uploaded once. Each frame
only the colours of the elements whose attention changed are recomputed, in
the numpy view of the VTK array, followed by ``Modified()`` on that array, so
VTK re-sends the colour buffer and nothing else. The heat scale follows the
maximum attention with head-room (``headroom``): a full recolour happens only
when the maximum outgrows the scale, a handful of times per session.
"""
from __future__ import annotations

import numpy as np

from gaze3d.errors import InputError

from .colors import colormap_table


class AttentionOverlay:
    """Blend a heat colour map over base colours, in place.

    Parameters
    ----------
    target : (m, 3) or (m, 4) uint8
        The colour array to write into, usually a numpy view of the VTK array
        that the mapper draws (``vtk_to_numpy``); RGBA targets keep their alpha.
    base : (m, 3) uint8
        Colours without attention (scan colours, label tints).
    vtk_array : vtkDataArray, optional
        The VTK array behind ``target``; ``Modified()`` is called on it after
        each change.
    element_index : (m,) int, optional
        For each coloured element, its index in the flattened attention array
        (volume slice planes show a subset of the voxels). None: identity.
    cmap : str
        Matplotlib colour map of the heat.
    threshold : float
        Relative attention below which an element keeps its base colour.
    max_alpha, gamma : float
        Heat opacity ``max_alpha * level ** gamma`` at relative level ``level``.
    headroom : float
        The scale jumps to ``headroom * max`` when the maximum outgrows it.

    Notes
    -----
    Not thread-safe: call from the thread that renders.
    """

    def __init__(self, target: np.ndarray, base: np.ndarray, vtk_array=None, element_index=None,
                 cmap: str = "inferno", threshold: float = 0.03, max_alpha: float = 0.95,
                 gamma: float = 0.5, headroom: float = 1.5):
        if target.dtype != np.uint8 or target.ndim != 2 or target.shape[1] not in (3, 4):
            raise InputError(f"overlay target: expected an (m, 3|4) uint8 array, got {target.shape} {target.dtype}")
        if base.shape[0] != target.shape[0]:
            raise InputError(f"overlay base: expected {target.shape[0]} colours, got {base.shape[0]}")
        if headroom < 1.0:
            raise InputError(f"headroom: expected >= 1, got {headroom}")
        self.target = target
        # base colours in the target's layout (RGBA: opaque), so a reset is one memcpy
        self.base = np.full(target.shape, 255, dtype=np.uint8)
        self.base[:, :3] = base[:, :3]
        self.vtk_array = vtk_array
        self.element_index = None if element_index is None else np.asarray(element_index, dtype=np.int64)
        self.headroom = float(headroom)
        level = np.linspace(0.0, 1.0, 256)
        alpha = np.where(level >= threshold, max_alpha * level ** gamma, 0.0)
        self._alpha = np.round(alpha * 256).astype(np.uint16)                       # (256,)
        self._min_visible = float(np.argmax(self._alpha > 0)) / 255.0   # lowest level with any heat
        self._heat = colormap_table(cmap, 256, low=0.2).astype(np.uint16)           # (256, 3)
        self._weighted_heat = self._heat * self._alpha[:, None]                     # (256, 3)
        self._last = np.zeros(len(target), dtype=np.float32)
        self.scale = 0.0
        self.target[...] = self.base
        self._modified()

    def __len__(self) -> int:
        return len(self.target)

    def _modified(self) -> None:
        if self.vtk_array is not None:
            self.vtk_array.Modified()

    def _gather(self, values) -> np.ndarray:
        v = np.asarray(values)
        if self.element_index is not None:
            v = v.reshape(-1)[self.element_index]
        elif v.shape[0] != len(self.target) or v.ndim != 1:
            raise InputError(f"attention values: expected shape ({len(self.target)},), got {v.shape}")
        return v.astype(np.float32, copy=False)

    def _recolor(self, idx: np.ndarray | None, v: np.ndarray) -> None:
        if idx is None:
            # full recolour: most elements sit below the heat threshold and keep
            # their base colour, so copy the base and blend only the others
            self.target[...] = self.base
            idx = np.flatnonzero(v >= self._min_visible * self.scale)
            if len(idx) == 0:
                return
        vals = v[idx]
        k = np.clip(vals * (255.0 / self.scale), 0, 255).astype(np.uint8)
        base = self.base[idx, :3]
        a = self._alpha[k][:, None]
        out = (base * (256 - a) + self._weighted_heat[k]) >> 8
        self.target[idx, :3] = out

    def update(self, values, vmax: float | None = None, scale: float | None = None) -> int:
        """Show new attention values; return how many elements were recoloured.

        Parameters
        ----------
        values : (n,) float
            Attention per element (or per voxel, any shape, with ``element_index``).
        vmax : float, optional
            The maximum the heat scale follows (default: the largest value shown).
            A volume passes the maximum over all voxels, so that the slices and
            the heat shown inside the volume share one scale.
        scale : float, optional
            Take this heat scale as it is (another overlay's over the same values:
            a point-budget subset and the whole cloud then show the same colours).
        """
        v = self._gather(values)
        if scale is not None:
            if not (np.isfinite(scale) and scale >= 0):
                raise InputError(f"heat scale: expected a finite value >= 0, got {scale}")
            new_scale = float(scale) != self.scale
        else:
            if vmax is None:
                vmax = float(v.max()) if len(v) else 0.0
            if not np.isfinite(vmax):
                raise InputError("attention values: contain NaN or inf")
            new_scale = vmax > self.scale or (self.scale > 0 and vmax == 0.0)
        if new_scale:
            self.scale = float(scale) if scale is not None else (vmax * self.headroom if vmax > 0 else 0.0)
            self._last[:] = v
            if self.scale == 0.0:
                self.target[...] = self.base
            else:
                self._recolor(None, v)
            self._modified()
            return len(v)
        if self.scale == 0.0:          # a given zero scale: no heat drawn, only remembered
            self._last[:] = v
            return 0
        idx = np.flatnonzero(v != self._last)
        if len(idx) == 0:
            return 0
        self._last[idx] = v[idx]
        self._recolor(idx, v)
        self._modified()
        return len(idx)

    def set_base(self, base: np.ndarray, idx=None) -> None:
        """Replace base colours (all, or those of elements ``idx``) and redraw them."""
        if idx is None:
            self.base[:, :3] = base[:, :3]
            idx_arr = None
        else:
            idx_arr = np.asarray(idx, dtype=np.int64)
            self.base[idx_arr, :3] = base[:, :3]
        if self.scale > 0:
            if idx_arr is not None:
                self.target[idx_arr] = self.base[idx_arr]
            self._recolor(idx_arr, self._last)
        elif idx_arr is None:
            self.target[...] = self.base
        else:
            self.target[idx_arr] = self.base[idx_arr]
        self._modified()

    def clear(self) -> None:
        """Forget all attention: back to the base colours."""
        self._last[:] = 0.0
        self.scale = 0.0
        self.target[...] = self.base
        self._modified()
