"""Point-cloud attention on analytic scenes: occlusion, Gaussian falloff, determinism."""
import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator, FovealModel
from gaze3d.camera import Camera
from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError
from gaze3d.events import EventType
from gaze3d.scan import PointCloud

from attention_helpers import angle_to_ray, fibonacci_sphere, gaussian, grid_plane, top_camera


def test_occluded_back_plane_gets_exactly_zero():
    front, back = grid_plane(0.0), grid_plane(-1.0)
    acc = AttentionAccumulator(PointCloud(np.r_[front, back]), fixations_only=False)
    rng = np.random.default_rng(0)
    acc.add(top_camera(), 0.5 + rng.normal(0, 0.01, (40, 2)))
    v = acc.values
    assert v.dtype == np.float32 and v.shape == (2 * len(front),)
    assert v[:len(front)].max() > 0
    assert np.count_nonzero(v[len(front):]) == 0


def test_back_plane_seen_through_hole():
    front, back = grid_plane(0.0), grid_plane(-1.0)
    front = front[np.linalg.norm(front[:, :2], axis=1) > 0.8]   # a hole under the gaze
    acc = AttentionAccumulator(PointCloud(np.r_[front, back]), fixations_only=False)
    acc.add(top_camera(), [[0.5, 0.5]])
    v = acc.values
    assert v[len(front):].max() > 0


def test_sphere_peaks_at_first_hit_and_falls_off_as_gaussian():
    pts = fibonacci_sphere(200_000)
    cam = Camera(position=(0, 0, 5), focal_point=(0, 0, 0), view_up=(0, 1, 0))
    xy = np.array([[0.53, 0.46]])
    # ~3 px between neighbouring points on screen: 5 px splats close the surface
    acc = AttentionAccumulator(PointCloud(pts), fixations_only=False, rate_hz=100.0, point_size=5)
    acc.add(cam, xy)
    v = acc.values.astype(np.float64)
    o, d = cam.unproject(cam.normalized_to_pixels(xy))
    o, d = o[0], d[0]
    # first hit of the ray on the unit sphere
    b = o @ d
    tnear = -b - np.sqrt(b * b - (o @ o - 1.0))
    hit = o + tnear * d
    theta = angle_to_ray(pts, o, d)
    front = np.einsum("ij,ij->i", pts, pts - o) < 0      # facing the camera
    expected = np.where(front, gaussian(theta), 0.0) * (1 / 100.0)
    assert np.linalg.norm(pts[np.argmax(v)] - hit) < 0.01
    near_cut = np.abs(theta - np.radians(3.0)) < 1e-4
    ok = ~near_cut
    np.testing.assert_allclose(v[ok], expected[ok], rtol=2e-5, atol=1e-9)
    assert np.count_nonzero(v[~front]) == 0


def test_replay_is_bit_identical():
    pts = np.r_[grid_plane(0.0, n=151), fibonacci_sphere(20_000, 0.5, (0.3, 0.2, 1.0))]
    rng = np.random.default_rng(1)
    frames = [(top_camera(10 + 0.1 * k), 0.5 + rng.normal(0, 0.03, (20, 2))) for k in range(12)]

    def run():
        acc = AttentionAccumulator(PointCloud(pts), fixations_only=False)
        for cam, xy in frames:
            acc.add(cam, xy)
        return acc.values.copy()

    a, b = run(), run()
    assert a.tobytes() == b.tobytes() and a.max() > 0


def test_event_column_selects_fixations_and_dwell_is_capped():
    pts = grid_plane(0.0)
    acc = AttentionAccumulator(PointCloud(pts), fixations_only=True, max_dt_s=0.01)
    t_ns = (np.array([0.0, 0.001, 0.002, 0.5]) * 1e9).astype(np.int64)
    ev = [EventType.FIXATION, EventType.SACCADE, EventType.FIXATION, EventType.FIXATION]
    acc.add(top_camera(), {"x": [0.5] * 4, "y": [0.5] * 4, "valid": [1, 1, 1, 1], "t_host_ns": t_ns, "event": ev})
    # dwell: first sample 1/1200 s (nominal), third 0.001 s, fourth capped at 0.01 s
    assert acc.values.max() == pytest.approx(1 / 1200 + 0.001 + 0.01, rel=1e-5)
    assert acc.n_used == 3


