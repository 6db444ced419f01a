"""Benchmark: submanifold 3^3 32->32 sparse conv, forward + backward, on ~100k voxels.

Side by side in the same run: this package's torch backend and spconv (CPU
build, if installed). Also the forward time of the whole network on the IGN
tile. Prints a table with ratios against spconv. Then inference on voxels that
fill a box (a volume crop): the dense oneDNN path against the kernel map and
``torch.nn.functional.conv3d`` in the same run, per layer shape and for the
whole volume network on its 32^3 crop.

    python bench/sparse_conv.py [--device cpu|cuda] [--voxels 100000] [--repeats 5] [--skip-network] [--skip-box]

Input voxels are real: copies of the IGN LiDAR tile side by side, voxelised
at the size that gives about ``--voxels`` voxels (a 2.5D surface, the
structure sparse conv is for); if the tile is absent (GPU machine), a
synthetic undulating surface with as many voxels.

spconv notes (2.3.8 CPU build): its CPU kernels give wrong sums with more
than one torch thread (see gaze3d.models.sparse.backends), so it is timed
with 1 thread (correct) and with the default threads (outputs checked, and
flagged when wrong). Its kernel maps are cached between calls like ours.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from gaze3d.models.sparse import SparseTensor, SubMConv3d, get_backend, voxelize
from gaze3d.models.sparse.backends import backend_installed
from gaze3d.models.sparse.kernel_map import subm_pairs

IGN = "pointcloud/ign_lidarhd/870000_6618000.subset.50mx100m.las"


def surface_voxels(n_target: int, seed: int = 0):
    """~n_target voxel coordinates (1, 4) of the IGN tile (or a synthetic surface)."""
    from gaze3d.models.data import data_root

    path = data_root() / IGN
    if path.is_file():
        from gaze3d.io import load_scan
        xyz = load_scan(path).xyz
        xyz = xyz - xyz.min(0)
        reps = int(np.ceil(2.0 * n_target / len(xyz)))     # enough points for n_target voxels
        ext = xyz.max(0) + 1.0
        xyz = np.concatenate([xyz + [i * ext[0], 0.0, 0.0] for i in range(reps)])
        src = f"IGN tile x{reps} side by side"
    else:
        rng = np.random.default_rng(seed)
        side = 100.0 * np.sqrt(n_target / 100_000)
        xy = rng.uniform(0, side, (3 * n_target, 2))
        xyz = np.c_[xy, 3 * np.sin(xy[:, 0] / 7) + 2 * np.cos(xy[:, 1] / 5)]
        src = "synthetic surface"
    # pick the voxel size whose voxel count is closest to n_target (bisection)
    lo, hi = 0.01, 5.0
    for _ in range(25):
        mid = (lo * hi) ** 0.5
        n = len(voxelize(xyz, mid)[0])
        lo, hi = (mid, hi) if n > n_target else (lo, mid)
    coords, _ = voxelize(xyz, hi)
    return coords, hi, src


def timeit(fn, repeats: int, sync) -> float:
    """Best of ``repeats`` after one warm-up call (the machine may be shared: the minimum
    is the least disturbed run)."""
    fn()
    sync()
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best.append(time.perf_counter() - t)
    return float(np.min(best))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--voxels", type=int, default=100_000)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-network", action="store_true")
    ap.add_argument("--skip-box", action="store_true", help="skip the filled-box (volume crop) timings")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    threads = torch.get_num_threads()
    coords, vsize, src = surface_voxels(args.voxels)
    coords = coords.to(dev)
    C = args.channels
    torch.manual_seed(0)
    feats = torch.randn(len(coords), C, device=dev)
    print(f"# times: best of {args.repeats}; load average before the run {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"# SubM 3^3 {C}->{C}, {len(coords)} voxels ({src}, voxel {vsize:.3f} m), device {dev}, "
          f"torch {torch.__version__}, {threads} threads")

    x = SparseTensor(coords, feats.clone().requires_grad_(True))
    conv = SubMConv3d(C, C, 3).to(dev)
    t = time.perf_counter()
    pairs = subm_pairs(x, 3)
    sync()
    t_map = time.perf_counter() - t
    n_pairs = sum(len(p[0]) for p in pairs if p is not None) + len(coords)
    print(f"# kernel map (built once, cached): {t_map * 1e3:.1f} ms, {n_pairs} pairs "
          f"({n_pairs / len(coords):.1f} neighbours per voxel)")

    def ours_fb():
        y = conv(x)
        y.feats.sum().backward()

    def ours_f():
        with torch.no_grad():
            conv(x)

    rows = []   # (name, threads, fwd s, fwd+bwd s, note)
    ref = conv(x).feats.detach()
    xg = SparseTensor(coords, feats.clone().requires_grad_(True))
    conv(xg).feats.sum().backward()
    ref_grad = xg.feats.grad
    rows.append(("gaze3d torch backend", threads, timeit(ours_f, args.repeats, sync),
                 timeit(ours_fb, args.repeats, sync), "maps cached"))
    if dev.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
        rows.append(("gaze3d torch backend", 1, timeit(ours_f, args.repeats, sync),
                     timeit(ours_fb, args.repeats, sync), "maps cached"))
        torch.set_num_threads(threads)

    if backend_installed("spconv"):
        be = get_backend("spconv")
        sp = be.subm_conv3d(C, C, 3).to(dev)
        sp.load_weight(conv.weight.detach())
        sx = sp.to_spconv(SparseTensor(coords, feats.clone().requires_grad_(True)))
        raw = sp.layer

        def sp_f():
            with torch.no_grad():
                return raw(sx)

        def sp_fb():
            raw(sx).features.sum().backward()

        for nthreads in ([1, threads] if dev.type == "cpu" and threads > 1 else [threads]):
            torch.set_num_threads(nthreads)
            out = sp_f().features
            err = float((out - ref).abs().max())
            sx.features.grad = None
            sp_fb()
            err_g = float((sx.features.grad - ref_grad).abs().max())
            note = "maps cached" + ("" if err < 1e-3 else f"; WRONG OUTPUT (max err {err:.2g})") + (
                "" if err_g < 1e-3 else f"; WRONG INPUT GRADIENT (max err {err_g:.2g})")
            rows.append(("spconv 2.x", nthreads, timeit(sp_f, args.repeats, sync),
                         timeit(sp_fb, args.repeats, sync), note))
        torch.set_num_threads(threads)
    else:
        print("# spconv not installed (pip install spconv): no baseline row")

    base = [r for r in rows if r[0].startswith("spconv") and "WRONG" not in r[4]]
    base_fb = min(r[3] for r in base) if base else None
    print("\n| implementation | threads | forward ms | forward+backward ms | speed-up vs best correct spconv (f+b) | note |")
    print("|---|---|---|---|---|---|")
    for name, nt, f, fb, note in rows:
        ratio = f"{base_fb / fb:.2f}x" if base_fb else "n/a"
        print(f"| {name} | {nt} | {f * 1e3:.1f} | {fb * 1e3:.1f} | {ratio} | {note} |")

    if not args.skip_network:
        network_forward(dev, sync, args.repeats)
    if not args.skip_box and dev.type == "cpu":
        filled_box(args.repeats)
    return 0


def filled_box(repeats: int) -> None:
    """Inference on a filled box (a volume crop): the dense oneDNN path, the kernel map and
    ``conv3d``, in the same run; then the volume network's forward pass on its 32^3 crop both ways."""
    import torch.nn.functional as F

    from gaze3d.models.sparse import conv as conv_mod
    from gaze3d.models.volume_net import DEFAULT_VOLUME_CHECKPOINT, INPUT_CHANNELS, grid_coords, mask_logits

    none = lambda: None        # noqa: E731  (CPU: nothing to synchronise)

    def both(fn):
        """(dense-path s, kernel-map s) of ``fn``."""
        dense = timeit(fn, repeats, none)
        conv_mod.DENSE_BOX_PATH = False
        try:
            kmap = timeit(fn, repeats, none)
        finally:
            conv_mod.DENSE_BOX_PATH = True
        return dense, kmap

    print(f"\n# inference on a filled box (a volume crop), {torch.get_num_threads()} threads, "
          f"oneDNN {'available' if conv_mod._HAS_ONEDNN_CONV else 'NOT available (no dense path)'}")
    print("| layer | voxels | dense path ms | kernel map ms | conv3d ms | kernel map / dense |")
    print("|---|---|---|---|---|---|")
    torch.manual_seed(0)
    for d, cin, cout in [(32, 4, 8), (32, 8, 8), (32, 16, 8), (16, 16, 16), (8, 32, 32)]:
        x = SparseTensor(grid_coords(d), torch.randn(d ** 3, cin))
        conv = SubMConv3d(cin, cout, 3)
        w = conv_mod.conv3d_weight(conv.weight.detach(), 3)
        xd = x.feats.t().reshape(1, cin, d, d, d).contiguous()
        with torch.no_grad():
            conv(x)
            dense, kmap = both(lambda: conv(x))
            t3 = timeit(lambda: F.conv3d(xd, w, padding=1), repeats, none)
        print(f"| SubM 3^3 {cin}->{cout} | {d}^3 | {dense * 1e3:.2f} | {kmap * 1e3:.2f} | {t3 * 1e3:.2f} | "
              f"{kmap / dense:.1f}x |")
    if DEFAULT_VOLUME_CHECKPOINT.is_file():
        from gaze3d.models.checkpoint import load_members

        (model, *_), meta = load_members(DEFAULT_VOLUME_CHECKPOINT)     # one member's forward pass
        c = int(meta.get("crop", 32))
        x = SparseTensor(grid_coords(c), torch.rand(c ** 3, len(INPUT_CHANNELS)))
        att = torch.rand(c ** 3, 2)
        with torch.no_grad():
            mask_logits(model, x, att)
            dense, kmap = both(lambda: mask_logits(model, x, att))
        print(f"| volume network (backbone + head), shipped checkpoint | {c}^3 | {dense * 1e3:.1f} | "
              f"{kmap * 1e3:.1f} | | {kmap / dense:.1f}x |")


