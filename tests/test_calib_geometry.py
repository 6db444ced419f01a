"""Display geometry of gaze3d.calib: window placement, multi-monitor, OS scaling, eye distance."""
import numpy as np
import pytest

from gaze3d.calib.geometry import Monitor, ScreenSetup, TrackerDisplayArea, ViewerWindow, single_monitor
from gaze3d.calib.targets import inner_ring, presentation_order, schedule, simulator_script, target_layout
from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError


def two_monitors(window=None, allow_partial=False):
    left = Monitor("laptop", 0, 0, 2880, 1800, 302.0, 189.0, scale=2.0)       # 1440 x 900 logical
    right = Monitor("dell", 1440, -100, 3840, 2160, 597.0, 336.0, scale=1.5)  # 2560 x 1440 logical
    return ScreenSetup([left, right], "dell", window, 600.0, allow_partial=allow_partial)


def test_viewport_roundtrip_on_scaled_second_monitor():
    s = two_monitors(ViewerWindow(1440 + 256, -100 + 144, 1280, 720))
    # the window covers tracker x in [0.1, 0.6], y in [0.1, 0.6]
    np.testing.assert_allclose(s.tracker_to_viewport([[0.1, 0.1], [0.6, 0.6]]), [[0, 0], [1, 1]], atol=1e-12)
    assert s.viewport_size_px() == (1920, 1080)           # 1280 x 720 logical at 150 %
    rng = np.random.default_rng(1)
    xy = rng.uniform(0.1, 0.6, (50, 2))
    px = s.tracker_to_viewport_px(xy)
    np.testing.assert_allclose(s.viewport_px_to_tracker(px), xy, atol=1e-12)
    # the tracker display geometry is the Dell's, in physical pixels
    d = s.display()
    assert (d.width_px, d.height_px) == (3840, 2160) and d.width_mm == pytest.approx(597.0)
    # pixels <-> degrees through the window
    deg = s.viewport_px_to_deg(px)
    np.testing.assert_allclose(s.deg_to_viewport_px(deg), px, atol=1e-9)
    np.testing.assert_allclose(deg, d.norm_to_deg(xy), atol=1e-12)


def test_window_outside_or_partly_outside_the_display_area_is_a_clear_error():
    with pytest.raises(InputError, match="outside the tracker's display area on monitor 'dell'"):
        two_monitors(ViewerWindow(100, 100, 800, 600))                 # on the laptop
    with pytest.raises(InputError, match="partly outside"):
        two_monitors(ViewerWindow(1400, 0, 800, 600))                  # straddles both
    s = two_monitors(ViewerWindow(1400, 0, 800, 600), allow_partial=True)
    assert s.tracker_to_viewport([[0.0, 0.5]])[0, 0] > 0                # left edge of the area is inside
    with pytest.raises(InputError, match="tracker_monitor"):
        ScreenSetup([Monitor()], "nope")
    with pytest.raises(InputError, match="area_mm"):
        ScreenSetup([Monitor()], "primary", area_mm=(10, 10, 600, 100))


def test_display_sub_area_and_serialisation():
    s = ScreenSetup([Monitor("m", 0, 0, 1920, 1080, 527.0, 296.0)], "m", area_mm=(0, 0, 263.5, 296.0))
    assert s.area_desktop() == pytest.approx((0, 0, 960, 1080))
    assert s.display().width_px == 960
    back = ScreenSetup.from_dict(s.to_dict())
    assert back == s


def test_eye_distance_from_the_3d_gaze_origin():
    area = TrackerDisplayArea.below_screen(527.0, 296.0, gap_mm=10.0)
    # an eye 600 mm in front of the screen centre
    centre = np.array([0.0, 10.0 + 148.0, 600.0])
    dist, eye_xy = area.eye_geometry(centre)
    assert dist == pytest.approx(600.0) and eye_xy == pytest.approx((0.5, 0.5))
    # eye higher up and to the right, with NaN rows ignored
    d2, xy2 = area.eye_geometry([[52.7, 10.0 + 296.0 * 0.75, 700.0], [np.nan] * 3])
    assert d2 == pytest.approx(700.0) and xy2 == pytest.approx((0.6, 0.25))
    # the distance drives the px <-> degree conversion
    s = single_monitor()
    near, far = s.px_per_deg([0, 158, 500]), s.px_per_deg([0, 158, 800])
    assert far / near == pytest.approx(800 / 500, rel=1e-9)
    # angles seen from an origin match the flat-screen formula for the same eye
    g = s.display(origin_mm=centre, area=area)
    a = area.angle_from_origin_deg(centre, [[0.2, 0.3]], [[0.7, 0.8]])
    assert a[0] == pytest.approx(g.angle_between_deg([[0.2, 0.3]], [[0.7, 0.8]])[0], rel=1e-9)
    with pytest.raises(InputError, match="behind the display area"):
        area.eye_geometry([0, 100, -50])
    with pytest.raises(InputError, match="no finite 3D gaze origin"):
        area.eye_geometry([np.nan, np.nan, np.nan])


def test_target_layouts_and_order():
    for n in (5, 9, 13):
        lay = target_layout(n)
        assert lay.shape == (n, 2) and len(np.unique(lay, axis=0)) == n
        assert lay.min() == pytest.approx(0.1) and lay.max() == pytest.approx(0.9)
    assert inner_ring(13) == [9, 10, 11, 12] and inner_ring(9) == []
    np.testing.assert_allclose(target_layout(13)[9], [0.3, 0.3])
    order = presentation_order(13, seed=3)
    assert sorted(order) == list(range(13))
    assert not np.array_equal(order, np.arange(13))
    np.testing.assert_array_equal(order, presentation_order(13, seed=3))
    pres = schedule(target_layout(5), [4, 0], dwell_s=2.0, start_s=1.0)
    assert [(p.index, p.onset_s, p.offset_s) for p in pres] == [(4, 1.0, 3.0), (0, 3.0, 5.0)]
    script = simulator_script(pres, DisplayGeometry())
    assert script[1][2] == 2.0 and script[0][0] > 0 and script[1][:2] == (0.0, 0.0)
    with pytest.raises(InputError, match="points: expected one of"):
        target_layout(7)
