"""BIDS-style eye-tracking export and import (real files, gzip TSV + JSON sidecar)."""
import gzip
import json

import numpy as np
import pytest

from gaze3d.bids import export_bids, import_bids, read_bids_eyetrack
from gaze3d.camera import Camera
from gaze3d.cli import main as cli_main
from gaze3d.errors import InputError
from gaze3d.recording import Recording, RecordingWriter

T0 = 5_000_000_000


def _make_recording(path, n=500):
    rng = np.random.default_rng(0)
    with RecordingWriter(path) as w:
        w.set_meta("source", "sim")
        w.set_meta("source_info", {"source": "sim", "model": "simulator"})
        samples = []
        for i in range(n):
            valid = i % 50 != 7
            x, y = rng.uniform(0, 1, 2)
            samples.append({"topic": "gaze.2d", "seq": i, "t_host_ns": T0 + i * 833_333, "t_device": i / 1200,
                            "gaze": [x, y] if valid else [None, None], "valid": valid,
                            "left": {"valid": valid, "pupil_mm": 3.0 + 0.001 * i}})
        w.add_samples(samples)
        w.add_camera(T0 + 1000, Camera(position=[1, 2, 3], focal_point=[0, 0, 0], view_up=[0, 0, 1]))
        w.add_event(T0 + 200_000_000, {"type": "label", "label": "building"})
    return samples


def test_export_writes_headerless_tsv_and_sidecar(tmp_path):
    rec = tmp_path / "session.sqlite"
    _make_recording(rec)
    paths = export_bids(rec, tmp_path / "bids", "sub-01_task-label")
    assert paths["eyetrack"].name == "sub-01_task-label_eyetrack.tsv.gz"
    side = json.loads(paths["sidecar"].read_text())
    assert side["Columns"] == ["timestamp", "x_coordinate", "y_coordinate", "pupil_size", "valid"]
    assert side["PhysioType"] == "eyetrack" and side["SampleCoordinateUnits"] == "normalized"
    assert side["SamplingFrequency"] == pytest.approx(1200, rel=1e-3)
    assert side["timestamp"]["Units"] == "s" and side["gaze3d"]["t0_host_ns"] == T0
    lines = gzip.decompress(paths["eyetrack"].read_bytes()).decode().splitlines()
    assert len(lines) == 500 and lines[0].split("\t")[0] == "0.000000000"  # no header row
    assert lines[7].split("\t")[1:3] == ["n/a", "n/a"] and lines[7].endswith("\t0")
    assert "label" in paths["events"].read_text() and "position" in paths["cameras"].read_text()


def test_roundtrip_export_import_keeps_samples_events_cameras(tmp_path):
    rec = tmp_path / "session.sqlite"
    _make_recording(rec)
    paths = export_bids(rec, tmp_path / "bids")
    out = import_bids(paths["eyetrack"], tmp_path / "imported.sqlite")
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


def test_pixel_export_and_import(tmp_path):
    rec = tmp_path / "r.sqlite"
    _make_recording(rec, n=20)
    paths = export_bids(rec, tmp_path, "px", screen_size_px=(1920, 1080))
    side = json.loads(paths["sidecar"].read_text())
    assert side["SampleCoordinateUnits"] == "pixel" and side["ScreenResolution"] == [1920, 1080]
    cols, _ = read_bids_eyetrack(paths["eyetrack"])
    np.testing.assert_allclose(cols["x"], Recording(rec).samples()["x"], atol=1e-6, equal_nan=True)


def test_import_foreign_physio_file_in_milliseconds_and_pixels(tmp_path):
    """A file as another tool writes it: _physio.tsv.gz, ms timestamps, pixels, no gaze3d block."""
    tsv = tmp_path / "sub-02_task-free_recording-eye1_physio.tsv.gz"
    rows = ["1000\t960.0\t540.0\t4000", "1002\tn/a\tn/a\tn/a", "1004\t0\t1080\t4100"]
    tsv.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    (tmp_path / "sub-02_task-free_recording-eye1_physio.json").write_text(json.dumps({
        "PhysioType": "eyetrack", "SamplingFrequency": 500, "StartTime": 0,
        "Columns": ["timestamp", "x_coordinate", "y_coordinate", "pupil_size"],
        "timestamp": {"Units": "ms"}, "SampleCoordinateUnits": "pixel", "ScreenResolution": [1920, 1080]}))
    out = import_bids(tsv, tmp_path / "foreign.sqlite")
    s = Recording(out).samples()
    np.testing.assert_allclose(s["x"], [0.5, np.nan, 0.0])
    np.testing.assert_allclose(s["y"], [0.5, np.nan, 1.0])
    assert s["valid"].tolist() == [True, False, True]
    np.testing.assert_array_equal(np.diff(s["t_host_ns"]), [2_000_000, 2_000_000])
    np.testing.assert_allclose(s["t_device"], [1.0, 1.002, 1.004])


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
    empty = tmp_path / "empty.sqlite"
    RecordingWriter(empty).close()
    with pytest.raises(InputError, match="no 'gaze.2d' samples"):
        export_bids(empty, tmp_path / "out")


def test_record_cli_info_export_import(tmp_path, capsys):
    rec = tmp_path / "s.sqlite"
    _make_recording(rec, n=100)
    assert cli_main(["record", "info", str(rec), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["topics"]["gaze.2d"]["samples"] == 100 and info["topics"]["gaze.2d"]["seq_missing"] == 0
    assert info["camera_frames"] == 1 and info["events"] == 1
    assert cli_main(["record", "export", str(rec), str(tmp_path / "b"), "--prefix", "sub-01"]) == 0
    assert cli_main(["record", "import", str(tmp_path / "b" / "sub-01_eyetrack.tsv.gz"),
                     str(tmp_path / "back.sqlite")]) == 0
    assert len(Recording(tmp_path / "back.sqlite")) == 100
    assert cli_main(["record", "import", str(tmp_path / "b" / "sub-01_eyetrack.tsv.gz"),
                     str(tmp_path / "back.sqlite")]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err


def test_physio_style_names_and_import_finds_events(tmp_path):
    rec = tmp_path / "s.sqlite"
    _make_recording(rec, n=30)
    paths = export_bids(rec, tmp_path / "b", "sub-01_task-label", style="physio")
    assert paths["eyetrack"].name == "sub-01_task-label_recording-eye1_physio.tsv.gz"
    assert paths["sidecar"].name == "sub-01_task-label_recording-eye1_physio.json"
    assert paths["events"].name == "sub-01_task-label_events.tsv"
    back = Recording(import_bids(paths["eyetrack"], tmp_path / "back.sqlite"))
    assert len(back) == 30 and back.events()[0]["label"] == "building" and len(back.camera_frames()[1]) == 1
    with pytest.raises(InputError, match="style"):
        export_bids(rec, tmp_path / "c", style="csv")
