"""BIDS eye-tracking export and import (real files: physio TSV.gz + JSON sidecars), checked by bids-validator-deno.

The validator tests record with real tracker processes (sim, replay of a
recording, and an LSL outlet in another process) and run the real
``bids-validator-deno`` (offline, bundled schema) on each export.
"""
import gzip
import json
import os
import stat
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from gaze3d.bids import export_bids, import_bids, read_bids_eyetrack
from gaze3d.camera import Camera
from gaze3d.cli import main as cli_main
from gaze3d.display import DisplayGeometry
from gaze3d.errors import InputError
from gaze3d.recording import Recording, RecordingWriter

T0 = 5_000_000_000
CAM = Camera(position=[1, 2, 3], focal_point=[0, 0, 0], view_up=[0, 0, 1])


def _make_recording(path, n=500):
    rng = np.random.default_rng(0)
    with RecordingWriter(path) as w:
        w.set_meta("source", "sim")
        w.set_meta("source_info", {"source": "sim", "model": "gaze3d simulator"})
        samples = []
        for i in range(n):
            valid = i % 50 != 7
            x, y = rng.uniform(0, 1, 2)
            samples.append({"topic": "gaze.2d", "seq": i, "t_host_ns": T0 + i * 833_333, "t_device": i / 1200,
                            "gaze": [x, y] if valid else [None, None], "valid": valid,
                            "left": {"valid": valid, "pupil_mm": 3.0 + 0.001 * i}})
        w.add_samples(samples)
        w.add_camera(T0 + 1000, CAM)
        w.add_event(T0 + 200_000_000, {"type": "label", "label": "building"})
        w.add_event(T0 + 300_000_000, {"type": "tracker.disconnected", "error": "cable"})
    return samples


def _gz_rows(path):
    return [line.split("\t") for line in gzip.decompress(path.read_bytes()).decode().splitlines()]


def test_export_layout_sidecar_and_events(tmp_path):
    rec = tmp_path / "session.gaze3d"
    _make_recording(rec)
    paths = export_bids(rec, tmp_path / "bids", subject="01", task="label", run=2)
    beh = tmp_path / "bids" / "sub-01" / "beh"
    assert paths["eyetrack"] == beh / "sub-01_task-label_run-2_recording-eye1_physio.tsv.gz"
    assert paths["physioevents"] == beh / "sub-01_task-label_run-2_recording-eye1_physioevents.tsv.gz"
    assert paths["events"] == beh / "sub-01_task-label_run-2_events.tsv"
    assert json.loads(paths["dataset_description"].read_text())["BIDSVersion"].startswith("1.1")
    side = json.loads(paths["sidecar"].read_text())
    assert side["Columns"] == ["timestamp", "x_coordinate", "y_coordinate", "pupil_size", "valid"]
    assert side["PhysioType"] == "eyetrack" and side["RecordedEye"] == "cyclopean"
    assert side["SampleCoordinateSystem"] == "gaze-on-screen" and side["StartTime"] == 0.0
    assert side["SamplingFrequency"] == pytest.approx(1200, rel=1e-3)
    assert side["x_coordinate"]["Units"] == "pixel" and side["timestamp"]["Units"] == "s"
    assert side["Manufacturer"] == "gaze3d" and side["ManufacturersModelName"] == "gaze3d simulator"
    for draft_only in ("SampleCoordinateUnits", "EnvironmentCoordinates", "ScreenResolution"):
        assert draft_only not in side
    assert side["gaze3d"]["t0_host_ns"] == T0
    rows = _gz_rows(paths["eyetrack"])
    assert len(rows) == 500 and rows[0][0] == "0.000000000"  # no header row
    assert rows[7][1:3] == ["n/a", "n/a"] and rows[7][-1] == "0"
    s = Recording(rec).samples()
    assert float(rows[3][1]) == pytest.approx(s["x"][3] * 1920, abs=1e-4)
    pres = json.loads(paths["events_sidecar"].read_text())["StimulusPresentation"]
    assert pres == {"ScreenDistance": 0.65, "ScreenOrigin": ["top", "left"], "ScreenResolution": [1920, 1080],
                    "ScreenSize": [0.527, 0.296], "SoftwareName": "gaze3d"}
    pe = _gz_rows(paths["physioevents"])
    assert [r[2] for r in pe] == ["recording", "camera", "label", "tracker.disconnected"]
    assert json.loads(pe[1][3])["position"] == [1.0, 2.0, 3.0]
    events = paths["events"].read_text().splitlines()
    assert events[0].split("\t") == ["onset", "duration", "trial_type", "event_json"]
    assert [e.split("\t")[2] for e in events[1:]] == ["recording", "label"]  # tracker events: physioevents only
    umask = os.umask(0o022)
    os.umask(umask)
    for p in paths.values():  # the permissions of any new file, not mkstemp's 0600
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~umask, p


