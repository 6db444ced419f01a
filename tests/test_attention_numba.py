"""The compiled (numba) cone pass and deposit give bit-identical results to the numpy reference."""
import subprocess
import sys

import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator
from gaze3d.attention import pointcloud as P
from gaze3d.camera import CameraPath
from gaze3d.scan import PointCloud

from attention_helpers import fibonacci_sphere, grid_plane
from attention_replay_helpers import replay as _replay, same_cones as _same_cones, scene as _scene

numba = pytest.importorskip("numba", reason="numba (extra 'fast') is not installed: the compiled path is off")
K = pytest.importorskip("gaze3d.attention._numba_cone")


@pytest.mark.parametrize("fixations_only", [False, True])
def test_compiled_replay_is_bit_identical_to_numpy(fixations_only):
    pts = _scene()
    ref, ref_cones = _replay(pts, False, fixations_only)
    out, cones = _replay(pts, True, fixations_only)
    assert ref.max() > 0 and np.count_nonzero(ref) > 1000
    assert np.array_equal(ref, out)
    sizes = _same_cones(ref_cones, cones)
    # both depth-window paths ran: one footprint size (band None) and several (a band)
    assert sizes == {True, False}


@pytest.mark.parametrize("opts", [{"spacing_footprint": False}, {"point_size": 1.0}, {"point_size": 7.0}])
def test_compiled_matches_numpy_for_splat_footprints(opts):
    pts = _scene()
    ref, ref_cones = _replay(pts, False, False, frames=25, **opts)
    out, cones = _replay(pts, True, False, frames=25, **opts)
    assert np.count_nonzero(ref) > 1000
    assert np.array_equal(ref, out)
    _same_cones(ref_cones, cones)


@pytest.mark.parametrize("sigma_deg", [2.0, 8.0])
def test_compiled_matches_numpy_for_wide_foveae(sigma_deg):
    """Cut-offs past 5 and 20 degrees take the deposit's series and exact branches (numpy in both paths)."""
    pts = _scene()
    ref, ref_cones = _replay(pts, False, False, frames=12, sigma_deg=sigma_deg)
    out, cones = _replay(pts, True, False, frames=12, sigma_deg=sigma_deg)
    assert np.count_nonzero(ref) > 1000
    assert np.array_equal(ref, out)
    _same_cones(ref_cones, cones)


@pytest.mark.parametrize("a", [0, 1, 2, 3, 6])
def test_min_filter_matches_numpy(a):
    rng = np.random.default_rng(a)
    for shape in [(40, 37), (2 * a + 1, 9), (3, 2 * a + 2), (1, 1)]:
        z = rng.random(shape).astype(np.float32)
        z[rng.random(shape) < 0.3] = np.inf
        out = np.empty_like(z)
        K._min_filter(z, a, np.empty_like(z), out)
        assert np.array_equal(out, P._min_filter(z, a)), shape


def test_chord2_compiled_matches_numpy_terms():
    """The chord matrix (every deposit's first step, no BLAS product): the compiled kernel gives
    the numpy path's bits, on a column range of the frame, for one ray and for many, and both are
    the squared chords."""
    rng = np.random.default_rng(5)
    amat = rng.normal(0, 0.05, (5, 5000)).astype(np.float32)
    amat[3] = amat[0] * amat[0] + amat[1] * amat[1] + amat[2] * amat[2]
    amat[4] = 1.0
    fr = P.PointFrame(key=b"", camera=None, origin=np.zeros(3), axis=np.array([0.0, 0.0, 1.0]),
                      half_angle=0.1, index=np.arange(5000), amat=amat, rotation=np.eye(3))
    xyz = fibonacci_sphere(2000)
    eng_c = P.PointCloudEngine(xyz, P.FovealModel(), compiled=True)
    eng_n = P.PointCloudEngine(xyz, P.FovealModel(), compiled=False)
    assert eng_c._kernel is K and eng_n._kernel is None
    for s in (1, 7):
        d = np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.02, (s, 3))
        d /= np.linalg.norm(d, axis=1)[:, None]
        for cols in (slice(0, 5000), slice(1234, 4321)):
            ref = eng_n._chord2(fr, d, cols, clamp=False)
            assert np.array_equal(eng_c._chord2(fr, d, cols, clamp=False), ref)
            assert np.array_equal(eng_c._chord2(fr, d, cols, out=np.empty_like(ref)), np.maximum(ref, 0))
            h = d - fr.axis
            exact = ((h[:, None, :] - amat[:3, cols].T[None]) ** 2).sum(axis=2)
            assert np.allclose(ref, exact, rtol=1e-5, atol=1e-7)


