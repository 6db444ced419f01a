"""Actors for scans: point clouds, meshes, and volumes (three slices + volume rendering).

A :class:`Scene` owns the VTK geometry of one scan in a plotter, its colour
array (drawn as direct RGB, recoloured in place by the
:class:`~gaze3d.viewer.overlay.AttentionOverlay`), and the shift between the
scan's world frame and the render frame: airborne LiDAR coordinates (~6.6e6 m)
are rendered relative to ``offset`` because OpenGL works in float32.
Cameras leave the scene in world coordinates (:meth:`Scene.camera`).
"""
from __future__ import annotations

import numpy as np

from gaze3d.camera import Camera
from gaze3d.errors import InputError
from gaze3d.scan import Mesh, PointCloud, Volume

from ._vtk import pv, vtkPiecewiseFunction, vtk_to_numpy
from .colors import auto_window, base_colors, grey_window, looks_like_ct, tint_labels
from .lod import N_EXTREMES, nested_order
from .overlay import AttentionOverlay

COLOR_ARRAY = "gaze3d_rgb"


def _render_offset(xyz: np.ndarray) -> np.ndarray:
    """A round shift near the centre: keeps render coordinates small for float32."""
    c = 0.5 * (xyz.min(axis=0) + xyz.max(axis=0))
    return np.round(c)


def _slice_planes(volume: Volume, index_ijk) -> tuple[pv.PolyData, np.ndarray]:
    """Three orthogonal planes through voxel ``index_ijk`` as one quad mesh.

    Returns
    -------
    planes : pyvista.PolyData
        Vertices at voxel centres (LPS mm), quads between neighbours.
    element_index : (m,) int64
        Flat (C-order) voxel index of each vertex.
    """
    shape = volume.shape
    pts, faces, idx = [], [], []
    start = 0
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        na, nb = shape[others[0]], shape[others[1]]
        a, b = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
        ijk = np.zeros((na * nb, 3), dtype=np.int64)
        ijk[:, axis] = int(index_ijk[axis])
        ijk[:, others[0]] = a.ravel()
        ijk[:, others[1]] = b.ravel()
        pts.append(volume.index_to_world(ijk))
        idx.append(np.ravel_multi_index(ijk.T, shape))
        if na > 1 and nb > 1:
            g = np.arange(na * nb).reshape(na, nb) + start
            q = np.stack([g[:-1, :-1], g[1:, :-1], g[1:, 1:], g[:-1, 1:]], axis=-1).reshape(-1, 4)
            faces.append(np.c_[np.full(len(q), 4), q].ravel())
        start += na * nb
    faces_arr = np.concatenate(faces) if faces else np.zeros(0, dtype=np.int64)
    return pv.PolyData(np.concatenate(pts), faces=faces_arr), np.concatenate(idx)


_AXES = "xyz"


def choose_up(scan) -> tuple:
    """``(up (3,) unit vector, why)``: which way is up in ``scan``, from its convention or its data.

    * volumes: superior (LPS ``+z``); LAS/LAZ clouds: ``+z`` (geographic);
    * a flat scene (one extent under 35 % of the largest: terrain, a floor
      plan): its thin axis, pointing away from the side with the wider support;
    * an object: the side it rests on, i.e. the axis and sign whose lowest 3 %
      slab of points spreads widest across the other two axes (the Stanford
      bunny sits on its base at ``-y``: ``+y`` up); ``+z`` wins ties (within 25 %).
    """
    if isinstance(scan, Volume):
        return np.array([0.0, 0.0, 1.0]), "volume: superior (+z, LPS)"
    if isinstance(scan, PointCloud) and scan.las_source is not None:
        return np.array([0.0, 0.0, 1.0]), "LAS: +z (geographic convention)"
    xyz = scan.xyz if isinstance(scan, PointCloud) else scan.vertices
    if len(xyz) > 200_000:                      # the support test needs the shape, not every point
        xyz = xyz[np.linspace(0, len(xyz) - 1, 200_000).astype(np.int64)]
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    ext = hi - lo
    if not np.all(ext > 0):
        return np.array([0.0, 0.0, 1.0]), "+z (default: the data is flat in an axis)"

    def support(axis: int, sign: float) -> float:
        c = xyz[:, axis] * sign
        slab = xyz[c <= c.min() + 0.03 * ext[axis]]
        others = [i for i in range(3) if i != axis]
        if len(slab) < 3:
            return 0.0
        spread = np.sqrt(np.prod(slab[:, others].std(axis=0)))
        return float(spread / np.sqrt(np.prod(xyz[:, others].std(axis=0))))

    thin = int(np.argmin(ext))
    if ext[thin] < 0.35 * ext.max():
        sign = 1.0 if support(thin, 1.0) >= support(thin, -1.0) else -1.0
        up = np.zeros(3)
        up[thin] = sign
        return up, f"{'+' if sign > 0 else '-'}{_AXES[thin]} (from the data: the thin axis of a flat scene)"
    scores = {(a, s): support(a, s) * (1.25 if (a, s) == (2, 1.0) else 1.0) for a in range(3) for s in (1.0, -1.0)}
    (axis, sign), _ = max(scores.items(), key=lambda kv: kv[1])
    up = np.zeros(3)
    up[axis] = sign
    return up, (f"{'+' if sign > 0 else '-'}{_AXES[axis]} (from the data: it rests on its "
                f"{'-' if sign > 0 else '+'}{_AXES[axis]} side)")


