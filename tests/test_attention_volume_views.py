"""Volume attention as the viewer shows a volume: three crossing slice planes that
occlude each other, and MIP that gives nothing to empty background."""
import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator
from gaze3d.camera import Camera
from gaze3d.scan import Volume

SHAPE = (41, 41, 41)
CENTRE = (20, 20, 20)


def _crossing_slices(eye_offset, sigma_deg=3.0):
    vol = Volume(np.full(SHAPE, 100.0, np.float32), affine=np.eye(4))
    acc = AttentionAccumulator(vol, fixations_only=False, mode="slice", slices=CENTRE,
                               sigma_deg=sigma_deg, rate_hz=100.0)
    c = np.array(CENTRE, dtype=np.float64)
    cam = Camera(position=c + eye_offset, focal_point=c, view_up=(0, 0, 1))
    acc.add(cam, [[0.5, 0.5]])          # the gaze on the line where the planes cross
    return acc, acc.values.astype(np.float64)


def _quadrants(v, axis):
    """Attention on the plane through the centre along ``axis``, split by the signs of the other two axes."""
    others = [a for a in range(3) if a != axis]
    plane = np.take(v, CENTRE[axis], axis=axis)
    out = {}
    for s0 in (-1, 1):
        for s1 in (-1, 1):
            sl = [slice(CENTRE[o] + 1, None) if s > 0 else slice(None, CENTRE[o]) for o, s in zip(others, (s0, s1))]
            out[(s0, s1)] = plane[tuple(sl)].sum()
    return out


def test_every_visible_slice_plane_gets_attention_and_hidden_quadrants_none():
    # the eye in the (+, +, +) octant: on each plane only the quadrant whose other two
    # coordinates are both above the centre faces it; the other three lie behind a plane
    acc, v = _crossing_slices(np.array([30.0, 25.0, 35.0]))
    for axis in range(3):
        q = _quadrants(v, axis)
        assert q[(1, 1)] > 0, f"plane {axis}: its visible quadrant got no attention"
        for key in ((-1, -1), (-1, 1), (1, -1)):
            assert q[key] == 0.0, f"plane {axis}: hidden quadrant {key} got {q[key]}"
    # and nothing off the three planes
    on_planes = np.zeros(SHAPE, bool)
    for axis in range(3):
        idx = [slice(None)] * 3
        idx[axis] = CENTRE[axis]
        on_planes[tuple(idx)] = True
    assert v[~on_planes].sum() == 0.0
    # the hit point is the crossing itself (the nearest plane the ray meets)
    eng = acc.engine
    cam = Camera(position=np.array(CENTRE, float) + [30.0, 25.0, 35.0], focal_point=CENTRE, view_up=(0, 0, 1))
    o, d = cam.unproject(cam.normalized_to_pixels([[0.5, 0.5]]))
    np.testing.assert_allclose(eng.hit_points(eng.frame(cam, d), d)[0], CENTRE, atol=1e-6)


def test_visible_quadrants_match_a_brute_force_visibility_check():
    eye = np.array([12.0, -28.0, 20.0])
    acc, v = _crossing_slices(eye, sigma_deg=4.0)
    c = np.array(CENTRE, dtype=np.float64)
    e = c + eye
    lit = np.argwhere(v > 0)
    # independent check: march the eye->voxel segment in small steps and look for a
    # step that lands on another plane (within half a step) inside the volume
    rng = np.random.default_rng(0)
    for ijk in lit[rng.choice(len(lit), size=min(300, len(lit)), replace=False)]:
        ts = np.linspace(0, 1, 4001)[1:-40]
        pts = e + np.outer(ts, ijk - e)
        own = [a for a in range(3) if ijk[a] == CENTRE[a]]
        for axis in range(3):
            if axis in own:
                continue
            near = np.abs(pts[:, axis] - CENTRE[axis]) < 0.5 * np.abs(ijk[axis] - e[axis]) / 4000 + 1e-9
            others = [a for a in range(3) if a != axis]
            inside = np.all((pts[:, others] >= -0.5) & (pts[:, others] <= np.array(SHAPE)[others] - 0.5), axis=1)
            assert not np.any(near & inside), f"voxel {ijk} is behind plane {axis} but got attention"
    # a voxel the brute force calls hidden near the gaze gets nothing: the plane-2 voxel
    # on the far side of plane 0 (the eye is at i > centre)
    assert v[CENTRE[0] - 2, CENTRE[1] - 2, CENTRE[2]] == 0.0


