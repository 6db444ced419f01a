"""The torch cone pass (gaze3d.models.attention_torch) against the numpy reference, on the CPU and CUDA devices.

Visibility and the chord matrix are the numpy path's float32 operations one by
one, so the cones (visible points, chord matrix, depth window) must be the same
bits; the deposit's exp and sum over rays are torch's, so the attention is
compared within a bound: 1e-6 of the largest value (issue 15's bound).
"""
import subprocess
import sys

import numpy as np
import pytest

from attention_replay_helpers import replay, same_cones, scene

torch = pytest.importorskip("torch", reason="torch is not installed: no torch attention path")
AT = pytest.importorskip("gaze3d.models.attention_torch")

#: issue 15's bound on the torch deposit: max |torch - numpy| / max |numpy|
BOUND = 1e-6


def _rel(a, ref):
    return float(np.abs(a.astype(np.float64) - ref).max()) / float(np.abs(ref).max())


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def kernel(request):
    """The kernel on each device (CUDA skipped where there is none); torch on one CPU thread meanwhile."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device: the torch kernel's CUDA path is not run here")
    before = torch.get_num_threads()
    torch.set_num_threads(1)         # the kernel leaves torch's threads alone; tests run on one core
    yield AT.TorchConeKernel(request.param)
    torch.set_num_threads(before)


def test_the_kernel_leaves_torch_threads_alone_unless_asked():
    """Building a kernel changes no process-wide setting by default; ``threads=`` sets it on request."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        AT.TorchConeKernel("cpu")
        assert torch.get_num_threads() == 3
        AT.TorchConeKernel("cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("fixations_only", [False, True])
def test_torch_replay_matches_numpy(kernel, fixations_only):
    pts = scene()
    ref, ref_cones = replay(pts, False, fixations_only)
    out, cones = replay(pts, False, fixations_only, kernel=kernel)
    assert ref.max() > 0 and np.count_nonzero(ref) > 1000
    # both depth-window paths ran (one footprint size, several) and gave the numpy bits
    assert same_cones(ref_cones, cones) == {True, False}
    assert np.array_equal(ref > 0, out > 0)          # the same points got attention
    assert _rel(out, ref) <= BOUND


@pytest.mark.parametrize("opts, frames", [({"spacing_footprint": False}, 15), ({"point_size": 7.0}, 15),
                                          ({"sigma_deg": 8.0}, 4)])     # 24 degree cut-off: big cones
def test_torch_matches_numpy_for_splats_and_wide_foveae(kernel, opts, frames):
    pts = scene()
    ref, ref_cones = replay(pts, False, False, frames=frames, **opts)
    out, cones = replay(pts, False, False, frames=frames, kernel=kernel, **opts)
    assert np.count_nonzero(ref) > 1000
    same_cones(ref_cones, cones)
    assert _rel(out, ref) <= BOUND


@pytest.mark.parametrize("a", [0, 1, 2, 6])
def test_torch_min_filter_matches_numpy(kernel, a):
    from gaze3d.attention import pointcloud as P

    rng = np.random.default_rng(a)
    for shape in [(40, 37), (2 * a + 1, 9), (3, 2 * a + 2), (1, 1)]:
        z = rng.random(shape).astype(np.float32)
        z[rng.random(shape) < 0.3] = np.inf
        got = kernel._min_filter(torch.from_numpy(z).to(kernel.device), a).cpu().numpy()
        assert np.array_equal(got, P._min_filter(z, a)), shape


def test_gaze3d_and_its_numpy_path_never_import_torch():
    """The room rule: ``import gaze3d`` and a numpy-path accumulator leave torch unimported (the engine
    takes a torch kernel only from its caller)."""
    code = ("import sys, numpy as np, gaze3d\n"
            "from gaze3d.attention import AttentionAccumulator\n"
            "from gaze3d.scan import PointCloud\n"
            "AttentionAccumulator(PointCloud(np.random.default_rng(0).random((100, 3))), compiled=False)\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
