"""Sparse 3D convolutions: submanifold, strided and transposed.

Weights are laid out ``(K, C_in, C_out)`` with ``K = kernel_size**3`` offsets in
the order of :func:`~.kernel_map.kernel_offsets` (x slowest, z fastest); like
``torch.nn.functional.conv3d`` they are cross-correlations:
``out[p] = sum_k in[p + offset_k] @ W[k]``.

* Submanifold (:class:`SubMConv3d`): output voxels = input voxels. Uses the
  cached neighbour table and, per chunk of rows, one gather into an im2col
  matrix ``(m, K*C_in)`` and one GEMM. Its backward is the same operation with
  the mirrored table (odd kernels are point-symmetric), so there is no scatter
  at all.
* Strided (:class:`SparseConv3d`) and transposed
  (:class:`SparseConvTranspose3d`): gather-GEMM-scatter over the per-offset
  pairs of the cached downsampling map; autograd handles the backward.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .kernel_map import down_map, subm_table
from .tensor import SparseTensor

# Rows of the im2col matrix per chunk: about 8 M floats, small enough for the cache
# hierarchy to matter less than the GEMM, big enough for the GEMM to be efficient.
_IM2COL_FLOATS = 1 << 23


def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def _gather_gemm(feats: torch.Tensor, table: torch.Tensor, weight2d: torch.Tensor) -> torch.Tensor:
    """``out[i] = concat_k feats_padded[table[i, k]] @ weight2d``, chunked over rows."""
    n, K = table.shape
    cin = feats.shape[1]
    padded = torch.cat([feats, feats.new_zeros(1, cin)])
    out = feats.new_empty(n, weight2d.shape[1])
    step = max(256, _IM2COL_FLOATS // max(1, K * cin))
    for a in range(0, n, step):
        rows = table[a:a + step]
        cols = padded.index_select(0, rows.reshape(-1)).view(len(rows), K * cin)
        torch.mm(cols, weight2d, out=out[a:a + step])
    return out


def _gram(feats: torch.Tensor, table: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """``sum_i im2col(feats)[i]^T grad_out[i]`` as ``(K*C_in, C_out)``, chunked."""
    n, K = table.shape
    cin = feats.shape[1]
    padded = torch.cat([feats, feats.new_zeros(1, cin)])
    acc = feats.new_zeros(K * cin, grad_out.shape[1])
    step = max(256, _IM2COL_FLOATS // max(1, K * cin))
    for a in range(0, n, step):
        rows = table[a:a + step]
        cols = padded.index_select(0, rows.reshape(-1)).view(len(rows), K * cin)
        acc.addmm_(cols.t(), grad_out[a:a + step])
    return acc


class _SubMConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, weight, table):
        K, cin, cout = weight.shape
        ctx.save_for_backward(feats, weight, table)
        return _gather_gemm(feats, table, weight.reshape(K * cin, cout))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        feats, weight, table = ctx.saved_tensors
        K, cin, cout = weight.shape
        grad_out = grad_out.contiguous()
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            # out[j] += in[i] W[k] where i = table[j, k]  <=>  j = table[i, K-1-k]
            mirrored = weight.flip(0).transpose(1, 2).reshape(K * cout, cin)
            grad_feats = _gather_gemm(grad_out, table.flip(1), mirrored)
        if ctx.needs_input_grad[1]:
            grad_weight = _gram(feats, table, grad_out).view(K, cin, cout)
        return grad_feats, grad_weight, None


def subm_conv3d(x: SparseTensor, weight: torch.Tensor, kernel_size: int, dilation: int = 1
                ) -> torch.Tensor:
    """Submanifold convolution features ``(n, C_out)`` of ``x`` with ``weight (K, C_in, C_out)``."""
    table = subm_table(x, kernel_size, dilation)
    feats = x.feats.contiguous()
    return _SubMConvFunction.apply(feats, weight.to(feats.dtype), table)


def _pairs_conv(feats, weight, pairs, n_out, swap: bool):
    out = feats.new_zeros(n_out, weight.shape[2])
    for k, (fine, coarse) in enumerate(pairs):
        src, dst = (coarse, fine) if swap else (fine, coarse)
        if len(src):
            out.index_add_(0, dst, feats.index_select(0, src) @ weight[k])
    return out


class _ConvBase(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, bias):
        super().__init__()
        self.in_channels = _check_int("in_channels", in_channels)
        self.out_channels = _check_int("out_channels", out_channels)
        self.kernel_size = _check_int("kernel_size", kernel_size)
        K = kernel_size ** 3
        self.weight = nn.Parameter(torch.empty(K, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # Kaiming-uniform on fan_in = K * C_in, as nn.Conv3d
        bound = 1.0 / math.sqrt(K * in_channels)
        nn.init.uniform_(self.weight, -math.sqrt(3) * bound, math.sqrt(3) * bound)

    def _check_input(self, x: SparseTensor):
        if not isinstance(x, SparseTensor):
            raise ValueError(f"x: expected a SparseTensor, got {type(x).__name__}")
        if x.num_channels != self.in_channels:
            raise ValueError(f"x: expected {self.in_channels} channels, got {x.num_channels}")

    def _finish(self, out: torch.Tensor) -> torch.Tensor:
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
                f"{getattr(self, '_extra', '')}, bias={self.bias is not None}")


class SubMConv3d(_ConvBase):
    """Submanifold sparse convolution: the output has exactly the input voxels.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int, odd
    dilation : int
    bias : bool
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 dilation: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, bias)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: a submanifold convolution needs an odd kernel, "
                             f"got {kernel_size}")
        self.dilation = _check_int("dilation", dilation)
        self._extra = f", dilation={dilation}"

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        return x.replace(self._finish(subm_conv3d(x, self.weight, self.kernel_size, self.dilation)))


