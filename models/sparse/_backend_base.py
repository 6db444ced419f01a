"""The backend interface and the helpers every backend shares.

A module of its own so that :mod:`.backends` (which picks a backend) and the
backends it loads (:mod:`._spconv`, :mod:`._minkowski`) both import it, and
neither imports the other: the arrows run one way.
"""
from __future__ import annotations

import torch
from torch import nn

from .conv import _check_int
from .conv import check_input as check_conv_input
from .kernel_map import downsample_coords, neighbour_table
from .tensor import SparseTensor

BACKENDS = ("torch", "spconv", "minkowski")


class SparseBackend:
    """The layers a backend provides. ``name`` is one of :data:`BACKENDS`."""
    name = "base"

    def subm_conv3d(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                    dilation: int = 1) -> nn.Module:
        """Bias-free submanifold convolution (odd ``kernel_size``): output on the input voxels."""
        raise NotImplementedError

    def conv3d(self, in_channels: int, out_channels: int, kernel_size: int = 2,
               stride: int = 2) -> nn.Module:
        """Bias-free strided convolution onto the occupied cells at ``x.stride * stride``."""
        raise NotImplementedError

    def conv_transpose3d(self, in_channels: int, out_channels: int, kernel_size: int = 2,
                         stride: int = 2) -> nn.Module:
        """Bias-free transposed convolution onto the manager's voxels at ``x.stride // stride``."""
        raise NotImplementedError

    def max_pool3d(self, kernel_size: int = 2, stride: int = 2) -> nn.Module:
        """Max over the input voxels in each output's window."""
        raise NotImplementedError

    def avg_pool3d(self, kernel_size: int = 2, stride: int = 2) -> nn.Module:
        """Mean over the (occupied) input voxels in each output's window."""
        raise NotImplementedError


# ---------------------------------------------------------------- helpers shared by backends
def check_layer_args(kernel_size: int, stride: int = None, dilation: int = 1,
                     odd: bool = False) -> None:
    """ValueError naming the parameter, with the rules of this package's layers."""
    _check_int("kernel_size", kernel_size)
    if odd and kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: a submanifold convolution needs an odd kernel, "
                         f"got {kernel_size}")
    if stride is not None:
        _check_int("stride", stride, 2)
    _check_int("dilation", dilation)


def check_channels(in_channels: int, out_channels: int) -> None:
    _check_int("in_channels", in_channels)
    _check_int("out_channels", out_channels)


def check_input(x, channels: int = None) -> None:
    """:func:`~.conv.check_input`, and at least one voxel (the shift to non-negative indices needs one)."""
    check_conv_input(x, channels)
    if not len(x):
        raise ValueError("x: expected at least one voxel, got an empty SparseTensor")


def check_weight(weight: torch.Tensor, kernel_size: int, in_channels: int,
                 out_channels: int) -> None:
    want = (kernel_size ** 3, in_channels, out_channels)
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != want:
        raise ValueError(f"weight: expected shape {want} (K, C_in, C_out), got "
                         f"{tuple(getattr(weight, 'shape', ())) or type(weight).__name__}")


def strided_out_coords(x: SparseTensor, stride: int) -> torch.Tensor:
    """``(m, 4)`` output voxels of a strided conv or pool of ``x``, as :func:`~.kernel_map.down_map`
    gives them: those the manager already holds at ``x.stride * stride``, else the occupied cells
    (then registered)."""
    out_stride = x.stride * stride
    have = x.manager.coords.get(out_stride)
    if have is None:
        have = x.manager.register(out_stride, downsample_coords(x.coords, out_stride))
    return have


def transposed_out_coords(x: SparseTensor, stride: int):
    """``(fine_stride, (m, 4) coords)`` a transposed conv of ``x`` writes onto."""
    if x.stride % stride:
        raise ValueError(f"stride: tensor stride {x.stride} is not divisible by {stride}")
    fine = x.stride // stride
    coords = x.manager.coords.get(fine)
    if coords is None:
        raise ValueError(f"x: no voxels at tensor stride {fine} in its coordinate manager (have "
                         f"{sorted(x.manager.coords)}); transposed conv needs the tensor made "
                         "by the matching downsampling")
    return fine, coords


def origin(coords: torch.Tensor, multiple: int) -> torch.Tensor:
    """``(3,)`` per-axis minimum of ``coords (n, 4)`` rounded down to a multiple of ``multiple``:
    shifting by it makes indices non-negative and keeps every coarser stride's cell grid."""
    lo = coords[:, 1:].min(0).values
    return torch.div(lo, multiple, rounding_mode="floor") * multiple


def rows_at(their_coords: torch.Tensor, our_coords: torch.Tensor) -> torch.Tensor:
    """``(n_ours,)`` int64: the row of ``their_coords (m, 4)`` holding each row of
    ``our_coords (n_ours, 4)``, -1 where none does."""
    if not len(their_coords):
        return torch.full((len(our_coords),), -1, dtype=torch.long, device=our_coords.device)
    zero = torch.zeros(1, 3, dtype=torch.long, device=our_coords.device)
    return neighbour_table(their_coords.long(), our_coords, zero)[:, 0]


def take_rows(feats: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``feats[rows]`` with a zero row where ``rows == -1`` (differentiable)."""
    return torch.cat([feats, feats.new_zeros(1, feats.shape[1])])[rows]
