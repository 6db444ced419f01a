"""Mesh (Embree via Open3D) and volume (slice, compositing, MIP) attention."""
import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator
from gaze3d.camera import Camera
from gaze3d.errors import InputError
from gaze3d.scan import Mesh, Volume

from attention_helpers import angle_to_ray, gaussian, top_camera

o3d = pytest.importorskip("open3d")


def _grid_mesh(z, half=2.0, n=81):
    g = np.linspace(-half, half, n)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    verts = np.c_[xx.ravel(), yy.ravel(), np.full(xx.size, z)]
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.r_[np.c_[a, b, c], np.c_[a, c, d]]
    return verts, faces


def _sphere_mesh():
    s = o3d.geometry.TriangleMesh.create_sphere(1.0, 80)
    return Mesh(np.asarray(s.vertices) + [0.2, -0.1, 0.0], np.asarray(s.triangles))


def test_mesh_hits_agree_with_raycasting_scene():
    mesh = _sphere_mesh()
    cam = Camera(position=(0.5, -4, 3), focal_point=(0, 0, 0), view_up=(0, 0, 1))
    acc = AttentionAccumulator(mesh, fixations_only=False)
    rng = np.random.default_rng(0)
    xy = 0.5 + rng.normal(0, 0.08, (50, 2))
    o, d = cam.unproject(cam.normalized_to_pixels(xy))
    fr = acc.engine.frame(cam, d)
    hits = acc.engine.hit_points(fr, d)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(
        o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices),
                                  o3d.utility.Vector3iVector(mesh.faces))))
    t = scene.cast_rays(o3d.core.Tensor(np.c_[o, d].astype(np.float32)))["t_hit"].numpy()
    miss = ~np.isfinite(t)
    assert miss.sum() < len(t) and np.all(np.isnan(hits[miss]))
    np.testing.assert_allclose(hits[~miss], o[~miss] + d[~miss] * t[~miss, None], atol=1e-4)


def test_mesh_back_plane_occluded_and_gaussian_on_visible_vertices():
    vf, ff = _grid_mesh(0.0)
    vb, fb = _grid_mesh(-1.0)
    mesh = Mesh(np.r_[vf, vb], np.r_[ff, fb + len(vf)])
    cam = top_camera()
    acc = AttentionAccumulator(mesh, fixations_only=False, sigma_deg=2.0, rate_hz=100.0)
    acc.add(cam, [[0.52, 0.47]])
    v = acc.values.astype(np.float64)
    assert np.count_nonzero(v[len(vf):]) == 0
    o, d = cam.unproject(cam.normalized_to_pixels([[0.52, 0.47]]))
    expected = gaussian(angle_to_ray(vf, o[0], d[0]), sigma_deg=2.0) / 100.0
    ok = np.abs(angle_to_ray(vf, o[0], d[0]) - np.radians(6.0)) > 1e-4
    np.testing.assert_allclose(v[:len(vf)][ok], expected[ok], rtol=2e-5, atol=1e-9)


def _oblique_volume(shape=(40, 50, 30)):
    rng = np.random.default_rng(0)
    a = np.deg2rad(20)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.8, 0.9, 2.0])
    aff[:3, 3] = [-10, 5, -20]
    return Volume(rng.normal(100, 10, shape).astype(np.float32), affine=aff)


