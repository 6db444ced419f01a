"""Sparse 3D convolutions: submanifold, strided and transposed.

Weights are laid out ``(K, C_in, C_out)`` with ``K = kernel_size**3`` offsets in
the order of :func:`~.kernel_map.kernel_offsets` (x slowest, z fastest); like
``torch.nn.functional.conv3d`` they are cross-correlations:
``out[p] = sum_k in[p + offset_k] @ W[k]``.

All three are gather-GEMM-scatter over per-offset pairs of a cached kernel
map, batched in chunks of offsets (:class:`_Chunk`), with a hand-written
backward (one gather of the output gradient per chunk serves both the input
and the weight gradient):

* Submanifold (:class:`SubMConv3d`): output voxels = input voxels; the centre
  offset is the identity and runs as one dense GEMM.
* Strided (:class:`SparseConv3d`): output voxels are the occupied coarse cells.
* Transposed (:class:`SparseConvTranspose3d`): the pairs of the matching
  downsampling with input and output swapped.
"""
from __future__ import annotations

import contextlib
import math
import threading
import warnings

import torch
from torch import nn

from .kernel_map import KernelPairs, down_map, reversed_pairs, subm_pairs
from .tensor import SparseTensor

def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def check_input(x, channels: int = None) -> None:
    """ValueError unless ``x`` is a SparseTensor (with ``channels`` channels, if given)."""
    if not isinstance(x, SparseTensor):
        raise ValueError(f"x: expected a SparseTensor, got {type(x).__name__}")
    if channels is not None and x.num_channels != channels:
        raise ValueError(f"x: expected {channels} channels, got {x.num_channels}")


def _cpu_fast_paths(t: torch.Tensor) -> bool:
    """Whether ``t``'s device takes the CPU-only paths (scratch buffers, CSR scatter); CUDA
    takes fresh tensors and ``index_add_``. One function, so tests can run the CUDA branch
    on CPU."""
    return t.device.type == "cpu"


class _Scratch(threading.local):
    """Per-thread reusable CPU buffers for the gathered rows and GEMM results.

    Fresh multi-MB CPU buffers are served by ``mmap`` and page-faulted in on
    every call, which costs more than the GEMMs themselves on this kind of
    machine; reusing one buffer per slot avoids that. Per thread, because
    autograd may run a backward in another thread than its forward. A buffer
    holds at most one chunk (``_CHUNK_BYTES``). On CUDA the caching
    allocator already does this, so fresh tensors are used.
    """

    def get(self, slot: int, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        if not _cpu_fast_paths(like):
            return like.new_empty(rows, cols)
        bufs = self.__dict__.setdefault("bufs", {})
        need = rows * cols
        buf = bufs.get((slot, like.dtype))
        if buf is None or buf.numel() < need:
            buf = like.new_empty(max(need, 1 << 16))
            bufs[(slot, like.dtype)] = buf
        return buf[:need].view(rows, cols)


_SCRATCH = _Scratch()
# bytes of one chunk's gathered rows: bounds the scratch buffers (three per thread); fewer,
# larger chunks were a few % faster on the 2-core benchmark machine up to this size
_CHUNK_BYTES = 64 << 20


def clear_scratch() -> None:
    """Free this thread's reusable CPU buffers."""
    _SCRATCH.__dict__.pop("bufs", None)


class _Chunk:
    """Consecutive offsets of a pair list, their pairs concatenated.

    ``in_rows``/``out_rows`` (m,) int64 hold offset ``ks[j]``'s pairs at
    ``bounds[j]:bounds[j + 1]``. Scatter-adds onto rows go through a CSR
    matrix ``(n_rows, m)`` of ones (CPU float32/64: one ``addmm_`` that sums each
    row's entries in place, several times faster than ``index_add_``; CUDA and
    other dtypes: ``index_add_``).
    """

    def __init__(self, ks, pairs):
        self.ks = ks
        sizes = [len(pairs[k][0]) for k in ks]
        self.bounds = [0]
        for m in sizes:
            self.bounds.append(self.bounds[-1] + m)
        self.in_rows = torch.cat([pairs[k][0] for k in ks])
        self.out_rows = torch.cat([pairs[k][1] for k in ks])
        self._csr = {}

    def scatter_add(self, target: torch.Tensor, side: str, values: torch.Tensor) -> None:
        """``target[rows] += values`` with ``rows`` the chunk's in (``"in"``) or out rows."""
        rows = self.in_rows if side == "in" else self.out_rows
        if not _cpu_fast_paths(target) or values.dtype not in (torch.float32, torch.float64):
            target.index_add_(0, rows, values)
            return
        key = (side, len(target), values.dtype)
        csr = self._csr.get(key)
        if csr is None:
            n = len(target)
            crow = rows.new_zeros(n + 1)
            torch.cumsum(torch.bincount(rows, minlength=n), 0, out=crow[1:])
            col = torch.argsort(rows, stable=True)
            if len(rows) < 2 ** 31:        # MKL takes int32 indices; else converted every call
                crow, col = crow.int(), col.int()
            with warnings.catch_warnings():     # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                csr = torch.sparse_csr_tensor(crow, col, values.new_ones(len(rows)),
                                              size=(n, len(rows)))
            self._csr[key] = csr
        target.addmm_(csr, values)


