"""Outputs other tools read back whole: LAS round trips field by field, the attention volume,
outputs that would drop what a command produces, VTK-readable .vtp, and file permissions."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gaze3d
from gaze3d.cli import main
from gaze3d.errors import ScanFormatError
from gaze3d.scan import Mesh, PointCloud, Volume

from io_helpers import file_mode

laspy = pytest.importorskip("laspy", reason="LAS tests need laspy (pip install gaze3d[io])")


def _cli(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "gaze3d", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _one_line_exit_2(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# ------------------------------------------------------------ LAS field by field
def _assert_same_records(src: Path, out: Path, changed=("classification",), new_extra=()):
    """Every dimension of ``src`` is in ``out`` with the same values, except ``changed``."""
    a, b = laspy.read(str(src)), laspy.read(str(out))
    assert (b.header.version.major, b.header.version.minor) == (a.header.version.major, a.header.version.minor)
    assert b.point_format.id == a.point_format.id
    if "X" not in changed:
        np.testing.assert_array_equal(b.header.scales, a.header.scales)
        np.testing.assert_array_equal(b.header.offsets, a.header.offsets)
    assert len(b.points) == len(a.points)
    for name in a.point_format.dimension_names:
        if name in changed:
            continue
        np.testing.assert_array_equal(np.asarray(b[name]), np.asarray(a[name]), err_msg=f"{out.name}: {name}")
    assert set(b.point_format.extra_dimension_names) == set(a.point_format.extra_dimension_names) | set(new_extra)
    return a, b


@pytest.fixture(scope="module")
def rich_las(tmp_path_factory, bundled_tile) -> Path:
    """The IGN tile (LAS 1.4, format 8) with every dimension holding varied values.

    The IGN subset has NIR, user data, the flags and the scanner channel all
    zero: filled here so that a writer that zeroes them cannot pass.
    """
    las = laspy.read(str(bundled_tile))
    rng = np.random.default_rng(3)
    n = len(las.points)
    las.nir = rng.integers(1, 65535, n, dtype=np.uint16)
    las.user_data = rng.integers(1, 255, n, dtype=np.uint8)
    for flag in ("synthetic", "key_point", "withheld", "overlap", "edge_of_flight_line"):
        las[flag] = rng.integers(0, 2, n, dtype=np.uint8)
    las.scanner_channel = rng.integers(0, 4, n, dtype=np.uint8)
    las.scan_angle = rng.integers(-15000, 15000, n, dtype=np.int16)
    las.point_source_id = rng.integers(1, 65535, n, dtype=np.uint16)
    path = tmp_path_factory.mktemp("las") / "rich.las"
    las.write(str(path))
    return path


def test_ign_tile_has_the_dimensions_that_used_to_be_lost(bundled_tile):
    las = laspy.read(str(bundled_tile))
    assert las.point_format.id == 8 and str(las.header.version) == "1.4"
    assert np.asarray(las.gps_time).min() > 2e8 and np.asarray(las.return_number).min() == 1
    assert np.asarray(las.number_of_returns).max() > 1 and np.asarray(las.scan_angle).max() > 0


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_convert_las_keeps_every_field(bundled_tile, rich_las, tmp_path, ext):
    for src in (bundled_tile, rich_las):
        out = tmp_path / f"{src.stem}{ext}"
        r = _cli("convert", src, out)
        assert r.returncode == 0, r.stderr
        _assert_same_records(src, out, changed=())      # nothing changed: every field identical
        a, b = laspy.read(str(src)), laspy.read(str(out))
        assert b.header.point_count == a.header.point_count
        np.testing.assert_allclose(b.header.mins, a.header.mins, atol=1e-6)   # recomputed from X Y Z


def test_save_las_changes_only_classification_and_extra_dims(rich_las, tmp_path):
    cloud = gaze3d.load_scan(rich_las)
    att = np.random.default_rng(0).random(len(cloud)).astype(np.float32)
    labels = np.where(cloud.labels == 6, 64, cloud.labels)          # a class only LAS 1.4 formats hold
    out = dataclasses.replace(cloud, labels=labels, label_names={**cloud.label_names, 64: "roof"},
                              fields={"attention": att, "mask": att > 0.5})
    for ext in (".las", ".laz"):
        gaze3d.save_scan(out, tmp_path / f"o{ext}")
        a, b = _assert_same_records(rich_las, tmp_path / f"o{ext}", new_extra=("attention", "mask"))
        np.testing.assert_array_equal(np.asarray(b.classification), labels)
        np.testing.assert_array_equal(np.asarray(b.attention), att)
        back = gaze3d.load_scan(tmp_path / f"o{ext}")
        assert back.label_names[64] == "roof"
        np.testing.assert_array_equal(back.fields["mask"], att > 0.5)
        # saved again after a second load: our extra dims are updated in place, not duplicated
        again = dataclasses.replace(back, fields={"attention": att * 2})
        gaze3d.save_scan(again, tmp_path / f"p{ext}")
        _, c = _assert_same_records(rich_las, tmp_path / f"p{ext}", new_extra=("attention",))
        np.testing.assert_array_equal(np.asarray(c.attention), att * 2)


def test_changed_colours_intensity_and_moved_points_are_written(rich_las, tmp_path):
    cloud = gaze3d.load_scan(rich_las)
    colors = cloud.colors.copy()
    colors[:10] = 0.5
    moved = cloud.xyz + [0.0, 0.0, 1.25]
    out = dataclasses.replace(cloud, xyz=moved, colors=colors, intensity=cloud.intensity + 1)
    gaze3d.save_scan(out, tmp_path / "o.las")
    _assert_same_records(rich_las, tmp_path / "o.las", changed=("Z", "z", "red", "green", "blue", "intensity"))
    back = gaze3d.load_scan(tmp_path / "o.las")
    np.testing.assert_allclose(back.xyz, moved, atol=0.005)
    np.testing.assert_allclose(back.colors, colors, atol=1 / 65535)
    np.testing.assert_array_equal(back.intensity, cloud.intensity + 1)
    # moved beyond what the file's scale and offset can encode in int32: a new quantum
    far = cloud.xyz - cloud.xyz.min(axis=0) + 1e8
    gaze3d.save_scan(dataclasses.replace(cloud, xyz=far), tmp_path / "far.las")
    _assert_same_records(rich_las, tmp_path / "far.las", changed=("X", "Y", "Z", "x", "y", "z"))
    np.testing.assert_allclose(gaze3d.load_scan(tmp_path / "far.las").xyz, far, rtol=0, atol=1e-6)


def test_legacy_format_kept_or_widened_for_classes_above_31(rich_las, tmp_path):
    src = laspy.convert(laspy.read(str(rich_las)), point_format_id=3, file_version="1.2")
    legacy = tmp_path / "legacy.las"
    src.write(str(legacy))
    cloud = gaze3d.load_scan(legacy)
    gaze3d.save_scan(dataclasses.replace(cloud, labels=np.where(cloud.labels == 6, 9, cloud.labels)),
                     tmp_path / "same.las")
    _assert_same_records(legacy, tmp_path / "same.las")            # 1.2 / format 3 kept
    gaze3d.save_scan(dataclasses.replace(cloud, labels=np.where(cloud.labels == 6, 40, cloud.labels)),
                     tmp_path / "wide.las")
    wide = laspy.read(str(tmp_path / "wide.las"))
    assert wide.point_format.id == 7 and str(wide.header.version) == "1.4"
    for name in ("X", "Y", "Z", "intensity", "return_number", "number_of_returns", "gps_time",
                 "point_source_id", "red", "green", "blue", "user_data"):
        np.testing.assert_array_equal(np.asarray(wide[name]), np.asarray(src[name]), err_msg=name)
    assert int(np.asarray(wide.classification).max()) == 40


def test_a_subset_is_written_fresh_with_a_warning(bundled_tile, tmp_path):
    cloud = gaze3d.load_scan(bundled_tile)
    part = dataclasses.replace(cloud, xyz=cloud.xyz[:100], colors=cloud.colors[:100],
                               intensity=cloud.intensity[:100], labels=cloud.labels[:100])
    with pytest.warns(UserWarning, match="100 points"):
        gaze3d.save_scan(part, tmp_path / "part.las")
    back = gaze3d.load_scan(tmp_path / "part.las")
    np.testing.assert_allclose(back.xyz, cloud.xyz[:100], atol=1e-6)
    np.testing.assert_array_equal(back.labels, cloud.labels[:100])
    fresh = laspy.read(str(tmp_path / "part.las"))       # valid LAS 1.4: no return number 0
    assert fresh.point_format.id == 7 and (np.asarray(fresh.return_number) == 1).all()
    assert (np.asarray(fresh.number_of_returns) == 1).all()


def test_viewer_labels_las_keeps_every_field(rich_las, tmp_path):
    pytest.importorskip("pyvista", reason="the viewer needs pyvista (pip install gaze3d[viewer])")
    from gaze3d.camera import Camera
    from gaze3d.viewer.session import LabelingSession

    cloud = gaze3d.load_scan(rich_las)
    centre = cloud.xyz.mean(axis=0)
    cam = Camera.look_at(centre + [0, 0, 200], centre, view_up=(0, 1, 0), vfov_deg=40, width=320, height=240)
    s = LabelingSession(cloud, camera=cam, segmenter="grow")
    try:
        s.labels[:500] = 3
        s.save_annotations(tmp_path / "rich.labels.las")
    finally:
        s.close()
    _, b = _assert_same_records(rich_las, tmp_path / "rich.labels.las", new_extra=("attention",))
    assert (np.asarray(b.classification)[:500] == 3).all()


def test_segment_laz_keeps_every_field(rich_las, tmp_path):
    pytest.importorskip("torch", reason="gaze3d segment needs torch (pip install gaze3d[models])")
    las = laspy.read(str(rich_las))
    las.points = las.points[np.arange(len(las.points)) % 20 == 0]        # 3.5k points: a short run
    small = tmp_path / "small.las"
    las.write(str(small))
    n = len(las.points)
    att = np.zeros(n, np.float32)
    att[: n // 10] = 1.0
    np.save(tmp_path / "att.npy", att)
    r = _cli("segment", small, "--attention", tmp_path / "att.npy", "-o", tmp_path / "seg.laz")
    assert r.returncode == 0, r.stderr
    _, b = _assert_same_records(small, tmp_path / "seg.laz", new_extra=("attention", "probability", "mask"))
    np.testing.assert_array_equal(np.asarray(b.attention), att)


# ------------------------------------------------------------ attention volume
def _orbit_session():
    from gaze3d.camera import CameraPath

    path = CameraPath.orbit((0, 0, 0), radius=10.0, elevation_deg=35, duration_s=0.5, turns=0.05,
                            n_keys=10, vfov_deg=60.0)
    t_cam = (np.arange(30) / 60.0 * 1e9).astype(np.int64) + 10**12
    cams = [path.at((tc - 10**12) * 1e-9) for tc in t_cam]
    t = (np.arange(300) / 600.0 * 1e9).astype(np.int64) + 10**12 + 1000
    frame = np.searchsorted(t_cam, t, side="right") - 1
    xy = np.array([cams[f].pixels_to_normalized(cams[f].project(np.array([[0.5, 0.5, 0.5]]))[0])[0]
                   for f in frame])
    return t_cam, cams, t, xy


def _write_recording(path, t_cam, cams, t, xy):
    from gaze3d.recording import RecordingWriter

    with RecordingWriter(path) as w:
        for tc, cam in zip(t_cam, cams):
            w.add_camera(int(tc), cam)
        w.add_samples([{"topic": "gaze.2d", "t_host_ns": int(ti), "t_device": None, "seq": i,
                        "gaze": [float(x), float(y)], "valid": True} for i, (ti, (x, y)) in enumerate(zip(t, xy))])
    return path


def test_attention_on_a_volume_writes_the_attention(tmp_path):
    pytest.importorskip("SimpleITK", reason="volumes need SimpleITK (pip install gaze3d[io])")
    from gaze3d.attention import accumulate_attention

    rng = np.random.default_rng(1)
    ct = rng.integers(-1100, 1200, (20, 20, 20)).astype(np.int16)
    affine = np.diag([0.2, 0.2, 0.2, 1.0])
    affine[:3, 3] = -2.0
    gaze3d.save_scan(Volume(ct, affine), tmp_path / "ct.nii.gz")
    rec = _write_recording(tmp_path / "s.sqlite", *_orbit_session())
    assert main(["attention", str(tmp_path / "ct.nii.gz"), str(rec), "-o", str(tmp_path / "att.nii.gz")]) == 0
    att = gaze3d.load_scan(tmp_path / "att.nii.gz")
    expected = accumulate_attention(gaze3d.load_scan(tmp_path / "ct.nii.gz"), str(rec))
    assert att.array.dtype == np.float32 and expected.max() > 0
    np.testing.assert_array_equal(att.array, expected)
    np.testing.assert_allclose(att.affine, affine, atol=1e-9)


# ------------------------------------------------------------ outputs refused before the work
@pytest.mark.parametrize("command", ["attention", "segment", "convert", "fixations"])
@pytest.mark.parametrize("output, words", [
    ("out.xyz", ["-o", "would drop"]),
    ("out.dcm", ["cannot write"]),
    ("no/such/folder/out.ply", ["does not exist"]),
])
def test_outputs_refused_before_any_work(command, output, words, tmp_path, bundled_tile):
    """The recording / attention given do not exist: the output check must come first."""
    out = tmp_path / output
    missing = tmp_path / "missing.sqlite"
    if command == "attention":
        args = ["attention", tmp_path / "missing.ply", missing, "-o", out]
    elif command == "segment":
        args = ["segment", tmp_path / "missing.las", "--attention", tmp_path / "missing.npy", "-o", out]
    elif command == "convert":
        args = ["convert", bundled_tile, out]             # the tile has classes: .xyz would drop them
        words = [w for w in words if w != "-o"] + (["labels"] if output.endswith(".xyz") else [])
    else:
        args = ["fixations", missing, "-o", out]
        words = ["-o", "expected a .tsv"]                 # none of these outputs is a .tsv
    msg = _one_line_exit_2(_cli(*args), *words)
    assert "missing" not in msg, msg
    assert list(tmp_path.iterdir()) == []


def test_convert_geometry_only_allows_xyz(bundled_tile, tmp_path):
    r = _cli("convert", bundled_tile, tmp_path / "tile.xyz", "--geometry-only")
    assert r.returncode == 0, r.stderr
    assert len(gaze3d.load_scan(tmp_path / "tile.xyz")) == 70840


def test_check_output_api(tmp_path):
    from gaze3d.io import check_output

    assert check_output(tmp_path / "a.vtp", PointCloud, keeps=["attention"]) == tmp_path / "a.vtp"
    assert check_output(tmp_path / "a.nii.gz", keeps=["attention"])           # volumes: a volume of its own
    with pytest.raises(ScanFormatError, match="would drop attention"):
        check_output(tmp_path / "a.obj", Mesh, keeps=["attention"])
    with pytest.raises(ScanFormatError, match="cannot write a point cloud as"):
        check_output(tmp_path / "a.nii.gz", PointCloud)
    (tmp_path / "d.ply").mkdir()
    with pytest.raises(ScanFormatError, match="is a folder"):
        check_output(tmp_path / "d.ply")


# ------------------------------------------------------------ VTK-readable output
def test_vtp_is_read_whole_by_pyvista_and_vtk(bundled_tile, tmp_path):
    pv = pytest.importorskip("pyvista", reason="the VTK check needs pyvista (pip install gaze3d[viewer])")
    cloud = gaze3d.load_scan(bundled_tile)
    rng = np.random.default_rng(0)
    fields = {"attention": rng.random(len(cloud)).astype(np.float32), "mask": rng.random(len(cloud)) > 0.5,
              "count": rng.integers(-5, 5, len(cloud)).astype(np.int64)}
    cloud = dataclasses.replace(cloud, fields=fields, normals=rng.normal(size=(len(cloud), 3)))
    gaze3d.save_scan(cloud, tmp_path / "tile.vtp")
    m = pv.read(tmp_path / "tile.vtp")
    assert m.points.dtype == np.float64 and m.n_points == len(cloud) and m.n_verts == len(cloud)
    np.testing.assert_array_equal(m.points, cloud.xyz)                 # Lambert-93, not float32
    np.testing.assert_array_equal(m["attention"], fields["attention"])
    np.testing.assert_array_equal(m["mask"], fields["mask"].astype(np.uint8))
    np.testing.assert_array_equal(m["count"], fields["count"])
    np.testing.assert_array_equal(m["label"], cloud.labels)
    np.testing.assert_array_equal(m["intensity"], cloud.intensity)
    np.testing.assert_array_equal(m["RGB"], np.round(cloud.colors * 255).astype(np.uint8))
    np.testing.assert_array_equal(m.point_data["Normals"], cloud.normals)
    assert b"building" in bytes(m.field_data["gaze3d_label_names"])

    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    reader = vtkXMLPolyDataReader()
    reader.SetFileName(str(tmp_path / "tile.vtp"))
    reader.Update()
    assert reader.GetErrorCode() == 0 and reader.GetOutput().GetNumberOfPoints() == len(cloud)
    # what the .vtp is for: VTK's PLY reader loses the fields and the coordinates' precision
    gaze3d.save_scan(cloud, tmp_path / "tile.ply")
    ply = pv.read(tmp_path / "tile.ply")
    assert "attention" not in ply.point_data and np.abs(ply.points - cloud.xyz).max() > 0.01


def test_vtp_mesh(tmp_path):
    pv = pytest.importorskip("pyvista", reason="the VTK check needs pyvista (pip install gaze3d[viewer])")
    g = np.stack(np.meshgrid(np.arange(4.0), np.arange(3.0), indexing="ij"), -1).reshape(-1, 2)
    v = np.c_[g + 6.6e6, np.zeros(len(g))]
    idx = np.arange(12).reshape(4, 3)
    q = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
    faces = np.r_[q[:, [0, 1, 2]], q[:, [0, 2, 3]]]
    mesh = Mesh(v, faces, colors=np.full((12, 3), 0.5), labels=np.arange(12) % 3,
                fields={"attention": np.linspace(0, 1, 12)})
    gaze3d.save_scan(mesh, tmp_path / "m.vtp")
    m = pv.read(tmp_path / "m.vtp")
    assert m.is_all_triangles and m.n_cells == len(faces) and m.points.dtype == np.float64
    np.testing.assert_array_equal(m.faces.reshape(-1, 4)[:, 1:], faces)
    np.testing.assert_array_equal(m.points, v)
    np.testing.assert_array_equal(m["attention"], mesh.fields["attention"])
    np.testing.assert_array_equal(m["label"], mesh.labels)


def test_vtp_rejects_reserved_field_names(tmp_path):
    with pytest.raises(ScanFormatError, match="RGB"):
        gaze3d.save_scan(PointCloud(np.zeros((3, 3)), fields={"RGB": np.zeros(3)}), tmp_path / "x.vtp")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ permissions
def test_exports_get_the_umask_mode(tmp_path, umask_027, bundled_tile):
    cloud = gaze3d.load_scan(bundled_tile)
    for name in ("a.ply", "a.las", "a.laz", "a.vtp", "a.pcd", "a.xyz"):
        gaze3d.save_scan(cloud, tmp_path / name)
        assert file_mode(tmp_path / name) == umask_027, name
    pytest.importorskip("SimpleITK", reason="volumes need SimpleITK")
    gaze3d.save_scan(Volume(np.zeros((3, 3, 3), np.float32)), tmp_path / "v.nii.gz")
    assert file_mode(tmp_path / "v.nii.gz") == umask_027
    os.umask(0o022)
    gaze3d.save_scan(cloud, tmp_path / "b.ply")
    assert file_mode(tmp_path / "b.ply") == 0o644


def test_fixations_labels_and_checkpoint_modes(tmp_path, umask_027):
    from gaze3d.io._common import atomic_path

    with atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("x")
    assert file_mode(tmp_path / "x.txt") == umask_027
    rec = _write_recording(tmp_path / "s.sqlite", *_orbit_session())
    assert main(["fixations", str(rec), "-o", str(tmp_path / "ev.tsv")]) == 0
    assert file_mode(tmp_path / "ev.tsv") == umask_027
    assert (tmp_path / "ev.tsv").read_text().startswith("onset\t")
    pytest.importorskip("matplotlib", reason="the viewer's label sets need matplotlib")
    from gaze3d.viewer.labels import LabelSet

    LabelSet.from_names(["a", "b"]).save(tmp_path / "labels.json")
    assert file_mode(tmp_path / "labels.json") == umask_027
    assert LabelSet.load(tmp_path / "labels.json").names == ["a", "b"]
    pytest.importorskip("torch", reason="checkpoints need torch (pip install gaze3d[models])")
    pytest.importorskip("safetensors", reason="checkpoints need safetensors")
    from gaze3d.models.checkpoint import load_checkpoint, save_checkpoint
    from gaze3d.models.networks.segnet import GazeSegNet, SegNetConfig
    from gaze3d.models.networks.unet import UNetConfig

    save_checkpoint(GazeSegNet(SegNetConfig(unet=UNetConfig(base_channels=8, depth=2))), tmp_path / "m.safetensors")
    assert file_mode(tmp_path / "m.safetensors") == umask_027
    load_checkpoint(tmp_path / "m.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