def test_invalid_samples_are_skipped():
    acc = AttentionAccumulator(PointCloud(grid_plane(0.0)), fixations_only=False)
    acc.add(top_camera(), {"x": [np.nan, 0.5], "y": [0.5, 0.5], "valid": [True, False]})
    assert acc.values.max() == 0 and acc.n_samples == 2


def test_points_outside_viewport_get_nothing():
    pts = grid_plane(0.0, half=20.0, n=401)
    cam = top_camera(2.0)          # sees about [-0.53, 0.53] vertically
    acc = AttentionAccumulator(PointCloud(pts), fixations_only=False, sigma_deg=5.0)
    acc.add(cam, [[0.999, 0.5]])
    v = acc.values
    px, depth = cam.project(pts)
    outside = (px[:, 0] >= cam.width) | (px[:, 0] < 0) | (px[:, 1] < 0) | (px[:, 1] >= cam.height)
    assert v[~outside].max() > 0 and np.count_nonzero(v[outside]) == 0


def test_visual_degree_mapping_from_display():
    display = DisplayGeometry()
    f = FovealModel.from_display(display, viewport=(0.25, 0.25, 0.5, 0.5))
    cam = top_camera(vfov_deg=30.0)
    top = display.norm_to_deg([[0.5, 0.25]])[0, 1]
    bottom = display.norm_to_deg([[0.5, 0.75]])[0, 1]
    assert f.visual_per_camera(cam) == pytest.approx((bottom - top) / 30.0)
    # a factor of 2 (visual degrees per camera degree) halves sigma in camera angle
    g = FovealModel(sigma_deg=1.0, visual_deg_per_camera_deg=2.0)
    assert g.camera_sigma_rad(cam) == pytest.approx(np.radians(0.5))


