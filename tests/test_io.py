"""Scan I/O on real files: round trips, alignment, and one-line errors for bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gaze3d
from gaze3d.errors import InputError, ScanFormatError
from gaze3d.io import load_volume, save_labels
from gaze3d.scan import Mesh, PointCloud, Volume

IGN = "pointcloud/ign_lidarhd/870000_6618000.subset.50mx100m.las"
CT = "medical/totalsegmentator/example_ct_sm.nii.gz"
SEG = "medical/totalsegmentator/example_seg.nii.gz"
LABEL_MAP = "medical/totalsegmentator/label_map_total_and_total_mr.json"


@pytest.fixture(scope="module")
def ign(shared_data) -> PointCloud:
    return gaze3d.load_scan(shared_data / IGN)


def _one_line(exc_info, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    return msg


# ------------------------------------------------------------------ LAS/LAZ
def test_las_classification_counts(ign):
    classes, counts = np.unique(ign.labels, return_counts=True)
    assert dict(zip(classes.tolist(), counts.tolist())) == {1: 29593, 2: 34316, 6: 6931}
    assert len(ign) == 70840
    assert ign.label_names == {1: "unclassified", 2: "ground", 6: "building"}
    assert ign.xyz.dtype == np.float64
    # a ~50 m x 100 m piece of the 1 km Lambert-93 tile 870000_6618000
    lo, hi = ign.bounds
    assert 870_000 <= lo[0] and hi[0] <= 871_000 and 6_617_000 <= lo[1] and hi[1] <= 6_618_000
    assert 40 < min(hi[:2] - lo[:2]) and max(hi[:2] - lo[:2]) < 100.5
    assert ign.colors is not None and 0.0 <= ign.colors.min() and ign.colors.max() <= 1.0
    assert ign.colors.max() > 0.5           # 16-bit colours were scaled, not divided by 65535 twice
    assert ign.intensity is not None and ign.intensity.max() > 255


def test_las_round_trip_keeps_classes_colours_and_fields(ign, tmp_path, shared_data):
    laspy = pytest.importorskip("laspy")
    att = np.random.default_rng(0).random(len(ign)).astype(np.float32)
    cloud = PointCloud(ign.xyz, colors=ign.colors, intensity=ign.intensity, labels=ign.labels,
                       fields={"attention": att, "hit": (att > 0.5)})
    for name in ("out.las", "out.laz"):
        gaze3d.save_scan(cloud, tmp_path / name)
        back = gaze3d.load_scan(tmp_path / name)
        np.testing.assert_array_equal(back.labels, ign.labels)
        np.testing.assert_allclose(back.xyz, ign.xyz, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(back.fields["attention"], att)
        np.testing.assert_array_equal(back.fields["hit"], (att > 0.5).astype(np.uint8))
        np.testing.assert_allclose(back.colors, ign.colors, atol=1 / 65535)
        np.testing.assert_array_equal(back.intensity, ign.intensity)
    # laspy itself sees classification and the extra-bytes dimension (what CloudCompare/PDAL read)
    las = laspy.read(str(tmp_path / "out.las"))
    assert np.bincount(np.asarray(las.classification))[[1, 2, 6]].tolist() == [29593, 34316, 6931]
    assert "attention" in list(las.point_format.extra_dimension_names)
    np.testing.assert_array_equal(np.asarray(las["attention"]), att)
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_las_custom_label_names_round_trip(tmp_path):
    cloud = PointCloud(np.random.default_rng(0).random((30, 3)) * 100, labels=np.arange(30) % 3 + 1,
                       label_names={1: "unclassified", 2: "roof", 3: "tree"})
    for name in ("names.las", "names.laz", "names.ply"):
        gaze3d.save_scan(cloud, tmp_path / name)
        assert gaze3d.load_scan(tmp_path / name).label_names == cloud.label_names, name


def test_laz_reads(shared_data):
    cloud = gaze3d.load_scan(shared_data / "pointcloud/laspy/autzen_trim.laz")
    assert len(cloud) == 110000
    assert set(np.unique(cloud.labels).tolist()) <= {1, 2}
    assert cloud.label_names[2] == "ground"
    simple = gaze3d.load_scan(shared_data / "pointcloud/laspy/simple.las")
    assert np.bincount(simple.labels)[[1, 2]].tolist() == [789, 276]


# ---------------------------------------------------------------------- PLY
def test_ply_attention_round_trip_and_open3d_reads_it(ign, tmp_path):
    o3d = pytest.importorskip("open3d")
    att = np.linspace(0, 1, len(ign), dtype=np.float32)
    cloud = PointCloud(ign.xyz, colors=ign.colors, labels=ign.labels, fields={"attention": att},
                       label_names=ign.label_names)
    path = tmp_path / "attention.ply"
    gaze3d.save_scan(cloud, path)
    back = gaze3d.load_scan(path)
    assert isinstance(back, PointCloud)
    np.testing.assert_array_equal(back.xyz, ign.xyz)                 # float64 kept exactly
    np.testing.assert_array_equal(back.fields["attention"], att)
    np.testing.assert_array_equal(back.labels, ign.labels)
    assert back.label_names == ign.label_names
    np.testing.assert_allclose(back.colors, ign.colors, atol=0.5 / 255 + 1e-6)
    # Open3D's tensor reader sees the same attributes (as CloudCompare does)
    t = o3d.t.io.read_point_cloud(str(path))
    np.testing.assert_array_equal(t.point["attention"].numpy().ravel(), att)
    np.testing.assert_array_equal(t.point["label"].numpy().ravel(), ign.labels)
    np.testing.assert_array_equal(t.point["positions"].numpy(), ign.xyz)


def _write_ascii_ply(path, header_props, rows, faces=None, comments=()):
    lines = ["ply", "format ascii 1.0", *[f"comment {c}" for c in comments],
             f"element vertex {len(rows)}", *[f"property {t} {n}" for t, n in header_props]]
    if faces is not None:
        lines += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    lines.append("end_header")
    lines += [" ".join(str(v) for v in r) for r in rows]
    if faces is not None:
        lines += [" ".join(str(v) for v in [len(f), *f]) for f in faces]
    Path(path).write_text("\n".join(lines) + "\n")


def test_ply_ascii_cloudcompare_style_scalar_fields(tmp_path):
    path = tmp_path / "cc.ply"
    _write_ascii_ply(path, [("float", "x"), ("float", "y"), ("float", "z"),
                            ("float", "scalar_Classification"), ("float", "scalar_Attention")],
                     [(0, 0, 0, 2, 0.5), (1, 0, 0, 6, 0.25), (0, 1, 0, 6, 1.0)])
    cloud = gaze3d.load_scan(path)
    assert cloud.labels.tolist() == [2, 6, 6]
    np.testing.assert_allclose(cloud.fields["Attention"], [0.5, 0.25, 1.0])


def test_ply_colour_variants(tmp_path):
    xyz = [("float", "x"), ("float", "y"), ("float", "z")]
    _write_ascii_ply(tmp_path / "u8.ply", xyz + [("uchar", "red"), ("uchar", "green"), ("uchar", "blue"),
                                                 ("uchar", "alpha")], [(0, 0, 0, 255, 0, 51, 255)])
    _write_ascii_ply(tmp_path / "f255.ply", xyz + [("float", "red"), ("float", "green"), ("float", "blue")],
                     [(0, 0, 0, 255.0, 0.0, 51.0)])
    _write_ascii_ply(tmp_path / "a.ply", xyz + [("float", "a")], [(0, 0, 0, 7.5)])
    for name in ("u8.ply", "f255.ply"):
        np.testing.assert_allclose(gaze3d.load_scan(tmp_path / name).colors, [[1.0, 0.0, 0.2]], rtol=1e-6)
    assert gaze3d.load_scan(tmp_path / "u8.ply").fields == {}          # alpha dropped with its colours
    assert gaze3d.load_scan(tmp_path / "a.ply").fields["a"].tolist() == [7.5]   # a lone "a" is a field


def test_ply_big_endian_and_polygon_faces(tmp_path):
    # a quad and a triangle, big-endian binary: fan-triangulated to 3 triangles
    path = tmp_path / "quad.ply"
    header = ("ply\nformat binary_big_endian 1.0\nelement vertex 5\nproperty double x\n"
              "property double y\nproperty double z\nproperty float attention\n"
              "element face 2\nproperty list uchar int vertex_indices\nend_header\n").encode()
    verts = np.zeros(5, dtype=[("x", ">f8"), ("y", ">f8"), ("z", ">f8"), ("attention", ">f4")])
    verts["x"] = [0, 1, 1, 0, 2]
    verts["y"] = [0, 0, 1, 1, 0]
    verts["attention"] = [0.1, 0.2, 0.3, 0.4, 0.5]
    body = verts.tobytes() + bytes([4]) + np.array([0, 1, 2, 3], ">i4").tobytes() \
        + bytes([3]) + np.array([1, 4, 2], ">i4").tobytes()
    path.write_bytes(header + body)
    mesh = gaze3d.load_scan(path)
    assert isinstance(mesh, Mesh)
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]
    np.testing.assert_allclose(mesh.fields["attention"], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)


def test_ply_interop_with_open3d_and_trimesh_writers_and_readers(tmp_path):
    o3d = pytest.importorskip("open3d")
    trimesh = pytest.importorskip("trimesh")
    rng = np.random.default_rng(4)
    pc = o3d.t.geometry.PointCloud(o3d.core.Tensor(rng.random((50, 3))))
    pc.point["attention"] = o3d.core.Tensor(rng.random((50, 1)).astype(np.float32))
    pc.point["colors"] = o3d.core.Tensor(rng.random((50, 3)).astype(np.float32))
    for ascii_ in (False, True):                 # PLY written by Open3D, read by gaze3d
        path = tmp_path / f"open3d_{ascii_}.ply"
        assert o3d.t.io.write_point_cloud(str(path), pc, write_ascii=ascii_)
        cloud = gaze3d.load_scan(path)
        np.testing.assert_allclose(cloud.xyz, pc.point["positions"].numpy(), atol=1e-6)  # ascii: 6 decimals
        np.testing.assert_allclose(cloud.fields["attention"], pc.point["attention"].numpy().ravel(), atol=1e-6)
        np.testing.assert_allclose(cloud.colors, pc.point["colors"].numpy(), atol=1e-6)
    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.visual.vertex_colors = rng.integers(0, 256, (len(sphere.vertices), 4)).astype(np.uint8)
    sphere.export(str(tmp_path / "trimesh.ply"))     # binary PLY mesh written by trimesh
    mesh = gaze3d.load_scan(tmp_path / "trimesh.ply")
    np.testing.assert_array_equal(mesh.faces, sphere.faces)
    np.testing.assert_allclose(mesh.colors * 255, sphere.visual.vertex_colors[:, :3], atol=1e-3)
    # and trimesh reads gaze3d's PLY mesh with its scalar properties
    ours = Mesh(sphere.vertices, sphere.faces, labels=np.arange(len(sphere.vertices)) % 3,
                fields={"attention": rng.random(len(sphere.vertices)).astype(np.float32)})
    gaze3d.save_scan(ours, tmp_path / "ours.ply")
    loaded = trimesh.load(str(tmp_path / "ours.ply"), process=False)
    np.testing.assert_array_equal(loaded.faces, ours.faces)
    raw = loaded.metadata["_ply_raw"]["vertex"]["data"]
    np.testing.assert_array_equal(raw["attention"].ravel(), ours.fields["attention"])
    np.testing.assert_array_equal(raw["label"].ravel(), ours.labels)


# -------------------------------------------------------------- PCD, XYZ
def test_pcd_and_xyz_round_trip(ign, tmp_path):
    pytest.importorskip("open3d")
    att = np.arange(len(ign), dtype=np.float32)
    cloud = PointCloud(ign.xyz, colors=ign.colors, intensity=ign.intensity, labels=ign.labels,
                       fields={"attention": att})
    gaze3d.save_scan(cloud, tmp_path / "c.pcd")
    back = gaze3d.load_scan(tmp_path / "c.pcd")
    np.testing.assert_array_equal(back.xyz, ign.xyz)
    np.testing.assert_array_equal(back.labels, ign.labels)
    np.testing.assert_array_equal(back.fields["attention"], att)
    np.testing.assert_array_equal(back.intensity, ign.intensity)
    gaze3d.save_scan(cloud, tmp_path / "c.xyz")
    back = gaze3d.load_scan(tmp_path / "c.xyz")
    np.testing.assert_allclose(back.xyz, ign.xyz, atol=1e-6, rtol=0)


# -------------------------------------------------------------------- mesh
@pytest.mark.parametrize("ext", [".ply", ".obj", ".glb", ".off", ".stl"])
def test_mesh_round_trip(tmp_path, ext):
    trimesh = pytest.importorskip("trimesh")
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=2.0)
    rng = np.random.default_rng(1)
    mesh = Mesh(sphere.vertices + [10.0, -5.0, 3.0], sphere.faces,
                colors=rng.integers(0, 256, (len(sphere.vertices), 3)) / 255.0,
                labels=(sphere.vertices[:, 2] > 0).astype(np.int32),
                fields={"attention": rng.random(len(sphere.vertices)).astype(np.float32)})
    path = tmp_path / f"sphere{ext}"
    gaze3d.save_scan(mesh, path)
    back = gaze3d.load_scan(path)
    assert isinstance(back, Mesh) and len(back.faces) == len(mesh.faces)
    if ext == ".stl":   # STL has unshared corners: compare the triangle sets
        tri = lambda m: np.sort(np.round(m.vertices[m.faces], 5).reshape(len(m.faces), -1), axis=0)  # noqa: E731
        np.testing.assert_allclose(tri(back), tri(mesh), atol=1e-4)
        assert len(back) == len(mesh)
        return
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-5)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    if ext in (".ply", ".obj", ".glb"):
        np.testing.assert_allclose(back.colors, mesh.colors, atol=0.5 / 255 + 1e-6)
    if ext == ".ply":
        np.testing.assert_array_equal(back.labels, mesh.labels)
        np.testing.assert_array_equal(back.fields["attention"], mesh.fields["attention"])


# ----------------------------------------------------------------- volumes
def test_nifti_affine_matches_nibabel_after_ras_to_lps(shared_data):
    nib = pytest.importorskip("nibabel")
    for rel in (CT, "medical/nibabel/anatomical.nii"):
        vol = gaze3d.load_scan(shared_data / rel)
        img = nib.load(str(shared_data / rel))
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
        np.testing.assert_allclose(vol.affine, lps, atol=1e-4)
        assert vol.shape == img.shape[:3]
        np.testing.assert_allclose(vol.array, np.asanyarray(img.dataobj), atol=1e-3)


def test_ct_mask_aligned_with_ct(shared_data):
    names = {int(k): v for k, v in json.loads((shared_data / LABEL_MAP).read_text())["total"].items()}
    vol = gaze3d.load_scan(shared_data / CT, labels=shared_data / SEG, label_names=names)
    assert vol.labels.shape == vol.shape == (122, 101, 30)
    assert vol.label_names[5] == "liver"

    def organ(name):
        code = next(k for k, v in names.items() if v == name)
        mask = vol.labels == code
        assert mask.sum() > 100, name
        return float(vol.array[mask].mean()), vol.index_to_world(np.argwhere(mask)).mean(axis=0)

    lung_hu, lung_c = organ("lung_lower_lobe_right")
    liver_hu, liver_c = organ("liver")
    spleen_hu, spleen_c = organ("spleen")
    spine_hu, _ = organ("vertebrae_L1")
    _, cord_c = organ("spinal_cord")
    # the mask sits on the right tissue: air in the lungs, soft tissue in the liver, bone in vertebrae
    assert lung_hu < -600 and 0 < liver_hu < 150 and 0 < spleen_hu < 150 and spine_hu > 150
    # and in the right place in LPS: spleen on the left (+x), liver on the right,
    # spinal cord posterior (+y) of the liver, lung above (+z) the kidneys
    assert spleen_c[0] > 0 > liver_c[0]
    assert cord_c[1] > liver_c[1]
    assert lung_c[2] > organ("kidney_right")[1][2]


def test_volume_round_trip_with_labels(shared_data, tmp_path):
    vol = load_volume(shared_data / CT, labels=shared_data / SEG)
    vol.fields["attention"] = (vol.labels > 0).astype(np.float32) * 0.5
    for ext in (".nii.gz", ".nrrd", ".mha", ".mhd"):
        img, lab = tmp_path / f"ct{ext}", tmp_path / f"seg{ext}"
        gaze3d.save_scan(vol, img, labels=lab, fields={"attention": tmp_path / f"att{ext}"})
        back = gaze3d.load_scan(img, labels=lab)
        np.testing.assert_array_equal(back.array, vol.array)
        np.testing.assert_array_equal(back.labels, vol.labels)
        np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
        att = load_volume(tmp_path / f"att{ext}")
        np.testing.assert_array_equal(att.array, vol.fields["attention"])
    save_labels(vol, tmp_path / "only_labels.nii.gz")
    assert load_volume(tmp_path / "only_labels.nii.gz").array.max() == vol.labels.max()
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


def test_nifti_written_is_read_by_nibabel_in_ras(shared_data, tmp_path):
    nib = pytest.importorskip("nibabel")
    vol = load_volume(shared_data / CT)
    gaze3d.save_scan(vol, tmp_path / "ct.nii.gz")
    img = nib.load(str(tmp_path / "ct.nii.gz"))
    np.testing.assert_allclose(np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine, vol.affine, atol=1e-4)


def test_dicom_single_files(shared_data):
    pydicom = pytest.importorskip("pydicom")
    for name, shape in (("CT_small.dcm", (128, 128, 1)), ("MR_small.dcm", (64, 64, 1))):
        src = shared_data / "medical/pydicom" / name
        ds = pydicom.dcmread(str(src))
        vol = gaze3d.load_scan(src)
        assert vol.shape == shape
        values = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        np.testing.assert_allclose(vol.array[:, :, 0], values.T)          # [i, j] = [column, row]
        np.testing.assert_allclose(vol.origin, [float(v) for v in ds.ImagePositionPatient], atol=1e-4)
        row_dir = np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
        np.testing.assert_allclose(vol.affine[:3, 0], row_dir * float(ds.PixelSpacing[1]), atol=1e-5)


def test_dicom_series_folder_oblique(shared_data, tmp_path):
    """A 3-slice series made from the CT sample, rotated 30 degrees, with anisotropic pixels."""
    pydicom = pytest.importorskip("pydicom")
    src = shared_data / "medical/pydicom/CT_small.dcm"
    ds = pydicom.dcmread(str(src))
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    row_dir, col_dir = np.array([c, s, 0.0]), np.array([-s, c, 0.0])   # along i (columns), along j (rows)
    normal = np.cross(row_dir, col_dir)
    origin = np.array([-100.0, 20.0, -60.0])
    row_spacing, col_spacing, slice_gap = 0.5, 0.7, 2.5                  # DICOM PixelSpacing = [row, column]
    folder = tmp_path / "series"
    folder.mkdir()
    for k in (2, 0, 1):                                                 # file order must not matter
        sl = pydicom.dcmread(str(src))
        position = origin + slice_gap * k * normal
        sl.ImageOrientationPatient = [*row_dir.tolist(), *col_dir.tolist()]
        sl.ImagePositionPatient = position.tolist()
        sl.PixelSpacing = [row_spacing, col_spacing]
        sl.SliceThickness = slice_gap
        sl.InstanceNumber = k + 1
        sl.SOPInstanceUID = f"{ds.SOPInstanceUID}.{k + 1}"
        sl.SliceLocation = float(position @ normal)
        sl.save_as(str(folder / f"slice{k}.dcm"))
    vol = gaze3d.load_scan(folder)
    assert vol.shape == (128, 128, 3)
    np.testing.assert_allclose(vol.spacing, [col_spacing, row_spacing, slice_gap], atol=1e-4)
    np.testing.assert_allclose(vol.direction, np.column_stack([row_dir, col_dir, normal]), atol=1e-5)
    np.testing.assert_allclose(vol.origin, origin, atol=1e-3)
    # voxel (i, j, k) sits at origin + i * col_spacing * row_dir + j * row_spacing * col_dir + k * gap * normal
    np.testing.assert_allclose(vol.index_to_world([[10, 20, 2]])[0],
                               origin + 10 * col_spacing * row_dir + 20 * row_spacing * col_dir
                               + 2 * slice_gap * normal, atol=1e-3)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(vol.array[:, :, 1], hu.T)


# ------------------------------------------------------------ bad input
def test_missing_file(tmp_path):
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(tmp_path / "nope.las")
    _one_line(e, "nope.las", "no such file")


def test_unknown_extension(tmp_path):
    p = tmp_path / "scan.foo"
    p.write_text("1 2 3\n")
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(p)
    _one_line(e, "scan.foo", "unknown", ".foo")
    with pytest.raises(ScanFormatError) as e:
        gaze3d.save_scan(PointCloud(np.zeros((2, 3))), tmp_path / "out.nii.gz")
    _one_line(e, "out.nii.gz", "PointCloud")


@pytest.mark.parametrize("fraction", [0.5, 0.001])
def test_truncated_las(shared_data, tmp_path, fraction):
    raw = (shared_data / IGN).read_bytes()
    p = tmp_path / "cut.las"
    p.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(p)
    _one_line(e, "cut.las", "truncated")


def test_truncated_ply(ign, tmp_path):
    full = tmp_path / "full.ply"
    gaze3d.save_scan(ign, full)
    raw = full.read_bytes()
    for n in (len(raw) - 7, len(raw) // 2, 150):
        p = tmp_path / "cut.ply"
        p.write_bytes(raw[:n])
        with pytest.raises(ScanFormatError) as e:
            gaze3d.load_scan(p)
        _one_line(e, "cut.ply", "truncated")


@pytest.mark.parametrize("ext", [".laz", ".pcd", ".nii", ".nii.gz", ".nrrd", ".mha", ".glb", ".off", ".stl",
                                 ".ply"])
def test_truncated_files_of_each_format(ext, tmp_path, shared_data):
    trimesh = pytest.importorskip("trimesh")
    good = tmp_path / f"good{ext}"
    if ext in (".laz", ".pcd"):
        cloud = gaze3d.load_scan(shared_data / "pointcloud/laspy/simple.las")
        gaze3d.save_scan(cloud, good)
    elif ext in (".glb", ".off", ".stl", ".ply"):      # .ply: a mesh here (clouds: test_truncated_ply)
        sphere = trimesh.creation.icosphere(subdivisions=3)
        gaze3d.save_scan(Mesh(sphere.vertices, sphere.faces), good)
    else:
        gaze3d.save_scan(load_volume(shared_data / CT), good)
    gaze3d.load_scan(good)                          # the intact file reads
    raw = good.read_bytes()
    for fraction in (0.5, 0.95):
        cut = tmp_path / f"cut{ext}"
        cut.write_bytes(raw[: int(len(raw) * fraction)])
        with pytest.raises(ScanFormatError) as e:
            gaze3d.load_scan(cut)
        _one_line(e, f"cut{ext}")


def test_corrupt_files(tmp_path):
    for name, content in [("junk.ply", b"not a ply at all"), ("junk.las", b"LASF" + b"\0" * 50),
                          ("junk.pcd", b"garbage\n"), ("junk.nii.gz", b"\x1f\x8b garbage"),
                          ("junk.obj", b"\x00\x01\x02 binary junk")]:
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ScanFormatError) as e:
            gaze3d.load_scan(p)
        _one_line(e, name)


def test_empty_cloud(tmp_path):
    _write_ascii_ply(tmp_path / "empty.ply", [("float", "x"), ("float", "y"), ("float", "z")], [])
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(tmp_path / "empty.ply")
    _one_line(e, "empty.ply", "empty")
    (tmp_path / "zero.xyz").write_text("")
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(tmp_path / "zero.xyz")
    _one_line(e, "zero.xyz", "empty")
    (tmp_path / "blank.xyz").write_text("\n\n")
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(tmp_path / "blank.xyz")
    _one_line(e, "blank.xyz", "empty")


def test_nan_and_inf_coordinates(tmp_path):
    _write_ascii_ply(tmp_path / "nan.ply", [("float", "x"), ("float", "y"), ("float", "z")],
                     [(0, 0, 0), ("nan", 1, 2), (1, "inf", 0)])
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(tmp_path / "nan.ply")
    _one_line(e, "nan.ply", "NaN/inf", "2 of 3")
    cloud = PointCloud(np.zeros((2, 3)))
    cloud.xyz[1, 2] = np.nan                      # changed after construction
    with pytest.raises(InputError) as e:
        gaze3d.save_scan(cloud, tmp_path / "x.ply")
    _one_line(e, "x.ply", "NaN/inf")
    assert not (tmp_path / "x.ply").exists()
    with pytest.raises(InputError) as e:
        PointCloud([[0, 0, 0], [np.inf, 0, 0]], source="made.ply")
    _one_line(e, "made.ply", "NaN/inf")


def test_mismatched_label_length(tmp_path, shared_data):
    with pytest.raises(InputError) as e:
        PointCloud(np.zeros((4, 3)), labels=np.zeros(3, int))
    _one_line(e, "labels", "(4,)", "(3,)")
    cloud = PointCloud(np.zeros((4, 3)), labels=np.zeros(4, int))
    cloud.labels = np.zeros(5, np.int32)          # replaced after construction
    with pytest.raises(InputError) as e:
        gaze3d.save_scan(cloud, tmp_path / "bad.ply")
    _one_line(e, "bad.ply", "labels")
    assert not (tmp_path / "bad.ply").exists()
    # a label volume on another grid
    vol = load_volume(shared_data / CT)
    moved = vol.affine.copy()
    moved[0, 3] += 3.0                            # one voxel off along x
    shifted = Volume(np.zeros(vol.shape, np.int16), affine=moved)
    gaze3d.save_scan(shifted, tmp_path / "shifted.nii.gz")
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(shared_data / CT, labels=tmp_path / "shifted.nii.gz")
    _one_line(e, "shifted.nii.gz", "affine")
    cropped = Volume(np.zeros((10, 10, 10), np.int16), affine=vol.affine)
    gaze3d.save_scan(cropped, tmp_path / "cropped.nrrd")
    with pytest.raises(ScanFormatError) as e:
        load_volume(shared_data / CT, labels=tmp_path / "cropped.nrrd")
    _one_line(e, "cropped.nrrd", "shape", "(10, 10, 10)")


def test_4d_volume_rejected(shared_data):
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(shared_data / "medical/nibabel/example4d.nii.gz")
    _one_line(e, "example4d.nii.gz", "4D", "128x96x24x2", "3D")


def test_volume_bad_inputs(tmp_path, shared_data):
    sitk = pytest.importorskip("SimpleITK")
    sitk.WriteImage(sitk.Image([4, 5, 6], sitk.sitkVectorUInt8, 3), str(tmp_path / "rgb.mha"))
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(tmp_path / "rgb.mha")
    _one_line(e, "rgb.mha", "3 components", "scalar")
    (tmp_path / "nodicom").mkdir()
    (tmp_path / "nodicom" / "notes.txt").write_text("no images here")
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(tmp_path / "nodicom")
    _one_line(e, "nodicom", "no DICOM series")
    with pytest.raises(ScanFormatError) as e:
        gaze3d.load_scan(shared_data / CT, labels=tmp_path / "missing_seg.nii.gz")
    _one_line(e, "missing_seg.nii.gz", "no such file")
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    with pytest.raises(ScanFormatError) as e:
        gaze3d.save_scan(Volume(np.zeros((3, 3, 3)), affine=sheared), tmp_path / "sheared.nii.gz")
    _one_line(e, "sheared.nii.gz", "orthogonal")
    assert not (tmp_path / "sheared.nii.gz").exists()
    with pytest.raises(ScanFormatError) as e:
        load_volume(shared_data / IGN)
    _one_line(e, "not a volume")


def test_failed_write_leaves_nothing(tmp_path):
    cloud = PointCloud(np.zeros((3, 3)), fields={"bad name": np.zeros(3)})
    (tmp_path / "keep.ply").write_bytes(b"old")
    with pytest.raises(ScanFormatError):
        gaze3d.save_scan(cloud, tmp_path / "keep.ply")
    assert (tmp_path / "keep.ply").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.ply"]
    with pytest.raises(ScanFormatError) as e:
        gaze3d.save_scan(PointCloud(np.zeros((3, 3))), tmp_path / "no" / "such" / "dir.ply")
    _one_line(e, "does not exist")


# --------------------------------------------------------------------- CLI
def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gaze3d", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_cli_info_and_convert(shared_data, tmp_path):
    r = _cli("info", shared_data / IGN)
    assert r.returncode == 0, r.stderr
    assert "PointCloud" in r.stdout and "70,840" in r.stdout
    assert "building" in r.stdout and "6,931" in r.stdout
    r = _cli("convert", shared_data / IGN, tmp_path / "tile.ply")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(gaze3d.load_scan(tmp_path / "tile.ply").labels,
                                  gaze3d.load_scan(shared_data / IGN).labels)
    r = _cli("convert", shared_data / CT, tmp_path / "ct.nrrd", "--labels", shared_data / SEG,
             "--out-labels", tmp_path / "seg.nrrd")
    assert r.returncode == 0, r.stderr
    back = gaze3d.load_scan(tmp_path / "ct.nrrd", labels=tmp_path / "seg.nrrd")
    np.testing.assert_array_equal(back.labels, load_volume(shared_data / SEG).array)
    # the label volume written over the image under the same name (through another spelling of the
    # path) would lose the image: refused before anything is written
    r = _cli("convert", shared_data / CT, tmp_path / "same.nrrd", "--labels", shared_data / SEG,
             "--out-labels", tmp_path / "." / "same.nrrd")
    assert r.returncode == 2 and "the same file as OUTPUT" in r.stderr and not (tmp_path / "same.nrrd").exists()
    r = _cli("info", shared_data / CT, "--labels", shared_data / SEG,
             "--label-names", f"{shared_data / LABEL_MAP}:total")
    assert r.returncode == 0, r.stderr
    assert "Volume" in r.stdout and "liver" in r.stdout and "affine" in r.stdout.lower()


@pytest.mark.parametrize("make", ["missing", "truncated", "4d"])
def test_cli_one_line_error_exit_2(make, tmp_path, shared_data):
    if make == "missing":
        target = tmp_path / "missing.las"
    elif make == "truncated":
        target = tmp_path / "cut.las"
        target.write_bytes((shared_data / IGN).read_bytes()[:5000])
    else:
        target = shared_data / "medical/nibabel/example4d.nii.gz"
    r = _cli("info", target)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("gaze3d info: error:") and target.name in lines[0]


def test_info_describes_meshes_and_fields(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from gaze3d.cli.info import describe

    sphere = trimesh.creation.icosphere(subdivisions=1)
    mesh = Mesh(sphere.vertices, sphere.faces, labels=(sphere.vertices[:, 2] > 0).astype(int),
                fields={"attention": np.linspace(0, 1, len(sphere.vertices))}, label_names={1: "top"})
    gaze3d.save_scan(mesh, tmp_path / "m.ply")
    text = describe(gaze3d.load_scan(tmp_path / "m.ply"))
    assert text.startswith("Mesh:") and f"faces: {len(sphere.faces):,}" in text
    assert "field 'attention'" in text and "top" in text
