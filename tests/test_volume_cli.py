"""``gaze3d segment`` on volumes (NIfTI with the source affine, DICOM-SEG) and ``gaze3d train --volumes``,
through the real executable."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gaze3d.io import load_scan, save_scan
from gaze3d.scan import Volume


def _gaze3d(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gaze3d", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture()
def ball(tmp_path):
    """A 40^3 volume (ball of 60 in 0 with noise), an oblique affine, and attention on the ball's centre."""
    n = 40
    g = np.indices((n, n, n)).astype(float)
    truth = np.sqrt(((g - 20) ** 2).sum(0)) < 10
    rng = np.random.default_rng(0)
    arr = (np.where(truth, 60.0, 0.0) + rng.normal(0, 3, truth.shape)).astype(np.float32)
    c, s = np.cos(0.3), np.sin(0.3)
    aff = np.array([[1.5 * c, -1.5 * s, 0, 10.0], [1.5 * s, 1.5 * c, 0, -20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
    path = tmp_path / "ball.nii.gz"
    save_scan(Volume(arr, affine=aff), path)
    att = np.zeros(arr.shape, np.float32)
    att[18:23, 18:23, 20] = 1.0
    np.save(tmp_path / "att.npy", att)
    return path, tmp_path / "att.npy", truth, aff


def test_segment_volume_baseline_writes_a_nifti_mask_with_the_source_affine(ball, tmp_path):
    path, att, truth, aff = ball
    out = tmp_path / "mask.nii.gz"
    r = _gaze3d("segment", path, "--attention", att, "--method", "confidence", "-o", out)
    assert r.returncode == 0, r.stderr
    m = load_scan(out)
    np.testing.assert_allclose(m.affine, aff, atol=1e-4)
    mask = m.array.astype(bool)
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.9
    assert "voxels in the mask" in r.stdout


def test_segment_volume_without_a_model_uses_the_shipped_volume_model(ball, tmp_path):
    pytest.importorskip("torch", reason="torch (the models extra) is not installed")
    path, att, truth, aff = ball
    out = tmp_path / "mask.nii.gz"
    r = _gaze3d("segment", path, "--attention", att, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "cm3, network)" in r.stdout
    mask = load_scan(out).array.astype(bool)
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.9
    r = _gaze3d("segment", path, "--attention", att, "--method", "walker_roi", "-o", out)
    assert r.returncode == 0 and "cm3, walker_roi)" in r.stdout, r.stderr


def test_shipped_volume_model_header_says_how_it_was_made():
    """The shipped file: a volume model refining the viewer's walker, trained on frog and channels only,
    validated on the MNI T1 (so the CT stays a test volume), with the command that rebuilds it."""
    pytest.importorskip("torch", reason="torch (the models extra) is not installed")
    from gaze3d.models.checkpoint import read_meta
    from gaze3d.models.volume_net import DEFAULT_VOLUME_CHECKPOINT, VolumeSegmenter

    assert DEFAULT_VOLUME_CHECKPOINT.stat().st_size < 2_000_000
    meta = read_meta(DEFAULT_VOLUME_CHECKPOINT)
    assert meta["kind"] == "volume" and meta["prior"] == "native"
    assert meta["volumes"] == ["frog", "channels"] and meta["val_volume"] == "mni"
    assert "totalseg" not in meta["command"] and "--volume-prior native" in meta["command"]
    assert VolumeSegmenter().prior == "native"


def test_segment_volume_network_runs_from_a_volume_checkpoint(ball, tmp_path):
    torch = pytest.importorskip("torch", reason="torch (the models extra) is not installed")
    from gaze3d.models.checkpoint import save_checkpoint
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.volume_net import default_volume_config

    torch.manual_seed(0)
    ck = save_checkpoint(GazeSegNet(default_volume_config()), tmp_path / "v.safetensors",
                         {"kind": "volume", "crop": 12})
    path, att, truth, aff = ball
    out = tmp_path / "net.nii.gz"
    r = _gaze3d("segment", path, "--attention", att, "--model", ck, "-o", out)
    assert r.returncode == 0, r.stderr
    m = load_scan(out)
    assert m.array.shape == truth.shape
    np.testing.assert_allclose(m.affine, aff, atol=1e-4)
    # an untrained network may give any mask, but never a silent empty one
    assert m.array.any() or "warning: mask" in r.stderr
    # a point-cloud checkpoint is refused in one line
    cloud = save_checkpoint(GazeSegNet(default_volume_config()), tmp_path / "c.safetensors", {})
    r = _gaze3d("segment", path, "--attention", att, "--model", cloud, "-o", out)
    assert r.returncode == 2 and "not a volume checkpoint" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_segment_volume_bad_inputs_are_one_line_exit_2(ball, tmp_path):
    path, att, truth, aff = ball
    np.save(tmp_path / "bad.npy", np.zeros((3, 3, 3), np.float32))
    cases = [
        (["--attention", tmp_path / "bad.npy", "--method", "flood", "-o", tmp_path / "m.nii.gz"], "bad.npy"),
        (["--attention", att, "--model", tmp_path / "none.safetensors", "-o", tmp_path / "m.nii.gz"],
         "none.safetensors"),                                                            # no such model
        (["--attention", att, "--method", "flood", "-o", tmp_path / "m.dcm"], "DICOM-SEG"),  # needs DICOM in
        (["--attention", att, "--method", "flood", "-o", tmp_path / "m.ply"], "m.ply"),
    ]
    for args, needle in cases:
        r = _gaze3d("segment", path, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "m.nii.gz").exists()


def test_segment_dicom_input_writes_a_dicom_seg(shared_data, tmp_path):
    pytest.importorskip("highdicom", reason="highdicom is not installed (pip install highdicom)")
    import pydicom

    src = shared_data / "medical" / "pydicom" / "CT_small.dcm"
    vol = load_scan(src)
    att = np.zeros(vol.array.shape, np.float32)
    att[60:68, 60:68, 0] = 1.0
    np.save(tmp_path / "a.npy", att)
    out = tmp_path / "seg.dcm"
    r = _gaze3d("segment", src, "--attention", tmp_path / "a.npy", "--method", "flood", "-o", out)
    assert r.returncode == 0, r.stderr
    ds = pydicom.dcmread(str(out))
    ref = pydicom.dcmread(str(src))
    assert ds.Modality == "SEG" and ds.SegmentSequence[0].SegmentLabel
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == ref.SeriesInstanceUID
    frame = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)[0].astype(bool)
    mask = load_scan(src).array  # same grid: rows = j, columns = i
    assert frame.shape == (mask.shape[1], mask.shape[0])
    assert frame[60:68, 60:68].any()


def test_train_volumes_writes_a_volume_checkpoint_and_refuses_validating_on_training_data(tmp_path):
    pytest.importorskip("torch", reason="torch (the models extra) is not installed")
    pytest.importorskip("pyvista", reason="pyvista ships the channels label volume")
    from gaze3d.models.volume_net import VolumeSegmenter, is_volume_checkpoint

    out = tmp_path / "v.safetensors"
    r = _gaze3d("train", "--volumes", "channels", "--val-volume", "none", "--steps", "2", "--batch-size", "1",
                "--crop", "16", "--base-channels", "8", "-o", out)
    assert r.returncode == 0, r.stderr
    assert is_volume_checkpoint(out)
    seg = VolumeSegmenter(out)
    assert seg.crop == 16 and seg.meta["steps_run"] == 2 and seg.meta["volumes"] == ["channels"]
    assert seg.prior == "native"                       # the shipped model's design is the default
    # --members 2: two runs side by side (seeds 0 and 1) in one ensemble checkpoint; member 0 is the
    # single run above, weight for weight
    ens = tmp_path / "e.safetensors"
    r = _gaze3d("train", "--volumes", "channels", "--val-volume", "none", "--steps", "2", "--batch-size", "1",
                "--crop", "16", "--base-channels", "8", "--members", "2", "-o", ens)
    assert r.returncode == 0, r.stderr
    assert "[member 1] saved" in r.stdout and "an ensemble of 2 members" in r.stdout
    from gaze3d.models.checkpoint import load_members, weights_digest
    members, meta = load_members(ens)
    assert len(members) == 2 and meta["members"][0]["weights_sha256"] == weights_digest(out)
    assert meta["members"][1]["weights_sha256"] != weights_digest(out) and "--members 2" in meta["command"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".members-")]     # the members' temp folder
    r = _gaze3d("train", "--tiles", "ign", "--members", "2", "-o", tmp_path / "x.safetensors")
    assert r.returncode == 2 and "only for the volume model" in r.stderr
    r = _gaze3d("train", "--volumes", "channels", "--val-volume", "channels", "-o", tmp_path / "x.safetensors")
    assert r.returncode == 2 and "held out" in r.stderr
    # counts that are not runs: one line each, nothing trained (0 is not read as the default)
    for bad, word in ((("--members", "0"), "--members"), (("--members", "-1"), "--members"),
                      (("--members", "2", "--jobs", "0"), "--jobs"), (("--jobs", "2"), "--jobs"),
                      (("--threads", "0"), "--threads"), (("--threads", "-2"), "--threads"),
                      (("--seed", "-1"), "seed"), (("--time-limit", "0"), "time_limit_s"),
                      (("--val-repeats", "-1"), "--val-repeats")):
        r = _gaze3d("train", "--volumes", "channels", "--val-volume", "none", *bad, "-o", tmp_path / "y.safetensors")
        assert r.returncode == 2 and r.stderr.strip().startswith("gaze3d train: error: " + word), (bad, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "y.safetensors").exists()
    # an output that cannot be written is refused before training, not at the save
    (tmp_path / "a_file").write_text("")
    for bad, why in ((tmp_path, "is a folder"), (tmp_path / "a_file" / "sub" / "y.safetensors", "not a folder")):
        r = _gaze3d("train", "--volumes", "channels", "--val-volume", "none", "--steps", "1", "-o", bad)
        assert r.returncode == 2 and why in r.stderr and "step" not in r.stdout, r.stdout + r.stderr
    r = _gaze3d("train", "--volumes", "lungs", "-o", tmp_path / "x.safetensors")
    assert r.returncode == 2 and "lungs" in r.stderr
