"""Attention on the real IGN LiDAR HD tile and the TotalSegmentator CT (skipped if the data is absent)."""
from pathlib import Path

import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator
from gaze3d.camera import CameraPath

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IGN = DATA / "pointcloud" / "ign_lidarhd" / "870000_6618000.subset.50mx100m.las"
CT = DATA / "medical" / "totalsegmentator" / "example_ct_sm.nii.gz"


def _replay(acc, path, targets, seconds=1.5, seed=0):
    from gaze3d.simulate import simulate_scene_gaze

    sg = simulate_scene_gaze(targets, path, seconds, seed=seed)
    frame = np.floor(sg.t_s * 60).astype(int)
    for f in np.unique(frame):
        m = frame == f
        acc.add(path.at(f / 60.0), {"x": sg.xy[m, 0], "y": sg.xy[m, 1], "valid": sg.valid[m], "t_s": sg.t_s[m]})
    acc.flush()
    return sg


@pytest.mark.skipif(not IGN.exists(), reason=f"real data not found: {IGN}")
def test_ign_tile_buildings_get_attention_deterministically():
    from gaze3d.io import load_scan

    pc = load_scan(IGN)
    assert len(pc) == 70_840
    build = np.flatnonzero(pc.labels == 6)
    roofs = build[np.argsort(pc.xyz[build, 2])[-200:]]          # the highest building points
    rng = np.random.default_rng(1)
    targets = pc.xyz[rng.choice(roofs, 3, replace=False)]
    path = CameraPath.orbit(pc.xyz.mean(axis=0), radius=120.0, elevation_deg=45.0, duration_s=1.5,
                            turns=0.02, width=1024, height=768)

    def run():
        acc = AttentionAccumulator(pc, fixations_only=True)
        _replay(acc, path, targets)
        return acc

    a, b = run(), run()
    assert a.values.tobytes() == b.values.tobytes()
    v = a.values
    assert v.max() > 0 and a.n_used > 0.5 * a.n_samples
    # attention concentrates on buildings (6,931 of 70,840 points are building)
    share = v[pc.labels == 6].sum() / v.sum()
    assert share > 0.5


@pytest.mark.skipif(not CT.exists(), reason=f"real data not found: {CT}")
@pytest.mark.parametrize("mode", ["render", "mip", "slice"])
def test_ct_volume_modes_with_online_fixations(mode):
    from gaze3d.io import load_scan

    vol = load_scan(CT)
    centre = vol.affine @ np.r_[(np.array(vol.shape) - 1) / 2.0, 1.0]
    path = CameraPath.orbit(centre[:3], radius=600.0, elevation_deg=10.0, duration_s=0.6, turns=0.01,
                            width=800, height=600)
    acc = AttentionAccumulator(vol, fixations_only=True, mode=mode, opacity=[[100, 400], [0.0, 0.2]],
                               sigma_deg=0.5)
    _replay(acc, path, centre[None, :3], seconds=0.6)
    v = acc.values
    assert v.shape == vol.shape and v.dtype == np.float32
    assert acc.n_used > 0 and v.max() > 0
