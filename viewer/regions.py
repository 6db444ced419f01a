"""Region growing lives in the core now (:mod:`gaze3d.regions`, numpy/scipy only); this name stays for callers.

The viewer imports ``scipy.spatial`` here, at start-up, so that the first label
key does not pay for it (about 0.9 s on a loaded 2-core machine, bench/viewer.py).
"""
import scipy.spatial  # noqa: F401  (start-up, not first-key, cost)

from gaze3d.regions import grow_cloud, grow_mesh, grow_region, grow_volume  # noqa: F401

__all__ = ["grow_cloud", "grow_mesh", "grow_region", "grow_volume"]
