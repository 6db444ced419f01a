"""spconv backend: spconv 2.x layers behind this package's SparseTensor.

Our coordinates become spconv indices by shifting by an origin that is a
multiple of the coarsest stride involved (so the cell grids and parities are
kept) and dividing by the tensor stride; spconv's output indices are mapped
back the same way and its rows gathered at our output coordinates (rows
spconv does not produce are zero). Per layer, checked against dense
``torch.nn.functional`` ops in experiments with spconv 2.3.8:

* ``subm_conv3d`` -> ``spconv.SubMConv3d`` (``dilation`` passed on);
* ``conv3d`` -> ``spconv.SparseConv3d`` with ``padding = k // 2`` for odd
  kernels, 0 for even (``out[o] = sum_k in[s*o - p + k]``, as ours); spconv
  also produces the cells only its kernel window reaches, which are dropped;
* ``conv_transpose3d`` -> ``spconv.SparseConvTranspose3d`` with the same
  padding (``out[s*o + k - p] += in[o] W[k]``), gathered at the finer-stride
  voxels of our manager;
* ``max_pool3d`` -> ``spconv.SparseMaxPool3d``. Its CPU kernel starts each
  output at 0, so it returns ``max(0, ...)``; features are shifted by a
  per-channel constant (their minimum - 1, so gradients are unchanged) to make
  every input >= 1, and shifted back;
* ``avg_pool3d``: spconv's ``SparseAvgPool3d`` is CUDA-only (implicit GEMM),
  so the sum and the count of the inputs in each window come from one
  ``spconv.SparseConv3d`` with fixed identity weights on the features plus a
  column of ones, and the mean is their ratio.

Weights: spconv's are ``(C_out, kx, ky, kz, C_in)`` and, like ours,
cross-correlations over the index axes in order, for the transposed layer too;
except that a 1x1x1 submanifold kernel is applied as ``feats @ weight.view(C_in,
C_out)``, so its storage is loaded in that order.

Two defects of spconv 2.3.8's CPU build are worked around for every layer
(both seen on this project's CPU machine): with more than one torch thread its
CPU kernels race and return wrong sums on some calls, forward *and* backward
(input gradient), so on CPU both run with ``torch.set_num_threads(1)``
(:class:`_OneThread`); and its backward asks for the current CUDA stream even
for CPU tensors, which fails with a CPU-only torch, so that lookup is made to
return stream 0 when CUDA is unavailable.
"""
from __future__ import annotations

import contextlib
import importlib

import torch
from torch import nn

from gaze3d._optional import optional_import

from ._backend_base import (SparseBackend, check_channels, check_input, check_layer_args,
                            check_weight, origin, rows_at, strided_out_coords, take_rows,
                            transposed_out_coords)
from .tensor import SparseTensor


@contextlib.contextmanager
def _threads_for(device: torch.device):
    """One torch thread on CPU (spconv's CPU kernels race with more)."""
    if device.type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class _OneThread(torch.autograd.Function):
    """``run(feats)`` (a spconv call using ``params``) with its forward and backward
    under :func:`_threads_for`: the spconv graph is built inside and differentiated
    in this function's backward. Returns spconv's output features and indices."""

    @staticmethod
    def forward(ctx, run, feats, *params):
        with torch.enable_grad():
            leaf = feats.detach().requires_grad_(feats.requires_grad)
            with _threads_for(feats.device):
                out = run(leaf)
        ctx.inner = (leaf, params, out.features)
        ctx.mark_non_differentiable(out.indices)
        return out.features.detach(), out.indices

    @staticmethod
    def backward(ctx, grad, _):
        leaf, params, out = ctx.inner
        inputs = (leaf, *params)
        want = [i for i, t in enumerate(inputs) if t.requires_grad and ctx.needs_input_grad[i + 1]]
        grads = [None] * len(inputs)
        if want and out.requires_grad:
            with _threads_for(grad.device):
                got = torch.autograd.grad(out, [inputs[i] for i in want], grad,
                                          allow_unused=True)
            for i, g in zip(want, got):
                grads[i] = g
        return (None, *grads)


