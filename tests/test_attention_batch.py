"""Batch attention over recordings (in-memory and real SQLite files) and the two CLI commands."""
import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator, accumulate_attention
from gaze3d.attention.batch import fixation_labels
from gaze3d.camera import CameraPath
from gaze3d.cli import main
from gaze3d.errors import InputError
from gaze3d.scan import PointCloud

from attention_helpers import grid_plane


def _session(duration=1.0, rate=1200.0):
    """A camera orbiting at 60 Hz frames and gaze following a world point, then jumping."""
    path = CameraPath.orbit((0, 0, 0), radius=10.0, elevation_deg=35, duration_s=duration, turns=0.1,
                            n_keys=30, vfov_deg=60.0)
    t_cam = (np.arange(int(duration * 60)) / 60.0 * 1e9).astype(np.int64) + 10**12
    cams = [path.at((tc - 10**12) * 1e-9) for tc in t_cam]
    t = (np.arange(int(duration * rate)) / rate * 1e9).astype(np.int64) + 10**12 + 1000
    frame = np.searchsorted(t_cam, t, side="right") - 1
    rng = np.random.default_rng(0)
    target = np.where((t - t[0])[:, None] < 0.5e9, [[1.0, 1.0, 1.0]], [[-2.0, 0.5, 1.0]])
    xy = np.array([cams[f].pixels_to_normalized(cams[f].project(p[None])[0])[0] for f, p in zip(frame, target)])
    xy += rng.normal(0, 0.0003, xy.shape)
    valid = np.ones(len(t), bool)
    valid[700:760] = False                               # a 50 ms dropout
    xy[~valid] = np.nan
    samples = {"t_host_ns": t, "x": xy[:, 0], "y": xy[:, 1], "valid": valid}
    return {"samples": samples, "camera_t_host_ns": t_cam, "cameras": cams}


def _cloud():
    return PointCloud(grid_plane(1.0, half=8.0, n=301))


def test_batch_equals_live_replay_and_is_bit_identical():
    rec = _session()
    a = accumulate_attention(_cloud(), rec)
    b = accumulate_attention(_cloud(), rec)
    assert a.dtype == np.float32 and a.tobytes() == b.tobytes()
    live = AttentionAccumulator(_cloud())
    s, t_cam, cams = rec["samples"], rec["camera_t_host_ns"], rec["cameras"]
    frame = np.searchsorted(t_cam, s["t_host_ns"], side="right") - 1
    for f in np.unique(frame):
        m = frame == f
        live.add(cams[f], {k: v[m] for k, v in s.items()})
    live.flush()
    assert live.values.tobytes() == a.tobytes()
    assert live.n_used > 0.8 * len(s["t_host_ns"])


def test_event_column_and_viewport_mapping():
    rec = _session()
    n = len(rec["samples"]["t_host_ns"])
    rec["samples"]["event"] = np.full(n, 2, np.int8)          # all saccades: nothing counts
    assert accumulate_attention(_cloud(), rec).max() == 0
    rec["samples"]["event"][:100] = 1
    with_events = accumulate_attention(_cloud(), rec)
    assert with_events.max() > 0
    # the same gaze recorded on a display whose right half is the viewport
    rec2 = _session()
    rec2["samples"]["x"] = 0.5 + 0.5 * rec2["samples"]["x"]
    np.testing.assert_array_equal(accumulate_attention(_cloud(), rec2, viewport=(0.5, 0, 0.5, 1)),
                                  accumulate_attention(_cloud(), _session()))


def test_missing_cameras_is_a_clear_error():
    rec = _session()
    rec["cameras"], rec["camera_t_host_ns"] = [], []
    with pytest.raises(InputError, match="camera"):
        accumulate_attention(_cloud(), rec)


def _write_recording(path, rec):
    from gaze3d.recording import RecordingWriter

    s = rec["samples"]
    with RecordingWriter(path) as w:
        for tc, cam in zip(rec["camera_t_host_ns"], rec["cameras"]):
            w.add_camera(int(tc), cam)
        w.add_samples([{"topic": "gaze.2d", "t_host_ns": int(t), "t_device": None, "seq": i,
                        "gaze": [float(x), float(y)], "valid": bool(v)}
                       for i, (t, x, y, v) in enumerate(zip(s["t_host_ns"], s["x"], s["y"], s["valid"]))])
    return path


def test_recording_file_gives_the_same_attention(tmp_path):
    rec = _session()
    path = _write_recording(tmp_path / "session.sqlite", rec)
    np.testing.assert_array_equal(accumulate_attention(_cloud(), str(path)), accumulate_attention(_cloud(), rec))


