"""Regenerate the viewer screenshots in docs/images from the real data in ../shared/data.

    .venv/bin/python docs/images/make_viewer_screenshots.py

The gaze is scripted (a steady cursor held on a structure, fed as mouse-as-gaze
samples with small fixational jitter), the rest is the real viewer offscreen:
attention accumulator, in-place heat overlay, label key, status line.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data"
WINDOW = (960, 640)


def fixate(app, xy_px, seconds=1.5, rate=120, seed=0):
    """Hold the gaze on a pixel for ``seconds`` (mouse-as-gaze samples with 0.1 % jitter)."""
    rng = np.random.default_rng(seed)
    s = app.session
    w, h = app.plotter.window_size
    # scripted time runs ahead of the wall clock: continue after the last sample
    t0 = max(s.now_ns(), (s._last_t_ns or 0) + 1)
    app.sync_volume_attention()          # volumes: attention on the slice facing the camera
    n = int(seconds * rate)
    for i in range(0, n, 8):
        batch = [s.mouse_sample(xy_px[0] / w + rng.normal(0, 1e-3), xy_px[1] / h + rng.normal(0, 1e-3),
                                t_ns=t0 + int((i + j) * 1e9 / rate)) for j in range(8)]
        s.tick(local_samples=batch)
    s.commit_attention()


def ign_tile():
    from gaze3d.io import load_scan
    from gaze3d.scan import PointCloud
    from gaze3d.viewer.app import ViewerApp
    from gaze3d.viewer.labels import LabelSet

    las = load_scan(DATA / "pointcloud/ign_lidarhd/870000_6618000.subset.50mx100m.las")
    cloud = PointCloud(las.xyz, colors=las.colors, intensity=las.intensity, source=las.source)
    labels = LabelSet.from_names({6: "building", 2: "ground", 5: "vegetation"})
    app = ViewerApp(cloud, labels, off_screen=True, window_size=WINDOW, segmenter="grow", point_size=2.5)
    try:
        cam = app.scene.camera()
        # two buildings: label the first (key 1), keep looking at the second
        bld = las.xyz[las.labels == 6]
        from scipy.cluster.vq import kmeans2

        _, part = kmeans2(bld[:, :2], 4, seed=1, minit="++")
        sizes = np.bincount(part, minlength=4)
        order = np.argsort(-sizes)
        targets = []
        for k in order[:2]:
            top = bld[part == k]
            top = top[top[:, 2] > np.percentile(top[:, 2], 70)]
            px, _ = cam.project(top.mean(axis=0, keepdims=True))
            targets.append(px[0])
        fixate(app, targets[0], 1.5, seed=1)
        app.press("1")
        fixate(app, targets[1], 1.2, seed=2)
        app.frame()
        app.screenshot(HERE / "viewer_ign_tile.png")
        print(app.session.status_line())
    finally:
        app.close()


def ct():
    from gaze3d.io import load_scan
    from gaze3d.viewer.app import ViewerApp
    from gaze3d.viewer.labels import LabelSet

    ts = DATA / "medical/totalsegmentator"
    vol = load_scan(ts / "example_ct_sm.nii.gz")
    seg = load_scan(ts / "example_seg.nii.gz")
    names = json.loads((ts / "label_map_total_and_total_mr.json").read_text())["total"]
    labels = LabelSet.from_names({5: names["5"], 1: names["1"], 2: names["2"], 3: names["3"]})
    app = ViewerApp(vol, labels, off_screen=True, window_size=WINDOW, segmenter="grow")
    try:
        liver = np.argwhere(np.asarray(seg.array) == 5)
        centre = np.round(liver.mean(axis=0)).astype(int)
        app.scene.set_slices(centre)
        app.plotter.renderer.GetActiveCamera().Zoom(1.5)
        cam = app.scene.camera()
        px, _ = cam.project(vol.index_to_world(centre[None].astype(float)))
        fixate(app, px[0], 1.5, seed=3)
        app.frame()
        app.screenshot(HERE / "viewer_ct_slices_volume.png")
        print(app.session.status_line())
        app.press("v")                       # slices off: the volume rendering alone
        app.press("g")                       # and no gaze cursor
        vc = app.plotter.renderer.GetActiveCamera()
        vc.Azimuth(-35)
        vc.Elevation(-15)
        app.plotter.renderer.ResetCameraClippingRange()
        app.screenshot(HERE / "viewer_ct_volume_render.png")
        # a fixation through the volume rendering: heat where the rendering shows tissue
        app.session.clear_attention()
        app.press("g")
        cam = app.scene.camera()
        spine = np.argwhere(np.isin(np.asarray(seg.array), [26, 27, 28, 29, 30, 31, 32]))
        target = spine.mean(axis=0) if len(spine) else centre
        px, _ = cam.project(vol.index_to_world(np.asarray(target, float)[None]))
        fixate(app, px[0], 2.0, seed=4)
        app.frame()
        app.screenshot(HERE / "viewer_ct_volume_heat.png")
        print(app.session.status_line())
        render_cam = app.scene.camera()
        mode_att = app.session.attention.reshape(vol.shape).copy()
    finally:
        app.close()
    # the same attention drawn by `gaze3d render` with and without the slices
    from gaze3d.viewer.render import render_scan

    render_scan(vol, mode_att, camera=render_cam, window_size=WINDOW, slices=False,
                out=HERE / "render_ct_volume_heat.png", title="gaze3d render --no-slices")


if __name__ == "__main__":
    if not (DATA / "README.md").is_file():
        sys.exit(f"real data not found at {DATA}")
    ign_tile()
    ct()