def test_one_slice_plane_keeps_its_behaviour():
    vol = Volume(np.full(SHAPE, 100.0, np.float32), affine=np.eye(4))
    single = AttentionAccumulator(vol, fixations_only=False, mode="slice", axis=2, index=20,
                                  sigma_deg=3.0, rate_hz=100.0)
    cam = Camera(position=(20.0, 50.0, 40.0), focal_point=CENTRE, view_up=(0, 0, 1))
    single.add(cam, [[0.5, 0.5]])
    v = single.values.astype(np.float64)
    # one plane occludes nothing: both halves of the slice around the gaze are lit
    assert v[:, :20, 20].sum() > 0 and v[:, 21:, 20].sum() > 0
    assert v.sum() == pytest.approx(v[:, :, 20].sum())


def _ct_like():
    """Air (-1000) with a bright block (400) in one corner."""
    arr = np.full((40, 40, 40), -1000.0, np.float32)
    arr[25:35, 25:35, 10:30] = 400.0
    return Volume(arr, affine=np.eye(4))


@pytest.mark.parametrize("target, expect_attention", [((8.0, 8.0, 20.0), False), ((30.0, 30.0, 20.0), True)])
def test_mip_gives_no_attention_to_empty_background(target, expect_attention):
    vol = _ct_like()
    acc = AttentionAccumulator(vol, fixations_only=False, mode="mip", sigma_deg=0.5,
                               opacity=[[-200.0, 300.0], [0.0, 0.2]], rate_hz=100.0)
    t = np.array(target)
    cam = Camera(position=t + [0, 0, -120.0], focal_point=t, view_up=(0, 1, 0))
    acc.add(cam, [[0.5, 0.5]])
    total = acc.values.sum(dtype=np.float64)
    if expect_attention:
        # the block is above the display window: drawn at full brightness, the full dwell
        assert total == pytest.approx(0.01, rel=1e-3)
        assert acc.values[25:35, 25:35, 10:30].sum() == pytest.approx(total, rel=1e-6)
    else:
        assert total == 0.0


def test_mip_brightness_follows_the_display_window():
    vol = _ct_like()
    acc = AttentionAccumulator(vol, fixations_only=False, mode="mip", opacity=[[0.0, 100.0], [0.0, 0.4]])
    np.testing.assert_allclose(acc.engine.mip_brightness(np.array([-1000.0, 0.0, 50.0, 100.0, 400.0])),
                               [0.0, 0.0, 0.5, 1.0, 1.0])


def _volume_records(mode, journal: bool, mark_at=None):
    """A volume replay with the online filter: three fixations seen from a camera that moves between
    them; ``journal`` False forces the whole-grid snapshot records; ``mark_at``: frame at which the
    open fixation is marked negative."""
    rng = np.random.default_rng(3)
    arr = rng.normal(100.0, 20.0, (40, 36, 30)).astype(np.float32)
    arr[8:28, 8:26, 6:22] += 300.0
    vol = Volume(arr, np.diag([2.0, 2.5, 3.0, 1.0]))
    kw = {"slices": (20, 18, 15)} if mode == "slice" else {}
    acc = AttentionAccumulator(vol, mode=mode, **kw)
    assert acc._journal                                   # volumes keep a journal
    acc._journal = journal
    c = vol.index_to_world([[20, 18, 15]])[0]
    for f in range(60):
        k = f // 20
        cam = Camera.look_at(c + [30.0 * k, -150.0, 20.0], c, view_up=(0, 0, 1), vfov_deg=40, width=320,
                             height=240)
        xy = 0.5 + 0.04 * np.array([np.cos(2.0 * k), np.sin(3.0 * k)]) + rng.normal(0.0, 0.001, (20, 2))
        acc.add(cam, {"x": xy[:, 0], "y": xy[:, 1], "t_s": (f * 20 + np.arange(20)) / 1200.0})
        if f == mark_at and acc.fixations():
            acc.set_polarity(-1, False)
    open_rec = acc.fixations()
    acc.flush()
    return acc, open_rec


