"""Camera projection against VTK's and Open3D's own conversions, on random cameras."""
from __future__ import annotations

import numpy as np
import pytest

from gaze3d.camera import Camera, CameraPath
from gaze3d.errors import InputError

N_CAMERAS = 50


def random_camera(rng, parallel=False, extent=1e4) -> Camera:
    w, h = int(rng.integers(64, 1601)), int(rng.integers(64, 1201))
    position = rng.normal(size=3) * rng.uniform(1, extent)       # up to LiDAR-sized scenes
    focal = position + rng.normal(size=3) * rng.uniform(0.5, 200)
    up = rng.normal(size=3)
    dist = np.linalg.norm(focal - position)
    return Camera(position, focal, up, vfov_deg=float(rng.uniform(5, 120)), width=w, height=h,
                  near=dist * 1e-3, far=dist * 1e3,
                  parallel_scale=float(rng.uniform(0.5, 100)) if parallel else None)


def points_in_view(cam: Camera, rng, n=20) -> np.ndarray:
    """(n, 3) world points that project inside the viewport, in front of the camera."""
    px = np.column_stack([rng.uniform(0, cam.width, n), rng.uniform(0, cam.height, n)])
    origins, dirs = cam.unproject(px)
    dist = np.linalg.norm(cam.focal_point - cam.position)
    return origins + dirs * rng.uniform(0.05, 5.0, (n, 1)) * dist


# ------------------------------------------------------------------ VTK
@pytest.fixture(scope="module")
def vtk_renderer():
    vtk = pytest.importorskip("vtk")
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)  # "bad X server" before EGL fallback
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(0)
    renderer = vtk.vtkRenderer()
    window.AddRenderer(renderer)
    yield window, renderer
    window.Finalize()


def apply_to_vtk(cam: Camera, vtk_camera) -> None:
    vtk_camera.SetPosition(*cam.position)
    vtk_camera.SetFocalPoint(*cam.focal_point)
    vtk_camera.SetViewUp(*cam.view_up)
    vtk_camera.SetViewAngle(cam.vfov_deg)
    vtk_camera.SetClippingRange(cam.near, cam.far)
    vtk_camera.SetParallelProjection(cam.is_parallel)
    if cam.is_parallel:
        vtk_camera.SetParallelScale(cam.parallel_scale)


def vtk_world_to_pixels(renderer, points, height) -> np.ndarray:
    """VTK's world -> display, flipped to gaze3d's top-left pixel origin."""
    out = []
    for p in points:
        renderer.SetWorldPoint(*p, 1.0)
        renderer.WorldToDisplay()
        x, y, _ = renderer.GetDisplayPoint()
        out.append((x, height - y))        # VTK display y grows upwards from the bottom
    return np.array(out)


@pytest.mark.parametrize("parallel", [False, True], ids=["perspective", "orthographic"])
def test_project_agrees_with_vtk_world_to_display(vtk_renderer, parallel):
    window, renderer = vtk_renderer
    rng = np.random.default_rng(7 + parallel)
    worst = 0.0
    for _ in range(N_CAMERAS):
        cam = random_camera(rng, parallel)
        window.SetSize(cam.width, cam.height)
        apply_to_vtk(cam, renderer.GetActiveCamera())
        window.Render()
        pts = points_in_view(cam, rng)
        ours, depth = cam.project(pts)
        theirs = vtk_world_to_pixels(renderer, pts, cam.height)
        worst = max(worst, float(np.abs(ours - theirs).max()))
        assert (depth > 0).all()
    assert worst < 0.5, f"worst disagreement with VTK: {worst:.3g} px"


