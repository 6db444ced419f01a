"""MinkowskiEngine backend: MinkowskiEngine 0.5 layers behind this package's SparseTensor.

Written against MinkowskiEngine's documented API and exercised only where
MinkowskiEngine is importable; it is not installed on this project's machines,
so the agreement tests skip it here and it has not been run against the real
library. What it does:

* our tensor becomes ``ME.SparseTensor(features, coordinates=(n, 4) int32
  batch-first, tensor_stride=x.stride)`` (same coordinate convention as ours:
  multiples of the tensor stride);
* every layer is given its output coordinates: our coordinates for that output,
  inserted into the input's ``CoordinateManager`` at the output tensor stride
  (``insert_and_map``) and passed as the layer's ``coordinates`` key (a
  stride-1 convolution keeps the input coordinates by itself); rows are then
  gathered by coordinate from the output's ``C`` into our row order;
* ``subm_conv3d`` -> ``MinkowskiConvolution(stride=1, dilation)``, ``conv3d``
  -> ``MinkowskiConvolution(stride)``, ``conv_transpose3d`` ->
  ``MinkowskiConvolutionTranspose(stride)``, ``max_pool3d`` ->
  ``MinkowskiMaxPooling``, ``avg_pool3d`` -> ``MinkowskiAvgPooling`` (which
  divides by the number of inputs present, as ours). ME's kernel regions
  (centred for odd kernels, ``[0, k)`` for even ones) match ours.
  Pooling appends a column of ones so outputs without any input in their
  window are recognised and set to 0, as ours, whatever ME puts there; max
  pooling also shifts features by a per-channel constant (minimum - 1) first,
  so the result and its gradient do not depend on the value (0 or -inf) ME
  starts each maximum from.

Kernels are ``(K, C_in, C_out)`` as ours (``(C_in, C_out)`` for ME's 1x1x1
stride-1 matmul path), but the order of ME's K offsets is not something this
code can check here, so it is *discovered*: :func:`kernel_order` runs the same
kind of ME layer once on a tiny tensor with one-hot kernels and reads which
kernel index reaches which of our offsets (:func:`~.kernel_map.kernel_offsets`);
``load_weight`` and ``to_our_layout`` permute with it, and a mismatch that is
not a permutation raises RuntimeError rather than loading wrong weights.
"""
from __future__ import annotations

import torch
from torch import nn

from gaze3d._optional import optional_import

from ._backend_base import (SparseBackend, check_channels, check_input, check_layer_args,
                            check_weight, rows_at, strided_out_coords, take_rows,
                            transposed_out_coords)
from .kernel_map import kernel_offsets
from .tensor import SparseTensor

_ORDERS = {}


def _with_batch(xyz: torch.Tensor) -> torch.Tensor:
    return torch.cat([xyz.new_zeros(len(xyz), 1), xyz], 1)


def _insert(st, coords: torch.Tensor, tensor_stride: int):
    """Key of ``coords (m, 4)`` at ``tensor_stride`` in ``st``'s coordinate manager."""
    key, _ = st.coordinate_manager.insert_and_map(coords.int(), tensor_stride, "gaze3d")
    return key


def _gather(out, coords: torch.Tensor) -> torch.Tensor:
    """Features of the ME tensor ``out`` at ``coords (m, 4)``, in that order (zero if absent)."""
    return take_rows(out.F, rows_at(out.C.long().to(coords.device), coords))