def volume_image(volume: Volume, values=None) -> "pv.ImageData":
    """A ``pyvista.ImageData`` on the volume's grid (origin, spacing, direction) with point scalars."""
    grid = pv.ImageData(dimensions=volume.shape, spacing=volume.spacing, origin=volume.origin)
    grid.direction_matrix = volume.direction
    arr = volume.array if values is None else values
    grid.point_data["values"] = np.asarray(arr, dtype=np.float32).ravel(order="F")
    return grid


def _rgba(rgb: np.ndarray) -> np.ndarray:
    """(m, 4) uint8 with opaque alpha: VTK draws 4-component uint8 colours without converting them."""
    out = np.full((len(rgb), 4), 255, dtype=np.uint8)
    out[:, :3] = rgb
    return out


class _View:
    """One drawn version of a cloud: the whole of it, or the point budget's subset.

    ``index`` (m,) int64: the elements it draws (None: all, in order). A view
    that is not drawn keeps ``pending`` base changes (True: all; else a list of
    element index arrays) and ``heat_stale`` until it is drawn again.
    """

    def __init__(self, actor, overlay, index=None, dataset=None):
        self.actor = actor
        self.overlay = overlay
        self.index = index
        self.dataset = dataset
        self.pending = None
        self.heat_stale = False

    def note_base(self, changed) -> None:
        if changed is None or self.pending is True:
            self.pending = True
        else:
            self.pending = (self.pending or []) + [np.asarray(changed, dtype=np.int64)]


