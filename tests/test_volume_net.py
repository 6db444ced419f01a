"""The gaze-prompted volume network: normalisation, crop resampling, segmenter, training, label volumes.

Untrained networks are used where the test is about plumbing (shapes, crops,
zero outside the box, the walker prior); the training test checks that a few
steps on a synthetic label volume lower the loss and write a volume
checkpoint, and the overfit test that the prompt reaches the network (one image,
two prompts, two different structures: a network that cannot read the gaze
cannot fit both).
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the models extra) is not installed")

from gaze3d.errors import InputError  # noqa: E402
from gaze3d.models.networks.segnet import GazeSegNet  # noqa: E402
from gaze3d.models.volume_data import LabelVolume, load_label_volume, structures, synthseg_image  # noqa: E402
from gaze3d.models.volume_net import (CT_WINDOW, VolumeSegmenter, attention_centre, axis_weights,  # noqa: E402
                                      crop_box_weights, default_volume_config, network_method,
                                      normalise_intensity, to_crop)

torch.set_num_threads(1)


def _ball_volume(n=40, r=9.0, spacing=2.0):
    g = np.indices((n, n, n)).astype(float)
    d = np.sqrt(((g - n / 2) ** 2).sum(0))
    labels = (d < r).astype(np.int32)
    labels[(g[0] > n * 0.75) & (d >= r)] = 2
    return LabelVolume("ball", labels, np.full(3, spacing))


def test_normalise_intensity_ct_window_and_mr_percentiles():
    ct = np.array([-1000.0, CT_WINDOW[0], 50.0, CT_WINDOW[1], 3000.0]).reshape(5, 1, 1)
    out = normalise_intensity(ct, "auto")                # min <= -500: treated as CT
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [0, 0, (50 - CT_WINDOW[0]) / (CT_WINDOW[1] - CT_WINDOW[0]), 1, 1],
                               atol=1e-6)
    mr = np.random.default_rng(0).uniform(100, 900, (10, 10, 10))
    m = normalise_intensity(mr, "auto")
    assert 0 <= m.min() and m.max() <= 1 and np.mean(m) == pytest.approx(0.5, abs=0.05)
    with pytest.raises(InputError, match="modality"):
        normalise_intensity(mr, "pet")


def test_crop_resampling_is_exact_on_a_linear_ramp_and_keeps_thin_slices():
    shape, spacing = (60, 50, 40), np.array([1.0, 1.5, 2.5])
    g = np.indices(shape).astype(np.float32)
    ramp = 2 * g[0] - g[1] + 0.5 * g[2]
    centre = np.array([30.0, 25.0, 20.0])
    w = [axis_weights(centre[a], shape[a], spacing[a], 8, 4.0) for a in range(3)]
    crop = to_crop(ramp, w)
    pos = [centre[a] + (np.arange(8) - 3.5) * 4.0 / spacing[a] for a in range(3)]
    expect = 2 * pos[0][:, None, None] - pos[1][None, :, None] + 0.5 * pos[2][None, None, :]
    np.testing.assert_allclose(crop, expect, atol=1e-3)
    # back onto the native box: linear again, so exact on the ramp
    back = crop_box_weights(centre, shape, spacing, 8, 4.0)
    (u0, l0, h0), (u1, l1, h1), (u2, l2, h2) = back
    nat = np.einsum("ia,jb,kc,abc->ijk", u0, u1, u2, crop)
    np.testing.assert_allclose(nat, ramp[l0:h0, l1:h1, l2:h2], atol=1e-3)
    # a one-voxel-thin slice of attention survives the averaging weights (not stepped over)
    att = np.zeros(shape, np.float32)
    att[:, :, 21] = 1.0
    wa = [axis_weights(centre[a], shape[a], spacing[a], 8, 4.0, average=True) for a in range(3)]
    assert to_crop(att, wa).max() > 0.3
    assert to_crop(att, w).max() < 1.0        # (linear sampling would only graze it)


def test_segmenter_plumbing_zero_outside_the_box_and_walker_prior():
    torch.manual_seed(0)
    lv = _ball_volume()
    img = synthseg_image(lv.labels, np.random.default_rng(0), lv.spacing)
    seg = VolumeSegmenter(GazeSegNet(default_volume_config()), crop=12)
    seg.set_volume(img, lv.spacing, "mr")
    pos = np.zeros(lv.labels.shape)
    assert not seg.update(pos).any()                    # no attention: no mask, never a guess
    pos[18:22, 18:22, 20] = 1.0
    prob = seg.update(pos)
    assert prob.shape == lv.labels.shape and prob.dtype == np.float32
    # the crop is 12 voxels of 4 mm = 48 mm = 24 native voxels around the centre (20, 20, 20)
    box = np.zeros(prob.shape, bool)
    box[8:32, 8:32, 8:32] = True
    assert prob[~box].max() == 0 and prob[box].max() > 0
    # the walker prior channel: the random walker seeded by the crop's attention, high at the fixation
    assert seg.last_prior.shape == (12, 12, 12) and seg.last_prior[5:7, 5:7, 5:7].min() > 0.5
    far = np.zeros_like(pos)
    far[2:4, 2:4, 2] = 1.0
    np.testing.assert_allclose(attention_centre(far), [2.5, 2.5, 2.0])
    assert seg.update(far)[:6, :6, :6].max() > 0           # the crop follows the attention
    res = seg.segment(np.zeros_like(pos))
    assert res.status == "no-attention" and not res.mask.any()
    with pytest.raises(InputError, match="positive"):
        seg.update(np.zeros((3, 3, 3)))
    native = VolumeSegmenter(GazeSegNet(default_volume_config()), crop=12, prior="native")
    native.set_volume(img, lv.spacing, "mr")
    assert native.update(pos).shape == lv.labels.shape
    assert native.last_prior.shape == (12, 12, 12) and native.last_prior[5:7, 5:7, 5:7].min() > 0.5
    with pytest.raises(InputError, match="prior"):
        VolumeSegmenter(GazeSegNet(default_volume_config()), prior="atlas")
    old = default_volume_config()
    old.unet.in_channels = 1                            # the design before early fusion: refused, one line
    with pytest.raises(InputError, match="input channels"):
        VolumeSegmenter(GazeSegNet(old))


def test_mirroring_makes_the_network_flip_equivariant():
    """mirror=8 averages the logits over every axis flip of the crop, so flipping the volume and its
    attention flips the probability (to float rounding); one pass alone is not equivariant (a perturbed,
    untrained network). The crop prior is used: the viewer's native walker (random_walk_roi) is not
    flip-equivariant itself (its coarse blocks start at index 0)."""
    torch.manual_seed(0)
    lv = _ball_volume()
    img = synthseg_image(lv.labels, np.random.default_rng(0), lv.spacing)
    net = GazeSegNet(default_volume_config())
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pos = np.zeros(lv.labels.shape)
    pos[17:22, 18:24, 20] = 1.0
    for axis in range(3):
        asym = {}
        for mirror in (1, 8):
            seg = VolumeSegmenter(net, crop=12, prior="crop", mirror=mirror)
            seg.set_volume(img, lv.spacing, "mr")
            a = seg.update(pos)
            seg.set_volume(np.flip(img, axis).copy(), lv.spacing, "mr")
            asym[mirror] = float(np.abs(np.flip(seg.update(np.flip(pos, axis).copy()), axis) - a).max())
        assert asym[8] < 1e-5 and asym[1] > 1e-3, (axis, asym)
    for bad in (0, 9, 2.0):
        with pytest.raises(InputError, match="mirror"):
            VolumeSegmenter(net, mirror=bad)


def test_an_ensemble_averages_its_members_mask_logits(tmp_path):
    """Several models (built, or one ensemble checkpoint): the mask logits are the mean of the members'
    (mirroring averages over both); one model in a list is that model, to the bit."""
    from gaze3d.models.checkpoint import save_checkpoint, save_ensemble

    lv = _ball_volume()
    img = synthseg_image(lv.labels, np.random.default_rng(0), lv.spacing)
    pos = np.zeros(lv.labels.shape)
    pos[17:22, 18:24, 20] = 1.0
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = GazeSegNet(default_volume_config())
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        nets.append(net.eval())

    def logits(model, mirror=1):
        seg = VolumeSegmenter(model, crop=12, prior="crop", mirror=mirror)
        seg.set_volume(img, lv.spacing, "mr")
        seg.update(pos)                                   # sets last_prior, the walker on this crop
        c = attention_centre(pos)
        w_lin = [axis_weights(c[a], 40, 2.0, 12, 4.0) for a in range(3)]
        w_avg = [axis_weights(c[a], 40, 2.0, 12, 4.0, True) for a in range(3)]
        with torch.no_grad():
            return seg._logits(to_crop(seg._image, w_lin), to_crop(pos, w_avg), None, seg.last_prior)[1]

    one = [logits(n) for n in nets]
    assert float((one[0] - one[1]).abs().max()) > 1e-2           # the members do differ
    torch.testing.assert_close(logits(nets), (one[0] + one[1]) / 2, rtol=0, atol=1e-5)
    assert torch.equal(logits([nets[0]]), one[0])
    torch.testing.assert_close(logits(nets, mirror=2), (logits(nets[0], 2) + logits(nets[1], 2)) / 2,
                               rtol=0, atol=1e-5)
    paths = [save_checkpoint(n, tmp_path / f"m{i}.safetensors", {"kind": "volume", "crop": 12, "prior": "crop"})
             for i, n in enumerate(nets)]
    ens = save_ensemble(paths, tmp_path / "e.safetensors")
    assert len(VolumeSegmenter(ens).models) == 2
    torch.testing.assert_close(logits(ens), logits(nets), rtol=0, atol=0)
    with pytest.raises(InputError, match="sequence"):
        VolumeSegmenter([nets[0], "x"])
    with pytest.raises(InputError, match="architecture"):
        VolumeSegmenter([nets[0], GazeSegNet(default_volume_config(base_channels=16))])


def test_untrained_volume_model_is_the_walker_prior():
    """Residual head with a zero-initialised correction: before training the model's mask is the
    random walker's on the crop (so training starts from the baseline, not from an empty mask)."""
    from gaze3d.models.volume_net import build_volume_model, crop_input, mask_logits, walker_prior

    torch.manual_seed(0)
    lv = _ball_volume(24, 6.0)
    img = synthseg_image(lv.labels, np.random.default_rng(0), lv.spacing)[4:20, 4:20, 4:20]
    pos = np.zeros(img.shape)
    pos[7:9, 7:9, 8] = 1.0
    prior = walker_prior(img, pos, None, 4.0)
    assert prior.max() == pytest.approx(1.0) and 0 < (prior >= 0.5).mean() < 0.5
    x, att = crop_input(img, pos, None, prior)
    model = build_volume_model().eval()
    with torch.no_grad():
        logits = mask_logits(model, x, att).numpy()
    np.testing.assert_array_equal(logits >= 0, (prior >= 0.5).reshape(-1))