def test_roundtrip_export_import_keeps_samples_events_cameras(tmp_path):
    rec = tmp_path / "session.gaze3d"
    _make_recording(rec)
    paths = export_bids(rec, tmp_path / "bids")
    out = import_bids(paths["eyetrack"], tmp_path / "imported.gaze3d")
    a, b = Recording(rec), Recording(out)
    sa, sb = a.samples(), b.samples()
    np.testing.assert_array_equal(sa["t_host_ns"], sb["t_host_ns"])
    np.testing.assert_array_equal(sa["valid"], sb["valid"])
    np.testing.assert_allclose(sa["x"], sb["x"], atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(sa["pupil_mm"], sb["pupil_mm"], atol=1e-4, equal_nan=True)
    assert b.events() == a.events()
    ta, ca = a.camera_frames()
    tb, cb = b.camera_frames()
    assert ta.tolist() == tb.tolist() and np.allclose(ca[0].position, cb[0].position)
    assert b.meta["source"] == "sim" and b.meta["original_meta"]["source"] == "sim"


def test_custom_display_pixels_round_trip(tmp_path):
    rec = tmp_path / "r.gaze3d"
    _make_recording(rec, n=20)
    display = DisplayGeometry(width_mm=600, height_mm=340, width_px=2560, height_px=1440, distance_mm=700)
    paths = export_bids(rec, tmp_path, "sub-02_task-look", display=display)
    pres = json.loads(paths["events_sidecar"].read_text())["StimulusPresentation"]
    assert pres["ScreenResolution"] == [2560, 1440] and pres["ScreenDistance"] == 0.7
    cols, _ = read_bids_eyetrack(paths["eyetrack"])  # the resolution comes from the events sidecar
    np.testing.assert_allclose(cols["x"], Recording(rec).samples()["x"], atol=1e-6, equal_nan=True)


def test_import_foreign_physio_file_in_milliseconds_and_pixels(tmp_path):
    """A file as another tool writes it: _physio.tsv.gz, ms timestamps, pixels, free-text physioevents."""
    tsv = tmp_path / "sub-02_task-free_recording-eye1_physio.tsv.gz"
    rows = ["1000\t960.0\t540.0\t4000", "1002\tn/a\tn/a\tn/a", "1004\t0\t1080\t4100"]
    tsv.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    (tmp_path / "sub-02_task-free_recording-eye1_physio.json").write_text(json.dumps({
        "PhysioType": "eyetrack", "SamplingFrequency": 500, "StartTime": 0,
        "Columns": ["timestamp", "x_coordinate", "y_coordinate", "pupil_size"],
        "timestamp": {"Units": "ms"}, "SampleCoordinateUnits": "pixel", "ScreenResolution": [1920, 1080]}))
    (tmp_path / "sub-02_task-free_recording-eye1_physioevents.tsv.gz").write_bytes(
        gzip.compress(b"1002\tn/a\tn/a\tSYNCTIME\n"))
    out = import_bids(tsv, tmp_path / "foreign.gaze3d")
    rec = Recording(out)
    s = rec.samples()
    np.testing.assert_allclose(s["x"], [0.5, np.nan, 0.0])
    np.testing.assert_allclose(s["y"], [0.5, np.nan, 1.0])
    assert s["valid"].tolist() == [True, False, True]
    np.testing.assert_array_equal(np.diff(s["t_host_ns"]), [2_000_000, 2_000_000])
    np.testing.assert_allclose(s["t_device"], [1.0, 1.002, 1.004])
    assert rec.events() == [{"message": "SYNCTIME", "t_host_ns": 1_002_000_000}]


def test_import_gaze3d_earlier_flat_eyetrack_files(tmp_path):
    """Files gaze3d exported before the physio layout: _eyetrack.tsv.gz, _events.tsv with event_json, _cameras.tsv."""
    (tmp_path / "s_eyetrack.tsv.gz").write_bytes(gzip.compress(b"0.0\t0.25\t0.5\t3.0\t1\n0.01\t0.3\t0.5\t3.0\t1\n"))
    (tmp_path / "s_eyetrack.json").write_text(json.dumps({
        "Columns": ["timestamp", "x_coordinate", "y_coordinate", "pupil_size", "valid"],
        "SampleCoordinateUnits": "normalized", "gaze3d": {"t0_host_ns": T0, "meta": {"source": "sim"}}}))
    (tmp_path / "s_events.tsv").write_text('onset\tduration\ttrial_type\tevent_json\n'
                                           '0.005\tn/a\tlabel\t"{""type"": ""label"", ""label"": ""roof""}"\n')
    (tmp_path / "s_cameras.tsv").write_text("onset\tcamera_json\n0.0\t" + json.dumps(CAM.to_dict()) + "\n")
    rec = Recording(import_bids(tmp_path / "s_eyetrack.tsv.gz", tmp_path / "old.gaze3d"))
    assert rec.samples()["x"].tolist() == [0.25, 0.3]
    assert rec.events() == [{"type": "label", "label": "roof", "t_host_ns": T0 + 5_000_000}]
    assert len(rec.camera_frames()[1]) == 1


def test_bad_files_are_clear_errors(tmp_path):
    tsv = tmp_path / "x_eyetrack.tsv.gz"
    tsv.write_bytes(gzip.compress(b"0\t1\t1\n"))
    with pytest.raises(InputError, match="sidecar"):
        read_bids_eyetrack(tsv)
    side = tmp_path / "x_eyetrack.json"
    side.write_text(json.dumps({"Columns": ["timestamp", "x_coordinate"]}))
    with pytest.raises(InputError, match="y_coordinate"):
        read_bids_eyetrack(tsv)
    side.write_text(json.dumps({"Columns": ["timestamp", "x_coordinate", "y_coordinate"],
                                "SampleCoordinateUnits": "pixel"}))
    with pytest.raises(InputError, match="ScreenResolution"):
        read_bids_eyetrack(tsv)
    side.write_text(json.dumps({"Columns": ["timestamp", "x_coordinate", "y_coordinate"],
                                "SampleCoordinateUnits": "normalized"}))
    tsv.write_bytes(gzip.compress(b"0\tabc\t1\n"))
    with pytest.raises(InputError, match="row 1, column x_coordinate"):
        read_bids_eyetrack(tsv)
    empty = tmp_path / "empty.gaze3d"
    RecordingWriter(empty).close()
    with pytest.raises(InputError, match="no 'gaze.2d' samples"):
        export_bids(empty, tmp_path / "out")
    rec = tmp_path / "r.gaze3d"
    _make_recording(rec, n=5)
    with pytest.raises(InputError, match="letters and digits"):
        export_bids(rec, tmp_path / "out", subject="0_1")
    with pytest.raises(InputError, match="key-value"):
        export_bids(rec, tmp_path / "out", "subject01")


def test_record_cli_info_export_import(tmp_path, capsys):
    rec = tmp_path / "s.gaze3d"
    _make_recording(rec, n=100)
    assert cli_main(["record", "info", str(rec), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["topics"]["gaze.2d"]["samples"] == 100 and info["topics"]["gaze.2d"]["seq_missing"] == 0
    assert info["camera_frames"] == 1 and info["events"] == 2
    assert cli_main(["record", "export", str(rec), str(tmp_path / "b"), "--sub", "01", "--task", "look",
                     "--screen", "1280x720", "--screen-mm", "300", "200", "--distance-mm", "550"]) == 0
    captured = capsys.readouterr()
    assert "not given" not in captured.err
    physio = tmp_path / "b" / "sub-01" / "beh" / "sub-01_task-look_recording-eye1_physio.tsv.gz"
    assert f"eyetrack: {physio}" in captured.out
    assert cli_main(["record", "import", str(physio), str(tmp_path / "back.gaze3d")]) == 0
    back = Recording(tmp_path / "back.gaze3d")
    assert len(back) == 100
    np.testing.assert_allclose(back.samples()["x"], Recording(rec).samples()["x"], atol=1e-6, equal_nan=True)
    assert cli_main(["record", "import", str(physio), str(tmp_path / "back.gaze3d")]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["record", "export", str(rec), str(tmp_path / "c")]) == 0
    assert "--screen, --screen-mm, --distance-mm not given" in capsys.readouterr().err


# ------------------------------------------------------------- the validator
def _validate(dataset) -> list:
    """Errors that bids-validator-deno (offline, bundled schema) reports for ``dataset``."""
    pytest.importorskip("bids_validator_deno", reason="bids-validator-deno is not installed "
                        "(pip install bids-validator-deno)")
    code = "import sys; from bids_validator_deno import cli; sys.argv[0] = 'bids-validator'; cli()"
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-c", code, str(dataset), "--format", "json"], capture_output=True,
                          text=True, timeout=240, env=env)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"validator gave no JSON (rc {proc.returncode}): {proc.stderr[-2000:]}") from None
    return [(i["code"], i.get("location"), i.get("issueMessage")) for i in report["issues"]["issues"]
            if i.get("severity") == "error"]


def _record_with_tracker(tmp_path, source, options, name, seconds=1.0):
    """A recording made by a real tracker process, with an annotation event and a camera frame."""
    from gaze3d.tracker.client import TrackerControl
    from gaze3d.tracker.process import start_tracker

    path = tmp_path / f"{name}.gaze3d"
    with start_tracker(source, options, record=path) as tr, TrackerControl(tr.ctrl_address) as ctl:
        deadline = time.monotonic() + 20
        while ctl.status()["recorded_samples"] < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        ctl.send_camera(ctl.tracker_time_ns(), CAM)
        ctl.send_event({"type": "label", "label": "building"})
        time.sleep(seconds)
        n = ctl.stop_recording()["samples"]
    assert n >= 50, f"{source}: only {n} samples recorded"
    return path


def _export_and_validate(tmp_path, rec_path, name):
    out = tmp_path / f"bids-{name}"
    paths = export_bids(rec_path, out, subject=name, task="gaze3d")
    assert _validate(out) == []
    return paths


@pytest.mark.timeout(180)
def test_validator_accepts_sim_and_replay_recordings(tmp_path):
    sim = _record_with_tracker(tmp_path, "sim", {"rate": 600, "seed": 1}, "sim")
    paths = _export_and_validate(tmp_path, sim, "sim")
    side = json.loads(paths["sidecar"].read_text())
    # the source's info is recorded once the source is open: the model is known
    assert side["ManufacturersModelName"] == "gaze3d simulator" and side["Manufacturer"] == "gaze3d"
    replay = _record_with_tracker(tmp_path, "replay", {"path": sim, "speed": 2, "loop": "true"}, "replay")
    _export_and_validate(tmp_path, replay, "replay")
    # a dataset exported, imported and exported again stays valid
    back = import_bids(paths["eyetrack"], tmp_path / "back.gaze3d")
    _export_and_validate(tmp_path, back, "back")


@pytest.mark.timeout(180)
def test_validator_accepts_lsl_recording(tmp_path):
    pytest.importorskip("pylsl", reason="pylsl (gaze3d[lsl]) is not installed")
    from sources_helpers import start_helper, stop_process

    stream = f"g3dbids{uuid.uuid4().hex[:8]}"
    proc, _ = start_helper("lsl-outlet", "--name", stream, "--rate", "200")
    try:
        rec = _record_with_tracker(tmp_path, "lsl", {"name": stream, "channels": "x:0,y:1,valid:2",
                                                     "resolve_timeout": "10"}, "lsl")
    finally:
        stop_process(proc)
    paths = _export_and_validate(tmp_path, rec, "lsl")
    assert "ManufacturersModelName" not in json.loads(paths["sidecar"].read_text())  # unknown: omitted, not n/a
