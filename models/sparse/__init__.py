"""Sparse 3D convolution in plain PyTorch (CPU and CUDA).

A :class:`SparseTensor` holds integer voxel coordinates ``(n, 4)`` (batch, x, y,
z), features ``(n, C)`` and a tensor stride. Kernel maps (which input voxel
feeds which output voxel through which kernel offset) are built by sorting
packed coordinate keys and binary search, and cached in the tensor's
:class:`CoordinateManager` so every layer at the same stride reuses them.
Convolutions are gather-GEMM-scatter; submanifold convolutions use a
neighbour table and one GEMM per chunk (im2col), forward and backward.
"""
from .tensor import CoordinateManager, SparseTensor
from .voxelize import voxelize, devoxelize, sparse_from_points
from .conv import SparseConv3d, SubMConv3d, SparseConvTranspose3d
from .pool import SparseMaxPool3d, SparseAvgPool3d, global_avg_pool
from .norm import SparseBatchNorm, SparseReLU
from .backends import get_backend, available_backends

__all__ = [
    "CoordinateManager", "SparseTensor", "voxelize", "devoxelize", "sparse_from_points",
    "SparseConv3d", "SubMConv3d", "SparseConvTranspose3d", "SparseMaxPool3d",
    "SparseAvgPool3d", "global_avg_pool", "SparseBatchNorm", "SparseReLU",
    "get_backend", "available_backends",
]