@pytest.mark.parametrize("mode, mark_at", [("slice", None), ("slice", 30), ("render", 30), ("mip", None)])
def test_volume_fixation_records_from_the_journal_equal_whole_grid_snapshots(mode, mark_at):
    """A fixation's record costs the voxels it touched, not two copies of the grid: same records, bit for bit."""
    ref, ref_open = _volume_records(mode, journal=False, mark_at=mark_at)
    new, new_open = _volume_records(mode, journal=True, mark_at=mark_at)
    assert np.array_equal(ref.values, new.values) and ref.values.max() > 0
    for a, b in ((ref.fixations(), new.fixations()), (ref_open, new_open)):
        assert len(a) == len(b) >= 2
        for ra, rb in zip(a, b):
            assert (ra.t_start_s, ra.t_end_s, ra.n_samples, ra.positive) == \
                (rb.t_start_s, rb.t_end_s, rb.n_samples, rb.positive)
            assert ra.index.dtype == rb.index.dtype == np.int64 and len(ra.index) > 10
            assert np.array_equal(ra.index, rb.index)
            assert ra.attention.dtype == rb.attention.dtype == np.float32
            assert np.array_equal(ra.attention, rb.attention)
    for a, b in zip(ref.signed_values(), new.signed_values()):
        assert np.array_equal(a, b)
    # the journal forgets what it touched
    assert new.engine._jidx is None and not new.engine._jseen.any()


def _whole_march_render(eng, origins, dirs, ray_w):
    """The render deposit as one march over every step (the path before chunking): (n,) float64."""
    flat, values, _ = eng.march(origins, dirs)
    cw = eng.compositing_weights(values) * ray_w[:, None]
    ok = (flat >= 0) & (cw > 0)
    return np.bincount(flat[ok], weights=cw[ok], minlength=eng.n)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_render_deposits_marched_in_chunks_equal_the_whole_march(chunk, monkeypatch):
    """Render-mode rays stop once every one of them is opaque or out: the same deposit, bit for bit."""
    from gaze3d.attention import volume as volume_mod

    monkeypatch.setattr(volume_mod, "RENDER_CHUNK_STEPS", chunk)
    arr = np.full((40, 36, 30), 10.0, np.float32)
    arr[12:30, 8:28, 6:24] = 200.0                        # an opaque block: rays through it terminate early
    vol = Volume(arr, np.diag([2.0, 2.5, 3.0, 1.0]))
    eng = AttentionAccumulator(vol, mode="render", fixations_only=False, opacity=[[10.0, 200.0], [0.0, 0.4]],
                               early_termination=0.99).engine
    rng = np.random.default_rng(0)
    c = vol.index_to_world([[20, 18, 15]])[0]
    origins = np.repeat((c + [5.0, -200.0, 10.0])[None], 60, axis=0)
    for spread, must_stop_early in ((40.0, False), (5.0, True)):
        # 40 mm: some rays miss the block (they run to the far side), a few miss the volume; 5 mm: every ray
        # meets the block and turns opaque in it, so the march stops long before the far side
        dirs = (c + rng.normal(0.0, spread, (60, 3))) - origins
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        ray_w = rng.uniform(0.1, 1.0, 60)
        eng.reset()
        steps = []
        real = volume_mod.VolumeEngine._steps
        monkeypatch.setattr(eng, "_steps", lambda rays, k0, k1: steps.append(k1 - k0) or real(eng, rays, k0, k1))
        eng._march_deposit(origins, dirs, ray_w)
        ref = _whole_march_render(eng, origins, dirs, ray_w)   # marches every step (counted last)
        assert eng.acc.max() > 0 and np.array_equal(eng.acc, ref)
        whole = steps.pop()
        if must_stop_early:
            assert sum(steps) < whole and sum(steps) <= max(chunk, whole / 2), (sum(steps), whole)