def test_a_cone_with_no_point_on_screen():
    """Gaze into the empty sky: no visible point, no depth window, nothing deposited, either path."""
    pts = grid_plane(0.0, half=1.0, n=51)
    cam = CameraPath.orbit((0, 0, 0), radius=5.0, elevation_deg=10.0, duration_s=1.0, turns=0.0,
                           n_keys=2, vfov_deg=30.0).at(0.0)
    out = []
    for compiled in (False, True):
        acc = AttentionAccumulator(PointCloud(pts), fixations_only=False, compiled=compiled)
        acc.add(cam, {"x": np.full(5, 0.5), "y": np.full(5, 0.02), "t_s": np.arange(5) / 1200.0})
        out.append(acc.values)
    assert np.array_equal(out[0], out[1]) and out[0].max() == 0


def test_numba_is_not_imported_by_gaze3d_nor_by_the_numpy_path():
    code = ("import sys, numpy as np, gaze3d, gaze3d.attention\n"
            "from gaze3d.attention import AttentionAccumulator\n"
            "from gaze3d.scan import PointCloud\n"
            "assert 'numba' not in sys.modules\n"
            "AttentionAccumulator(PointCloud(np.random.default_rng(0).random((100, 3))), compiled=False)\n"
            "assert 'numba' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_numba_auto_falls_back_and_required_names_the_extra():
    code = ("import sys, numpy as np\n"
            "sys.modules['numba'] = None            # numba not installed\n"
            "from gaze3d.attention import AttentionAccumulator\n"
            "from gaze3d.errors import OptionalDependencyError\n"
            "from gaze3d.scan import PointCloud\n"
            "pc = PointCloud(np.random.default_rng(0).random((100, 3)))\n"
            "assert AttentionAccumulator(pc).engine._kernel is None\n"
            "try:\n"
            "    AttentionAccumulator(pc, compiled=True)\n"
            "except OptionalDependencyError as e:\n"
            "    assert 'gaze3d[fast]' in str(e), e\n"
            "else:\n"
            "    raise SystemExit('compiled=True without numba did not fail')\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_auto_mode_runs_numpy_while_a_cold_cache_fills_then_switches(tmp_path):
    """A cold numba cache never stalls a caller: numpy now, a separate process compiles, then the
    compiled pass (bit-identical, so the switch changes nothing but the speed)."""
    code = ("import time, numpy as np\n"
            "from gaze3d.attention import AttentionAccumulator, pointcloud as P\n"
            "from gaze3d.scan import PointCloud\n"
            "from attention_helpers import grid_plane, top_camera\n"
            "pc = PointCloud(grid_plane(0.0, n=101))\n"
            "def run(**kw):\n"
            "    acc = AttentionAccumulator(pc, fixations_only=False, **kw)\n"
            "    for i in range(3):\n"
            "        xy = np.full((20, 2), 0.3 + 0.1 * i)\n"
            "        acc.add(top_camera(), {'x': xy[:, 0], 'y': xy[:, 1], 't_s': (20 * i + np.arange(20)) / 1200})\n"
            "    return acc\n"
            "a = run()\n"
            "assert a.engine._kernel is None and a.engine._auto, 'cold cache: numpy first'\n"
            "deadline = time.monotonic() + 240\n"
            "while P._WARM_UP.proc.poll() is None and time.monotonic() < deadline:\n"
            "    time.sleep(0.5)\n"
            "assert P._WARM_UP.proc.returncode == 0\n"
            "b = run()\n"
            "assert b.engine._kernel is not None, 'the filled cache is used'\n"
            "assert np.array_equal(a.values, b.values) and a.values.max() > 0\n")
    import os
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"),
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    assert any((tmp_path / "numba_cache").rglob("*.nbi")), "the warm-up process wrote the cache"


def test_compiled_octree_walk_keeps_the_numpy_walks_points():
    """The kept cone's octree query compiled: the same points as the numpy walk (ascending,
    disjoint ranges) for cones of every width, from outside and inside the cloud, with a near limit."""
    from gaze3d.attention.spatial import MortonIndex, ranges_to_indices

    idx = MortonIndex(_scene(), leaf_size=64)
    rng = np.random.default_rng(11)
    kept = 0
    for t in range(60):
        apex = rng.normal(0.0, 4.0 if t % 3 else 0.5, 3)          # a third from inside the cloud
        axis = rng.normal(0.0, 1.0, 3)
        axis /= np.linalg.norm(axis)
        angle = np.radians(rng.choice([0.5, 3.0, 15.0, 60.0]))
        near = 0.0 if t % 2 else 1.0
        s0, e0 = idx.cone_ranges(apex, axis, angle, near)
        s1, e1 = K.cone_ranges(idx, apex, axis, angle, near)
        assert np.all(s1 < e1) and np.all(e1[:-1] < s1[1:])       # ascending, disjoint, merged
        ref = ranges_to_indices(s0, e0)
        assert np.array_equal(ranges_to_indices(s1, e1), ref)
        kept += len(ref) > 0
    assert kept > 20
