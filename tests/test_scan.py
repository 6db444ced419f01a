"""Scan types: validation with one-line errors, shapes, volume index <-> world mapping."""
from __future__ import annotations

import numpy as np
import pytest

from gaze3d.errors import InputError
from gaze3d.scan import Mesh, PointCloud, Volume


def _msg(exc_info, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)


def test_pointcloud_keeps_float64_and_casts_attributes():
    xyz = np.array([[870000.015, 6618000.027, 120.5], [870001.0, 6618001.0, 121.0]])
    cloud = PointCloud(xyz.astype(np.float64), colors=np.array([[255, 0, 0], [0, 128, 255]], np.uint8),
                       intensity=[10, 20], labels=np.array([2, 6], np.uint8), fields={"attention": [0.1, 0.9]})
    assert cloud.xyz.dtype == np.float64 and cloud.xyz[0, 0] == 870000.015
    np.testing.assert_allclose(cloud.colors, [[1, 0, 0], [0, 128 / 255, 1]], rtol=1e-6)   # uint8 scaled
    assert cloud.colors.dtype == np.float32 and cloud.labels.dtype == np.int32
    assert cloud.intensity.dtype == np.float32
    assert len(cloud) == cloud.n_points == 2
    np.testing.assert_array_equal(cloud.bounds, [xyz.min(0), xyz.max(0)])
    assert "attention" in repr(cloud)


@pytest.mark.parametrize("kwargs, words", [
    (dict(xyz=np.zeros((0, 3))), ["xyz", "empty"]),
    (dict(xyz=np.zeros((4, 2))), ["xyz", "(n, 3)", "(4, 2)"]),
    (dict(xyz=[[0, 0, np.nan], [0, 0, 0], [np.inf, 0, 0]]), ["NaN/inf", "2 of 3", "row 0"]),
    (dict(xyz=[["a", "b", "c"]]), ["xyz", "numeric"]),
    (dict(xyz=np.zeros((3, 3)), labels=np.zeros(2)), ["labels", "(3,)", "(2,)"]),
    (dict(xyz=np.zeros((3, 3)), labels=5), ["labels", "(3,)"]),
    (dict(xyz=np.zeros((3, 3)), colors=np.zeros((3, 4))), ["colors", "(3, 3)"]),
    (dict(xyz=np.zeros((3, 3)), colors=np.full((3, 3), 200.0)), ["colors", "[0, 1]"]),
    (dict(xyz=np.zeros((3, 3)), normals=np.zeros(3)), ["normals"]),
    (dict(xyz=np.zeros((3, 3)), fields={"attention": np.zeros(4)}), ["attention", "(3,)", "(4,)"]),
    (dict(xyz=np.zeros((3, 3)), fields={"name": np.array(["a", "b", "c"])}), ["name", "numeric"]),
])
def test_pointcloud_rejects_bad_input(kwargs, words):
    with pytest.raises(InputError) as e:
        PointCloud(source="scan.ply", **kwargs)
    _msg(e, "scan.ply: ", *words)


def test_mesh_validation():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    mesh = Mesh(v, f, labels=[0, 0, 1, 1], fields={"attention": np.ones(4)})
    assert mesh.faces.dtype == np.int64 and len(mesh) == 4
    np.testing.assert_array_equal(mesh.bounds, [[0, 0, 0], [1, 1, 1]])
    for faces, words in [(np.array([[0, 1, 4]]), ["[0, 4)"]), (np.array([[0, 1, -1]]), ["[0, 4)"]),
                         (np.zeros((0, 3), int), ["non-empty"]), (np.array([[0, 1]]), ["(m, 3)"]),
                         (np.array([[0.0, 1.0, 2.0]]), ["integer"])]:
        with pytest.raises(InputError) as e:
            Mesh(v, faces, source="m.obj")
        _msg(e, "m.obj: faces", *words)
    with pytest.raises(InputError) as e:
        Mesh(v, f, labels=[1, 2])
    _msg(e, "labels", "(4,)")


def _oblique_affine():
    # rotated 30 degrees about z, anisotropic spacing, arbitrary origin
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.7, 0.8, 2.5])
    aff[:3, 3] = [-120.0, 35.0, 410.0]
    return aff, rot


def test_volume_geometry():
    aff, rot = _oblique_affine()
    vol = Volume(np.zeros((5, 6, 7), np.int16), affine=aff, labels=np.ones((5, 6, 7), np.uint8),
                 fields={"attention": np.zeros((5, 6, 7), np.float32)})
    assert vol.shape == (5, 6, 7) and vol.labels.dtype == np.int32
    np.testing.assert_allclose(vol.spacing, [0.7, 0.8, 2.5])
    np.testing.assert_allclose(vol.direction, rot, atol=1e-12)
    np.testing.assert_allclose(vol.origin, [-120, 35, 410])
    ijk = np.array([[0, 0, 0], [4, 5, 6], [1.5, 2.25, 3.0]])
    xyz = vol.index_to_world(ijk)
    np.testing.assert_allclose(xyz[0], vol.origin)
    np.testing.assert_allclose(xyz[1], aff[:3, :3] @ [4, 5, 6] + aff[:3, 3])
    np.testing.assert_allclose(vol.world_to_index(xyz), ijk, atol=1e-12)
    # one step along i moves spacing[0] mm along the first direction cosine
    np.testing.assert_allclose(vol.index_to_world([[1, 0, 0]])[0] - vol.origin, 0.7 * rot[:, 0])


@pytest.mark.parametrize("kwargs, words", [
    (dict(array=np.zeros((4, 4, 4, 2))), ["3D", "4D"]),
    (dict(array=np.zeros((4, 4))), ["3D", "2D"]),
    (dict(array=np.zeros((0, 4, 4))), ["empty"]),
    (dict(array=np.zeros((4, 4, 4)), affine=np.eye(3)), ["affine", "(4, 4)"]),
    (dict(array=np.zeros((4, 4, 4)), affine=np.diag([1, 0, 1, 1.0])), ["affine", "singular"]),
    (dict(array=np.zeros((4, 4, 4)), affine=np.full((4, 4), np.nan)), ["affine", "finite"]),
    (dict(array=np.zeros((4, 4, 4)), labels=np.zeros((4, 4, 3))), ["labels", "(4, 4, 4)", "(4, 4, 3)"]),
    (dict(array=np.zeros((4, 4, 4)), labels=np.full((4, 4, 4), 0.5)), ["labels", "integer"]),
    (dict(array=np.zeros((4, 4, 4)), fields={"attention": np.zeros(4)}), ["attention", "(4, 4, 4)"]),
])
def test_volume_rejects_bad_input(kwargs, words):
    with pytest.raises(InputError) as e:
        Volume(source="ct.nii.gz", **kwargs)
    _msg(e, "ct.nii.gz: ", *words)


def test_float_labels_with_integer_values_are_accepted():
    vol = Volume(np.zeros((2, 2, 2)), labels=np.full((2, 2, 2), 3.0))
    assert vol.labels.dtype == np.int32 and vol.labels.max() == 3
