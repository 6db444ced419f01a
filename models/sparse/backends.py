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

# the interface and shared helpers live in ._backend_base (re-exported here), which the
# optional backends import too: no module imports the one that loads it
from ._backend_base import (BACKENDS, SparseBackend, check_channels, check_input,  # noqa: F401
                            check_layer_args, check_weight, origin, rows_at, strided_out_coords, take_rows,
                            transposed_out_coords)
from .conv import SparseConv3d, SparseConvTranspose3d, SubMConv3d
from .pool import SparseAvgPool3d, SparseMaxPool3d

_IMPORT = {"spconv": "spconv.pytorch", "minkowski": "MinkowskiEngine"}


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
    # imported on demand: each needs its optional package (spconv, MinkowskiEngine)
    if name == "spconv":
        return importlib.import_module("._spconv", __package__).SpconvBackend()
    return importlib.import_module("._minkowski", __package__).MinkowskiBackend()
