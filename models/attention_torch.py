"""The point-cloud attention cone pass and deposit in torch, on any device (CPU or CUDA).

:class:`TorchConeKernel` has the kernel interface of
:mod:`gaze3d.attention._numba_cone` (``cone_pass``, ``chord2``,
``gauss_columns``...; no ``store_points``: the engine keeps its cone's points
with its own numpy path) and is handed to the engine from outside:
``PointCloudEngine(xyz, foveal, kernel=TorchConeKernel("cuda"))`` (or
``AttentionAccumulator(scan, kernel=...)``). The core never imports torch
(docs/architecture.md, "The rooms"); this module lives in the models room,
which may.

Per cone, after the ``(4, 3) x (3, m)`` camera product (numpy, on the host):
the exact cone test, the projection, the viewport, the occluding footprints,
the footprint depth buffer (``scatter_reduce`` "amin") and its square minima
(``max_pool2d`` of the negated depths), the depth test and the chord matrix run
on the device, as the numpy reference's float32 operations one by one in its
order (elementwise torch kernels round every operation: no fused multiply-add,
IEEE division; the square root in float64, see below), so the **visible points and
their chord matrix are the numpy path's bits**. The deposit
(:meth:`TorchConeKernel.gauss_columns`) takes ``exp`` and the column sums from
torch's own kernels, whose last bits differ from numpy's: attention is within
``1e-6`` relative of the numpy path (``tests/test_attention_torch.py``
measures it). The octree query stays on the host (numpy).

The chord matrix of each visible cone stays on the device (``PointFrame.amat``
is then a tensor); only the visible indices, the depth window (for the gaze
hit points) and the column sums come back. Each call is a few dozen small
kernels, so on a GPU it pays launch latency per camera frame: the benchmark
(``bench/attention.py``) says what it gives.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_INF = float("inf")


class TorchConeKernel:
    """The cone pass of :class:`gaze3d.attention.pointcloud.PointCloudEngine` in torch.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``... (default: CUDA when available, else CPU).
    threads : int or None
        None (default): torch's thread setting is left alone (it is process-wide). An int calls
        ``torch.set_num_threads`` with it (for the whole process), e.g. 1 for one core per
        replay on the CPU (what ``bench/attention.py`` does for its CPU row).
    """

    gauss_on_device = True      # the engine calls gauss_columns (exp and sums here) instead of
                                # chord2_exponent + numpy's exp + add_columns

    def __init__(self, device=None, threads=None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if threads is not None:
            torch.set_num_threads(int(threads))
        # the last host constant seen (the engine's spacing array) and its device copy: an engine
        # passes the same array every cone, so one entry suffices, and keeping only the last does
        # not hold on to the arrays of engines (clouds) gone since
        self._const_host: np.ndarray | None = None
        self._const_dev: torch.Tensor | None = None
        # the half-width level table (pointcloud._HALF_LEVEL_OF), a module constant: uploaded once
        self._level_host: np.ndarray | None = None
        self._level_dev: torch.Tensor | None = None

    def __repr__(self) -> str:
        return f"TorchConeKernel(device={str(self.device)!r})"

    # -------------------------------------------------------------- helpers
    def _const(self, arr: np.ndarray) -> torch.Tensor:
        """A device copy of a host array that does not change (the cloud's spacing), made once per array.

        Only the last array is kept (its identity is the key): a new one replaces it.
        """
        if self._const_host is not arr:
            self._const_dev = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
            self._const_host = arr
        return self._const_dev

    def _levels(self, level_of: np.ndarray) -> torch.Tensor:
        """The device copy of ``level_of`` (the half-width levels, a module constant), made once."""
        if self._level_host is not level_of:
            self._level_dev = torch.from_numpy(np.ascontiguousarray(level_of)).to(self.device)
            self._level_host = level_of
        return self._level_dev

    def _t(self, arr) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(arr)).to(self.device)

    def synchronize(self) -> None:
        """Wait for the device's queued work (timing)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @staticmethod
    def work_sizes(m: int, width: int, height: int, hmax: int):
        """No host work memory: torch allocates on its device (its caching allocator reuses it)."""
        return 1, 1

    def _min_filter(self, z: torch.Tensor, a: int) -> torch.Tensor:
        """``gaze3d.attention.pointcloud._min_filter``: the ``(2a+1)`` square minimum, an ``a``-pixel
        ``inf`` border. A minimum is exact in any order, so ``-max_pool2d(-z)`` gives its values."""
        if a <= 0:
            return z.clone()
        H, W = z.shape
        out = torch.full_like(z, _INF)
        if H > 2 * a and W > 2 * a:
            out[a:H - a, a:W - a] = -F.max_pool2d((-z)[None, None], 2 * a + 1, stride=1)[0, 0]
        return out

    # ------------------------------------------------------------ the pass
    def cone_pass(self, full, cand, cos2, f, w2, h2, width, height, near, far, hmax,
                  spacing, use_spacing, fpx, level_of, half_splat, slope, dtol, ax, wf=None, wi=None):
        """:func:`gaze3d.attention._numba_cone.cone_pass` (same arguments and returns) in torch.

        ``amat`` comes back as a ``(5, v)`` float32 tensor on the device; every other result as
        numpy (host).
        """
        f32 = np.float32
        d = self._t(full)
        cand_h = np.asarray(cand)
        dot, cx, cy, cz = d[0], d[1], d[2], d[3]
        n2 = cx * cx
        n2 = n2 + cy * cy
        n2 = n2 + cz * cz
        ok = (dot > 0) & (dot * dot >= f32(cos2) * n2)
        keep = torch.nonzero(ok).flatten()
        min_n2 = f32(n2[keep].min().item()) if len(keep) else f32(np.inf)
        cx, cy, cz, n2 = cx[keep], cy[keep], cz[keep], n2[keep]
        # not ``f / cz``: torch computes a scalar over a tensor as ``reciprocal(cz) * f`` (two roundings)
        inv = torch.div(torch.full_like(cz, float(f32(f))), cz)
        u = cx * inv
        u = u + f32(w2)
        v = cy * (-inv)
        v = v + f32(h2)
        hm = int(hmax)
        ok = (cz >= f32(near)) & (cz <= f32(far))
        ok &= (u >= -hm) & (u < float(width) + hm) & (v >= -hm) & (v < float(height) + hm)
        keep2 = torch.nonzero(ok).flatten()
        keep = keep[keep2]
        cx, cy, cz, n2, u, v = cx[keep2], cy[keep2], cz[keep2], n2[keep2], u[keep2], v[keep2]
        k = len(keep)
        empty_i = np.empty(0, dtype=np.int64)
        if k == 0:
            return (empty_i, torch.empty((5, 0), dtype=torch.float32, device=self.device), min_n2,
                    np.empty((0, 0), dtype=np.float32), 0, 0, 0, empty_i, empty_i, empty_i, empty_i,
                    np.empty(0, dtype=np.float32))
        cand_d = self._t(cand_h)[keep]
        # occluding footprints (PointCloudEngine._occluder_half)
        if use_spacing:
            px = self._const(spacing)[cand_d] * f32(fpx)
            px = px / cz
            px = torch.nan_to_num(px, nan=0.0, posinf=0.0, neginf=float(np.finfo(np.float32).min))
            hf = torch.ceil((px - 1.0) / 2.0).clamp_(0, len(level_of) - 1)
            half = self._levels(level_of)[hf.to(torch.int64)]
            half = torch.clamp(half, min=int(half_splat))
        else:
            half = torch.full((k,), int(half_splat), dtype=torch.int32, device=self.device)
        h = int(half.max().item())
        iu = (u + f32(h)).to(torch.int32)
        iv = (v + f32(h)).to(torch.int32)
        u0, v0 = int(iu.min().item()), int(iv.min().item())
        wu = int(iu.max().item()) - u0 + 1 + 2 * h
        wv = int(iv.max().item()) - v0 + 1 + 2 * h
        row = (iv - (v0 - h)).to(torch.int64)
        col = (iu - (u0 - h)).to(torch.int64)
        flat = row * wu + col
        sizes = torch.unique(half).tolist()          # ascending
        band = band_rows = None
        if len(sizes) == 1:
            z = torch.full((wv * wu,), _INF, dtype=torch.float32, device=self.device)
            z.scatter_reduce_(0, flat, cz, reduce="amin")
            zs = self._min_filter(z.view(wv, wu), h)
        else:
            # pointcloud._footprint_depth: one buffer padded by h, sizes largest first
            hp, wp = wv + 2 * h, wu + 2 * h
            pflat = (row + h) * wp + (col + h)
            acc = torch.full((hp, wp), _INF, dtype=torch.float32, device=self.device)
            prev = None
            for s in sorted(sizes, reverse=True):
                if prev is not None:
                    acc = self._min_filter(acc, prev - s)
                sel = half == s
                acc.view(-1).scatter_reduce_(0, pflat[sel], cz[sel], reduce="amin")
                prev = s
            acc = self._min_filter(acc, prev)
            zs = acc[h:h + wv, h:h + wu].contiguous()
            edge = torch.minimum(torch.minimum(row, wv - 1 - row), torch.minimum(col, wu - 1 - col))
            band = torch.nonzero(edge < 2 * h).flatten()
            band_rows = (row[band], col[band], half[band], cz[band])
        # the depth test, on screen only (PointCloudEngine._visibility)
        reach = (half.to(torch.float32) + 1.0) * f32(slope)
        reach = reach + f32(dtol)
        tol = cz * reach
        tol = tol + zs.reshape(-1)[flat]
        vis = (cz <= tol) & (u >= 0) & (u < float(width)) & (v >= 0) & (v < float(height))
        sel = torch.nonzero(vis).flatten()
        # float32 sqrt in torch's CPU kernel is not correctly rounded (numpy's and CUDA's are): the
        # float64 root rounded to float32 is (53 >= 2 * 24 + 2 bits), so the numpy path's bits
        rn = 1.0 / torch.sqrt(n2[sel].double()).float()
        axd = self._t(np.asarray(ax, dtype=np.float32))
        amat = torch.empty((5, len(sel)), dtype=torch.float32, device=self.device)
        for i, c in enumerate((cx, cy, cz)):
            amat[i] = c[sel] * rn - axd[i]
        amat[3] = amat[0] * amat[0]
        amat[3] += amat[1] * amat[1]
        amat[3] += amat[2] * amat[2]
        amat[4] = 1.0
        index = cand_d[sel].cpu().numpy()
        zs_h = zs.cpu().numpy()
        if band is None:
            return (index, amat, min_n2, zs_h, u0 - h, v0 - h, h, empty_i, empty_i, empty_i, empty_i,
                    np.empty(0, dtype=np.float32))
        br, bc, bh, bd = (x.cpu().numpy() for x in band_rows)
        return (index, amat, min_n2, zs_h, u0 - h, v0 - h, h, band.cpu().numpy(), br, bc,
                bh.astype(np.int64), bd)

    # ------------------------------------------------------------ per ray
    def _chords(self, b, amat, start: int, stop: int) -> torch.Tensor:
        """``(s, v)`` squared chords, the numpy path's terms in its order (each op rounded)."""
        bt = self._t(b)
        a = amat[:, start:stop]
        c = bt[:, 0:1] * a[0]
        c = c + bt[:, 1:2] * a[1]
        c = c + bt[:, 2:3] * a[2]
        c = c + a[3]
        return c + bt[:, 4:5]

    def chord2(self, b, amat, start, out) -> None:
        """``out (s, v)`` float32 (host) squared chords (the gaze hit points' nearest visible point)."""
        out[...] = self._chords(b, amat, int(start), int(start) + out.shape[1]).cpu().numpy()

    def gauss_columns(self, b, amat, start, stop, c2cut, k12, k, lnw) -> np.ndarray:
        """``(v,)`` float32 (host): per visible point, the sum over rays of ``exp(k theta^2 + ln w)``.

        ``theta^2 = c2 (1 + c2 / 12)``, zero beyond ``c2 > c2cut``: the small-angle branch of
        ``PointCloudEngine._cone_deposit``, its exponent's float32 operations in its order; ``exp``
        and the sum over rays are torch's (last bits differ from numpy's).
        """
        c = self._chords(b, amat, int(start), int(stop))
        e = c * np.float32(k12)
        e = e + np.float32(k)
        e = e * c
        e = e + self._t(np.asarray(lnw, dtype=np.float32))[:, None]
        e = torch.where(c > np.float32(c2cut), torch.tensor(-_INF, device=self.device), e)
        return torch.exp(e).sum(dim=0).cpu().numpy()