class SparseConv3d(_ConvBase):
    """Strided sparse convolution: output voxels are the occupied cells at ``stride * s``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        Even kernels (typically ``kernel_size == stride == 2``) cover the cell;
        odd kernels are centred on the coarse voxel.
    stride : int >= 2
    bias : bool
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2,
                 stride: int = 2, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, bias)
        self.stride = _check_int("stride", stride, 2)
        self._extra = f", stride={stride}"

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        out_coords, pairs = down_map(x.manager, x.stride, self.kernel_size, self.stride)
        out = _pairs_conv(x.feats, self.weight.to(x.feats.dtype), pairs, len(out_coords), swap=False)
        return SparseTensor(out_coords, self._finish(out), x.stride * self.stride, x.manager)


class SparseConvTranspose3d(_ConvBase):
    """Transposed sparse convolution back onto the voxels of a finer stride.

    The output voxels are those the coordinate manager holds at stride
    ``x.stride // stride`` (the encoder's voxels in a U-Net), so the result
    lines up with the skip connection.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
    stride : int >= 2
    bias : bool
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2,
                 stride: int = 2, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, bias)
        self.stride = _check_int("stride", stride, 2)
        self._extra = f", stride={stride}"

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        if x.stride % self.stride:
            raise ValueError(f"stride: tensor stride {x.stride} is not divisible by {self.stride}")
        fine = x.stride // self.stride
        out_coords, pairs = down_map(x.manager, fine, self.kernel_size, self.stride)
        if len(out_coords) != len(x):
            raise ValueError(f"x: {len(x)} voxels, but the manager holds {len(out_coords)} at "
                             f"stride {x.stride}; transposed conv needs the tensor made by the "
                             "matching downsampling")
        n_fine = len(x.manager.coords[fine])
        out = _pairs_conv(x.feats, self.weight.to(x.feats.dtype), pairs, n_fine, swap=True)
        return SparseTensor(x.manager.coords[fine], self._finish(out), fine, x.manager)
