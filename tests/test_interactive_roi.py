"""The interactive head run on a crop around the region of interest (``head_roi``) gives
the full scene's mask: the backbone features are cached for the whole scan and the head
only reaches :meth:`GazeSegNet.head_reach` voxels."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the interactive network needs torch (gaze3d[models])")

from gaze3d.models.procedural import make_scene  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def _row_of_three(t):
    """The scene's points ``(3n, 3)`` and colours/intensity repeated three times along x
    (5 m apart), so a crop around an object of the middle copy is smaller than the scan."""
    step = np.ptp(t.xyz[:, 0]) + 5.0
    xyz = np.concatenate([t.xyz + np.array([k * step, 0.0, 0.0]) for k in range(3)])
    return xyz, np.concatenate([t.feats] * 3)


def _segmenters(model, xyz, feats, voxel_size, margin):
    from gaze3d.models.interactive import InteractiveSegmenter
    from gaze3d.scan import PointCloud

    cloud = PointCloud(xyz=xyz, colors=feats[:, 2:5], intensity=feats[:, 1])
    out = []
    for roi in (False, True):
        seg = InteractiveSegmenter(model, voxel_size=voxel_size, roi_margin=margin, head_roi=roi,
                                   crop_slack=2.0)
        seg.set_scan(cloud)
        out.append(seg)
    return out


def _spot(xyz, centre, radius):
    """Attention ``(n,)``: 1 - d / radius within ``radius`` m of ``centre`` (a fixation)."""
    d = np.linalg.norm(xyz - centre, axis=1)
    return np.clip(1.0 - d / radius, 0.0, None).astype(np.float32)


@pytest.mark.parametrize("prior", ["shipped", "random"])
def test_head_on_the_roi_crop_equals_the_full_scene(prior):
    from gaze3d.models.interactive import DEFAULT_CHECKPOINT
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.train import default_interactive_config

    torch.set_num_threads(1)
    t = make_scene(np.random.default_rng(7), "als", name="roi-test", split="test")
    if prior == "shipped":
        model = DEFAULT_CHECKPOINT
    else:     # no prior, random non-zero head: every logit is the head's
        torch.manual_seed(0)
        model = GazeSegNet(default_interactive_config(base_channels=8)).eval()
    xyz, feats = _row_of_three(t)
    full, roi = _segmenters(model, xyz, feats, t.voxel_size, margin=3.0)
    assert roi.head_roi and not full.head_roi
    obj = np.flatnonzero(t.objects == 0) + len(t.xyz)       # in the middle copy
    c = xyz[obj].mean(0)
    pos = _spot(xyz, c, 2.0)
    neg = np.zeros_like(pos)
    masked = []
    for step in range(3):
        a, b = full.update(pos, neg), roi.update(pos, neg)
        np.testing.assert_allclose(b, a, atol=1e-5, err_msg=f"step {step}")
        # the crop is a real crop and the probabilities are not all 0 (else the test could not fail)
        assert len(roi._crop[1][1]) < roi.n_voxels
        assert a.max() > 0.1
        masked.append(bool((a > 0.5).any()))
        # next fixation: a rejection 4 m away, then a positive 3 m the other way
        shift = np.array([4.0 if step == 0 else -3.0, 0.0, 0.0])
        (neg if step == 0 else pos)[:] += _spot(xyz, c + shift, 2.0)
    # a mask at least once (the rejection 4 m away, on the same large object, may empty it)
    assert any(masked) or prior == "random"
    # nothing looked at: all 0 either way (the ROI path does not run the head)
    z = np.zeros_like(pos)
    np.testing.assert_array_equal(roi.update(z, z), full.update(z, z))
    assert not roi.update(z, z).any()


def test_head_reach_counts_the_coarse_stages():
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.train import default_interactive_config

    net = GazeSegNet(default_interactive_config(base_channels=8))
    # every stage adds its cell; stages at stride >= 4 add their dilated 3^3 propagations
    want = sum(s + (s * (1 + 2) if s >= 4 else 0) for s in net.strides)
    assert net.head_reach() == want
    mha = GazeSegNet(default_interactive_config(base_channels=8, guidance="mha"))
    assert mha.head_reach() is None
