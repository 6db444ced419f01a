"""Sparse 3D convolutions: submanifold, strided and transposed.

Weights are laid out ``(K, C_in, C_out)`` with ``K = kernel_size**3`` offsets in
the order of :func:`~.kernel_map.kernel_offsets` (x slowest, z fastest); like
``torch.nn.functional.conv3d`` they are cross-correlations:
``out[p] = sum_k in[p + offset_k] @ W[k]``.

All three are gather-GEMM-scatter over per-offset pairs of a cached kernel
map, with a hand-written backward (one gather of the output gradient per
offset serves both the input and the weight gradient):

* Submanifold (:class:`SubMConv3d`): output voxels = input voxels; the centre
  offset is the identity and runs as one dense GEMM.
* Strided (:class:`SparseConv3d`): output voxels are the occupied coarse cells.
* Transposed (:class:`SparseConvTranspose3d`): the pairs of the matching
  downsampling with input and output swapped.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .kernel_map import down_map, subm_pairs
from .tensor import SparseTensor

def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


class _GatherGemmScatter(torch.autograd.Function):
    """``out[o] += feats[i] @ W[k]`` for every pair ``(i, o)`` of offset ``k``.

    ``pairs[k]`` is ``(in_rows, out_rows)``, or ``None`` for an identity offset
    (the submanifold centre), applied as one dense GEMM. Temporaries stay per
    offset (a few MB), which keeps them in the allocator's heap: fresh
    100 MB buffers cost more in page faults than the arithmetic.
    """

    @staticmethod
    def forward(ctx, feats, weight, pairs, n_out):
        ctx.pairs = pairs
        ctx.save_for_backward(feats, weight)
        out = feats.new_zeros(n_out, weight.shape[2])
        for k, pair in enumerate(pairs):
            if pair is None:
                out.addmm_(feats, weight[k])
            elif len(pair[0]):
                out.index_add_(0, pair[1], feats.index_select(0, pair[0]) @ weight[k])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        feats, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(feats) if need_x else None
        grad_w = torch.zeros_like(weight) if need_w else None
        for k, pair in enumerate(ctx.pairs):
            if pair is None:
                if need_x:
                    grad_x.addmm_(grad_out, weight[k].t())
                if need_w:
                    torch.mm(feats.t(), grad_out, out=grad_w[k])
            elif len(pair[0]):
                g = grad_out.index_select(0, pair[1])
                if need_x:
                    grad_x.index_add_(0, pair[0], g @ weight[k].t())
                if need_w:
                    torch.mm(feats.index_select(0, pair[0]).t(), g, out=grad_w[k])
        return grad_x, grad_w, None, None


def gather_gemm_scatter(feats: torch.Tensor, weight: torch.Tensor, pairs, n_out: int) -> torch.Tensor:
    """Sparse convolution features ``(n_out, C_out)`` from ``feats (n_in, C_in)``,
    ``weight (K, C_in, C_out)`` and a per-offset pair list (see :class:`_GatherGemmScatter`)."""
    return _GatherGemmScatter.apply(feats.contiguous(), weight.to(feats.dtype), pairs, n_out)


def subm_conv3d(x: SparseTensor, weight: torch.Tensor, kernel_size: int, dilation: int = 1
                ) -> torch.Tensor:
    """Submanifold convolution features ``(n, C_out)`` of ``x`` with ``weight (K, C_in, C_out)``."""
    return gather_gemm_scatter(x.feats, weight, subm_pairs(x, kernel_size, dilation), len(x))


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
        out = gather_gemm_scatter(x.feats, self.weight, pairs, len(out_coords))
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
        out = gather_gemm_scatter(x.feats, self.weight, [(c, f) for f, c in pairs], n_fine)
        return SparseTensor(x.manager.coords[fine], self._finish(out), fine, x.manager)