def test_slice_mapping_agrees_with_affine_and_falls_off_as_gaussian():
    vol = _oblique_volume()
    k = 12
    acc = AttentionAccumulator(vol, fixations_only=False, mode="slice", axis=2, index=k, rate_hz=100.0)
    centre = vol.affine @ [20, 25, k, 1]
    cam = Camera(position=centre[:3] + [3, -2, 120], focal_point=centre[:3], view_up=(0, 1, 0))
    xy = np.array([[0.55, 0.45]])
    acc.add(cam, xy)
    o, d = cam.unproject(cam.normalized_to_pixels(xy))
    hit = acc.engine.slice_hits(o, d)[0]
    ijk = np.linalg.solve(vol.affine, np.r_[hit, 1])[:3]
    assert ijk[2] == pytest.approx(k, abs=1e-9)
    v = acc.values
    assert v.shape == vol.shape and v.dtype == np.float32
    assert np.count_nonzero(np.delete(v, k, axis=2)) == 0
    peak = np.unravel_index(np.argmax(v), v.shape)
    assert np.all(np.abs(np.array(peak) - ijk) <= 0.5 + 1e-9)
    ii, jj = np.meshgrid(np.arange(vol.shape[0]), np.arange(vol.shape[1]), indexing="ij")
    world = (vol.affine @ np.c_[ii.ravel(), jj.ravel(), np.full(ii.size, k), np.ones(ii.size)].T).T[:, :3]
    theta = angle_to_ray(world, o[0], d[0])
    expected = gaussian(theta) / 100.0
    ok = np.abs(theta - np.radians(3.0)) > 1e-6
    np.testing.assert_allclose(v[:, :, k].ravel()[ok], expected[ok], rtol=1e-6, atol=1e-12)


def _homogeneous(value=1.0, shape=(30, 30, 60)):
    return Volume(np.full(shape, value, dtype=np.float32), affine=np.diag([1.0, 1.0, 1.0, 1.0]))


def test_render_deposition_sums_to_compositing_weights():
    vol = _homogeneous()
    alpha = 0.02
    acc = AttentionAccumulator(vol, fixations_only=False, mode="render", sigma_deg=0.01,
                               opacity=lambda v: np.full_like(v, alpha), step_mm=0.5,
                               rate_hz=100.0)
    cam = Camera(position=(14.5, 14.5, -50), focal_point=(14.5, 14.5, 0), view_up=(0, 1, 0))
    acc.add(cam, [[0.5, 0.5]])
    m = 60 / 0.5                                       # steps across the 60-voxel-deep box
    expected = (1 - (1 - alpha) ** m) / 100.0
    assert acc.values.sum(dtype=np.float64) == pytest.approx(expected, rel=1e-5)
    # front-to-back: the deposit decays along the ray as the transmittance
    column = acc.values[14:16, 14:16].sum(axis=(0, 1)).astype(np.float64)
    ratio = column[1:30] / column[:29]
    np.testing.assert_allclose(ratio, (1 - alpha) ** 2, rtol=1e-4)


def test_render_bundle_matches_independent_compositing_and_early_termination():
    vol = _oblique_volume()
    acc = AttentionAccumulator(vol, fixations_only=False, mode="render", sigma_deg=1.0,
                               opacity=[[80, 120], [0.0, 0.3]], rate_hz=100.0, early_termination=0.9)
    eng = acc.engine
    centre = vol.affine @ [20, 25, 15, 1]
    cam = Camera(position=centre[:3] + [5, 60, 10], focal_point=centre[:3], view_up=(0, 0, 1))
    acc.add(cam, [[0.5, 0.5]])
    o, d = cam.unproject(cam.normalized_to_pixels([[0.5, 0.5]]))
    dirs, rw = eng.bundle(d[0], cam)
    assert rw.sum() == pytest.approx(1.0)
    _, values, _ = eng.march(np.repeat(o, len(dirs), axis=0), dirs)
    total = 0.0
    for r in range(len(dirs)):                          # plain front-to-back loop
        trans = 1.0
        for val in values[r]:
            if not np.isfinite(val) or trans < 1 - 0.9:
                continue
            a = np.interp(val, [80, 120], [0.0, 0.3])
            total += rw[r] * trans * a
            trans *= 1 - a
    assert acc.values.sum(dtype=np.float64) == pytest.approx(total / 100.0, rel=1e-5)
    assert total <= 0.9 + 0.3 + 1e-9