def kernel_order(me, kind: str, kernel_size: int, stride: int = 1,
                 dilation: int = 1) -> torch.Tensor:
    """``(K,)`` int64: our offset index for each of ME's kernel indices, found by running ME.

    ``kind`` is ``"subm"``, ``"conv"`` or ``"transposed"``. A layer of that kind
    with ``C_in = 1`` and one-hot kernels (ME index ``j`` writes output channel
    ``j``) runs on voxels filling one kernel window: for convolutions each input
    carries its window index + 1 and the centre output reads them; for the
    transposed layer one coarse voxel writes the window, and the channel set at
    each fine voxel names the index. Cached per argument tuple.
    """
    key = (kind, kernel_size, stride, dilation)
    if key in _ORDERS:
        return _ORDERS[key]
    K = kernel_size ** 3
    if K == 1:
        return torch.zeros(1, dtype=torch.long)
    off = kernel_offsets(kernel_size) * dilation
    eye = torch.eye(K).reshape(K, 1, K)
    if kind == "transposed":
        centre = torch.full((1, 3), stride * (kernel_size + 1))     # keeps the window >= 0
        st = me.SparseTensor(features=torch.ones(1, 1), coordinates=_with_batch(centre).int(),
                             tensor_stride=stride)
        layer = me.MinkowskiConvolutionTranspose(1, K, kernel_size=kernel_size, stride=stride,
                                                 dimension=3)
        fine = _with_batch(centre + off)
        with torch.no_grad():
            layer.kernel.copy_(eye.reshape(layer.kernel.shape))
            table = _gather(layer(st, _insert(st, fine, 1)), fine)   # (ours, ME's)
    else:
        s = stride if kind == "conv" else 1
        centre = torch.full((1, 3), s * (kernel_size + 1) * dilation)
        st = me.SparseTensor(features=torch.arange(1, K + 1, dtype=torch.float32)[:, None],
                             coordinates=_with_batch(centre + off).int(), tensor_stride=1)
        layer = me.MinkowskiConvolution(1, K, kernel_size=kernel_size, stride=s,
                                        dilation=dilation, dimension=3)
        with torch.no_grad():
            layer.kernel.copy_(eye.reshape(layer.kernel.shape))
            out = layer(st, _insert(st, _with_batch(centre), s)) if kind == "conv" else layer(st)
            read = _gather(out, _with_batch(centre))[0]      # (ME's,) our index + 1
        table = (read[None, :] == torch.arange(1, K + 1, dtype=read.dtype)[:, None]).to(read.dtype)
    table = table.detach().cpu()
    if not (((table == 0) | (table == 1)).all() and (table.sum(0) == 1).all()
            and (table.sum(1) == 1).all()):
        raise RuntimeError(f"MinkowskiEngine's {kind} kernel (kernel_size={kernel_size}, "
                           f"stride={stride}, dilation={dilation}) does not map one-to-one onto "
                           "this package's kernel offsets; refusing to load weights")
    order = table.argmax(0)
    _ORDERS[key] = order
    return order


class _MELayer(nn.Module):
    def __init__(self, me):
        super().__init__()
        self._me = me

    def _input(self, x: SparseTensor, feats: torch.Tensor):
        return self._me.SparseTensor(features=feats, coordinates=x.coords.int(),
                                     tensor_stride=x.stride)


class _MEConv(_MELayer):
    """An ME convolution ``self.layer`` with weights in our layout via :func:`kernel_order`."""

    def __init__(self, me, layer, kind, in_channels, out_channels, kernel_size, stride=1,
                 dilation=1):
        super().__init__(me)
        self.layer = layer
        self.kind = kind
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def _order(self) -> torch.Tensor:
        return kernel_order(self._me, self.kind, self.kernel_size, self.stride, self.dilation)

    @property
    def native_weight(self) -> nn.Parameter:
        return self.layer.kernel

    def load_weight(self, weight: torch.Tensor) -> None:
        check_weight(weight, self.kernel_size, self.in_channels, self.out_channels)
        order = self._order().to(weight.device)
        with torch.no_grad():
            self.layer.kernel.copy_(weight[order].reshape(self.layer.kernel.shape))

    def to_our_layout(self, tensor: torch.Tensor) -> torch.Tensor:
        native = tensor.reshape(-1, self.in_channels, self.out_channels)
        return native[torch.argsort(self._order()).to(tensor.device)]

    def forward(self, x: SparseTensor) -> SparseTensor:
        check_input(x, self.in_channels)
        st = self._input(x, x.feats)
        if self.kind == "subm":     # stride 1: ME keeps the input coordinates
            return x.replace(_gather(self.layer(st), x.coords))
        if self.kind == "conv":
            coords, stride = strided_out_coords(x, self.stride), x.stride * self.stride
        else:
            stride, coords = transposed_out_coords(x, self.stride)
        out = self.layer(st, _insert(st, coords, stride))
        return SparseTensor(coords, _gather(out, coords), stride, x.manager)


