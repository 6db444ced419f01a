"""Physical display geometry: normalised display coordinates <-> degrees of visual angle.

Conventions: normalised display coordinates ``(x, y)`` in ``[0, 1]`` with the
origin at the top-left of the tracker's display area; degrees are measured
from the point of the screen straight in front of the eye (by default the
screen centre), ``x_deg`` to the right and ``y_deg`` **down**, so both axes
have the sign of the normalised coordinates.

``gaze3d.calib`` builds on this (viewer window placement, multi-monitor
layouts, eye distance from the tracker's 3D gaze origin).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class DisplayGeometry:
    """A flat screen seen from a fixed eye position.

    Parameters
    ----------
    width_mm, height_mm : float
        Size of the tracker's display area.
    width_px, height_px : int
        Resolution of that area.
    distance_mm : float
        Eye-to-screen distance, perpendicular.
    eye_xy : (2,) float
        Where the perpendicular from the eye meets the screen, normalised
        (default the centre).
    """

    width_mm: float = 527.0     # a 24" 16:9 monitor
    height_mm: float = 296.0
    width_px: int = 1920
    height_px: int = 1080
    distance_mm: float = 650.0
    eye_xy: tuple = (0.5, 0.5)

    def __post_init__(self):
        for name in ("width_mm", "height_mm", "distance_mm", "width_px", "height_px"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise InputError(f"display {name}: expected a positive number, got {v}")

    def norm_to_mm(self, xy) -> np.ndarray:
        """(n, 2) normalised -> (n, 2) millimetres from the eye's foot point (x right, y down)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return (xy - np.asarray(self.eye_xy)) * np.array([self.width_mm, self.height_mm])

    def norm_to_deg(self, xy) -> np.ndarray:
        """(n, 2) normalised display coordinates -> (n, 2) degrees (Fick-free: atan per axis)."""
        mm = self.norm_to_mm(xy)
        return np.degrees(np.arctan2(mm, self.distance_mm))

    def deg_to_norm(self, deg) -> np.ndarray:
        """(n, 2) degrees -> (n, 2) normalised display coordinates; inverse of :meth:`norm_to_deg`."""
        deg = np.asarray(deg, dtype=np.float64).reshape(-1, 2)
        mm = np.tan(np.radians(deg)) * self.distance_mm
        return mm / np.array([self.width_mm, self.height_mm]) + np.asarray(self.eye_xy)

    def angle_between_deg(self, xy_a, xy_b) -> np.ndarray:
        """(n,) true visual angle between two (n, 2) normalised positions, in degrees."""
        a = np.c_[self.norm_to_mm(xy_a), np.full(len(np.atleast_2d(xy_a)), self.distance_mm)]
        b = np.c_[self.norm_to_mm(xy_b), np.full(len(np.atleast_2d(xy_b)), self.distance_mm)]
        cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

    @property
    def px_per_deg(self) -> float:
        """Pixels per degree at the eye's foot point (horizontal)."""
        mm_per_deg = self.distance_mm * np.tan(np.radians(1.0))
        return mm_per_deg * self.width_px / self.width_mm