class _SpconvLayer(nn.Module):
    """Conversion to and from spconv around one spconv layer ``self.layer``."""

    def __init__(self, spconv):
        super().__init__()
        self._spconv = spconv

    def _run(self, layer, feats, idx, shape, batch_size, params=()):
        """spconv ``layer`` on ``feats (n, C)`` at ``idx (n, 4) int32``:
        ``(features (m, C'), indices (m, 4) int64)``."""
        def run(f):
            return layer(self._spconv.SparseConvTensor(f, idx, shape, batch_size))
        params = tuple(p for p in params if p.requires_grad)
        if torch.is_grad_enabled() and (feats.requires_grad or params):
            out, indices = _OneThread.apply(run, feats, *params)
        else:
            with _threads_for(feats.device):
                sp = run(feats)
            out, indices = sp.features, sp.indices
        return out, indices.long()

    @staticmethod
    def _indices(coords: torch.Tensor, shift: torch.Tensor, stride: int) -> torch.Tensor:
        idx = coords.clone()
        idx[:, 1:] = torch.div(idx[:, 1:] - shift, stride, rounding_mode="floor")
        return idx.int()

    def _strided(self, layer, x: SparseTensor, feats: torch.Tensor, stride: int,
                 kernel_size: int, params=()):
        """Run a strided layer: ``(out coords (m, 4), spconv's features (m', C'), rows (m,))``,
        ``rows`` the spconv row of each output voxel (-1 where spconv has none)."""
        out_coords = strided_out_coords(x, stride)
        out_stride = x.stride * stride
        shift = origin(x.coords, out_stride)
        idx = self._indices(x.coords, shift, x.stride)
        out_max = torch.div(out_coords[:, 1:] - shift, out_stride,
                            rounding_mode="floor").max(0).values
        # input extent large enough that spconv's output grid holds every output cell
        shape = torch.maximum(idx[:, 1:].max(0).values.long() + 1,
                              (out_max + 1) * stride + kernel_size).tolist()
        feats, their = self._run(layer, feats, idx, shape, x.batch_size, params)
        their[:, 1:] = their[:, 1:] * out_stride + shift
        return out_coords, feats, rows_at(their, out_coords)


def _padding(kernel_size: int) -> int:
    # our odd kernels are centred on the output voxel, even ones span its cell
    return kernel_size // 2 if kernel_size % 2 else 0


class _SpconvConv(_SpconvLayer):
    """A spconv convolution with weights loadable from our ``(K, C_in, C_out)`` layout."""

    def __init__(self, spconv, layer, in_channels, out_channels, kernel_size):
        super().__init__(spconv)
        self.layer = layer
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size

    @property
    def native_weight(self) -> nn.Parameter:
        return self.layer.weight

    def _read_as_matrix(self) -> bool:
        """spconv computes a 1x1x1 stride-1 kernel as ``feats @ weight.view(C_in, C_out)``
        (its ``FILTER_HWIO`` off): the storage is read as ``(C_in, C_out)`` whatever the
        parameter's ``(C_out, 1, 1, 1, C_in)`` shape says."""
        conv_module = importlib.import_module("spconv.pytorch.conv")
        return bool(getattr(self.layer, "conv1x1", False)) and not conv_module.FILTER_HWIO

    def load_weight(self, weight: torch.Tensor) -> None:
        check_weight(weight, self.kernel_size, self.in_channels, self.out_channels)
        k, cin, cout = self.kernel_size, self.in_channels, self.out_channels
        if self._read_as_matrix():
            w = weight.reshape(self.layer.weight.shape)
        else:
            w = weight.reshape(k, k, k, cin, cout).permute(4, 0, 1, 2, 3)
        with torch.no_grad():
            self.layer.weight.copy_(w)

    def to_our_layout(self, tensor: torch.Tensor) -> torch.Tensor:
        cin, cout = self.in_channels, self.out_channels
        if self._read_as_matrix():
            return tensor.reshape(1, cin, cout)
        return tensor.permute(1, 2, 3, 4, 0).reshape(-1, cin, cout)


class _SpconvSubM(_SpconvConv):
    def _grid(self, x: SparseTensor):
        """``(shift (3,), spconv indices (n, 4) int32, spatial shape)`` of ``x``."""
        shift = origin(x.coords, x.stride)
        idx = self._indices(x.coords, shift, x.stride)
        return shift, idx, (idx[:, 1:].max(0).values.long() + 1).tolist()

    def to_spconv(self, x: SparseTensor):
        """Our tensor as a ``spconv.SparseConvTensor`` (indices shifted to >= 0)."""
        _, idx, shape = self._grid(x)
        return self._spconv.SparseConvTensor(x.feats, idx, shape, x.batch_size)

    def forward(self, x: SparseTensor) -> SparseTensor:
        check_input(x, self.in_channels)
        shift, idx, shape = self._grid(x)
        feats, their = self._run(self.layer, x.feats, idx, shape, x.batch_size,
                                 (self.layer.weight,))
        their[:, 1:] = their[:, 1:] * x.stride + shift
        return x.replace(take_rows(feats, rows_at(their, x.coords)))


class _SpconvStridedBase(_SpconvConv):
    """A strided spconv layer, class ``spconv.<layer_class>``, with our padding convention."""
    layer_class = ""

    def __init__(self, spconv, in_channels, out_channels, kernel_size, stride):
        layer = getattr(spconv, self.layer_class)(in_channels, out_channels, kernel_size, stride,
                                                  padding=_padding(kernel_size), bias=False)
        super().__init__(spconv, layer, in_channels, out_channels, kernel_size)
        self.stride = stride


class _SpconvStrided(_SpconvStridedBase):
    layer_class = "SparseConv3d"

    def forward(self, x: SparseTensor) -> SparseTensor:
        check_input(x, self.in_channels)
        coords, feats, rows = self._strided(self.layer, x, x.feats, self.stride,
                                            self.kernel_size, (self.layer.weight,))
        return SparseTensor(coords, take_rows(feats, rows), x.stride * self.stride, x.manager)


