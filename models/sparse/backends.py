"""Sparse-convolution backends behind one interface.

``torch`` (this package, default) always works. ``spconv`` (:mod:`._spconv`)
and ``minkowski`` (:mod:`._minkowski`) are used only if importable; asking for
one that is not installed fails on first use with an install hint
(:class:`gaze3d.errors.OptionalDependencyError`).

Every backend builds the same five layers, each a module
``SparseTensor -> SparseTensor``: submanifold, strided and transposed
convolution, max and average pooling. Whatever the backend computes
internally, its output is on exactly the coordinates the torch backend gives
(strided: the occupied coarse cells; transposed: the finer-stride voxels held
by the tensor's :class:`~.tensor.CoordinateManager`), in the same row order,
with the same tensor stride and manager, so outputs compare row by row and the
layers drop into this package's networks. Convolution modules have

* ``load_weight(weight)``: set the weights from this package's layout
  ``(K, C_in, C_out)`` (offsets of :func:`~.kernel_map.kernel_offsets`);
* ``native_weight``: the backend's own weight parameter;
* ``to_our_layout(t)``: a tensor shaped like ``native_weight`` (the weight or
  its gradient) in the ``(K, C_in, C_out)`` layout.
"""
from __future__ import annotations

import importlib
import importlib.util

import torch
from torch import nn

from .conv import SparseConv3d, SparseConvTranspose3d, SubMConv3d, _check_int
from .conv import check_input as check_conv_input
from .kernel_map import downsample_coords, neighbour_table
from .pool import SparseAvgPool3d, SparseMaxPool3d
from .tensor import SparseTensor

BACKENDS = ("torch", "spconv", "minkowski")
_IMPORT = {"spconv": "spconv.pytorch", "minkowski": "MinkowskiEngine"}


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


# ---------------------------------------------------------------- torch backend
class _OurLayout:
    """Weight access for the torch backend's modules, whose layout is already ours."""

    @property
    def native_weight(self) -> nn.Parameter:
        return self.weight

    def load_weight(self, weight: torch.Tensor) -> None:
        check_weight(weight, self.kernel_size, self.in_channels, self.out_channels)
        with torch.no_grad():
            self.weight.copy_(weight)

    def to_our_layout(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor


class _TorchSubM(_OurLayout, SubMConv3d):
    pass


class _TorchConv(_OurLayout, SparseConv3d):
    pass


class _TorchConvTranspose(_OurLayout, SparseConvTranspose3d):
    pass


class TorchBackend(SparseBackend):
    name = "torch"

    def subm_conv3d(self, in_channels, out_channels, kernel_size=3, dilation=1):
        return _TorchSubM(in_channels, out_channels, kernel_size, dilation)

    def conv3d(self, in_channels, out_channels, kernel_size=2, stride=2):
        return _TorchConv(in_channels, out_channels, kernel_size, stride)

    def conv_transpose3d(self, in_channels, out_channels, kernel_size=2, stride=2):
        return _TorchConvTranspose(in_channels, out_channels, kernel_size, stride)

    def max_pool3d(self, kernel_size=2, stride=2):
        return SparseMaxPool3d(kernel_size, stride)

    def avg_pool3d(self, kernel_size=2, stride=2):
        return SparseAvgPool3d(kernel_size, stride)


# ---------------------------------------------------------------- registry
def backend_installed(name: str) -> bool:
    """Whether the package behind backend ``name`` can be found (without importing it)."""
    if name not in BACKENDS:
        raise ValueError(f"name: expected one of {BACKENDS}, got {name!r}")
    if name == "torch":
        return True
    top = _IMPORT[name].split(".")[0]
    return importlib.util.find_spec(top) is not None


def available_backends():
    """Names of the backends whose package is installed."""
    return [b for b in BACKENDS if backend_installed(b)]


def get_backend(name: str = "torch") -> SparseBackend:
    """The backend called ``name``; raises OptionalDependencyError if its package is missing."""
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {name!r}")
    if name == "torch":
        return TorchBackend()
    # imported here: those modules build on the helpers above
    if name == "spconv":
        return importlib.import_module("._spconv", __package__).SpconvBackend()
    return importlib.import_module("._minkowski", __package__).MinkowskiBackend()