def test_untrained_native_model_is_the_viewer_walker_on_the_native_grid(tmp_path):
    """``prior="native"``: the correction is added to walker_roi's logit on the volume's own voxels, so an
    untrained model gives walker_roi's mask exactly, at native resolution and past the crop box too; a
    checkpoint trained that way says so in its header, and the segmenter follows it."""
    from gaze3d.models.checkpoint import save_checkpoint
    from gaze3d.models.volume_net import build_volume_model, roi_prior
    from gaze3d.models.volume_train import VolumeSampler
    from gaze3d.volume_regions import random_walk_roi

    torch.manual_seed(0)
    lv = _ball_volume(48, 14.0, 1.5)                     # a 42 mm ball: larger than the 8 x 4 mm crop
    img = synthseg_image(lv.labels, np.random.default_rng(1), lv.spacing)
    pos = np.zeros(lv.labels.shape)
    pos[22:26, 22:26, 24] = 1.0
    walker = random_walk_roi(img, pos, spacing=lv.spacing)
    assert walker.sum() > 0
    path = save_checkpoint(build_volume_model().eval(), tmp_path / "n.safetensors",
                           {"kind": "volume", "crop": 8, "prior": "native"})
    seg = VolumeSegmenter(path)
    assert seg.prior == "native" and VolumeSegmenter(path, prior="crop").prior == "crop"
    seg.set_volume(img, lv.spacing, "mr")
    prob = seg.update(pos)
    box = np.zeros(prob.shape, bool)
    (_, l0, h0), (_, l1, h1), (_, l2, h2) = crop_box_weights(attention_centre(pos), prob.shape, lv.spacing, 8, 4.0)
    box[l0:h0, l1:h1, l2:h2] = True
    assert (walker & ~box).any()                         # the walker's mask goes past the crop box
    np.testing.assert_array_equal(prob >= 0.5, walker)
    # the crop grid's kernel maps are kept between updates: a later update equals a fresh segmenter's
    trained = build_volume_model()
    with torch.no_grad():
        trained.classifier.weight.normal_()               # a non-zero correction
    twice, fresh = VolumeSegmenter(trained, crop=8, prior="native"), VolumeSegmenter(trained, crop=8, prior="native")
    for s_ in (twice, fresh):
        s_.set_volume(img, lv.spacing, "mr")
    twice.update(np.roll(pos, 3, axis=0))
    np.testing.assert_array_equal(twice.update(pos), fresh.update(pos))
    assert twice._grid.hits > 0
    np.testing.assert_allclose(seg.last_prior, to_crop(roi_prior(img, pos, None, lv.spacing), [
        axis_weights(attention_centre(pos)[a], 48, 1.5, 8, 4.0) for a in range(3)]))
    # training examples carry the same walker on their crop
    sampler = VolumeSampler([_ball_volume(40, 9.0)], crop=12, voxel_mm=4.0, seed=0, min_cm3=1.0, prior="native")
    ex = sampler.sample()
    np.testing.assert_array_equal(ex.prior, roi_prior(ex.image, ex.pos, ex.neg, (ex.voxel_mm,) * 3))
    with pytest.raises(InputError, match="prior"):
        VolumeSampler([_ball_volume(40, 9.0)], min_cm3=1.0, prior="atlas")