class _MEPool(_MELayer):
    def __init__(self, me, layer, kernel_size, stride, is_max):
        super().__init__(me)
        self.layer, self.kernel_size, self.stride, self.is_max = layer, kernel_size, stride, is_max

    def forward(self, x: SparseTensor) -> SparseTensor:
        check_input(x)
        # max: every input >= 1, so none ties with the value ME starts a maximum from
        lo = (x.feats.detach().amin(0) - 1 if self.is_max
              else x.feats.new_zeros(x.num_channels))
        feats = torch.cat([x.feats - lo, x.feats.new_ones(len(x), 1)], 1)
        st = self._input(x, feats)
        coords, stride = strided_out_coords(x, self.stride), x.stride * self.stride
        out = _gather(self.layer(st, _insert(st, coords, stride)), coords)
        present = out[:, -1:] > 0.5          # pooled ones: 1 where the window holds an input
        out = torch.where(present, out[:, :-1] + lo, torch.zeros_like(out[:, :-1]))
        return SparseTensor(coords, out, stride, x.manager)


class MinkowskiBackend(SparseBackend):
    """MinkowskiEngine layers on our SparseTensor (see the module docstring)."""
    name = "minkowski"

    def __init__(self):
        self.me = optional_import("MinkowskiEngine")

    def subm_conv3d(self, in_channels, out_channels, kernel_size=3, dilation=1):
        check_channels(in_channels, out_channels)
        check_layer_args(kernel_size, dilation=dilation, odd=True)
        layer = self.me.MinkowskiConvolution(in_channels, out_channels, kernel_size=kernel_size,
                                             stride=1, dilation=dilation, dimension=3)
        return _MEConv(self.me, layer, "subm", in_channels, out_channels, kernel_size,
                       dilation=dilation)

    def conv3d(self, in_channels, out_channels, kernel_size=2, stride=2):
        check_channels(in_channels, out_channels)
        check_layer_args(kernel_size, stride)
        layer = self.me.MinkowskiConvolution(in_channels, out_channels, kernel_size=kernel_size,
                                             stride=stride, dimension=3)
        return _MEConv(self.me, layer, "conv", in_channels, out_channels, kernel_size, stride)

    def conv_transpose3d(self, in_channels, out_channels, kernel_size=2, stride=2):
        check_channels(in_channels, out_channels)
        check_layer_args(kernel_size, stride)
        layer = self.me.MinkowskiConvolutionTranspose(in_channels, out_channels,
                                                      kernel_size=kernel_size, stride=stride,
                                                      dimension=3)
        return _MEConv(self.me, layer, "transposed", in_channels, out_channels, kernel_size,
                       stride)

    def max_pool3d(self, kernel_size=2, stride=2):
        check_layer_args(kernel_size, stride)
        layer = self.me.MinkowskiMaxPooling(kernel_size=kernel_size, stride=stride, dimension=3)
        return _MEPool(self.me, layer, kernel_size, stride, is_max=True)

    def avg_pool3d(self, kernel_size=2, stride=2):
        check_layer_args(kernel_size, stride)
        layer = self.me.MinkowskiAvgPooling(kernel_size=kernel_size, stride=stride, dimension=3)
        return _MEPool(self.me, layer, kernel_size, stride, is_max=False)