class _SpconvTransposed(_SpconvStridedBase):
    layer_class = "SparseConvTranspose3d"

    def forward(self, x: SparseTensor) -> SparseTensor:
        check_input(x, self.in_channels)
        fine, out_coords = transposed_out_coords(x, self.stride)
        shift = origin(torch.cat([x.coords, out_coords]), x.stride)
        idx = self._indices(x.coords, shift, x.stride)
        fine_max = torch.div(out_coords[:, 1:] - shift, fine, rounding_mode="floor").max(0).values
        # spconv's output extent (n - 1) * s - 2p + k must hold every fine voxel
        shape = (torch.maximum(idx[:, 1:].max(0).values.long(),
                               torch.div(fine_max, self.stride, rounding_mode="floor") + 1)
                 + 2).tolist()
        feats, their = self._run(self.layer, x.feats, idx, shape, x.batch_size,
                                 (self.layer.weight,))
        their[:, 1:] = their[:, 1:] * fine + shift
        return SparseTensor(out_coords, take_rows(feats, rows_at(their, out_coords)), fine,
                            x.manager)


class _SpconvMaxPool(_SpconvLayer):
    def __init__(self, spconv, kernel_size, stride):
        super().__init__(spconv)
        self.kernel_size, self.stride = kernel_size, stride
        self.layer = spconv.SparseMaxPool3d(kernel_size, stride, padding=_padding(kernel_size))

    def forward(self, x: SparseTensor) -> SparseTensor:
        check_input(x)
        # spconv's max starts at 0: make every input >= 1, so none ties with that start
        lo = x.feats.detach().amin(0) - 1
        coords, feats, rows = self._strided(self.layer, x, x.feats - lo, self.stride,
                                            self.kernel_size)
        return SparseTensor(coords, take_rows(feats + lo, rows), x.stride * self.stride, x.manager)


class _SpconvAvgPool(_SpconvLayer):
    """Mean as (sum, count) from a spconv conv with fixed identity weights (see module doc)."""

    def __init__(self, spconv, kernel_size, stride):
        super().__init__(spconv)
        self.kernel_size, self.stride = kernel_size, stride
        self._sums = {}                     # (channels, device, dtype) -> spconv conv; not state

    def _sum_layer(self, feats: torch.Tensor):
        key = (feats.shape[1], feats.device, feats.dtype)
        layer = self._sums.get(key)
        if layer is None:
            c, k = feats.shape[1] + 1, self.kernel_size
            layer = self._spconv.SparseConv3d(c, c, k, self.stride, padding=_padding(k),
                                              bias=False)
            layer.weight.requires_grad_(False)
            with torch.no_grad():   # (C_out, k, k, k, C_in): identity for every offset
                layer.weight.copy_(torch.eye(c)[:, None, None, None, :].expand(c, k, k, k, c))
            layer = layer.to(device=feats.device, dtype=feats.dtype)
            self._sums[key] = layer
        return layer

    def forward(self, x: SparseTensor) -> SparseTensor:
        check_input(x)
        ones = x.feats.new_ones(len(x), 1)
        coords, sums, rows = self._strided(self._sum_layer(x.feats), x,
                                           torch.cat([x.feats, ones], 1), self.stride,
                                           self.kernel_size)
        sums = take_rows(sums, rows)
        mean = sums[:, :-1] / sums[:, -1:].clamp(min=1)
        return SparseTensor(coords, mean, x.stride * self.stride, x.manager)


class SpconvBackend(SparseBackend):
    """spconv 2.x layers on our SparseTensor (see the module docstring)."""
    name = "spconv"

    def __init__(self):
        self.spconv = optional_import("spconv.pytorch")
        if not torch.cuda.is_available():
            ops = importlib.import_module("spconv.pytorch.ops")
            ops.get_current_stream = lambda: 0   # CPU-only torch: see the module docstring

    def subm_conv3d(self, in_channels, out_channels, kernel_size=3, dilation=1):
        check_channels(in_channels, out_channels)
        check_layer_args(kernel_size, dilation=dilation, odd=True)
        layer = self.spconv.SubMConv3d(in_channels, out_channels, kernel_size,
                                       dilation=dilation, bias=False)
        return _SpconvSubM(self.spconv, layer, in_channels, out_channels, kernel_size)

    def conv3d(self, in_channels, out_channels, kernel_size=2, stride=2):
        check_channels(in_channels, out_channels)
        check_layer_args(kernel_size, stride)
        return _SpconvStrided(self.spconv, in_channels, out_channels, kernel_size, stride)

    def conv_transpose3d(self, in_channels, out_channels, kernel_size=2, stride=2):
        check_channels(in_channels, out_channels)
        check_layer_args(kernel_size, stride)
        return _SpconvTransposed(self.spconv, in_channels, out_channels, kernel_size, stride)

    def max_pool3d(self, kernel_size=2, stride=2):
        check_layer_args(kernel_size, stride)
        return _SpconvMaxPool(self.spconv, kernel_size, stride)

    def avg_pool3d(self, kernel_size=2, stride=2):
        check_layer_args(kernel_size, stride)
        return _SpconvAvgPool(self.spconv, kernel_size, stride)