def test_object_space_labels_follow_the_point():
    rec = _session()
    t, screen, _ = fixation_labels(rec, "ivt")
    t2, obj, _ = fixation_labels(rec, "ivt", scan=_cloud())
    n = len(t)
    fix_obj = np.mean(obj[: n // 2 - 50] == 1)
    assert fix_obj > 0.95
    assert np.any(obj[n // 2 - 20: n // 2 + 40] == 2)       # the jump is a saccade


def test_cli_attention_and_fixations(tmp_path, capsys):
    from gaze3d.io import load_scan, save_scan

    rec = _session()
    rec_path = _write_recording(tmp_path / "s.sqlite", rec)
    scan_path = tmp_path / "plane.ply"
    save_scan(_cloud(), scan_path)
    out = tmp_path / "attention.ply"
    assert main(["attention", str(scan_path), str(rec_path), "-o", str(out)]) == 0
    saved = load_scan(out)
    np.testing.assert_allclose(saved.fields["attention"], accumulate_attention(load_scan(scan_path), rec_path),
                               rtol=1e-6)
    tsv = tmp_path / "events.tsv"
    assert main(["fixations", str(rec_path), "-o", str(tsv), "--scan", str(scan_path)]) == 0
    lines = tsv.read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["onset", "duration", "trial_type"]
    types = [ln.split("\t")[2] for ln in lines[1:]]
    assert "fixation" in types and "saccade" in types
    # on the screen, knowing the camera: the held world point moved across it (pursuit)
    assert main(["fixations", str(rec_path), "-o", str(tsv), "--scan", str(scan_path), "--frame", "screen"]) == 0
    assert "pursuit" in [ln.split("\t")[2] for ln in tsv.read_text().splitlines()[1:]]
    assert main(["fixations", str(rec_path), "-o", str(tsv), "--param", "velocity_threshold"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["fixations", str(rec_path), "-o", str(tsv), "--frame", "screen"]) == 2
    assert "--frame" in capsys.readouterr().err


@pytest.mark.slow
def test_object_space_kappa_on_simulated_scene_gaze():
    """simulate_scene_gaze fixates world points while the camera orbits at 60 deg/s (I-VDT)."""
    from gaze3d.events import cohen_kappa
    from gaze3d.simulate import simulate_scene_gaze

    rng = np.random.default_rng(0)
    targets = np.c_[rng.uniform(-4, 4, (8, 2)), np.zeros(8)]
    path = CameraPath.orbit((0, 0, 0), radius=15, elevation_deg=40, duration_s=3, turns=0.5, n_keys=100,
                            vfov_deg=45)
    sg = simulate_scene_gaze(targets, path, 3.0, seed=3)
    t_ns = np.round(sg.t_s * 1e9).astype(np.int64)
    # the simulator moves the camera continuously: give the replay one camera per sample
    rec = {"samples": {"t_host_ns": t_ns, "x": sg.xy[:, 0], "y": sg.xy[:, 1], "valid": sg.valid},
           "camera_t_host_ns": t_ns, "cameras": [path.at(t) for t in sg.t_s]}
    _, screen, _ = fixation_labels(rec, "ivdt")
    _, obj, _ = fixation_labels(rec, "ivdt", scan=PointCloud(grid_plane(0.0, half=8, n=301)))
    k_screen, k_obj = cohen_kappa(sg.truth, screen, 1), cohen_kappa(sg.truth, obj, 1)
    print(f"\nivdt fixation kappa, orbiting camera: screen {k_screen:.3f}, object space {k_obj:.3f}")
    assert k_obj > 0.6 and k_screen < 0.3


def test_screen_labels_knowing_the_camera_call_a_carried_fixation_pursuit():
    """frame='screen' with the scan: on the orbiting camera the eye holds scene points that move at
    3-11 deg/s on the screen; the screen signal alone calls the slow stretches fixation."""
    from gaze3d.events import EventType
    from gaze3d.simulate import orbit_session

    o = orbit_session(3.0, 3, grid=201, n_keys=100)
    g, scan = o.gaze, PointCloud(o.xyz)
    moving = (g.truth == int(EventType.FIXATION)) & (g.target_index >= 0)
    _, screen, _ = fixation_labels(o.recording, "adaptive")
    _, known, _ = fixation_labels(o.recording, "adaptive", scan=scan, frame="screen")
    _, obj, _ = fixation_labels(o.recording, "adaptive", scan=scan)
    fix, pur = int(EventType.FIXATION), int(EventType.PURSUIT)
    print(f"\norbit, moving-target samples called fixation: screen {np.mean(screen[moving] == fix):.3f}, "
          f"camera known {np.mean(known[moving] == fix):.3f}; pursuit {np.mean(known[moving] == pur):.3f}")
    assert np.mean(screen[moving] == fix) > 0.05                # the gap this closes
    assert np.mean(known[moving] == fix) < 0.02 and np.mean(known[moving] == pur) > 0.85
    # only screen fixations change, and only to pursuit
    changed = known != screen
    assert (screen[changed] == fix).all() and (known[changed] == pur).all()
    assert np.mean(obj[moving] == fix) > 0.8                    # object space: a fixation of the point


def test_screen_labels_knowing_a_still_camera_are_the_screen_labels():
    rec = _session()
    cam = rec["cameras"][0]
    still = dict(rec, cameras=[cam] * len(rec["cameras"]))
    _, screen, _ = fixation_labels(still, "adaptive")
    _, known, _ = fixation_labels(still, "adaptive", scan=_cloud(), frame="screen")
    np.testing.assert_array_equal(known, screen)
    with pytest.raises(InputError, match="frame"):
        fixation_labels(rec, "adaptive", frame="object")          # object space needs the scan
    with pytest.raises(InputError, match="frame"):
        fixation_labels(rec, "adaptive", scan=_cloud(), frame="world")