def test_add_rays_matches_camera_path():
    pts = np.r_[grid_plane(0.0), grid_plane(-1.0)]
    cam = top_camera()
    xy = np.array([[0.5, 0.5], [0.52, 0.49]])
    a = AttentionAccumulator(PointCloud(pts), fixations_only=False)
    a.add(cam, xy)
    o, d = cam.unproject(cam.normalized_to_pixels(xy))
    b = AttentionAccumulator(PointCloud(pts), fixations_only=False)
    b.add_rays(o, d)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-5, atol=1e-9)
    assert np.count_nonzero(b.values[len(pts) // 2:]) == 0


@pytest.mark.parametrize("kw, match", [
    ({"sigma_deg": 0}, "sigma_deg"),
    ({"point_size": -1}, "point_size"),
    ({"max_dt_s": 0}, "max_dt_s"),
    ({"method": "nope"}, "method"),
    ({"kernel": "cuda"}, "kernel: expected a cone-pass kernel"),     # a device name is not a kernel
])
def test_bad_parameters_name_themselves(kw, match):
    with pytest.raises(InputError, match=match):
        AttentionAccumulator(PointCloud(grid_plane(0.0, n=5)), **kw)


def test_bad_samples_are_reported():
    acc = AttentionAccumulator(PointCloud(grid_plane(0.0, n=5)))
    with pytest.raises(InputError, match="samples"):
        acc.add(top_camera(), np.zeros((3, 3)))
    with pytest.raises(InputError, match="increasing"):
        acc.add(top_camera(), {"x": [0.5, 0.5], "y": [0.5, 0.5], "t_s": [1.0, 0.5]})


def _reference_attention(pts, cam, xy, dwell, point_size=3, depth_tolerance=0.005, max_slope=3.0, spacing=None):
    """Brute force: whole-image depth buffer, every point against every ray (float64).

    ``spacing (n,)``: occluding footprints sized from it (pointcloud.py's rule), else the splat.
    """
    from gaze3d.attention.pointcloud import _HALF_LEVELS, FOOTPRINT_PER_SPACING, MAX_OCCLUDER_HALF

    px, depth = cam.project(pts)
    h0 = int(round((point_size - 1) / 2))
    half = np.full(len(pts), h0)
    if spacing is not None:
        fp = np.asarray(spacing, np.float64) * FOOTPRINT_PER_SPACING * cam.focal_px / depth
        half = np.clip(np.ceil((fp - 1) / 2), 0, MAX_OCCLUDER_HALF).astype(int)
        half = np.maximum(_HALF_LEVELS[np.searchsorted(_HALF_LEVELS, half)], h0)     # sizes on a few levels
    h = int(half.max())
    ok = (depth >= cam.near) & (depth <= cam.far) & np.isfinite(px).all(1)
    iu = np.floor(px[:, 0]).astype(int)
    iv = np.floor(px[:, 1]).astype(int)
    ok &= (iu >= -h) & (iu < cam.width + h) & (iv >= -h) & (iv < cam.height + h)
    zs = np.full((cam.height + 2 * h, cam.width + 2 * h), np.inf)
    for s in np.unique(half[ok]):
        sel = ok & (half == s)
        z = np.full_like(zs, np.inf)
        np.minimum.at(z, (iv[sel] + h, iu[sel] + h), depth[sel])
        rows = z.copy()
        for d in range(-s, s + 1):
            rows = np.minimum(rows, np.roll(z, d, 1))
        for d in range(-s, s + 1):
            zs = np.minimum(zs, np.roll(rows, d, 0))
    inside = ok & (iu >= 0) & (iu < cam.width) & (iv >= 0) & (iv < cam.height)
    tol = depth * (depth_tolerance + max_slope * (half + 1) / cam.focal_px)
    vis = np.zeros(len(pts), bool)
    vis[inside] = depth[inside] <= zs[iv[inside] + h, iu[inside] + h] + tol[inside]
    o, d = cam.unproject(cam.normalized_to_pixels(xy))
    out = np.zeros(len(pts))
    for k in range(len(d)):
        out += dwell * gaussian(angle_to_ray(pts, o[k], d[k]))
    return np.where(vis, out, 0.0), vis


@pytest.mark.parametrize("spacing_footprint", [True, False], ids=["spacing footprints", "splats only"])
def test_matches_brute_force_on_buildings(spacing_footprint):
    rng = np.random.default_rng(3)
    ground = np.c_[rng.uniform(-30, 30, (150_000, 2)), rng.normal(0, 0.02, 150_000)]
    boxes = []
    for cx, cy, hgt in [(0, 0, 8), (6, -4, 5), (-5, 7, 12)]:
        b = rng.uniform(-2, 2, (30_000, 3)) * [1, 1, hgt / 4] + [cx, cy, hgt / 2]
        boxes.append(b)
    pts = np.concatenate([ground] + boxes)
    cam = Camera(position=(-25, -30, 20), focal_point=(0, 0, 2), view_up=(0, 0, 1))
    xy = 0.5 + rng.normal(0, 0.04, (20, 2))
    opts = {} if spacing_footprint else {"spacing_footprint": False}
    acc = AttentionAccumulator(PointCloud(pts), fixations_only=False, rate_hz=1200.0, **opts)
    acc.add(cam, xy)
    engine = acc.engine
    spacing = None
    if spacing_footprint:
        spacing = np.empty(len(pts))
        spacing[engine.index.order] = engine.spacing
    ref, vis = _reference_attention(pts, cam, xy, 1 / 1200, depth_tolerance=engine.depth_tolerance,
                                    spacing=spacing)
    got = acc.values
    assert np.count_nonzero(got[~vis]) == 0
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-9)
    assert np.count_nonzero(got) > 1000


def test_attention_imports_numpy_only():
    import subprocess
    import sys

    code = ("import sys, gaze3d.attention, gaze3d.events, gaze3d.attention.volume, gaze3d.attention.mesh; "
            "bad = [m for m in ('scipy', 'open3d', 'torch', 'vtk', 'pyvista') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
