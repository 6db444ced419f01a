"""SparseTensor: integer voxel coordinates, features and a tensor stride.

Thread-safety: a :class:`CoordinateManager` caches kernel maps in plain dicts;
share one between threads only under a lock.
"""
from __future__ import annotations

from typing import Callable, Dict, Hashable, Optional

import torch


class CoordinateManager:
    """Coordinates per tensor stride and the kernel maps between them.

    Every :class:`SparseTensor` derived from the same input shares one manager,
    so a kernel map (for example the 3^3 submanifold neighbour table at stride
    2) is built once and reused by every layer working at that stride.

    Attributes
    ----------
    coords : dict of int -> (m, 4) int64
        Voxel coordinates (batch, x, y, z) at each tensor stride.
    maps : dict
        Cached kernel maps, keyed by ``(kind, stride..., kernel_size, dilation)``.
    hits, misses : int
        Cache statistics (tests check that maps are reused).
    """

    def __init__(self):
        self.coords: Dict[int, torch.Tensor] = {}
        self.maps: Dict[Hashable, object] = {}
        self.hits = 0
        self.misses = 0

    def register(self, stride: int, coords: torch.Tensor) -> torch.Tensor:
        """Record the coordinates at ``stride`` (the first set wins) and return them."""
        have = self.coords.get(stride)
        if have is None:
            self.coords[stride] = coords
            return coords
        if have is not coords and have.shape != coords.shape:
            raise ValueError(
                f"stride: the coordinate manager already holds {len(have)} voxels at stride "
                f"{stride}, got {len(coords)}; use a fresh SparseTensor (manager=None)")
        return have

    def get(self, key: Hashable, build: Callable[[], object]):
        """Return the cached map for ``key``, building it with ``build()`` on a miss."""
        value = self.maps.get(key)
        if value is None:
            self.misses += 1
            value = build()
            self.maps[key] = value
        else:
            self.hits += 1
        return value


class SparseTensor:
    """Features on a sparse set of voxels.

    Parameters
    ----------
    coords : (n, 4) integer tensor
        Batch index then x, y, z voxel indices, unique rows; at tensor stride
        ``s`` every x, y, z is a multiple of ``s``.
    feats : (n, C) float tensor
        Features, on the same device as ``coords``.
    stride : int
        Tensor stride (1 for the input voxels, 2 after one downsampling...).
    manager : CoordinateManager, optional
        Shared cache of coordinates and kernel maps; a new one when omitted.
    """

    def __init__(self, coords: torch.Tensor, feats: torch.Tensor, stride: int = 1,
                 manager: Optional[CoordinateManager] = None):
        if not isinstance(coords, torch.Tensor) or coords.ndim != 2 or coords.shape[1] != 4:
            raise ValueError(f"coords: expected an (n, 4) integer tensor, got "
                             f"{getattr(coords, 'shape', type(coords).__name__)}")
        if coords.dtype.is_floating_point or coords.dtype == torch.bool:
            raise ValueError(f"coords: expected an integer dtype, got {coords.dtype}")
        if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or feats.shape[0] != coords.shape[0]:
            raise ValueError(f"feats: expected shape ({coords.shape[0]}, C), got "
                             f"{getattr(feats, 'shape', type(feats).__name__)}")
        if feats.device != coords.device:
            raise ValueError(f"feats: on {feats.device} but coords on {coords.device}")
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride: expected a positive int, got {stride!r}")
        self.manager = manager if manager is not None else CoordinateManager()
        self.coords = self.manager.register(stride, coords.long())
        self.feats = feats
        self.stride = stride

    # -- conveniences ---------------------------------------------------------
    def replace(self, feats: torch.Tensor) -> "SparseTensor":
        """Same voxels, stride and manager with new features ``(n, C')``."""
        return SparseTensor(self.coords, feats, self.stride, self.manager)

    def to(self, device) -> "SparseTensor":
        """Copy to ``device`` (a new manager there: cached maps stay on the old device)."""
        return SparseTensor(self.coords.to(device), self.feats.to(device), self.stride)

    @property
    def device(self) -> torch.device:
        return self.feats.device

    @property
    def num_channels(self) -> int:
        return self.feats.shape[1]

    @property
    def batch_size(self) -> int:
        return int(self.coords[:, 0].max().item()) + 1 if len(self.coords) else 0

    def __len__(self) -> int:
        return self.coords.shape[0]

    def dense(self, shape=None) -> torch.Tensor:
        """Scatter into a dense ``(B, C, X, Y, Z)`` grid of voxel indices ``coords // stride``."""
        idx = self.coords.clone()
        idx[:, 1:] = torch.div(idx[:, 1:], self.stride, rounding_mode="floor")
        if (idx[:, 1:] < 0).any():
            raise ValueError("coords: dense() needs non-negative voxel coordinates")
        if shape is None:
            shape = (idx[:, 1:].max(0).values + 1).tolist()
        out = self.feats.new_zeros((self.batch_size, self.num_channels, *shape))
        out[idx[:, 0], :, idx[:, 1], idx[:, 2], idx[:, 3]] = self.feats
        return out

    def __repr__(self) -> str:
        return (f"SparseTensor(n={len(self)}, channels={self.num_channels}, stride={self.stride}, "
                f"device={self.device})")