def test_project_lands_on_the_pixel_vtk_rasterises(vtk_renderer):
    """Render single points offscreen: the lit pixel is the one Camera.project names."""
    vtk = pytest.importorskip("vtk")
    from vtkmodules.util.numpy_support import vtk_to_numpy

    window, renderer = vtk_renderer
    rng = np.random.default_rng(3)
    for _ in range(6):
        cam = random_camera(rng)
        # a point well inside a pixel (not within 0.2 px of its edges), so the lit pixel is unambiguous
        pixel = np.floor(rng.uniform([1, 1], [cam.width - 1, cam.height - 1])) + 0.5 + rng.uniform(-0.3, 0.3, 2)
        origin, direction = cam.unproject(pixel[None])
        pts = origin + direction * rng.uniform(0.1, 5.0) * np.linalg.norm(cam.focal_point - cam.position)
        uv, _ = cam.project(pts)
        poly = vtk.vtkPolyData()
        vpts = vtk.vtkPoints()
        vpts.InsertNextPoint(*pts[0])
        poly.SetPoints(vpts)
        verts = vtk.vtkCellArray()
        verts.InsertNextCell(1)
        verts.InsertCellPoint(0)
        poly.SetVerts(verts)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetPointSize(1)
        actor.GetProperty().SetColor(1, 1, 1)
        actor.GetProperty().LightingOff()
        renderer.AddActor(actor)
        renderer.SetBackground(0, 0, 0)
        window.SetSize(cam.width, cam.height)
        apply_to_vtk(cam, renderer.GetActiveCamera())
        window.Render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(window)
        grab.ReadFrontBufferOff()
        grab.Update()
        image = vtk_to_numpy(grab.GetOutput().GetPointData().GetScalars())
        image = image.reshape(cam.height, cam.width, -1)[::-1]        # bottom-up rows -> top-down
        renderer.RemoveActor(actor)
        lit = np.argwhere(image[..., :3].max(axis=2) > 128)
        assert len(lit) >= 1, "the point did not render"
        row, col = lit.mean(axis=0)
        assert abs(col - np.floor(uv[0, 0])) <= 0.5 and abs(row - np.floor(uv[0, 1])) <= 0.5, (lit, uv)


def test_from_vtk_round_trip(vtk_renderer):
    window, renderer = vtk_renderer
    rng = np.random.default_rng(11)
    for i in range(20):
        cam = random_camera(rng, parallel=i % 4 == 3)
        apply_to_vtk(cam, renderer.GetActiveCamera())
        back = Camera.from_vtk(renderer.GetActiveCamera(), (cam.width, cam.height))
        np.testing.assert_allclose(back.position, cam.position)
        np.testing.assert_allclose(back.focal_point, cam.focal_point)
        np.testing.assert_allclose(back.up, cam.up, atol=1e-9)
        assert back.vfov_deg == pytest.approx(cam.vfov_deg)
        assert (back.width, back.height) == (cam.width, cam.height)
        assert back.parallel_scale == cam.parallel_scale
        pts = points_in_view(cam, rng)
        np.testing.assert_allclose(back.project(pts)[0], cam.project(pts)[0], atol=1e-6)


def test_from_vtk_horizontal_view_angle(vtk_renderer):
    window, renderer = vtk_renderer
    vtk_cam = renderer.GetActiveCamera()
    cam = Camera((3, -40, 12), (0, 0, 0), (0, 0, 1), vfov_deg=40, width=900, height=500)
    apply_to_vtk(cam, vtk_cam)
    vtk_cam.SetUseHorizontalViewAngle(True)
    vtk_cam.SetViewAngle(70.0)
    try:
        window.SetSize(cam.width, cam.height)
        window.Render()
        ours = Camera.from_vtk(vtk_cam, (cam.width, cam.height))
        pts = points_in_view(ours, np.random.default_rng(0))
        np.testing.assert_allclose(ours.project(pts)[0], vtk_world_to_pixels(renderer, pts, cam.height),
                                   atol=0.5)
    finally:
        vtk_cam.SetUseHorizontalViewAngle(False)


def test_from_vtk_rejects_off_centre_cameras(vtk_renderer):
    vtk = pytest.importorskip("vtk")
    cam = vtk.vtkCamera()
    cam.SetWindowCenter(0.2, 0.0)
    with pytest.raises(InputError, match="window centre"):
        Camera.from_vtk(cam, (640, 480))


def test_from_pyvista():
    pv = pytest.importorskip("pyvista")
    pv.OFF_SCREEN = True
    plotter = pv.Plotter(off_screen=True, window_size=(640, 360))
    try:
        plotter.add_mesh(pv.Sphere(radius=5.0))
        plotter.camera.position = (30.0, -20.0, 15.0)
        plotter.camera.focal_point = (0.0, 0.0, 0.0)
        plotter.camera.up = (0.0, 0.0, 1.0)
        plotter.camera.view_angle = 35.0
        plotter.render()
        cam = Camera.from_pyvista(plotter)
        assert (cam.width, cam.height) == (640, 360)
        pts = points_in_view(cam, np.random.default_rng(5))
        theirs = vtk_world_to_pixels(plotter.renderer, pts, 360)
        np.testing.assert_allclose(cam.project(pts)[0], theirs, atol=0.5)
    finally:
        plotter.close()


