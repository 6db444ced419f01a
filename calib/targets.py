"""Validation target layouts (5, 9 or 13 points) and their presentation order.

Positions are tracker coordinates (normalised display area, origin top-left).
The 13-point layout is the 9-point grid plus the four points halfway between
its centre and its corners; those four are natural held-out targets for
judging a correction fitted on the other nine. Every target must lie on the
display (:func:`check_on_display`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError

LAYOUT_SIZES = (5, 9, 13)


def check_on_display(x, y, what: str = "target") -> None:
    """Raise :class:`InputError` unless ``(x, y)`` are finite normalised display coordinates in [0, 1].

    A target off the display cannot be looked at: validating it or fitting a
    correction to it would extrapolate the tracker beyond its display area.
    """
    try:
        fx, fy = float(x), float(y)
    except (TypeError, ValueError):
        raise InputError(f"{what} at ({x!r}, {y!r}): expected numbers (normalised display coordinates "
                         f"in [0, 1])") from None
    if not (0.0 <= fx <= 1.0 and 0.0 <= fy <= 1.0):     # also refuses NaN
        raise InputError(f"{what} at ({fx:g}, {fy:g}) is outside the display: expected normalised "
                         f"display coordinates x, y in [0, 1]")


def target_layout(n_points: int = 9, margin: float = 0.1) -> np.ndarray:
    """Target positions.

    Parameters
    ----------
    n_points : {5, 9, 13}
    margin : float
        Distance of the outer targets from the display edge, normalised, in (0, 0.5).

    Returns
    -------
    (n_points, 2) float64
        Tracker coordinates, in a fixed canonical order (row by row; the
        13-point inner ring last).
    """
    if n_points not in LAYOUT_SIZES:
        raise InputError(f"points: expected one of {LAYOUT_SIZES}, got {n_points!r}")
    if not (0.0 < margin < 0.5):
        raise InputError(f"margin: expected a number in (0, 0.5), got {margin!r}")
    lo, hi = margin, 1.0 - margin
    if n_points == 5:
        return np.array([[0.5, 0.5], [lo, lo], [hi, lo], [lo, hi], [hi, hi]])
    grid = np.array([[x, y] for y in (lo, 0.5, hi) for x in (lo, 0.5, hi)])
    if n_points == 9:
        return grid
    q_lo, q_hi = (lo + 0.5) / 2, (hi + 0.5) / 2
    inner = np.array([[q_lo, q_lo], [q_hi, q_lo], [q_lo, q_hi], [q_hi, q_hi]])
    return np.vstack([grid, inner])


def inner_ring(n_points: int) -> List[int]:
    """Indices (canonical order) of the 13-point layout's inner four targets; empty otherwise."""
    return [9, 10, 11, 12] if n_points == 13 else []


def presentation_order(n_points: int, seed: Optional[int] = None) -> np.ndarray:
    """(n_points,) int: a random permutation of the canonical indices (``seed`` for repeatability)."""
    return np.random.default_rng(seed).permutation(n_points)


@dataclass(frozen=True)
class TargetPresentation:
    """One shown target: canonical index, tracker position and when it was on screen (seconds)."""

    index: int
    x: float
    y: float
    onset_s: float
    offset_s: float

    def __post_init__(self):
        check_on_display(self.x, self.y, f"target {self.index}")

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x, self.y])

    def to_dict(self) -> dict:
        return {"index": self.index, "x": self.x, "y": self.y, "onset_s": self.onset_s,
                "offset_s": self.offset_s}


def schedule(layout: np.ndarray, order: Sequence[int], dwell_s: float = 1.5,
             start_s: float = 0.0) -> List[TargetPresentation]:
    """Consecutive presentations of ``layout[order]``, each ``dwell_s`` long, from ``start_s``."""
    if not (dwell_s > 0):
        raise InputError(f"dwell_s: expected a positive duration, got {dwell_s!r}")
    out = []
    t = float(start_s)
    for i in order:
        x, y = (float(v) for v in layout[int(i)])
        out.append(TargetPresentation(int(i), x, y, t, t + dwell_s))
        t += dwell_s
    return out


def simulator_script(presentations: Sequence[TargetPresentation], display: DisplayGeometry) -> list:
    """The ``targets=[(x_deg, y_deg, dwell_s), ...]`` argument of ``gaze3d.simulate.simulate_gaze``."""
    xy = np.array([p.xy for p in presentations])
    deg = display.norm_to_deg(xy)
    return [(float(d[0]), float(d[1]), float(p.offset_s - p.onset_s)) for d, p in zip(deg, presentations)]