def _chunks(pairs, row_bytes: int):
    """The pair list's offsets in chunks of at most ``_CHUNK_BYTES // row_bytes`` pairs
    (cached on :class:`~.kernel_map.KernelPairs` per size); identity (``None``) and empty
    offsets left out."""
    max_pairs = max(1, _CHUNK_BYTES // row_bytes)
    cache = getattr(pairs, "_chunks", None)
    if cache is not None and max_pairs in cache:
        return cache[max_pairs]
    chunks, ks, count = [], [], 0
    for k, pair in enumerate(pairs):
        if pair is None or not len(pair[0]):
            continue
        if ks and count + len(pair[0]) > max_pairs:
            chunks.append(_Chunk(ks, pairs))
            ks, count = [], 0
        ks.append(k)
        count += len(pair[0])
    if ks:
        chunks.append(_Chunk(ks, pairs))
    if isinstance(pairs, KernelPairs):
        if cache is None:
            cache = pairs._chunks = {}
        cache[max_pairs] = chunks
    return chunks


def _row_bytes(feats: torch.Tensor, weight: torch.Tensor) -> int:
    return max(weight.shape[1], weight.shape[2]) * feats.element_size()


class _GatherGemmScatter(torch.autograd.Function):
    """``out[o] += feats[i] @ W[k]`` for every pair ``(i, o)`` of offset ``k``.

    ``pairs[k]`` is ``(in_rows, out_rows)``, or ``None`` for an identity offset
    (the submanifold centre), applied as one dense GEMM without gather or
    scatter. The other offsets go in chunks (:class:`_Chunk`): one gather of
    the chunk's input rows into a reused buffer, one GEMM per offset into
    another, one scatter-add of the whole chunk.

    When ``pairs.symmetric`` is true (submanifold maps of odd kernels, see
    :func:`~.kernel_map.subm_pairs`) offset ``K-1-k`` holds the pairs of ``k``
    reversed, so the backward walks offset ``k`` as ``-k``: the input
    gradient scatters onto ``out_rows`` through the forward's CSR matrix (a
    forward pass with the flipped, transposed weights).
    """

    @staticmethod
    def forward(ctx, feats, weight, pairs, n_out):
        ctx.pairs = pairs
        ctx.save_for_backward(feats, weight)
        centre = [k for k, pair in enumerate(pairs) if pair is None]
        if centre:
            out = feats @ weight[centre[0]]
            for k in centre[1:]:
                out.addmm_(feats, weight[k])
        else:
            out = feats.new_zeros(n_out, weight.shape[2])
        for ch in _chunks(pairs, _row_bytes(feats, weight)):
            g = _SCRATCH.get(0, len(ch.in_rows), feats.shape[1], feats)
            torch.index_select(feats, 0, ch.in_rows, out=g)
            y = _SCRATCH.get(1, len(ch.in_rows), weight.shape[2], feats)
            for j, k in enumerate(ch.ks):
                s, e = ch.bounds[j], ch.bounds[j + 1]
                torch.mm(g[s:e], weight[k], out=y[s:e])
            ch.scatter_add(out, "out", y)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        feats, weight = ctx.saved_tensors
        pairs = ctx.pairs
        grad_out = grad_out.contiguous()
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        K = len(pairs)
        symmetric = getattr(pairs, "symmetric", False)
        grad_x = grad_w = None
        centre = [k for k, pair in enumerate(pairs) if pair is None]
        if need_x:
            if centre:
                grad_x = grad_out @ weight[centre[0]].t()
                for k in centre[1:]:
                    grad_x.addmm_(grad_out, weight[k].t())
            else:
                grad_x = torch.zeros_like(feats)
        if need_w:
            grad_w = torch.zeros_like(weight)
            for k in centre:
                torch.mm(feats.t(), grad_out, out=grad_w[k])
        c_in, c_out = feats.shape[1], grad_out.shape[1]
        for ch in _chunks(pairs, _row_bytes(feats, weight)):
            m = len(ch.in_rows)
            # symmetric: pairs (i, o) of k are the pairs (o, i) of -k, whose weight they use;
            # grad rows i and feats rows o; else grad rows o and feats rows i
            grad_rows, feat_rows = (ch.in_rows, ch.out_rows) if symmetric else (ch.out_rows, ch.in_rows)
            g = _SCRATCH.get(0, m, c_out, grad_out)
            torch.index_select(grad_out, 0, grad_rows, out=g)
            if need_w:
                f = _SCRATCH.get(2, m, c_in, feats)
                torch.index_select(feats, 0, feat_rows, out=f)
            if need_x:
                t = _SCRATCH.get(1, m, c_in, grad_out)
            for j, k in enumerate(ch.ks):
                s, e = ch.bounds[j], ch.bounds[j + 1]
                kw = K - 1 - k if symmetric else k
                if need_x:
                    torch.mm(g[s:e], weight[kw].t(), out=t[s:e])
                if need_w:
                    torch.mm(f[s:e].t(), g[s:e], out=grad_w[kw])
            if need_x:
                ch.scatter_add(grad_x, "out" if symmetric else "in", t)
        return grad_x, grad_w, None, None


def gather_gemm_scatter(feats: torch.Tensor, weight: torch.Tensor, pairs, n_out: int) -> torch.Tensor:
    """Sparse convolution features ``(n_out, C_out)`` from ``feats (n_in, C_in)``,
    ``weight (K, C_in, C_out)`` and a per-offset pair list (see :class:`_GatherGemmScatter`)."""
    return _GatherGemmScatter.apply(feats.contiguous(), weight.to(feats.dtype), pairs, n_out)


def subm_conv3d(x: SparseTensor, weight: torch.Tensor, kernel_size: int, dilation: int = 1
                ) -> torch.Tensor:
    """Submanifold convolution features ``(n, C_out)`` of ``x`` with ``weight (K, C_in, C_out)``.

    Inference on voxels that fill a box (:func:`dense_box`, e.g. a volume crop)
    runs as one oneDNN dense convolution (:func:`dense_subm_conv3d`); everything
    else, and anything that needs a gradient, through the kernel map.
    """
    if _takes_dense_path(x, weight):
        box = dense_box(x)
        if box is not None:
            return dense_subm_conv3d(x.feats, weight, box, kernel_size, dilation)
    return gather_gemm_scatter(x.feats, weight, subm_pairs(x, kernel_size, dilation), len(x))


#: whether :func:`subm_conv3d` may take the dense path (tests turn it off to compare with the kernel map)
DENSE_BOX_PATH = True
# oneDNN in this torch build, and its convolution op under the name used here (a private-ish aten op:
# without it the kernel map serves, as before)
_HAS_ONEDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")


class _KernelMapOnly(threading.local):
    depth = 0


_KMAP_ONLY = _KernelMapOnly()


@contextlib.contextmanager
def kernel_map_only():
    """Within (this thread): submanifold convolutions use the kernel map at inference too.

    For the predictions a training run makes of itself (corrective fixations): the dense path rounds
    differently (float32), so a flipped voxel could change what the run trains on, and a documented
    training command must make the same weights whichever path inference takes.
    """
    _KMAP_ONLY.depth += 1
    try:
        yield
    finally:
        _KMAP_ONLY.depth -= 1


def _takes_dense_path(x: SparseTensor, weight: torch.Tensor) -> bool:
    # oneDNN's convolution is CPU float32 here; the path is for inference only, so training (and the
    # checkpoints it makes) is unchanged bit for bit
    return (DENSE_BOX_PATH and not _KMAP_ONLY.depth and x.feats.device.type == "cpu"
            and x.feats.dtype == torch.float32
            and _HAS_ONEDNN_CONV
            and not (torch.is_grad_enabled() and (x.feats.requires_grad or weight.requires_grad)))


def dense_box(x: SparseTensor):
    """``(B, X, Y, Z)`` when ``x``'s voxels fill a box of that shape (batch, then voxels at its stride)
    in C order, so ``x.feats`` is that box in channels-last layout; else None. Cached in the manager."""
    def build():
        c = x.coords
        if not len(c):
            return False
        lo = c.min(0).values
        idx = c - lo
        idx[:, 1:] = torch.div(idx[:, 1:], x.stride, rounding_mode="floor")
        shape = (idx.max(0).values + 1).tolist()
        if math.prod(shape) != len(c):      # rows are unique voxels: as many as the box holds = full
            return False
        lin = ((idx[:, 0] * shape[1] + idx[:, 1]) * shape[2] + idx[:, 2]) * shape[3] + idx[:, 3]
        return tuple(shape) if torch.equal(lin, torch.arange(len(c), device=c.device)) else False
    return x.manager.get(("dense_box", x.stride), build) or None


def dense_subm_conv3d(feats: torch.Tensor, weight: torch.Tensor, box, kernel_size: int,
                      dilation: int = 1) -> torch.Tensor:
    """The submanifold convolution of features that fill ``box`` ``(B, X, Y, Z)`` in C order: a dense
    cross-correlation with zero padding (a full box has every neighbour inside it, and none outside).

    ``feats`` ``(B*X*Y*Z, C_in)`` viewed as ``(B, C_in, X, Y, Z)`` channels-last costs no copy, nor does
    the way back. ``torch.mkldnn_convolution`` is called directly: ``conv3d`` does not pick oneDNN for
    these shapes on this CPU and runs 5-10x slower than it (32^3 voxels, 8 channels: 22 ms against
    2.4 ms on one core, PyTorch 2.13). Results equal the kernel map's to float32 rounding.
    """
    b, nx, ny, nz = box
    c_in, c_out = weight.shape[1], weight.shape[2]
    x = feats.contiguous().view(b, nx, ny, nz, c_in).permute(0, 4, 1, 2, 3)
    pad = dilation * (kernel_size // 2)
    y = torch.mkldnn_convolution(x, conv3d_weight(weight.to(feats.dtype), kernel_size), None, [pad] * 3,
                                 [1] * 3, [dilation] * 3, 1)
    return y.permute(0, 2, 3, 4, 1).reshape(-1, c_out)


def conv3d_weight(weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Our ``(K, C_in, C_out)`` weights (K in :func:`~.kernel_map.kernel_offsets` order, x slowest) as
    ``conv3d``'s contiguous ``(C_out, C_in, k, k, k)``."""
    c_in, c_out = weight.shape[1], weight.shape[2]
    return weight.reshape(kernel_size, kernel_size, kernel_size, c_in, c_out).permute(4, 3, 0, 1, 2).contiguous()


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
        check_input(x, self.in_channels)

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


class _StridedConvBase(_ConvBase):
    """A convolution between two strides of the same coordinate manager."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2,
                 stride: int = 2, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, bias)
        self.stride = _check_int("stride", stride, 2)
        self._extra = f", stride={stride}"


class SparseConv3d(_StridedConvBase):
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

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        out_coords, pairs = down_map(x.manager, x.stride, self.kernel_size, self.stride)
        out = gather_gemm_scatter(x.feats, self.weight, pairs, len(out_coords))
        return SparseTensor(out_coords, self._finish(out), x.stride * self.stride, x.manager)


class SparseConvTranspose3d(_StridedConvBase):
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
        out = gather_gemm_scatter(x.feats, self.weight, reversed_pairs(pairs), n_fine)
        return SparseTensor(x.manager.coords[fine], self._finish(out), fine, x.manager)