def network_forward(dev, sync, repeats: int) -> None:
    """Forward time of the whole interactive network (backbone + head) on the IGN tile."""
    from gaze3d.models.data import data_root
    from gaze3d.models.interactive import DEFAULT_CHECKPOINT
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.checkpoint import load_checkpoint
    from gaze3d.models.train import default_interactive_config

    path = data_root() / IGN
    if not path.is_file():
        print(f"\n# IGN tile not found at {path}: no network timing")
        return
    from gaze3d.io import load_scan
    from gaze3d.models.features import point_features
    from gaze3d.models.sparse.voxelize import scatter_mean

    cloud = load_scan(path)
    cloud.xyz = cloud.xyz - cloud.xyz.min(0)
    if DEFAULT_CHECKPOINT.is_file():
        model, _ = load_checkpoint(DEFAULT_CHECKPOINT, dev)
    else:
        model = GazeSegNet(default_interactive_config()).to(dev).eval()
    f = torch.from_numpy(point_features(cloud)).to(dev)
    print(f"\n# whole network on the IGN tile ({len(cloud)} points), {model.config.unet.variant} "
          f"base {model.config.unet.base_channels}, voxel {model.config.voxel_size} m, device {dev}")
    print("| stage | ms |")
    print("|---|---|")
    att = torch.zeros(len(cloud), 2, device=dev)

    def full(fresh=True):
        coords, inv = voxelize(torch.from_numpy(cloud.xyz).to(dev), model.config.voxel_size)
        x = SparseTensor(coords, scatter_mean(f, inv, len(coords)))
        with torch.no_grad():
            feats = model.encode(x)
            model.decode(feats, att.new_zeros(len(coords), 2))
        return x, feats

    x, feats = full()
    t_full = timeit(full, repeats, sync)
    with torch.no_grad():
        t_head = timeit(lambda: model.decode(feats, att.new_zeros(len(x), 2)), repeats, sync)
    print(f"| voxelise + backbone + head, maps built ({len(x)} voxels) | {t_full * 1e3:.1f} |")
    print(f"| head only (cached backbone features and maps) | {t_head * 1e3:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
