"""Pinhole (and orthographic) viewer camera, world <-> pixel.

Conventions, stated once
------------------------
* Pixel coordinates ``(u, v)`` are continuous, origin at the **top-left**
  corner of the viewport, ``u`` to the right, ``v`` down; pixel ``(i, j)``
  covers ``[i, i+1) x [j, j+1)`` so its centre is at ``(i + 0.5, j + 0.5)``.
* Normalised display coordinates ``(x, y)`` in ``[0, 1]``, origin top-left,
  are pixels divided by ``(width, height)``; eye trackers report gaze this way.
* The camera looks from ``position`` towards ``focal_point``; ``view_up`` is
  made orthogonal to the view direction. ``vfov_deg`` is the full *vertical*
  field of view (VTK's default ``ViewAngle``), pixels are square.
* ``parallel_scale`` set means an orthographic camera whose viewport is
  ``2 * parallel_scale`` world units high (VTK's ``ParallelScale``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from .errors import InputError


def _vector(name: str, value) -> np.ndarray:
    """``value`` as ``(3,)`` finite float64, or a one-line :class:`InputError` naming the camera field."""
    try:
        a = np.asarray(value, dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        a = None
    # plain floats, not numpy's reductions: a camera is built per frame of every replay
    if a is None or not all(map(math.isfinite, a.tolist())):
        raise InputError(f"camera {name}: expected 3 finite numbers, got {value!r:.60}")
    return a


def _scalar(name: str, value) -> float:
    """``value`` as a finite float, or a one-line :class:`InputError` naming the camera field."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        raise InputError(f"camera {name}: expected a finite number, got {value!r:.60}")
    return v


