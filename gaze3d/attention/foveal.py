"""The foveal weight: a Gaussian of the visual angle between a gaze ray and a direction.

Angles are the annotator's **visual** angles. On a desktop the scene is seen
through the viewer's virtual camera, whose field of view need not match the
angle the viewport subtends at the eye; ``visual_deg_per_camera_deg`` maps one
to the other (1.0 by default, i.e. the camera's angles are taken as visual
angles). :meth:`FovealModel.from_display` derives the factor from a
:class:`~gaze3d.display.DisplayGeometry` and the viewport's place on it, per
camera (the factor depends on the camera's field of view).

Angles between unit vectors are computed from their chord ``c = |a - b|``
(``theta = 2 asin(c / 2)``), which stays accurate at small angles where
``acos`` of a dot product does not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError


def chord2_to_theta2(c2: np.ndarray, exact: bool = False) -> np.ndarray:
    """Squared angle from squared chord length between unit vectors, in place when float.

    Parameters
    ----------
    c2 : (...) float array
        ``|a - b|^2`` for unit vectors ``a``, ``b`` (values in [0, 4]).
    exact : bool
        Use ``(2 asin(sqrt(c2) / 2))^2``; otherwise the series
        ``c2 + c2^2/12 + c2^3/90`` whose relative error is below ``c2^3 / 560``
        (under 1e-7 for angles up to 20 degrees).

    Returns
    -------
    theta2 : (...) float array, radians squared
    """
    if exact:
        return np.square(2.0 * np.arcsin(np.sqrt(np.clip(c2, 0.0, 4.0)) / 2.0))
    t = c2 * (1.0 / 90.0)
    t += 1.0 / 12.0
    t *= c2
    t += 1.0
    t *= c2
    return t


def angle_between_deg(a, b) -> np.ndarray:
    """(n,) angle in degrees between (n, 3) vectors ``a`` and ``b`` (normalised here)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 3)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = np.linalg.norm(a - b, axis=1)
    return np.degrees(2.0 * np.arcsin(np.clip(c / 2.0, 0.0, 1.0)))


@dataclass(frozen=True)
class FovealModel:
    """Foveal Gaussian ``w(theta) = exp(-theta^2 / (2 sigma^2))`` for ``theta <= cut_sigmas * sigma``.

    Parameters
    ----------
    sigma_deg : float
        Standard deviation in visual degrees (default 1.0, about the fovea's radius).
    cut_sigmas : float
        Weights beyond ``cut_sigmas * sigma`` are exactly 0 (default 3).
    visual_deg_per_camera_deg : float
        Visual degrees per degree of the virtual camera (default 1.0).
    display : DisplayGeometry, optional
        If given, the factor is computed per camera as the visual angle the
        viewport's height subtends divided by the camera's vertical field of view.
    viewport : (4,) float
        ``(x, y, width, height)`` of the viewport on the display, normalised
        (default the whole display); used with ``display`` only.
    """

    sigma_deg: float = 1.0
    cut_sigmas: float = 3.0
    visual_deg_per_camera_deg: float = 1.0
    display: Optional[object] = None
    viewport: Tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)

    def __post_init__(self):
        if not (np.isfinite(self.sigma_deg) and self.sigma_deg > 0):
            raise InputError(f"sigma_deg: expected a positive number of degrees, got {self.sigma_deg}")
        if not (np.isfinite(self.cut_sigmas) and self.cut_sigmas > 0):
            raise InputError(f"cut_sigmas: expected a positive number, got {self.cut_sigmas}")
        if not (np.isfinite(self.visual_deg_per_camera_deg) and self.visual_deg_per_camera_deg > 0):
            raise InputError("visual_deg_per_camera_deg: expected a positive number, "
                             f"got {self.visual_deg_per_camera_deg}")
        if self.cut_sigmas * self.sigma_deg >= 89.0:
            raise InputError(f"sigma_deg * cut_sigmas: expected below 89 degrees, "
                             f"got {self.cut_sigmas * self.sigma_deg}")
        vp = tuple(float(v) for v in self.viewport)
        if len(vp) != 4 or vp[2] <= 0 or vp[3] <= 0:
            raise InputError(f"viewport: expected (x, y, width, height) with positive size, got {self.viewport}")
        object.__setattr__(self, "viewport", vp)

    @classmethod
    def from_display(cls, display, viewport=(0.0, 0.0, 1.0, 1.0), **kw) -> "FovealModel":
        """Model whose camera->visual factor comes from ``display`` and ``viewport``."""
        return cls(display=display, viewport=viewport, **kw)

    def visual_per_camera(self, camera=None) -> float:
        """Visual degrees per camera degree for ``camera`` (1.0 for VR rays, ``camera=None``)."""
        if camera is None or getattr(camera, "_ray_mode", False):
            return 1.0          # VR rays: world angles are visual angles
        if self.display is None:
            return float(self.visual_deg_per_camera_deg)
        # an orthographic viewport counts as vfov_deg camera degrees high (see volume.py)
        x, y, w, h = self.viewport
        top = self.display.norm_to_deg([[x + w / 2, y]])[0, 1]
        bottom = self.display.norm_to_deg([[x + w / 2, y + h]])[0, 1]
        return float((bottom - top) / camera.vfov_deg)

    def camera_sigma_rad(self, camera=None) -> float:
        """Sigma in radians of the camera (or world, for VR rays) angle."""
        return float(np.radians(self.sigma_deg / self.visual_per_camera(camera)))

    def cut_rad(self, camera=None) -> float:
        """Cut-off angle in radians of camera angle."""
        return self.cut_sigmas * self.camera_sigma_rad(camera)

    def weight(self, theta_rad, camera=None) -> np.ndarray:
        """(n,) Gaussian weight of (n,) camera angles in radians, 0 beyond the cut."""
        theta = np.asarray(theta_rad, dtype=np.float64)
        s = self.camera_sigma_rad(camera)
        w = np.exp(-0.5 * np.square(theta / s))
        return np.where(theta <= self.cut_sigmas * s, w, 0.0)
