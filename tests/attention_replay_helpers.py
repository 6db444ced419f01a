"""A replay that records every cone the engine builds, shared by the kernel tests
(``test_attention_numba.py``, ``test_attention_torch.py``): each compares a kernel's cones and
attention with the numpy reference's."""
import numpy as np

from gaze3d.attention import AttentionAccumulator
from gaze3d.camera import CameraPath
from gaze3d.scan import PointCloud

from attention_helpers import fibonacci_sphere, grid_plane


def _host(a):
    """A kernel's array as numpy (the torch kernel keeps the chord matrix on its device)."""
    return a.cpu().numpy() if hasattr(a, "cpu") else a


def scene():
    """A dense floor, two dense spheres and a sparse jittered wall (several footprint sizes per cone)."""
    rng = np.random.default_rng(7)
    wall = np.c_[rng.uniform(-1.5, 1.5, 3000), np.full(3000, 0.9), rng.uniform(0.0, 1.2, 3000)]
    return np.r_[grid_plane(0.0, half=3.0, n=241), fibonacci_sphere(30_000, 0.6, (0.4, -0.3, 0.8)),
                 fibonacci_sphere(8_000, 0.4, (-0.8, 0.6, 0.5)), wall]


def replay(pts, compiled, fixations_only, frames=60, **opts):
    """Every cone built (index, amat, depth window) and the attention, for an orbiting camera with
    saccades, blinks and a few samples looking off the scene."""
    path = CameraPath.orbit((0, 0, 0), radius=8.0, elevation_deg=40.0, duration_s=2.0, turns=0.06,
                            n_keys=20, vfov_deg=30.0)
    acc = AttentionAccumulator(PointCloud(pts), fixations_only=fixations_only, compiled=compiled, **opts)
    eng = acc.engine
    assert (eng._kernel is not None) == (compiled or "kernel" in opts)
    cones = []
    build = eng._build

    def record(*a, **k):
        fr = build(*a, **k)
        cones.append(fr)
        return fr

    eng._build = record
    rng = np.random.default_rng(4)
    centre = np.array([0.5, 0.5])
    for f in range(frames):
        if f % 20 == 0:
            centre = rng.uniform(0.2, 0.8, 2)
        xy = centre + rng.normal(0.0, 0.003, (20, 2))
        if f % 17 == 5:
            xy[8:] = rng.uniform(0.0, 1.0, (12, 2))      # a saccade inside the frame: several cones
        valid = np.ones(20, bool)
        if f % 23 == 11:
            valid[:] = False                              # a blink
        t = (f * 20 + np.arange(20)) / 1200.0
        acc.add(path.at(f / 60.0), {"x": xy[:, 0], "y": xy[:, 1], "t_s": t, "valid": valid})
    acc.flush()
    return acc.values, cones


def same_cones(a, b):
    assert len(a) == len(b)
    sizes = set()
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.index, fb.index)
        assert np.array_equal(_host(fa.amat), _host(fb.amat))
        assert (fa.depth_window is None) == (fb.depth_window is None)
        if fa.depth_window is None:
            continue
        za, ua, va, ha, band_a = fa.depth_window
        zb, ub, vb, hb, band_b = fb.depth_window
        assert (ua, va, ha) == (ub, vb, hb)
        assert np.array_equal(za, zb)
        assert (band_a is None) == (band_b is None)
        sizes.add(band_a is None)
        if band_a is not None:
            for x, y in zip(band_a, band_b):
                assert np.array_equal(x, y)
    return sizes
