"""Sparse-convolution backends behind one interface.

``torch`` (this package, default) always works. ``spconv`` and ``minkowski``
are used only if importable; asking for one that is not installed fails on
first use with an install hint (:class:`gaze3d.errors.OptionalDependencyError`).

A backend builds a submanifold convolution module that takes and returns a
:class:`~.tensor.SparseTensor` and whose weights are loaded from this
package's layout ``(K, C_in, C_out)``, so outputs can be compared directly.
"""
from __future__ import annotations

import importlib.util

import torch
from torch import nn

from gaze3d._optional import optional_import

from .conv import SubMConv3d
from .tensor import SparseTensor

BACKENDS = ("torch", "spconv", "minkowski")
_IMPORT = {"spconv": "spconv.pytorch", "minkowski": "MinkowskiEngine"}
_HINT = {"spconv": "spconv", "minkowski": "MinkowskiEngine"}


class SparseBackend:
    """What a backend provides. ``name`` is one of :data:`BACKENDS`."""
    name = "base"

    def subm_conv3d(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Module:
        """A bias-free submanifold conv module ``SparseTensor -> SparseTensor``
        with ``load_weight(weight (K, C_in, C_out))``."""
        raise NotImplementedError


class _TorchSubM(SubMConv3d):
    def load_weight(self, weight: torch.Tensor) -> None:
        with torch.no_grad():
            self.weight.copy_(weight)


class TorchBackend(SparseBackend):
    name = "torch"

    def subm_conv3d(self, in_channels, out_channels, kernel_size=3):
        return _TorchSubM(in_channels, out_channels, kernel_size)


class _SpconvSubM(nn.Module):
    """spconv ``SubMConv3d`` wrapped to take and return our SparseTensor.

    spconv weights are ``(C_out, kx, ky, kz, C_in)`` and, like ours, a
    cross-correlation over the index axes in the order given.

    Two defects of spconv 2.3.8's CPU build are worked around here (both seen
    on this project's CPU machine): with more than one torch thread its CPU
    kernels race and return wrong sums on some calls, so on CPU it runs with
    ``torch.set_num_threads(1)``; and its backward asks for the current CUDA
    stream even for CPU tensors, which fails with a CPU-only torch, so that
    lookup is made to return stream 0 when CUDA is unavailable.
    """

    def __init__(self, spconv, in_channels, out_channels, kernel_size):
        super().__init__()
        self._spconv = spconv
        self.kernel_size = kernel_size
        self.conv = spconv.SubMConv3d(in_channels, out_channels, kernel_size, bias=False,
                                      indice_key="subm")

    def load_weight(self, weight: torch.Tensor) -> None:
        k = self.kernel_size
        K, cin, cout = weight.shape
        w = weight.reshape(k, k, k, cin, cout).permute(4, 0, 1, 2, 3)
        with torch.no_grad():
            self.conv.weight.copy_(w.reshape(self.conv.weight.shape))

    def to_spconv(self, x: SparseTensor):
        """Our tensor as a ``spconv.SparseConvTensor`` (indices shifted to >= 0)."""
        idx = x.coords.clone()
        idx[:, 1:] = torch.div(idx[:, 1:] - idx[:, 1:].min(0).values, x.stride,
                               rounding_mode="floor")
        shape = (idx[:, 1:].max(0).values + 1).tolist()
        return self._spconv.SparseConvTensor(x.feats, idx.int(), shape, x.batch_size)

    def forward(self, x):
        sp = x if isinstance(x, self._spconv.SparseConvTensor) else self.to_spconv(x)
        if sp.features.is_cuda:
            out = self.conv(sp)
        else:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                out = self.conv(sp)
            finally:
                torch.set_num_threads(threads)
        if not isinstance(x, SparseTensor):
            return out
        # submanifold: spconv keeps the input indices in their order
        return x.replace(out.features)


class SpconvBackend(SparseBackend):
    name = "spconv"

    def __init__(self):
        self.spconv = optional_import(_IMPORT["spconv"])
        if not torch.cuda.is_available():
            ops = importlib.import_module("spconv.pytorch.ops")
            ops.get_current_stream = lambda: 0   # CPU-only torch: see _SpconvSubM

    def subm_conv3d(self, in_channels, out_channels, kernel_size=3):
        return _SpconvSubM(self.spconv, in_channels, out_channels, kernel_size)


class MinkowskiBackend(SparseBackend):
    name = "minkowski"

    def __init__(self):
        self.me = optional_import(_IMPORT["minkowski"])

    def subm_conv3d(self, in_channels, out_channels, kernel_size=3):
        raise NotImplementedError("the MinkowskiEngine backend is not wired yet; use 'torch'")


def backend_installed(name: str) -> bool:
    """Whether the package behind backend ``name`` can be found (without importing it)."""
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
    return {"torch": TorchBackend, "spconv": SpconvBackend, "minkowski": MinkowskiBackend}[name]()
