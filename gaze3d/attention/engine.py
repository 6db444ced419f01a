"""The attention engine interface, the engine for a scan, and the options a caller passes.

An engine turns gaze rays seen through one camera into attention on the
scan's elements (points, vertices, voxels). :class:`AttentionAccumulator`
drives it: it decides *which* samples count (fixations, dwell) and the engine
decides *where* their attention lands (what is visible, the foveal weight).
Three engines implement :class:`AttentionEngine`: point clouds
(:class:`~.pointcloud.PointCloudEngine`), meshes (:class:`~.mesh.MeshEngine`)
and volumes (:class:`~.volume.VolumeEngine`); :func:`make_engine` picks one.

:class:`AttentionOptions` is what the command line, the viewer and the batch
runner hand to :class:`~.accumulator.AttentionAccumulator` (typed, checked
once), instead of a loose dict of keyword arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Mapping, Optional, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError


@runtime_checkable
class AttentionEngine(Protocol):
    """What an attention engine provides (the accumulator calls nothing else).

    Attributes
    ----------
    n : int
        Elements (points, vertices or voxels).
    deposit_rows : bool
        True when :meth:`deposit` accepts ``use=`` (a boolean row mask over the
        rays the frame was built for), so it can reuse the frame's visibility
        for a sub-run of those rays; False: the caller passes the sub-arrays.

    Optional: ``journal_start()``, ``journal_take() -> (index (k,) int64, attention
    (k,) float32)`` and ``journal_stop()`` (point clouds, meshes, volumes): what the deposits
    since the start added, so that a fixation's record costs the elements it touched;
    without them the accumulator differences whole :meth:`values` arrays.
    """

    n: int
    deposit_rows: bool

    def frame(self, camera, directions: np.ndarray) -> Any:
        """A handle on what ``camera`` sees, built for the rays ``directions (s, 3)`` (unit, world)."""

    def hit_points(self, handle, directions: np.ndarray, origins=None) -> np.ndarray:
        """``(s, 3)`` world point each ray meets first (NaN where none), for object-space velocity."""

    def deposit(self, handle, directions: np.ndarray, weights: np.ndarray, origins=None, **kw) -> None:
        """Add each ray's foveal attention times ``weights (s,)`` (dwell, seconds) to the visible elements."""

    def values(self) -> np.ndarray:
        """float32 attention so far: ``(n,)`` per point / vertex in the scan's order, ``(I, J, K)`` for a volume."""

    def reset(self) -> None:
        """Zero the attention (caches of camera frames may stay)."""


def make_engine(scan, foveal, **options) -> AttentionEngine:
    """The engine for ``scan`` (PointCloud, Mesh, Volume or an ``(n, 3)`` array of points).

    ``options`` go to the engine's constructor (see each engine's parameters).
    """
    from ..scan import Mesh, PointCloud, Volume

    if isinstance(scan, np.ndarray):
        scan = PointCloud(scan)
    if isinstance(scan, PointCloud):
        from .pointcloud import PointCloudEngine
        return PointCloudEngine(scan.xyz, foveal, **options)
    if isinstance(scan, Mesh):
        from .mesh import MeshEngine
        return MeshEngine(scan, foveal, **options)
    if isinstance(scan, Volume):
        from .volume import VolumeEngine
        return VolumeEngine(scan, foveal, **options)
    raise InputError(f"AttentionAccumulator scan: expected a PointCloud, Mesh or Volume, got {type(scan).__name__}")


#: ranges beyond "positive": a foveal sigma under a thousandth of a degree divides by ~0 (a float
#: underflow), and splats wider than 100 px allocate windows of (2 x half)^2 pixels per point
_OPTION_RANGE = {"sigma_deg": (1e-3, 90.0), "point_size": (0.0, 100.0)}


@dataclass(frozen=True)
class AttentionOptions:
    """How attention is accumulated: the options ``gaze3d attention`` and ``gaze3d view`` share.

    Parameters
    ----------
    sigma_deg : float
        Foveal Gaussian sigma, visual degrees (1.0).
    fixations_only : bool
        Count fixation samples only (True).
    method : str
        Online fixation classifier (``ivt``; see :mod:`gaze3d.events`).
    method_params : mapping
        Overrides of the classifier's defaults.
    visual_deg_per_camera_deg : float
        Visual degrees per degree of the viewer camera (1.0).
    point_size : float, optional
        Point clouds: splat size in pixels, as drawn (None: the engine's default, 3).
    engine : mapping
        Further engine options (e.g. a volume's ``mode``, ``opacity``,
        ``reference_step_mm``; a point cloud's ``depth_tolerance``).
    """

    sigma_deg: float = 1.0
    fixations_only: bool = True
    method: str = "ivt"
    method_params: Mapping[str, float] = field(default_factory=dict)
    visual_deg_per_camera_deg: float = 1.0
    point_size: Optional[float] = None
    engine: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("sigma_deg", "visual_deg_per_camera_deg") + (("point_size",) if self.point_size is not None
                                                                    else ()):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v) and v > 0):
                raise InputError(f"attention {name}: expected a positive number, got {v!r}")
            low, high = _OPTION_RANGE.get(name, (0.0, np.inf))
            if not low <= v <= high:
                raise InputError(f"attention {name}: expected a value in [{low:g}, {high:g}], got {v!r}")

    @classmethod
    def coerce(cls, options) -> "AttentionOptions":
        """``AttentionOptions`` as is; a dict of :class:`AttentionAccumulator` keyword arguments sorted into
        the fields (unknown keys go to ``engine``); None: the defaults."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if not isinstance(options, Mapping):
            raise InputError(f"attention options: expected AttentionOptions or a dict, got {type(options).__name__}")
        names = {f.name for f in fields(cls)} - {"engine"}
        engine = dict(options.get("engine") or {})
        engine.update({k: v for k, v in options.items() if k not in names and k != "engine"})
        return cls(**{k: v for k, v in options.items() if k in names}, engine=engine)

    def with_engine(self, **engine) -> "AttentionOptions":
        """A copy with more engine options; those already set win (a caller's choice beats a default)."""
        return replace(self, engine={**engine, **dict(self.engine)})

    def accumulator_kwargs(self, scan) -> Dict[str, Any]:
        """Keyword arguments of :class:`~.accumulator.AttentionAccumulator` for ``scan``."""
        from ..scan import PointCloud

        kw: Dict[str, Any] = dict(sigma_deg=float(self.sigma_deg), fixations_only=bool(self.fixations_only),
                                  method=self.method, method_params=dict(self.method_params),
                                  visual_deg_per_camera_deg=float(self.visual_deg_per_camera_deg))
        engine = dict(self.engine)
        if self.point_size is not None and isinstance(scan, (PointCloud, np.ndarray)):
            engine.setdefault("point_size", float(self.point_size))
        kw.update(engine)
        return kw
