"""Sparse-conv backend: shapes, bad configs, agreement with dense conv3d, gradients, caching."""
from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from gaze3d.models.sparse import (SparseAvgPool3d, SparseBatchNorm, SparseConv3d,  # noqa: E402
                                  SparseConvTranspose3d, SparseMaxPool3d, SparseTensor,
                                  SubMConv3d, devoxelize, get_backend, global_avg_pool,
                                  sparse_from_points, voxelize)
from gaze3d.models.sparse import conv as conv_mod  # noqa: E402
from gaze3d.models.sparse.conv import gather_gemm_scatter  # noqa: E402
from gaze3d.models.sparse.kernel_map import subm_pairs  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
HAS_SPCONV = importlib.util.find_spec("spconv") is not None


def dense_grid(d: int, batch: int = 1, device="cpu") -> torch.Tensor:
    """(batch * d^3, 4) coordinates filling a d^3 grid for each batch item."""
    g = torch.stack(torch.meshgrid(*[torch.arange(d)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return torch.cat([torch.cat([torch.full((len(g), 1), b), g], 1) for b in range(batch)]).to(device)


def random_coords(n: int, extent: int = 12, batch: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    c = torch.cat([torch.randint(0, batch, (n, 1), generator=gen),
                   torch.randint(0, extent, (n, 3), generator=gen)], 1)
    return torch.unique(c, dim=0)


def dense_weight(w: torch.Tensor, k: int, transposed: bool = False) -> torch.Tensor:
    """Our (K, Cin, Cout) -> conv3d (Cout, Cin, k, k, k) or conv_transpose3d (Cin, Cout, k, k, k)."""
    K, cin, cout = w.shape
    w = w.reshape(k, k, k, cin, cout)
    return w.permute(3, 4, 0, 1, 2) if transposed else w.permute(4, 3, 0, 1, 2)


# ---------------------------------------------------------------- shapes
SHAPE_CASES = [
    # (module, input channels, expected output channels, expected stride factor)
    (lambda: SubMConv3d(3, 5, 3), 3, 5, 1),
    (lambda: SubMConv3d(3, 5, 1), 3, 5, 1),
    (lambda: SubMConv3d(3, 5, 5, dilation=2), 3, 5, 1),
    (lambda: SparseConv3d(3, 7, 2, 2), 3, 7, 2),
    (lambda: SparseConv3d(3, 7, 3, 2), 3, 7, 2),
    (lambda: SparseMaxPool3d(2, 2), 3, 3, 2),
    (lambda: SparseAvgPool3d(2, 2), 3, 3, 2),
    (lambda: SparseBatchNorm(3), 3, 3, 1),
]


@pytest.mark.parametrize("make, cin, cout, factor", SHAPE_CASES)
def test_output_shapes(make, cin, cout, factor):
    coords = random_coords(300)
    x = SparseTensor(coords, torch.randn(len(coords), cin))
    y = make()(x)
    assert y.num_channels == cout
    assert y.stride == factor
    if factor == 1:
        assert len(y) == len(x) and torch.equal(y.coords, x.coords)
    else:
        assert len(y) < len(x)
        assert (y.coords[:, 1:] % factor == 0).all()


def test_transposed_conv_returns_to_encoder_voxels():
    coords = random_coords(300)
    x = SparseTensor(coords, torch.randn(len(coords), 4))
    down = SparseConv3d(4, 6, 2, 2)(x)
    up = SparseConvTranspose3d(6, 2, 2, 2)(down)
    assert up.stride == 1 and up.num_channels == 2 and torch.equal(up.coords, x.coords)


# ---------------------------------------------------------------- bad configs
BAD_CONFIGS = [
    (lambda: SubMConv3d(0, 4), "in_channels"),
    (lambda: SubMConv3d(4, -1), "out_channels"),
    (lambda: SubMConv3d(4, 4, 2), "kernel_size"),
    (lambda: SubMConv3d(4, 4, 0), "kernel_size"),
    (lambda: SubMConv3d(4, 4, 3, dilation=0), "dilation"),
    (lambda: SparseConv3d(4, 4, 2, stride=1), "stride"),
    (lambda: SparseConvTranspose3d(4, 4, 2, stride=0), "stride"),
    (lambda: SparseMaxPool3d(2, 1), "stride"),
    (lambda: SparseBatchNorm(0), "num_channels"),
    (lambda: SparseTensor(torch.zeros(3, 3, dtype=torch.long), torch.zeros(3, 1)), "coords"),
    (lambda: SparseTensor(torch.zeros(3, 4), torch.zeros(3, 1)), "coords"),
    (lambda: SparseTensor(torch.zeros(3, 4, dtype=torch.long), torch.zeros(2, 1)), "feats"),
    (lambda: SparseTensor(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 1), stride=0), "stride"),
    (lambda: voxelize(torch.zeros(4, 3), 0.0), "voxel_size"),
    (lambda: voxelize(torch.zeros(4, 2), 1.0), "xyz"),
    (lambda: get_backend("cuda-magic"), "backend"),
]


@pytest.mark.parametrize("make, param", BAD_CONFIGS)
def test_bad_config_raises_value_error_naming_parameter(make, param):
    with pytest.raises(ValueError, match=param):
        make()


def test_wrong_channel_count_raises():
    coords = random_coords(50)
    with pytest.raises(ValueError, match="channels"):
        SubMConv3d(3, 4)(SparseTensor(coords, torch.randn(len(coords), 5)))


# ---------------------------------------------------------------- dense agreement
@pytest.mark.parametrize("k, dilation", [(1, 1), (3, 1), (3, 2), (5, 1)])
def test_submanifold_equals_dense_conv3d_on_filled_grid(k, dilation):
    torch.manual_seed(0)
    d = 6
    x = SparseTensor(dense_grid(d, batch=2), torch.randn(2 * d ** 3, 3, dtype=torch.float64))
    conv = SubMConv3d(3, 4, k, dilation=dilation).double()
    ref = F.conv3d(x.dense(), dense_weight(conv.weight, k), padding=dilation * (k // 2),
                   dilation=dilation)
    torch.testing.assert_close(conv(x).dense(), ref)


@pytest.mark.parametrize("k, padding", [(2, 0), (3, 1)])
def test_strided_conv_equals_dense_conv3d(k, padding):
    torch.manual_seed(1)
    d = 6
    x = SparseTensor(dense_grid(d), torch.randn(d ** 3, 3, dtype=torch.float64))
    conv = SparseConv3d(3, 4, k, 2).double()
    y = conv(x)
    ref = F.conv3d(x.dense(), dense_weight(conv.weight, k), stride=2, padding=padding)
    torch.testing.assert_close(y.dense(), ref)


def test_transposed_conv_equals_dense_conv_transpose3d():
    torch.manual_seed(2)
    d = 6
    x = SparseTensor(dense_grid(d), torch.randn(d ** 3, 3, dtype=torch.float64))
    coarse = SparseConv3d(3, 4, 2, 2).double()(x)
    up = SparseConvTranspose3d(4, 2, 2, 2).double()
    ref = F.conv_transpose3d(coarse.dense(), dense_weight(up.weight, 2, transposed=True), stride=2)
    torch.testing.assert_close(up(coarse).dense(), ref)


@pytest.mark.parametrize("pool, ref", [(SparseMaxPool3d, F.max_pool3d), (SparseAvgPool3d, F.avg_pool3d)])
def test_pooling_equals_dense_on_filled_grid(pool, ref):
    d = 4
    x = SparseTensor(dense_grid(d), torch.randn(d ** 3, 3, dtype=torch.float64))
    torch.testing.assert_close(pool(2, 2)(x).dense(), ref(x.dense(), 2, 2))


def test_gradients_match_dense_conv3d():
    torch.manual_seed(3)
    d = 5
    feats = torch.randn(d ** 3, 3, requires_grad=True)
    x = SparseTensor(dense_grid(d), feats)
    conv = SubMConv3d(3, 4, 3)
    y = conv(x)
    g = torch.randn_like(y.feats)
    (y.feats * g).sum().backward()

    dense_in = x.dense().detach().requires_grad_(True)
    w = dense_weight(conv.weight.detach(), 3).clone().requires_grad_(True)
    out = F.conv3d(dense_in, w, padding=1)
    out.backward(y.replace(g).dense())
    c = x.coords
    torch.testing.assert_close(feats.grad, dense_in.grad[0, :, c[:, 1], c[:, 2], c[:, 3]].t(),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dense_weight(conv.weight.grad, 3), w.grad, rtol=1e-4, atol=1e-4)


GRADCHECK_CASES = ["subm", "subm_dilated", "strided", "transposed"]


def _op(case, coords):
    """The raw gather-GEMM-scatter of one layer kind as a function of (feats, weight)."""
    from gaze3d.models.sparse.kernel_map import down_map

    x = SparseTensor(coords, torch.zeros(len(coords), 1, device=coords.device))   # maps built once
    if case.startswith("subm"):
        pairs, n_out = subm_pairs(x, 3, 2 if case == "subm_dilated" else 1), len(x)
    else:
        out_coords, pairs = down_map(x.manager, 1, 2, 2)
        n_out = len(out_coords)
        if case == "transposed":
            pairs, n_out = [(c, f) for f, c in pairs], len(x)

    def f(feats, weight):
        if case == "transposed":
            feats = feats[:len(out_coords)]                # coarse voxels -> fine voxels
        return gather_gemm_scatter(feats, weight, pairs, n_out)
    return f


@pytest.mark.parametrize("case", GRADCHECK_CASES)
def test_gradcheck_float64(case):
    torch.manual_seed(4)
    coords = random_coords(40, extent=4, batch=2)
    k = 27 if case.startswith("subm") else 8
    feats = torch.randn(len(coords), 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(k, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_op(case, coords), (feats, weight))


def _reference_gather_gemm_scatter(feats, weight, pairs, n_out):
    """Per-offset index_add_ with autograd: the plain formulation the fast path must match."""
    out = feats.new_zeros(n_out, weight.shape[2])
    for k, pair in enumerate(pairs):
        if pair is None:
            out = out + feats @ weight[k]
        elif len(pair[0]):
            out = out.index_add(0, pair[1], feats[pair[0]] @ weight[k])
    return out


@pytest.mark.parametrize("case", GRADCHECK_CASES)
@pytest.mark.parametrize("chunk_pairs", [7, 1 << 20])
@pytest.mark.parametrize("paths", ["cpu", "cuda-branch"])
def test_chunked_gather_gemm_scatter_matches_reference(case, chunk_pairs, paths, monkeypatch):
    """Several offsets per chunk, offsets split over chunks, the symmetric submanifold
    backward and the transposed maps agree with a per-offset autograd reference, through
    the CPU paths (scratch buffers, CSR scatter) and through the branch CUDA takes (fresh
    tensors, ``index_add_``), run here on CPU so it is checked without a GPU."""
    import gaze3d.models.sparse.conv as conv_module
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", chunk_pairs * 5 * 8)   # 5 channels, float64
    if paths == "cuda-branch":
        monkeypatch.setattr(conv_module, "_cpu_fast_paths", lambda t: False)
    torch.manual_seed(7)
    coords = random_coords(300, extent=8, batch=2)
    if case == "transposed":   # as SparseConvTranspose3d: the cached reversed map
        from gaze3d.models.sparse.kernel_map import down_map, reversed_pairs
        x = SparseTensor(coords, torch.zeros(len(coords), 1))
        out_coords, down = down_map(x.manager, 1, 2, 2)
        pairs, n_in, n_out = reversed_pairs(down), len(out_coords), len(x)
        assert reversed_pairs(down) is pairs
    else:
        x = SparseTensor(coords, torch.zeros(len(coords), 1))
        if case.startswith("subm"):
            pairs, n_in, n_out = subm_pairs(x, 3, 2 if case == "subm_dilated" else 1), len(x), len(x)
            assert pairs.symmetric
        else:
            from gaze3d.models.sparse.kernel_map import down_map
            out_coords, pairs = down_map(x.manager, 1, 2, 2)
            n_in, n_out = len(x), len(out_coords)
    k = len(pairs)
    feats = torch.randn(n_in, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(k, 5, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(n_out, 3, dtype=torch.float64)
    for _ in range(2):         # second call: the cached chunk plan and CSR matrices
        got = gather_gemm_scatter(feats, weight, pairs, n_out)
        gx, gw = torch.autograd.grad(got, (feats, weight), g)
        ref = _reference_gather_gemm_scatter(feats, weight, list(pairs), n_out)
        rx, rw = torch.autograd.grad(ref, (feats, weight), g)
        torch.testing.assert_close(got, ref)
        torch.testing.assert_close(gx, rx)
        torch.testing.assert_close(gw, rw)


# ---------------------------------------------------------------- dense-box path (inference)
needs_onednn = pytest.mark.skipif(not conv_mod._HAS_ONEDNN_CONV,
                                  reason="this torch build has no oneDNN (the dense-box path needs it)")


def box_tensor(d: int, batch: int, stride: int, channels: int = 5) -> SparseTensor:
    """A filled d^3 box per batch item at ``stride``, away from the origin, in C order."""
    coords = dense_grid(d, batch)
    coords[:, 1:] = (coords[:, 1:] + 3) * stride
    return SparseTensor(coords, torch.randn(len(coords), channels), stride=stride)


@needs_onednn
@pytest.mark.parametrize("k, dilation, batch, stride", [(1, 1, 1, 1), (3, 1, 1, 1), (3, 2, 2, 1), (5, 1, 1, 2),
                                                        (3, 1, 2, 4)])
def test_inference_on_a_filled_box_runs_dense_and_equals_the_kernel_map(k, dilation, batch, stride,
                                                                          monkeypatch):
    torch.manual_seed(0)
    x = box_tensor(7, batch, stride)
    conv = SubMConv3d(5, 6, k, dilation=dilation)
    with torch.no_grad():
        got = conv(x).feats
        assert conv_mod.dense_box(x) == (batch, 7, 7, 7)
        assert ("subm", stride, k, dilation) not in x.manager.maps      # no kernel map was built
        monkeypatch.setattr(conv_mod, "DENSE_BOX_PATH", False)
        ref = conv(x).feats
    assert ("subm", stride, k, dilation) in x.manager.maps
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_dense_box_only_for_filled_boxes_in_c_order():
    full = box_tensor(4, 2, 2)
    assert conv_mod.dense_box(full) == (2, 4, 4, 4)
    holed = SparseTensor(full.coords[1:].clone(), full.feats[1:])
    shuffled = SparseTensor(full.coords.flip(0).clone(), full.feats)
    scattered = SparseTensor(random_coords(300), torch.randn(len(random_coords(300)), 5))
    for x in (holed, shuffled, scattered):
        assert conv_mod.dense_box(x) is None


@needs_onednn
def test_kernel_map_only_keeps_inference_on_the_kernel_map_bit_for_bit(monkeypatch):
    torch.manual_seed(0)
    x = box_tensor(6, 2, 1)
    conv = SubMConv3d(5, 6, 3)
    with torch.no_grad():
        with conv_mod.kernel_map_only():
            got = conv(x).feats
        assert ("subm", 1, 3, 1) in x.manager.maps
        monkeypatch.setattr(conv_mod, "DENSE_BOX_PATH", False)
        assert torch.equal(got, conv(x).feats)


@needs_onednn
def test_training_on_a_filled_box_keeps_the_kernel_map_bit_for_bit(monkeypatch):
    torch.manual_seed(0)
    x = box_tensor(6, 1, 1)
    conv = SubMConv3d(5, 6, 3)
    got = conv(x).feats                                  # parameters need a gradient: the kernel map
    assert ("subm", 1, 3, 1) in x.manager.maps
    monkeypatch.setattr(conv_mod, "DENSE_BOX_PATH", False)
    assert torch.equal(got, conv(x).feats)
    got.sum().backward()
    assert conv.weight.grad is not None


# ---------------------------------------------------------------- caching, batches, voxels
def test_kernel_maps_are_cached_and_reused_across_layers():
    coords = random_coords(400)
    x = SparseTensor(coords, torch.randn(len(coords), 4))
    a, b = SubMConv3d(4, 4), SubMConv3d(4, 4)
    y = b(a(x))
    m = x.manager
    assert y.manager is m
    assert m.misses == 2 and m.hits == 1   # table + pairs built once, pairs reused by the 2nd layer
    down = SparseConv3d(4, 4)(y)
    SubMConv3d(4, 4)(down)
    SparseConvTranspose3d(4, 4)(down)      # reuses the downsampling map
    assert ("down", 1, 2, 2) in m.maps and m.hits >= 2


def test_batch_items_do_not_interact():
    coords = random_coords(200, batch=1)
    other = coords.clone()
    other[:, 0] = 1
    feats = torch.randn(len(coords), 3)
    conv = SubMConv3d(3, 2)
    alone = conv(SparseTensor(coords, feats)).feats
    both = conv(SparseTensor(torch.cat([coords, other]), torch.cat([feats, torch.randn_like(feats)]))).feats
    torch.testing.assert_close(both[:len(coords)], alone)


def test_voxelize_and_devoxelize_round_trip():
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(1000, 3, generator=gen, dtype=torch.float64) * 10 + 6.6e6   # Lambert-93 scale
    feats = torch.rand(1000, 2, generator=gen)
    x, inverse = sparse_from_points(pts, feats, voxel_size=1.0)
    assert len(x) <= 1000 and x.coords[:, 1:].min() >= 0 and x.coords[:, 1:].max() <= 9
    back = devoxelize(x, inverse)
    assert back.shape == feats.shape
    # each voxel's feature is the mean of its points
    sums = torch.zeros(len(x), 2).index_add_(0, inverse, feats)
    cnt = torch.bincount(inverse, minlength=len(x)).float()
    torch.testing.assert_close(x.feats, sums / cnt[:, None])
    c, inv = voxelize(pts, 1.0)
    assert torch.equal(c, x.coords) and torch.equal(inv, inverse)


@pytest.mark.parametrize("case", ["small", "negative", "one row", "empty", "duplicates only", "too wide to pack"])
def test_unique_rows_equals_the_row_unique(case):
    """The packed-key unique gives torch.unique(dim=0)'s rows, order and inverse (the fallback too)."""
    from gaze3d.models.sparse.kernel_map import KeyPacker, unique_rows

    gen = torch.Generator().manual_seed(3)
    coords = {
        "small": torch.randint(0, 6, (500, 4), generator=gen),
        "negative": torch.randint(-40, 40, (2000, 4), generator=gen),
        "one row": torch.tensor([[1, -2, 3, 4]]),
        "empty": torch.zeros((0, 4), dtype=torch.long),
        "duplicates only": torch.tensor([[0, 5, 5, 5]] * 7),
        "too wide to pack": torch.tensor([[0, -2 ** 40, -2 ** 30, 1], [1, 2 ** 40, 2 ** 30, 0],
                                          [0, -2 ** 40, -2 ** 30, 1]]),
    }[case]
    coords[:, 0] = coords[:, 0].abs() % 3                       # batch index
    if case == "too wide to pack":                              # the fallback is what runs
        with pytest.raises(ValueError, match="too large to pack"):
            KeyPacker(coords, 0)
    ref, ref_inv = torch.unique(coords, dim=0, return_inverse=True)
    got, inv = unique_rows(coords, return_inverse=True)
    assert torch.equal(got, ref) and torch.equal(inv, ref_inv)
    assert torch.equal(unique_rows(coords), ref)


def test_batch_norm_matches_batchnorm1d_and_global_pool():
    coords = random_coords(100)
    feats = torch.randn(len(coords), 3)
    bn = SparseBatchNorm(3)
    torch.testing.assert_close(bn(SparseTensor(coords, feats)).feats,
                               torch.nn.functional.batch_norm(feats, None, None, training=True))
    g = global_avg_pool(SparseTensor(coords, feats))
    assert g.shape == (2, 3)
    torch.testing.assert_close(g[1], feats[coords[:, 0] == 1].mean(0))


# ---------------------------------------------------------------- backends
from gaze3d.models.sparse.backends import BACKENDS, backend_installed  # noqa: E402
from gaze3d.models.sparse.kernel_map import downsample_coords  # noqa: E402

OTHER_BACKENDS = [b for b in BACKENDS if b != "torch"]


def _backend_or_skip(name):
    if not backend_installed(name):
        pytest.skip(f"{name} not installed")
    return get_backend(name)


def _backend_input(kind, feats_seed):
    """A fresh input (own coordinate manager) and its leaf features.

    ``kind`` is the tensor stride of random voxels (two batch items, negative
    coordinates too), or ``("coarse", fine)``: the stride ``2 * fine`` cells of such
    voxels at stride ``fine``, in the same manager, as a transposed conv needs."""
    gen = torch.Generator().manual_seed(11)
    fine = kind[1] if isinstance(kind, tuple) else kind
    coords = torch.unique(torch.cat([torch.randint(0, 2, (600, 1), generator=gen),
                                     torch.randint(-7, 9, (600, 3), generator=gen)], 1), dim=0)
    coords[:, 1:] *= fine
    feats = torch.randn(len(coords), 5, generator=torch.Generator().manual_seed(feats_seed))
    if not isinstance(kind, tuple):
        feats.requires_grad_(True)
        return SparseTensor(coords, feats, fine), feats
    x = SparseTensor(coords, feats, fine)
    coarse = downsample_coords(coords, 2 * fine)
    feats = torch.randn(len(coarse), 5, generator=torch.Generator().manual_seed(feats_seed))
    feats.requires_grad_(True)
    return SparseTensor(coarse, feats, 2 * fine, x.manager), feats


# (id, input kind for _backend_input, layer from a backend); convs map 5 -> 4 channels
BACKEND_OPS = [
    ("subm_k1", 1, lambda be: be.subm_conv3d(5, 4, 1)),
    ("subm_k3", 1, lambda be: be.subm_conv3d(5, 4, 3)),
    ("subm_k3_dilation2", 1, lambda be: be.subm_conv3d(5, 4, 3, dilation=2)),
    ("subm_k5", 1, lambda be: be.subm_conv3d(5, 4, 5)),
    ("subm_k3_at_stride2", 2, lambda be: be.subm_conv3d(5, 4, 3)),
    ("conv_k2s2_from_stride1", 1, lambda be: be.conv3d(5, 4, 2, 2)),
    ("conv_k2s2_from_stride2", 2, lambda be: be.conv3d(5, 4, 2, 2)),
    ("conv_k3s2_from_stride1", 1, lambda be: be.conv3d(5, 4, 3, 2)),
    ("conv_k3s2_from_stride2", 2, lambda be: be.conv3d(5, 4, 3, 2)),
    ("transposed_k2s2_to_stride1", ("coarse", 1), lambda be: be.conv_transpose3d(5, 4, 2, 2)),
    ("transposed_k2s2_to_stride2", ("coarse", 2), lambda be: be.conv_transpose3d(5, 4, 2, 2)),
    ("transposed_k3s2_to_stride1", ("coarse", 1), lambda be: be.conv_transpose3d(5, 4, 3, 2)),
    ("max_pool_k2s2", 1, lambda be: be.max_pool3d(2, 2)),
    ("max_pool_k3s2_from_stride2", 2, lambda be: be.max_pool3d(3, 2)),
    ("avg_pool_k2s2", 1, lambda be: be.avg_pool3d(2, 2)),
    ("avg_pool_k3s2_from_stride2", 2, lambda be: be.avg_pool3d(3, 2)),
]


@pytest.mark.parametrize("name", OTHER_BACKENDS)
@pytest.mark.parametrize("op, kind, make", BACKEND_OPS, ids=[o[0] for o in BACKEND_OPS])
def test_backend_agrees_with_torch_backend(name, op, kind, make):
    """Same output coordinates, rows, stride and manager as the torch backend; same
    features, input gradient and (mapped back to (K, C_in, C_out)) weight gradient."""
    theirs_backend = _backend_or_skip(name)
    torch.manual_seed(5)
    ours, theirs = make(get_backend("torch")), make(theirs_backend)
    has_weight = hasattr(ours, "weight")
    if has_weight:
        theirs.load_weight(ours.weight.detach())
    x_ours, f_ours = _backend_input(kind, 12)
    x_theirs, f_theirs = _backend_input(kind, 12)
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)

    assert y_theirs.stride == y_ours.stride and y_theirs.manager is x_theirs.manager
    assert torch.equal(y_theirs.coords, y_ours.coords)
    scale = float(y_ours.feats.detach().abs().max())
    assert scale > 0
    torch.testing.assert_close(y_theirs.feats, y_ours.feats, rtol=1e-4, atol=1e-4 * scale)

    g = torch.randn(y_ours.feats.shape, generator=torch.Generator().manual_seed(13))
    (y_ours.feats * g).sum().backward()
    (y_theirs.feats * g).sum().backward()
    scale = float(f_ours.grad.abs().max())
    assert scale > 0
    torch.testing.assert_close(f_theirs.grad, f_ours.grad, rtol=1e-4, atol=1e-4 * scale)
    if has_weight:
        gw = theirs.to_our_layout(theirs.native_weight.grad)
        scale = float(ours.weight.grad.abs().max())
        torch.testing.assert_close(gw, ours.weight.grad, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_backend_max_pool_keeps_negative_maxima(name):
    """A window whose only voxel is its channel's minimum, and all-negative windows:
    spconv's CPU max pool starts from 0, which the backend must not let through."""
    be = _backend_or_skip(name)
    coords = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 4, 4, 4], [1, 2, 0, 0]])
    feats = torch.tensor([[-1.0, 2.0], [-0.5, 3.0], [-3.0, -4.0], [0.5, 1.0]])
    got, want = [], []
    for backend, out in ((be, got), (get_backend("torch"), want)):
        f = feats.clone().requires_grad_(True)
        y = backend.max_pool3d(2, 2)(SparseTensor(coords, f))
        y.feats.backward(torch.ones_like(y.feats))
        out += [y.coords, y.feats.detach(), f.grad]
    assert torch.equal(want[1], torch.tensor([[-0.5, 3.0], [-3.0, -4.0], [0.5, 1.0]]))
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
    torch.testing.assert_close(got[2], want[2])


@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_backend_weight_layout_round_trips(name):
    """load_weight then to_our_layout gives the loaded weight back, for every conv kind."""
    be = _backend_or_skip(name)
    for make in (lambda: be.subm_conv3d(3, 2, 3), lambda: be.subm_conv3d(3, 2, 1),
                 lambda: be.conv3d(3, 2, 3, 2), lambda: be.conv_transpose3d(3, 2, 2, 2)):
        layer = make()
        w = torch.randn(layer.kernel_size ** 3, 3, 2)
        layer.load_weight(w)
        torch.testing.assert_close(layer.to_our_layout(layer.native_weight.detach()), w)


@pytest.mark.skipif(not HAS_SPCONV, reason="spconv not installed")
def test_spconv_backend_is_deterministic_with_several_threads():
    """spconv's CPU kernels race with more than one torch thread (forward and input
    gradient); the backend runs them with one and restores the caller's count."""
    be = get_backend("spconv")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        coords = random_coords(3000, extent=20)
        feats = torch.randn(len(coords), 8)
        torch.manual_seed(8)
        for layer in (be.subm_conv3d(8, 8, 3), be.conv3d(8, 8, 2, 2)):
            runs = []
            for _ in range(4):
                f = feats.clone().requires_grad_(True)
                y = layer(SparseTensor(coords, f))
                y.feats.backward(torch.arange(8.0).expand_as(y.feats))
                runs.append((y.feats.detach(), f.grad))
                assert torch.get_num_threads() == max(2, threads)
            for out, grad in runs[1:]:
                assert torch.equal(out, runs[0][0]) and torch.equal(grad, runs[0][1])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("make, param", [
    (lambda be: be.subm_conv3d(4, 4, 2), "kernel_size"),
    (lambda be: be.subm_conv3d(0, 4, 3), "in_channels"),
    (lambda be: be.subm_conv3d(4, 4, 3, dilation=0), "dilation"),
    (lambda be: be.conv3d(4, 4, 2, stride=1), "stride"),
    (lambda be: be.conv_transpose3d(4, 4, 0, 2), "kernel_size"),
    (lambda be: be.max_pool3d(2, 1), "stride"),
    (lambda be: be.avg_pool3d(0, 2), "kernel_size"),
])
def test_backend_bad_layer_config_raises_value_error(name, make, param):
    be = _backend_or_skip(name)
    with pytest.raises(ValueError, match=param):
        make(be)


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_rejects_wrong_weight_shape(name):
    layer = _backend_or_skip(name).conv3d(3, 2, 2, 2)
    with pytest.raises(ValueError, match="weight"):
        layer.load_weight(torch.zeros(27, 3, 2))


def test_minkowski_backend_fails_with_install_hint_when_missing():
    if importlib.util.find_spec("MinkowskiEngine") is not None:
        pytest.skip("MinkowskiEngine is installed; the missing-package path cannot be exercised")
    from gaze3d.errors import OptionalDependencyError
    with pytest.raises(OptionalDependencyError, match="install"):
        get_backend("minkowski")


# ---------------------------------------------------------------- CUDA
cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here (CI and the dev machine are "
                                               "CPU-only); run bench/gpu_check.sh on a GPU machine")


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("layer", ["subm", "strided", "transposed", "pool"])
def test_cuda_agrees_with_cpu(layer):
    torch.manual_seed(6)
    coords = random_coords(3000, extent=24)
    feats = torch.randn(len(coords), 8)
    mods = {"subm": SubMConv3d(8, 8), "strided": SparseConv3d(8, 8), "pool": SparseMaxPool3d()}
    if layer == "transposed":
        down, up = SparseConv3d(8, 8), SparseConvTranspose3d(8, 4)
        run = lambda x, d, u: u(d(x))  # noqa: E731
        cpu = run(SparseTensor(coords, feats), down, up)
        gpu = run(SparseTensor(coords.cuda(), feats.cuda()), down.cuda(), up.cuda())
    else:
        m = mods[layer]
        cpu = m(SparseTensor(coords, feats))
        gpu = m.cuda()(SparseTensor(coords.cuda(), feats.cuda()))
    assert torch.equal(cpu.coords, gpu.coords.cpu())
    torch.testing.assert_close(gpu.feats.cpu(), cpu.feats, rtol=1e-4, atol=1e-4)


@cuda
@pytest.mark.gpu
def test_cuda_gradcheck_float64():
    coords = random_coords(60, extent=5).cuda()
    feats = torch.randn(len(coords), 2, dtype=torch.float64, device="cuda", requires_grad=True)
    weight = torch.randn(27, 2, 3, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(_op("subm", coords), (feats, weight))