# -------------------------------------------------------------- inverses
@pytest.mark.parametrize("parallel", [False, True], ids=["perspective", "orthographic"])
def test_unproject_inverts_project(parallel):
    rng = np.random.default_rng(21)
    for _ in range(N_CAMERAS):
        cam = random_camera(rng, parallel)
        px = np.column_stack([rng.uniform(0, cam.width, 30), rng.uniform(0, cam.height, 30)])
        origins, dirs = cam.unproject(px)
        np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0)
        along = rng.uniform(0.1, 10.0, (30, 1)) * np.linalg.norm(cam.focal_point - cam.position)
        back, depth = cam.project(origins + dirs * along)
        scale = max(1.0, np.abs(cam.position).max() / 1e3)   # float64 cancellation at 1e4 m
        np.testing.assert_allclose(back, px, atol=1e-6 * scale)
        assert (depth > 0).all()


def test_project_behind_camera_is_nan():
    cam = Camera((0, 0, 0), (0, 1, 0), (0, 0, 1))
    uv, depth = cam.project([[0, -5, 0], [0, 5, 0]])
    assert np.isnan(uv[0]).all() and depth[0] < 0
    np.testing.assert_allclose(uv[1], [cam.width / 2, cam.height / 2])


def test_normalised_pixels_round_trip():
    cam = Camera((0, 0, 0), (0, 1, 0), width=800, height=600)
    xy = np.array([[0, 0], [1, 1], [0.25, 0.75]])
    np.testing.assert_allclose(cam.normalized_to_pixels(xy), [[0, 0], [800, 600], [200, 450]])
    np.testing.assert_allclose(cam.pixels_to_normalized(cam.normalized_to_pixels(xy)), xy)


def test_dict_round_trip():
    cam = random_camera(np.random.default_rng(2), parallel=True)
    back = Camera.from_dict(cam.to_dict())
    pts = points_in_view(cam, np.random.default_rng(3))
    np.testing.assert_allclose(back.project(pts)[0], cam.project(pts)[0])


# ---------------------------------------------------------------- Open3D
def test_open3d_round_trip_and_projection():
    o3d = pytest.importorskip("open3d")
    rng = np.random.default_rng(31)
    checked = 0
    for _ in range(N_CAMERAS):
        cam = random_camera(rng, extent=100.0)       # Open3D projects in float32
        K, E = cam.to_open3d()
        back = Camera.from_open3d(K, E, cam.width, cam.height, near=cam.near, far=cam.far)
        intrinsic = o3d.camera.PinholeCameraIntrinsic(cam.width, cam.height, K)
        back2 = Camera.from_open3d(intrinsic, E)
        pts = points_in_view(cam, rng, n=8)
        ours, depth = cam.project(pts)
        for other in (back, back2):
            np.testing.assert_allclose(other.project(pts)[0], ours, atol=1e-6 * max(1, np.abs(cam.position).max() / 1e3))
            np.testing.assert_allclose(other.vfov_deg, cam.vfov_deg)
        # Open3D rasterises each point into a depth image: the pixel must be the one we name
        cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(pts.astype(np.float32)))
        img = cloud.project_to_depth_image(cam.width, cam.height, o3d.core.Tensor(K), o3d.core.Tensor(E),
                                           depth_scale=1.0, depth_max=float(depth.max() * 2)).as_tensor()
        img = img.numpy()[..., 0]
        for (u, v), d in zip(ours, depth):
            if min(u % 1, 1 - u % 1, v % 1, 1 - v % 1) < 0.01:    # float32 rounding at pixel edges
                continue
            i, j = int(np.floor(u)), int(np.floor(v))
            # the pixel holds this point's depth, or a nearer point's that fell in the same pixel
            assert 0 < img[j, i] <= d * (1 + 1e-3), (u, v, d, img[j, i])
            checked += img[j, i] == pytest.approx(d, rel=1e-3)
    assert checked > N_CAMERAS * 6