class Scene:
    """One scan in a plotter, with an in-place recoloured overlay.

    Parameters
    ----------
    plotter : pyvista.Plotter
    scan : PointCloud, Mesh or Volume
    point_size : float
        Point size in pixels (point clouds).
    labels : (n,) int, optional
        Initial labels per element (defaults to ``scan.labels``).
    volume_render : bool
        Volumes: add a volume rendering beside the slices.
    cmap : str
        Heat colour map of the overlay.

    Attributes
    ----------
    offset : (3,) float64
        World = render coordinates + offset.
    n_elements : int
        Points, vertices or voxels: the length of attention and label arrays.
    """

    def __init__(self, plotter, scan, point_size: float = 3.0, labels=None, volume_render: bool = True,
                 cmap: str = "inferno", show_edges: bool = False):
        if not isinstance(scan, (PointCloud, Mesh, Volume)):
            raise InputError(f"scan: expected a PointCloud, Mesh or Volume, got {type(scan).__name__}")
        self.plotter = plotter
        self.scan = scan
        self.cmap = cmap
        self.volume_actor = None
        self.heat_actor = None          # volumes: heat of the voxels off the slice planes
        self._attention = None          # volumes: the attention last shown, per voxel
        self._opacity = None
        self._plain = None              # clouds, meshes: colours without labels, kept for relabelling
        self.label_colors = None        # (k, 3) uint8 colour per label id, from the label set
        if labels is None and scan.labels is not None:
            labels = scan.labels
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int32).copy()
        # the labels the file came with (a classified LAS): tinted only on request when the scan has its
        # own colours, which are the truth the annotator should see; labels made in the viewer always show
        self.file_labels = None if self.labels is None else self.labels.reshape(-1).copy()
        self.class_tint = isinstance(scan, Volume) or getattr(scan, "colors", None) is None
        if isinstance(scan, Volume):
            self.kind = "volume"
            self.offset = np.zeros(3)
            self.n_elements = int(np.prod(scan.shape))
            self.window = auto_window(scan.array)
            self.slice_index = [s // 2 for s in scan.shape]
            self.dataset, self.element_index = _slice_planes(scan, self.slice_index)
        else:
            xyz = scan.xyz if isinstance(scan, PointCloud) else scan.vertices
            self.kind = "cloud" if isinstance(scan, PointCloud) else "mesh"
            self.offset = _render_offset(xyz)
            self.n_elements = len(xyz)
            self.element_index = None
            if self.kind == "cloud":
                self.dataset = pv.PolyData(xyz - self.offset)
            else:
                faces = np.c_[np.full(len(scan.faces), 3), scan.faces].ravel()
                self.dataset = pv.PolyData(xyz - self.offset, faces=faces)
        base = self._base_colors()
        self.dataset.point_data[COLOR_ARRAY] = _rgba(base)
        vtk_arr = self.dataset.GetPointData().GetArray(COLOR_ARRAY)
        self.overlay = AttentionOverlay(vtk_to_numpy(vtk_arr), base, vtk_array=vtk_arr,
                                        element_index=self.element_index, cmap=cmap)
        kw = dict(scalars=COLOR_ARRAY, rgb=True, show_scalar_bar=False, reset_camera=False)
        if self.kind == "cloud":
            kw.update(style="points", point_size=point_size, render_points_as_spheres=False,
                      lighting=False)
        elif self.kind == "mesh":
            kw.update(smooth_shading=True, show_edges=show_edges)
        else:
            kw.update(lighting=False)
        self._actor_kw = kw
        self.actor = plotter.add_mesh(self.dataset, **kw)
        self._full = _View(self.actor, self.overlay)
        self._budget = None             # clouds: the _View of the point budget's subset, when there is one
        self._order = None              # clouds: lod.nested_order of the points, computed on first use
        self._shown = self._full        # the view drawn now
        self._values = None             # the attention last given (a view not drawn catches up from it)
        if self.kind == "volume" and volume_render:
            self._add_volume_render()

    # ------------------------------------------------------------- colours
    def _base_colors(self) -> np.ndarray:
        if self.kind == "volume":
            vals = self.scan.array.reshape(-1)[self.element_index]
            rgb = grey_window(vals, *self.window)
            if self.labels is not None:
                rgb = tint_labels(rgb, self.labels.reshape(-1)[self.element_index], strength=0.55,
                                  table=self.label_colors)
            return rgb
        if self._plain is None:
            self._plain = base_colors(self.scan)
        return self._plain if self.labels is None else tint_labels(self._plain, self._tinted(self.labels),
                                                                    table=self.label_colors)

    def _tinted(self, labels: np.ndarray, idx=None) -> np.ndarray:
        """The labels to tint: all of them, or (class tint off) those that differ from the file's."""
        if self.class_tint or self.file_labels is None:
            return labels
        file = self.file_labels if idx is None else self.file_labels[idx]
        return np.where(labels != file, labels, 0)

    def _colors_of(self, ids: np.ndarray) -> np.ndarray:
        """(k, 3) uint8 base colours of clouds' / meshes' elements ``ids`` (labels tinted as shown)."""
        rgb = self._plain[ids]
        if self.labels is not None:
            rgb = tint_labels(rgb, self._tinted(self.labels[ids], ids), table=self.label_colors)
        return rgb

    def _set_base(self, changed=None) -> None:
        """New base colours (all, or elements ``changed``) in the drawn view; the others catch up when drawn."""
        if self.kind == "volume":
            self.overlay.set_base(self._base_colors())
            return
        for view in self._views():
            if view is self._shown:
                self._apply_base(view, changed)
            else:
                view.note_base(changed)

    def _apply_base(self, view: "_View", changed) -> None:
        if changed is None:
            view.overlay.set_base(self._base_colors() if view.index is None else self._colors_of(view.index))
            return
        changed = np.asarray(changed, dtype=np.int64)
        if view.index is not None:           # the subset's own positions of the changed elements it draws
            pos = self._rank[changed]
            keep = pos < len(view.index)
            changed, pos = changed[keep], pos[keep]
        else:
            pos = changed
        if len(changed):
            view.overlay.set_base(self._colors_of(changed), pos)

    def set_class_tint(self, on: bool) -> None:
        """Tint every labelled element (on), or only those labelled in the viewer (off: the scan's colours)."""
        self.class_tint = bool(on)
        self._set_base()

    def set_labels(self, labels, changed=None) -> None:
        """Show new labels per element; ``changed`` (indices into the scan's elements) limits the work."""
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int32)
        if changed is not None and len(changed) == 0:
            return
        if self.kind == "volume":
            changed = None
        self._set_base(changed)

    def update_attention(self, values) -> int:
        """Recolour in place from attention values (one per element); returns elements recoloured.

        Clouds with a point budget recolour only the points drawn now (the other
        view catches up when it is drawn, on the same heat scale). Volumes: the
        slice planes show the attention of their voxels, and the heat layer
        (:meth:`update_volume_heat`) the attention of the voxels the planes do
        not show, on the same scale.
        """
        if self.kind != "volume":
            v = np.asarray(values).reshape(-1)
            self._values = v
            if self._budget is None:
                return self.overlay.update(v)
            other = self._budget if self._shown is self._full else self._full
            other.heat_stale = True
            # both views follow the whole cloud's maximum: one heat scale for both
            return self._shown.overlay.update(v, vmax=float(v.max()) if len(v) else 0.0)
        v = np.asarray(values).reshape(-1)
        n = self.overlay.update(v, vmax=float(v.max()) if len(v) else 0.0)
        self._attention = v          # for the heat layer when the planes are shown or hidden
        self.update_volume_heat(v)
        return n

    def clear_attention(self) -> None:
        """Back to the scan's colours: no heat on the elements, none inside a volume."""
        for view in self._views():
            view.overlay.clear()
            view.heat_stale = False
        self._values = None
        self._attention = None
        if self.heat_actor is not None:
            self.heat_actor.SetVisibility(False)

    # Heat inside a volume: voxels at or above this fraction of the heat scale,
    # at most this many (the highest), drawn as heat-coloured points.
    HEAT_LEVEL = 0.08
    HEAT_MAX_POINTS = 200_000

    def update_volume_heat(self, values) -> int:
        """Show the attention of voxels off the visible slice planes as heat points.

        Attention from the volume rendering or MIP sits at the depth of what
        was seen, mostly off the three planes; with the planes hidden it is all
        off-plane. Each such voxel at or above :attr:`HEAT_LEVEL` of the heat
        scale is drawn as a point in the overlay's colour map, where the volume
        rendering draws it (points are opaque geometry: the rendering in front
        of them still covers them as much as it covers the tissue there).

        Parameters
        ----------
        values : (I*J*K,) float
            Attention per voxel (C order).

        Returns
        -------
        int
            Voxels drawn.
        """
        if self.kind != "volume":
            raise InputError("update_volume_heat: only volumes have a heat layer")
        v = np.asarray(values, dtype=np.float32).reshape(-1)
        scale = self.overlay.scale
        idx = np.flatnonzero(v >= self.HEAT_LEVEL * scale) if scale > 0 else np.zeros(0, np.int64)
        ijk = np.column_stack(np.unravel_index(idx, self.scan.shape))
        if len(idx) and self.actor.GetVisibility():
            # the slice overlay already shows the voxels on the three planes (no per-frame
            # mask over the whole grid: a voxel is on a plane where one index is the slice's)
            off = ~np.any(ijk == np.asarray(self.slice_index), axis=1)
            idx, ijk = idx[off], ijk[off]
        if len(idx) > self.HEAT_MAX_POINTS:
            top = np.argpartition(v[idx], -self.HEAT_MAX_POINTS)[-self.HEAT_MAX_POINTS:]
            idx, ijk = idx[top], ijk[top]
        if len(idx) == 0:
            if self.heat_actor is not None:
                self.heat_actor.SetVisibility(False)
            return 0
        # the overlay's colour for each level: the colour bar reads the same for both
        level = np.clip(v[idx] / scale * 255.0, 0, 255).astype(np.uint8)
        cloud = pv.PolyData(self.scan.index_to_world(ijk))
        cloud.point_data[COLOR_ARRAY] = _rgba(self.overlay._heat[level].astype(np.uint8))
        if self.heat_actor is None:
            self._heat_cloud = cloud
            size = max(3.0, min(10.0, 900.0 / max(self.scan.shape)))    # about a voxel across
            self.heat_actor = self.plotter.add_mesh(
                self._heat_cloud, scalars=COLOR_ARRAY, rgb=True, show_scalar_bar=False,
                reset_camera=False, style="points", point_size=size, lighting=False)
        else:
            self._heat_cloud.copy_from(cloud)
        self.heat_actor.SetVisibility(True)
        return len(idx)

    # -------------------------------------------------------------- volume
    def _add_volume_render(self) -> None:
        grid = volume_image(self.scan)
        level, width = self.window
        self.volume_actor = self.plotter.add_volume(
            grid, scalars="values", cmap="bone", clim=self._volume_clim(),
            show_scalar_bar=False, reset_camera=False)
        self._opacity = vtkPiecewiseFunction()
        self.volume_actor.GetProperty().SetScalarOpacity(self._opacity)
        if looks_like_ct(self.scan.array):
            self.set_transfer_function(220.0, 240.0, 0.8)       # contrast and bone over soft tissue
        else:
            hi = float(np.percentile(self.scan.array[::2, ::2, ::2], 99.5))
            self.set_transfer_function(0.5 * (level + hi), max(hi - level, 1e-6), 0.08)   # slices show through

    def opacity_points(self) -> np.ndarray:
        """(2, m) float64: the volume rendering's opacity transfer function as (values, alphas)."""
        if self._opacity is None:
            raise InputError("opacity_points: this scene has no volume rendering")
        pts = []
        for i in range(self._opacity.GetSize()):
            node = [0.0] * 4                     # x, alpha, midpoint, sharpness
            self._opacity.GetNodeValue(i, node)
            pts.append(node[:2])
        return np.array(pts, dtype=np.float64).T

    @property
    def opacity_unit_distance(self) -> float:
        """World distance (mm) the volume rendering's opacities are defined for."""
        return float(self.volume_actor.GetProperty().GetScalarOpacityUnitDistance())

    def _volume_clim(self) -> tuple:
        if looks_like_ct(self.scan.array):
            return (-100.0, 600.0)
        a = self.scan.array[::2, ::2, ::2]
        return float(np.percentile(a, 50)), float(np.percentile(a, 99.9))

    def set_transfer_function(self, level: float, width: float, max_opacity: float = 0.25) -> None:
        """Volume rendering opacity: a ramp from 0 at ``level - width/2`` to ``max_opacity`` at ``level + width/2``."""
        if self._opacity is None:
            raise InputError("set_transfer_function: this scene has no volume rendering")
        if not width > 0 or not 0 < max_opacity <= 1:
            raise InputError(f"transfer function: expected width > 0 and 0 < max_opacity <= 1, "
                             f"got width={width}, max_opacity={max_opacity}")
        self.transfer = (float(level), float(width), float(max_opacity))
        self._opacity.RemoveAllPoints()
        lo, hi = level - width / 2.0, level + width / 2.0
        vmin, vmax = float(self.scan.array.min()), float(self.scan.array.max())
        self._opacity.AddPoint(min(vmin, lo - 1), 0.0)
        self._opacity.AddPoint(lo, 0.0)
        self._opacity.AddPoint(hi, max_opacity)
        self._opacity.AddPoint(max(vmax, hi + 1), max_opacity)

    def show_slices(self, visible: bool) -> None:
        """Show or hide the slice planes (volumes; the volume rendering stays).

        The heat layer then covers what the planes no longer show.
        """
        self.actor.SetVisibility(bool(visible))
        if self.kind == "volume" and self._attention is not None:
            self.update_volume_heat(self._attention)

    def set_slices(self, index_ijk) -> None:
        """Move the three slice planes to voxel ``index_ijk`` (rebuilds the planes: a rare action)."""
        if self.kind != "volume":
            raise InputError("set_slices: only volumes have slice planes")
        index = [int(np.clip(i, 0, s - 1)) for i, s in zip(index_ijk, self.scan.shape)]
        planes, element_index = _slice_planes(self.scan, index)
        self.slice_index = index
        self.element_index = element_index
        self.dataset.copy_from(planes)
        base = self._base_colors()
        self.dataset.point_data[COLOR_ARRAY] = _rgba(base)
        vtk_arr = self.dataset.GetPointData().GetArray(COLOR_ARRAY)
        last = self.overlay._last
        self.overlay = AttentionOverlay(vtk_to_numpy(vtk_arr), base, vtk_array=vtk_arr,
                                        element_index=element_index, cmap=self.cmap)
        self._full.overlay = self.overlay
        del last

    # ----------------------------------------------------- level of detail
    def _views(self) -> list:
        return [self._full] if self._budget is None else [self._full, self._budget]

    @property
    def drawn_points(self) -> int:
        """Points (vertices, voxels on the planes) drawn now: the budget's while it is shown."""
        return len(self._shown.overlay)

    @property
    def budget_shown(self) -> bool:
        """Whether the point budget's subset is drawn now in place of the whole cloud."""
        return self._budget is not None and self._shown is self._budget

    @property
    def point_budget(self) -> int:
        """Points of the budget subset (``n_elements`` without one)."""
        return self.n_elements if self._budget is None else len(self._budget.index)

    @property
    def drawn_index(self) -> np.ndarray:
        """(m,) int64: the elements drawn now, in the order of the drawn colour array."""
        idx = self._shown.index
        return np.arange(self.n_elements) if idx is None else idx

    def drawn_colors(self) -> np.ndarray:
        """(m, 3) uint8: the colours drawn now (heat over base), one row per :attr:`drawn_index`."""
        return np.array(self._shown.overlay.target[:, :3])

    def set_point_budget(self, m: int) -> bool:
        """Draw ``m`` points of the cloud while interacting (``m >= n_elements`` or 0: no budget).

        The subset is the first ``m`` points of :func:`~gaze3d.viewer.lod.nested_order`
        (spatially even, nested: a smaller budget is a prefix of a larger one),
        with its own colour array and overlay. Clouds only. Returns whether the
        subset changed. What the budget draws is shown with :meth:`show_budget`.
        """
        if self.kind != "cloud":
            return False
        # at least the extreme points, or the subset's bounds (the camera's clipping range) would differ
        m = max(int(m), N_EXTREMES) if int(m) > 0 else 0
        if m <= 0 or m >= self.n_elements:
            if self._budget is None:
                return False
            self.show_budget(False)
            self.plotter.remove_actor(self._budget.actor, render=False)
            self._budget = None
            return True
        if self._budget is not None and len(self._budget.index) == m:
            return False
        if self._order is None:
            self._order = nested_order(self.scan.xyz)
            self._rank = np.empty(self.n_elements, dtype=np.int64)
            self._rank[self._order] = np.arange(self.n_elements)
        idx = self._order[:m]
        # the same render coordinates as the whole cloud's (the subset holds its extreme points:
        # the same bounds, so the camera's clipping range does not depend on what is drawn)
        data = pv.PolyData(np.asarray(self.dataset.points)[idx])
        base = self._colors_of(idx)
        data.point_data[COLOR_ARRAY] = _rgba(base)
        arr = data.GetPointData().GetArray(COLOR_ARRAY)
        overlay = AttentionOverlay(vtk_to_numpy(arr), base, vtk_array=arr, element_index=idx, cmap=self.cmap)
        visible = self.budget_shown
        old = self._budget
        actor = self.plotter.add_mesh(data, **self._actor_kw)
        self._budget = _View(actor, overlay, idx, data)
        if old is not None:
            self.plotter.remove_actor(old.actor, render=False)
        self._budget.heat_stale = self._values is not None
        if visible:
            self._shown = self._budget
            self._sync(self._budget, old)
        else:
            actor.SetVisibility(False)
        return True

    def show_budget(self, on: bool) -> None:
        """Draw the budget subset (on: interactive frames) or the whole cloud (off: still frames).

        The view about to be drawn first catches up with the labels, tint and
        heat it missed (same base colours, same heat scale as the other).
        """
        want = self._budget if (on and self._budget is not None) else self._full
        if want is self._shown:
            return
        self._sync(want, self._shown)
        want.actor.SetVisibility(True)
        self._shown.actor.SetVisibility(False)
        self._shown = want

    def _sync(self, view: "_View", ref: "_View") -> None:
        if view.pending is not None:
            pending, view.pending = view.pending, None
            self._apply_base(view, None if pending is True else np.unique(np.concatenate(pending)))
        if view.heat_stale and self._values is not None:
            view.overlay.update(self._values, scale=ref.overlay.scale)
        view.heat_stale = False

    # -------------------------------------------------------------- camera
    def camera(self) -> Camera:
        """The plotter's current camera in world coordinates."""
        cam = Camera.from_pyvista(self.plotter)
        if not np.any(self.offset):
            return cam
        d = cam.to_dict()
        d["position"] = (cam.position + self.offset).tolist()
        d["focal_point"] = (cam.focal_point + self.offset).tolist()
        return Camera.from_dict(d)

    def set_camera(self, camera: Camera) -> None:
        """Place the plotter's camera at a world-coordinate :class:`~gaze3d.camera.Camera`."""
        vc = self.plotter.renderer.GetActiveCamera()
        vc.SetPosition(*(camera.position - self.offset))
        vc.SetFocalPoint(*(camera.focal_point - self.offset))
        vc.SetViewUp(*camera.view_up)
        vc.SetViewAngle(camera.vfov_deg)
        vc.SetParallelProjection(camera.is_parallel)
        if camera.is_parallel:
            vc.SetParallelScale(camera.parallel_scale)
        self._camera_placed()

    def default_camera(self, up=None) -> str:
        """A 3/4 view of the whole scan from above (volumes: from the patient's front, head up).

        ``up (3,)``: the scene's up axis; default :func:`choose_up` (the file's
        convention or its data). Returns why that axis is up.
        """
        bounds = np.asarray(self.dataset.bounds).reshape(3, 2)
        why = "given"
        if up is None:
            up, why = choose_up(self.scan)
        up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
        # a right-handed frame (right, forward, up) with up as given: for +z, right = +x, forward = +y
        k = int(np.argmax(np.abs(up)))
        right = np.zeros(3)
        right[(k + 1) % 3] = 1.0
        right -= up * (right @ up)
        right /= np.linalg.norm(right)
        forward = np.cross(up, right)
        if self.kind == "volume":
            b = self.scan.index_to_world(np.array([[0, 0, 0], np.array(self.scan.shape) - 1]))
            bounds = np.sort(b, axis=0).T
            direction = 0.55 * right - 1.0 * forward + 0.45 * up
        else:
            direction = 0.6 * right - 1.0 * forward + 0.8 * up
        center = bounds.mean(axis=1)
        radius = 0.5 * np.linalg.norm(bounds[:, 1] - bounds[:, 0])
        vc = self.plotter.renderer.GetActiveCamera()
        vc.SetFocalPoint(*center)
        vc.SetPosition(*(center + direction / np.linalg.norm(direction) * radius * 3.0))
        vc.SetViewUp(*up)
        vc.SetParallelProjection(False)
        self.plotter.renderer.ResetCamera()
        self._camera_placed()
        return why

    def _camera_placed(self) -> None:
        # tell PyVista the camera is set, or its first render resets it to its default view
        self.plotter.renderer.camera_set = True
        self.plotter.renderer.ResetCameraClippingRange()