@pytest.mark.slow
def test_network_overfits_two_prompts_on_one_image():
    """The prompt reaches the network: one image holding two structures of the same intensity, two
    prompts, two targets. The walker prior is zeroed, so only the gaze channels tell them apart; a
    network that ignores them cannot exceed Dice ~0.67 on both (it would have to predict their union)."""
    from gaze3d.models.volume_net import mask_logits
    from gaze3d.models.volume_train import VolumeExample, batch_loss, collate_crops

    torch.manual_seed(0)
    c = 16
    g = np.indices((c, c, c)).astype(float)
    a = ((g - np.array([4.5, 7.5, 7.5])[:, None, None, None]) ** 2).sum(0) < 9
    b = ((g - np.array([11.5, 7.5, 7.5])[:, None, None, None]) ** 2).sum(0) < 9
    rng = np.random.default_rng(0)
    image = (0.2 + 0.6 * (a | b) + rng.normal(0, 0.03, a.shape)).astype(np.float32)
    exs = []
    for t in (a, b):
        pos = np.zeros(a.shape)
        ctr = np.round(np.argwhere(t).mean(0)).astype(int)
        pos[ctr[0] - 1:ctr[0] + 2, ctr[1] - 1:ctr[1] + 2, ctr[2]] = 1.0        # one slice, as slice gaze
        exs.append(VolumeExample(image, t, pos, np.zeros(a.shape), None, 4.0, np.zeros(a.shape, np.float32)))
    model = GazeSegNet(default_volume_config())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()               # batch statistics throughout: a few steps do not settle running ones
    x, att, tgt, _ = collate_crops(exs)
    truth = [t.reshape(-1) for t in (a, b)]
    dice = [0.0, 0.0]
    for step in range(200):
        loss, _ = batch_loss(model, exs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:      # stop as soon as both prompts give their own structure
            with torch.no_grad():
                pred = (mask_logits(model, x, att) >= 0).numpy().reshape(2, -1)
            dice = [2 * (p & t).sum() / (p.sum() + t.sum()) for p, t in zip(pred, truth)]
            if min(dice) > 0.9:
                break
    assert min(dice) > 0.9, (step, dice)


def test_network_method_runs_in_the_slice_gaze_loop():
    from gaze3d.models.volume_eval import run_structure
    from gaze3d.scan import Volume

    torch.manual_seed(0)
    lv = _ball_volume(32, 7.0)
    img = synthseg_image(lv.labels, np.random.default_rng(1), lv.spacing)
    vol = Volume(img, affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    net = GazeSegNet(default_volume_config())
    res = run_structure(vol, lv.labels == 1, {"network": network_method(net)}, max_fixations=2)
    assert len(res.dice["network"]) == 2 and all(0 <= d <= 1 for d in res.dice["network"])
    assert len(res.seconds["network"]) == 2


def test_synth_image_gives_each_label_its_own_contrast_and_is_seeded():
    lv = _ball_volume(30, 8.0)
    a = synthseg_image(lv.labels, np.random.default_rng(3), lv.spacing)
    b = synthseg_image(lv.labels, np.random.default_rng(3), lv.spacing)
    c = synthseg_image(lv.labels, np.random.default_rng(4), lv.spacing)
    assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    means = [[float(x[lv.labels == k].mean()) for k in range(3)] for x in (a, c)]
    assert means[0] != pytest.approx(means[1], abs=0.02)   # contrasts differ between draws


def test_training_steps_lower_the_loss_and_save_a_volume_checkpoint(tmp_path):
    from gaze3d.models.checkpoint import save_checkpoint
    from gaze3d.models.volume_net import is_volume_checkpoint
    from gaze3d.models.volume_train import VolumeSampler, VolumeTrainConfig, batch_loss, train_volume

    torch.manual_seed(0)
    sampler = VolumeSampler([_ball_volume(40, 9.0)], crop=12, voxel_mm=4.0, seed=0, min_cm3=1.0)
    ex = sampler.sample()
    assert ex.image.shape == ex.target.shape == ex.pos.shape == (12, 12, 12)
    assert ex.target.any() and ex.pos.max() > 0
    assert ex.pos[ex.target].sum() > ex.pos[~ex.target].sum()   # the fixation lands on the structure
    model = GazeSegNet(default_volume_config())
    held = [sampler.sample() for _ in range(4)]          # fixed examples, scored before and after

    def held_loss():
        with torch.no_grad():
            return batch_loss(model, held)[1].item()
    before = held_loss()
    class Fixed:        # the held examples again and again: the loss on them must fall (it can learn)
        crop, voxel_mm = sampler.crop, sampler.voxel_mm
        i = 0

        def sample(self):
            self.i += 1
            return held[self.i % len(held)]
    losses = train_volume(model, Fixed(), VolumeTrainConfig(steps=30, batch_size=2, lr=5e-3, error_rounds=0),
                          log=None)
    model.train()                                      # batch statistics: 30 steps do not settle running ones
    after = held_loss()
    assert len(losses) == 30 and np.all(np.isfinite(losses))
    assert after < 0.7 * before, (before, after)
    # one step of the real sampler with its corrective (error-driven) rounds runs too
    assert len(train_volume(model, sampler, VolumeTrainConfig(steps=1, batch_size=1, error_rounds=2),
                            log=None)) == 1
    path = save_checkpoint(model, tmp_path / "v.safetensors", {"kind": "volume", "crop": 12})
    assert is_volume_checkpoint(path)
    seg = VolumeSegmenter(path)
    assert seg.crop == 12
    cloud_ck = save_checkpoint(model, tmp_path / "c.safetensors", {})
    assert not is_volume_checkpoint(cloud_ck)
    with pytest.raises(InputError, match="not a volume checkpoint"):
        VolumeSegmenter(cloud_ck)


def test_training_predicts_its_corrective_fixations_on_the_kernel_map(monkeypatch):
    """The run's own predictions (error rounds) never take the dense inference path, so a training
    command makes the same weights whichever path inference takes; inference on the same crops does."""
    from gaze3d.models.sparse import conv as conv_mod
    from gaze3d.models.volume_net import mask_logits
    from gaze3d.models.volume_train import VolumeSampler, _error_rounds, collate_crops

    sampler = VolumeSampler([_ball_volume(40, 9.0)], crop=12, voxel_mm=4.0, seed=0, min_cm3=1.0)
    model = GazeSegNet(default_volume_config())
    examples = [sampler.sample() for _ in range(2)]
    calls = []
    dense = conv_mod.dense_subm_conv3d
    monkeypatch.setattr(conv_mod, "dense_subm_conv3d", lambda *a, **k: calls.append(1) or dense(*a, **k))
    _error_rounds(model, sampler, examples, 2)
    assert not calls
    with torch.no_grad():
        x, att, _, _ = collate_crops(examples)
        mask_logits(model.eval(), x, att)
    assert calls or not conv_mod._HAS_ONEDNN_CONV


@pytest.mark.parametrize("name,shape,min_structures", [("frog", (500, 470, 136), 10),
                                                        ("channels", (250, 250, 100), 3)])
def test_pyvista_label_volumes(name, shape, min_structures):
    pytest.importorskip("pyvista", reason="pyvista (the viewer extra) ships these label volumes")
    lv = load_label_volume(name)
    assert lv.labels.shape == shape and lv.labels.dtype == np.int32
    assert len(structures(lv)) >= min_structures


def test_mni_label_volume_from_the_nilearn_wheel():
    pytest.importorskip("nilearn", reason="nilearn is not installed (its wheel holds the MNI152 template)")
    lv = load_label_volume("mni")
    assert lv.labels.shape == (197, 233, 189) and lv.modality == "mr"
    assert set(np.unique(lv.labels)) == {0, 1, 2, 3}
    # white matter is brighter than grey matter on the T1
    assert lv.image[lv.labels == 3].mean() > lv.image[lv.labels == 2].mean()


def test_totalsegmentator_label_volume(shared_data):
    lv = load_label_volume("totalseg", shared_data)
    assert lv.labels.shape == lv.image.shape == (122, 101, 30)
    assert lv.names[5] == "liver" and lv.modality == "ct"
    liver = lv.labels == 5
    assert 0 < np.median(lv.image[liver]) < 150          # liver HU