def _unit(v, name: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-12:
        raise InputError(f"camera {name}: expected a non-zero finite vector, got {v.tolist()}")
    return v / n


@dataclass
class Camera:
    """A viewer camera: pose, field of view, viewport size and clipping range.

    Parameters
    ----------
    position : (3,) float64
    focal_point : (3,) float64
    view_up : (3,) float64
    vfov_deg : float
        Full vertical field of view in degrees, in (0, 180).
    width, height : int
        Viewport size in pixels.
    near, far : float
        Clipping distances along the view direction.
    parallel_scale : float, optional
        If set, the camera is orthographic with this half-height in world units.
    """

    position: np.ndarray
    focal_point: np.ndarray
    view_up: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    vfov_deg: float = 30.0
    width: int = 1024
    height: int = 768
    near: float = 0.01
    far: float = 1e6
    parallel_scale: Optional[float] = None

    def __post_init__(self):
        # fields often come from JSON a user wrote: a wrong type is one line naming the field
        self.position = _vector("position", self.position)
        self.focal_point = _vector("focal_point", self.focal_point)
        self.view_up = _vector("view_up", self.view_up)
        for name in ("vfov_deg", "width", "height", "near", "far") + (
                ("parallel_scale",) if self.parallel_scale is not None else ()):
            setattr(self, name, _scalar(name, getattr(self, name)))
        if not (0.0 < float(self.vfov_deg) < 180.0):
            raise InputError(f"camera vfov_deg: expected a value in (0, 180), got {self.vfov_deg}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise InputError(f"camera viewport: expected positive width and height, got {self.width}x{self.height}")
        if not (0 < self.near < self.far):
            raise InputError(f"camera clipping range: expected 0 < near < far, got near={self.near}, far={self.far}")
        if self.parallel_scale is not None and not self.parallel_scale > 0:
            raise InputError(f"camera parallel_scale: expected > 0, got {self.parallel_scale}")
        self.vfov_deg = float(self.vfov_deg)
        self.width, self.height = int(self.width), int(self.height)
        f = _unit(self.focal_point - self.position, "direction (focal_point - position)")
        up = _unit(self.view_up, "view_up")
        r = np.cross(f, up)
        if np.linalg.norm(r) < 1e-9:
            raise InputError("camera view_up: parallel to the view direction")
        self._right = r / np.linalg.norm(r)
        self._up = np.cross(self._right, f)
        self._forward = f

    # ------------------------------------------------------------------ frame
    @property
    def forward(self) -> np.ndarray:
        """(3,) float64 unit view direction."""
        return self._forward

    @property
    def right(self) -> np.ndarray:
        """(3,) float64 unit vector to the right of the image."""
        return self._right

    @property
    def up(self) -> np.ndarray:
        """(3,) float64 unit vector to the top of the image (orthogonalised view_up)."""
        return self._up

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) float64 world -> camera rotation, rows = right, up, forward."""
        return np.stack([self._right, self._up, self._forward])

    @property
    def aspect(self) -> float:
        return self.width / self.height

    @property
    def focal_px(self) -> float:
        """Focal length in pixels (perspective cameras)."""
        return 0.5 * self.height / np.tan(np.radians(self.vfov_deg) / 2.0)

    @property
    def is_parallel(self) -> bool:
        return self.parallel_scale is not None

    def world_to_camera(self, points) -> np.ndarray:
        """(n, 3) world -> (n, 3) camera coordinates (x right, y up, z = depth forward)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return (p - self.position) @ self.rotation.T

    # -------------------------------------------------------------- project
    def project(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Project world points to pixels.

        Parameters
        ----------
        points : (n, 3) float
            World coordinates.

        Returns
        -------
        pixels : (n, 2) float64
            ``(u, v)``, top-left origin; NaN for points at or behind the camera.
        depth : (n,) float64
            Distance along the view direction (negative behind the camera).
        """
        c = self.world_to_camera(points)
        depth = c[:, 2].copy()
        if self.is_parallel:
            scale = np.full(len(c), 0.5 * self.height / self.parallel_scale)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(depth > 1e-12, self.focal_px / depth, np.nan)
        u = self.width / 2.0 + c[:, 0] * scale
        v = self.height / 2.0 - c[:, 1] * scale
        return np.stack([u, v], axis=1), depth

    def unproject(self, pixels) -> tuple[np.ndarray, np.ndarray]:
        """World rays through pixels.

        Parameters
        ----------
        pixels : (n, 2) float
            ``(u, v)`` pixel coordinates, top-left origin.

        Returns
        -------
        origins : (n, 3) float64
            The camera position (perspective) or the point on the camera plane
            (orthographic).
        directions : (n, 3) float64
            Unit ray directions.
        """
        px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        du = px[:, 0] - self.width / 2.0
        dv = self.height / 2.0 - px[:, 1]
        if self.is_parallel:
            s = self.parallel_scale / (0.5 * self.height)
            origins = self.position + np.outer(du * s, self._right) + np.outer(dv * s, self._up)
            directions = np.repeat(self._forward[None], len(px), axis=0)
            return origins, directions
        d = np.outer(du, self._right) + np.outer(dv, self._up) + self.focal_px * self._forward
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.repeat(self.position[None], len(px), axis=0), d

    def normalized_to_pixels(self, xy) -> np.ndarray:
        """(n, 2) normalised display coordinates (top-left origin) -> (n, 2) pixels."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return xy * np.array([self.width, self.height], dtype=np.float64)

    def pixels_to_normalized(self, pixels) -> np.ndarray:
        """(n, 2) pixels -> (n, 2) normalised display coordinates."""
        px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        return px / np.array([self.width, self.height], dtype=np.float64)

    def pixel_angle_deg(self) -> float:
        """Visual angle of one pixel at the image centre, in degrees of the virtual camera."""
        if self.is_parallel:
            raise InputError("camera: pixel angle is undefined for an orthographic camera")
        return float(np.degrees(np.arctan(1.0 / self.focal_px)))

    # -------------------------------------------------------- constructors
    @classmethod
    def look_at(cls, position, focal_point, view_up=(0, 0, 1), **kw) -> "Camera":
        return cls(position=position, focal_point=focal_point, view_up=view_up, **kw)

    @classmethod
    def from_vtk(cls, vtk_camera, window_size: Sequence[int]) -> "Camera":
        """Build from a ``vtkCamera`` (or ``pyvista.Camera``) and the render window size ``(w, h)``."""
        w, h = int(window_size[0]), int(window_size[1])
        # A shifted window centre or off-axis projection moves the image: project() would be wrong.
        if any(abs(c) > 1e-12 for c in vtk_camera.GetWindowCenter()) or vtk_camera.GetUseOffAxisProjection():
            raise InputError("from_vtk: the VTK camera has a window centre offset or an off-axis "
                             "projection; only centred cameras are supported")
        angle = float(vtk_camera.GetViewAngle())
        if vtk_camera.GetUseHorizontalViewAngle():
            angle = float(np.degrees(2 * np.arctan(np.tan(np.radians(angle) / 2) * h / w)))
        near, far = vtk_camera.GetClippingRange()
        parallel = float(vtk_camera.GetParallelScale()) if vtk_camera.GetParallelProjection() else None
        return cls(position=vtk_camera.GetPosition(), focal_point=vtk_camera.GetFocalPoint(),
                   view_up=vtk_camera.GetViewUp(), vfov_deg=angle, width=w, height=h,
                   near=float(near), far=float(far), parallel_scale=parallel)

    @classmethod
    def from_pyvista(cls, plotter) -> "Camera":
        """Build from a ``pyvista.Plotter`` (its active camera and window size)."""
        return cls.from_vtk(plotter.renderer.GetActiveCamera(), plotter.window_size)

    @classmethod
    def from_open3d(cls, intrinsic, extrinsic, width: int | None = None, height: int | None = None,
                    near: float = 0.01, far: float = 1e6) -> "Camera":
        """Build from an Open3D pinhole camera.

        Parameters
        ----------
        intrinsic : open3d.camera.PinholeCameraIntrinsic or (3, 3) array
            ``K`` in Open3D/OpenCV convention (x right, y down, z forward,
            pixel centres at integer coordinates, so a centred principal
            point is ``((w - 1) / 2, (h - 1) / 2)``). Principal points off
            centre by up to half a pixel are accepted and treated as centred.
        extrinsic : (4, 4) float
            World -> camera transform.
        width, height : int
            Needed when ``intrinsic`` is a plain matrix.
        """
        if hasattr(intrinsic, "intrinsic_matrix"):
            width, height = intrinsic.width, intrinsic.height
            K = np.asarray(intrinsic.intrinsic_matrix, dtype=np.float64)
        else:
            K = np.asarray(intrinsic, dtype=np.float64)
        if width is None or height is None:
            raise InputError("from_open3d: width and height are needed with a plain intrinsic matrix")
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        # OpenCV/Open3D put pixel centres at integers: the image centre is (w-1)/2.
        # A principal point within half a pixel of it is taken as centred.
        if abs(fx - fy) > 1e-3 * fy or abs(cx - (width - 1) / 2) > 0.5 + 1e-9 or \
                abs(cy - (height - 1) / 2) > 0.5 + 1e-9:
            raise InputError(f"from_open3d intrinsic: expected square pixels and a centred principal point, "
                             f"got fx={fx:.3f} fy={fy:.3f} cx={cx:.2f} cy={cy:.2f} for {width}x{height}")
        E = np.asarray(extrinsic, dtype=np.float64)
        R, t = E[:3, :3], E[:3, 3]
        position = -R.T @ t
        forward = R[2]          # camera +z in world
        down = R[1]             # camera +y (image down) in world
        vfov = float(np.degrees(2 * np.arctan(0.5 * height / fy)))
        return cls(position=position, focal_point=position + forward, view_up=-down,
                   vfov_deg=vfov, width=width, height=height, near=near, far=far)

    def to_open3d(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(K (3, 3), extrinsic (4, 4))`` in Open3D's convention.

        Open3D/OpenCV pixel ``(i, j)`` has its centre at integer ``(i, j)``,
        here at ``(i + 0.5, j + 0.5)``: ``K`` shifts the principal point by half
        a pixel, so Open3D's rounded projection lands in the pixel that
        :meth:`project` puts the point in.
        """
        if self.is_parallel:
            raise InputError("camera to_open3d: an orthographic camera has no pinhole intrinsic matrix")
        f = self.focal_px
        K = np.array([[f, 0, (self.width - 1) / 2.0], [0, f, (self.height - 1) / 2.0], [0, 0, 1.0]])
        R = np.stack([self._right, -self._up, self._forward])
        E = np.eye(4)
        E[:3, :3] = R
        E[:3, 3] = -R @ self.position
        return K, E

    def to_dict(self) -> dict:
        """Plain dict (lists and floats) for msgpack/JSON; inverse of :meth:`from_dict`."""
        return {"position": self.position.tolist(), "focal_point": self.focal_point.tolist(),
                "view_up": self.view_up.tolist(), "vfov_deg": self.vfov_deg, "width": self.width,
                "height": self.height, "near": self.near, "far": self.far,
                "parallel_scale": self.parallel_scale}

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        try:
            return cls(position=d["position"], focal_point=d["focal_point"], view_up=d["view_up"],
                       vfov_deg=d["vfov_deg"], width=d["width"], height=d["height"],
                       near=d.get("near", 0.01), far=d.get("far", 1e6),
                       parallel_scale=d.get("parallel_scale"))
        except KeyError as exc:
            raise InputError(f"camera: missing field {exc.args[0]!r}") from None


@dataclass
class CameraPath:
    """A scripted camera trajectory: keyframes interpolated linearly in time.

    Parameters
    ----------
    times : (k,) float64
        Keyframe times in seconds, strictly increasing.
    cameras : list of Camera
        One per keyframe; viewport and field of view are taken from the first.
    """

    times: np.ndarray
    cameras: List[Camera]

    def __post_init__(self):
        try:
            self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"camera path times: expected a list of numbers, got {self.times!r:.60}") from None
        if not np.isfinite(self.times).all():
            raise InputError("camera path times: expected finite numbers")
        if len(self.times) != len(self.cameras) or len(self.times) == 0:
            raise InputError("camera path: expected as many times as cameras (at least one)")
        if np.any(np.diff(self.times) <= 0):
            raise InputError("camera path times: expected strictly increasing values")
        self._pos = np.stack([c.position for c in self.cameras])
        self._foc = np.stack([c.focal_point for c in self.cameras])
        self._up = np.stack([c.up for c in self.cameras])

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0])

    def at(self, t: float) -> Camera:
        """The camera at time ``t`` (clamped to the path's ends)."""
        i = int(np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, len(self.times) - 1))
        if i == len(self.times) - 1:
            a, j = 0.0, i
        else:
            j = i + 1
            a = float(np.clip((t - self.times[i]) / (self.times[j] - self.times[i]), 0.0, 1.0))
        base = self.cameras[0]
        up = (1 - a) * self._up[i] + a * self._up[j]
        return Camera(position=(1 - a) * self._pos[i] + a * self._pos[j],
                      focal_point=(1 - a) * self._foc[i] + a * self._foc[j],
                      view_up=up, vfov_deg=base.vfov_deg, width=base.width, height=base.height,
                      near=base.near, far=base.far, parallel_scale=base.parallel_scale)

    @classmethod
    def orbit(cls, center, radius: float, elevation_deg: float = 30.0, duration_s: float = 10.0,
              turns: float = 0.25, start_azimuth_deg: float = 0.0, n_keys: int = 64,
              **camera_kw) -> "CameraPath":
        """A camera circling ``center`` (z up) at ``radius``, ``turns`` revolutions in ``duration_s``."""
        center = np.asarray(center, dtype=np.float64)
        times = np.linspace(0.0, duration_s, n_keys)
        el = np.radians(elevation_deg)
        cams = []
        for t in times:
            az = np.radians(start_azimuth_deg) + 2 * np.pi * turns * t / max(duration_s, 1e-9)
            offset = radius * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
            cams.append(Camera(position=center + offset, focal_point=center, view_up=(0, 0, 1), **camera_kw))
        return cls(times, cams)

    def to_dict(self) -> dict:
        return {"times": self.times.tolist(), "cameras": [c.to_dict() for c in self.cameras]}

    @classmethod
    def from_dict(cls, d: dict) -> "CameraPath":
        try:
            return cls(d["times"], [Camera.from_dict(c) for c in d["cameras"]])
        except KeyError as exc:
            raise InputError(f"camera path: missing field {exc.args[0]!r}") from None