def test_open3d_pinhole_intrinsic_helpers():
    o3d = pytest.importorskip("open3d")
    # Open3D's PrimeSense default: 640x480, f=525, principal point (319.5, 239.5): centred
    intrinsic = o3d.camera.PinholeCameraIntrinsic(o3d.camera.PinholeCameraIntrinsicParameters.PrimeSenseDefault)
    cam = Camera.from_open3d(intrinsic, np.eye(4))
    assert cam.focal_px == pytest.approx(525.0)
    np.testing.assert_allclose(cam.forward, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(cam.up, [0, -1, 0], atol=1e-12)          # image y down = world -y up
    uv, _ = cam.project([[0.0, 0.0, 2.0]])
    np.testing.assert_allclose(uv, [[320.0, 240.0]])                      # centre of the viewport
    with pytest.raises(InputError, match="principal point"):
        Camera.from_open3d(np.array([[525, 0, 300], [0, 525, 239.5], [0, 0, 1]]), np.eye(4), 640, 480)
    with pytest.raises(InputError, match="width and height"):
        Camera.from_open3d(np.eye(3), np.eye(4))
    with pytest.raises(InputError, match="orthographic"):
        Camera((0, 0, 0), (1, 0, 0), parallel_scale=2.0).to_open3d()


# ------------------------------------------------------------ CameraPath
def test_camera_path_interpolation():
    a = Camera((0, 0, 0), (1, 0, 0), (0, 0, 1), vfov_deg=40, width=320, height=240)
    b = Camera((10, 0, 0), (11, 2, 0), (0, 0, 1), vfov_deg=40, width=320, height=240)
    path = CameraPath([1.0, 3.0], [a, b])
    assert path.duration == 2.0
    mid = path.at(2.0)
    np.testing.assert_allclose(mid.position, [5, 0, 0])
    np.testing.assert_allclose(mid.focal_point, [6, 1, 0])
    np.testing.assert_allclose(path.at(2.5).position, [7.5, 0, 0])
    np.testing.assert_allclose(path.at(-5).position, a.position)          # clamped at both ends
    np.testing.assert_allclose(path.at(99).position, b.position)
    np.testing.assert_allclose(path.at(3.0).focal_point, b.focal_point)
    assert (mid.width, mid.height, mid.vfov_deg) == (320, 240, 40)
    back = CameraPath.from_dict(path.to_dict())
    np.testing.assert_allclose(back.at(2.2).position, path.at(2.2).position)


def test_camera_path_orbit_keeps_target_centred():
    path = CameraPath.orbit((100, 200, 5), radius=50, elevation_deg=30, duration_s=8, turns=0.5,
                            width=400, height=300)
    for t in np.linspace(0, 8, 9):
        cam = path.at(t)
        uv, _ = cam.project([[100, 200, 5]])
        np.testing.assert_allclose(uv, [[200, 150]], atol=1e-6)
        assert np.linalg.norm(cam.position - [100, 200, 5]) == pytest.approx(50, rel=1e-2)


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(vfov_deg=0), "vfov_deg"), (dict(vfov_deg=180), "vfov_deg"),
    (dict(width=0), "viewport"), (dict(height=-3), "viewport"),
    (dict(near=0), "clipping"), (dict(near=5, far=1), "clipping"),
    (dict(parallel_scale=-1.0), "parallel_scale"),
    (dict(focal_point=(0, 0, 0)), "direction"), (dict(view_up=(0, 1, 0)), "view_up"),
    (dict(view_up=(0, 0, 0)), "view_up"), (dict(position=(np.nan, 0, 0)), "camera position: expected 3 finite numbers"),
])
def test_bad_camera_parameters(kwargs, match):
    args = dict(position=(0, 0, 0), focal_point=(0, 1, 0), view_up=(0, 0, 1))
    args.update(kwargs)
    with pytest.raises(InputError, match=match) as e:
        Camera(**args)
    assert "\n" not in str(e.value)


def test_bad_camera_path_and_dict():
    cam = Camera((0, 0, 0), (0, 1, 0))
    with pytest.raises(InputError, match="increasing"):
        CameraPath([0.0, 0.0], [cam, cam])
    with pytest.raises(InputError, match="as many"):
        CameraPath([0.0, 1.0], [cam])
    with pytest.raises(InputError, match="as many"):
        CameraPath([], [])
    with pytest.raises(InputError, match="'position'"):
        Camera.from_dict({"focal_point": [0, 0, 0]})


@pytest.mark.parametrize("field, value, match", [
    ("position", "abc", "camera position: expected 3 finite numbers"),
    ("position", [1, 2], "camera position: expected 3 finite numbers"),
    ("focal_point", [0, float("nan"), 0], "camera focal_point: expected 3 finite numbers"),
    ("view_up", None, "camera view_up: expected 3 finite numbers"),
    ("vfov_deg", "x", "camera vfov_deg: expected a finite number"),
    ("width", None, "camera width: expected a finite number"),
    ("far", float("inf"), "camera far: expected a finite number"),
])
def test_camera_fields_of_the_wrong_type_are_one_line(field, value, match):
    """Camera JSON is written by hand: a wrong type was a numpy ValueError/TypeError traceback."""
    d = dict(position=[0, -10, 5], focal_point=[0, 0, 0], view_up=[0, 0, 1], vfov_deg=30.0, width=64, height=48)
    d[field] = value
    with pytest.raises(InputError, match=match):
        Camera.from_dict(d)



def test_camera_path_times_of_the_wrong_type_are_one_line():
    d = dict(position=[0, -10, 5], focal_point=[0, 0, 0], view_up=[0, 0, 1], vfov_deg=30.0, width=64, height=48)
    for times in ("x", [None], {"a": 1}):
        with pytest.raises(InputError, match="camera path times"):
            CameraPath.from_dict({"times": times, "cameras": [d]})