def test_mip_deposits_at_the_maximum():
    arr = np.zeros((20, 20, 20), np.float32)
    arr[10, 9, 13] = 5.0
    vol = Volume(arr, affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    acc = AttentionAccumulator(vol, fixations_only=False, mode="mip", sigma_deg=0.01, rate_hz=100.0)
    target = vol.affine @ [10, 9, 13, 1]
    cam = Camera(position=target[:3] + [0, 0, -80], focal_point=target[:3], view_up=(0, 1, 0))
    acc.add(cam, [[0.5, 0.5]])
    v = acc.values
    assert np.unravel_index(np.argmax(v), v.shape) == (10, 9, 13)
    assert v[10, 9, 13] == pytest.approx(0.01, rel=1e-6)


def test_volume_bad_options():
    with pytest.raises(InputError, match="mode"):
        AttentionAccumulator(_homogeneous(), mode="xray")
    with pytest.raises(InputError, match="slice index"):
        AttentionAccumulator(_homogeneous(), mode="slice", axis=2, index=999)


def test_mesh_online_fixations_on_orbiting_camera():
    from gaze3d.camera import CameraPath

    vf, ff = _grid_mesh(0.0, half=8.0, n=161)
    mesh = Mesh(vf, ff)
    target = np.array([2.0, -1.5, 0.0])
    path = CameraPath.orbit((0, 0, 0), radius=12.0, elevation_deg=40, duration_s=0.6, turns=0.1, vfov_deg=50)
    acc = AttentionAccumulator(mesh, fixations_only=True)
    rng = np.random.default_rng(0)
    t = np.arange(720) / 1200.0
    frame = np.floor(t * 60).astype(int)
    for f in np.unique(frame):
        cam = path.at(f / 60.0)
        xy = cam.pixels_to_normalized(cam.project(target[None])[0])
        m = frame == f
        acc.add(cam, {"x": xy[0, 0] + rng.normal(0, 4e-4, m.sum()), "y": xy[0, 1] + rng.normal(0, 4e-4, m.sum()),
                      "t_s": t[m]})
    acc.flush()
    assert acc.n_used > 0.95 * len(t)
    assert np.linalg.norm(vf[np.argmax(acc.values)] - target) < 0.15


def test_orthographic_slice_view_falls_off_with_in_plane_distance():
    vol = _oblique_volume()
    k = 7
    centre = vol.affine @ [20, 25, k, 1]
    normal = np.linalg.inv(vol.affine[:3, :3]).T @ [0, 0, 1.0]
    normal /= np.linalg.norm(normal)
    cam = Camera(position=centre[:3] + 300 * normal, focal_point=centre[:3], view_up=(0, 1, 0),
                 parallel_scale=40.0, vfov_deg=20.0)
    acc = AttentionAccumulator(vol, fixations_only=False, mode="slice", axis=2, index=k, rate_hz=100.0)
    acc.add(cam, [[0.45, 0.55]])
    v = acc.values[:, :, k]
    o, d = cam.unproject(cam.normalized_to_pixels([[0.45, 0.55]]))
    hit = acc.engine.slice_hits(o, d)[0]
    ii, jj = np.meshgrid(np.arange(vol.shape[0]), np.arange(vol.shape[1]), indexing="ij")
    world = (vol.affine @ np.c_[ii.ravel(), jj.ravel(), np.full(ii.size, k), np.ones(ii.size)].T).T[:, :3]
    off = world - hit
    off -= np.outer(off @ d[0], d[0])
    theta = np.linalg.norm(off, axis=1) / (2 * 40.0 / np.radians(20.0))     # camera radians
    expected = gaussian(theta) / 100.0
    ok = np.abs(theta - np.radians(3.0)) > 1e-6
    np.testing.assert_allclose(v.ravel()[ok], expected[ok], rtol=1e-6, atol=1e-12)
    assert v.max() > 0.9 / 100.0
