"""Bad input to ``gaze3d calibrate`` and ``gaze3d record``: one ``error:`` line, exit 2, nothing half-written."""
import gzip
import json
import re
import sqlite3
import warnings

import pytest

from gaze3d.camera import Camera
from gaze3d.cli import main
from gaze3d.errors import InputError
from gaze3d.recording import Recording, RecordingWriter


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("GAZE3D_CONFIG_DIR", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def _fails(capsys, argv, command, pattern):
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gaze3d {command}: error: ") and re.search(pattern, lines[0]), lines[0]


# --- calibrate --------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, pattern", [
    (["validate", "--headless", "--seed=-1"], r"--seed: expected an integer >= 0"),
    (["drift", "--headless", "--seed=-1"], r"--seed: expected an integer >= 0"),
    (["validate", "--headless", "--dwell=1e99"], r"--dwell: expected seconds in \(0, 60\]"),
    (["drift", "--headless", "--dwell=1e99"], r"--dwell"),
    (["validate", "--headless", "--dwell=0"], r"--dwell"),
    (["validate", "--headless", "--dwell=nan"], r"--dwell"),
    (["validate", "--headless", "--screen-px=1e99,1e99"], r"--screen-px .*whole numbers of pixels"),
    (["validate", "--headless", "--screen-px", "1.5,2.5"], r"--screen-px"),
    (["drift", "--headless", "--screen-px", "100000,1080"], r"--screen-px"),
    (["device", "--tracker=x"], r"--tracker 'x': expected an address such as tcp://"),
    (["device", "--tracker=tcp://127.0.0.1:0"], r"--tracker"),
    (["device", "--pupil-remote=x"], r"--pupil-remote 'x'"),
    (["device", "--pupil-remote=tcp://127.0.0.1:70000"], r"--pupil-remote"),
    (["device", "--pupil-remote="], r"--pupil-remote"),
    (["validate", "--tracker", "x"], r"--tracker 'x'"),
    (["validate", "--tracker", "tcp://127.0.0.1:5556,ipc://"], r"--tracker 'ipc://'"),
    (["validate", "--headless", "--sim-offset=1e99,1e99"], r"--sim-offset .*expected at most"),
    (["validate", "--headless", "--sim-offset", "100,100"], r"--sim-offset"),
    (["drift", "--headless", "--sim-offset", "0,-85"], r"--sim-offset"),
    (["validate", "--headless", "--out", ""], r"--out: expected a folder name"),
    (["correct", "--headless", "--profile="], r"--profile"),
    (["drift", "--headless", "--profile="], r"--profile"),
    (["validate", "--headless", "--profile="], r"--profile"),
    (["profiles", "show", "-x"], r"unrecognized arguments: -x"),
])
def test_calibrate_bad_values_are_one_line_errors(capsys, argv, pattern):
    _fails(capsys, ["calibrate", *argv], "calibrate", pattern)


def test_calibrate_out_that_is_a_file(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("keep")
    _fails(capsys, ["calibrate", "validate", "--headless", "--out", str(text)], "calibrate", r"is a file")
    _fails(capsys, ["calibrate", "correct", "--headless", "--out", str(text / "sub")], "calibrate",
           r"is a file, not a folder")
    assert text.read_text() == "keep"


def test_sim_offset_within_the_bound_still_works(capsys):
    assert main(["calibrate", "validate", "--headless", "--points", "5", "--sim-offset", "30,0"]) == 1
    assert "offset (+29.9" in capsys.readouterr().out


@pytest.mark.parametrize("coef", [[["x", "y"], [1, 0], [0, 1]], [[1, 0], [0], [0, 1]], {"a": 1}])
@pytest.mark.parametrize("argv", [["validate", "--headless", "--profile", "bad"], ["profiles", "select", "bad"],
                                  ["profiles", "show", "bad"]])
def test_profile_with_bad_coef_names_file_and_field(config, capsys, coef, argv):
    (config / "profiles").mkdir(parents=True)
    (config / "profiles" / "bad.json").write_text(json.dumps(
        {"name": "bad", "correction": {"kind": "affine", "coef": coef}}))
    _fails(capsys, ["calibrate", *argv], "calibrate", r"bad\.json: correction coef: expected 3 x 2")
    assert not (config / "selected_profile.json").exists()


# --- record -----------------------------------------------------------------------------------------
def _recording(path, n=20, camera=True):
    with RecordingWriter(path) as w:
        w.add_samples([{"topic": "gaze.2d", "seq": i, "t_host_ns": 10**9 + i * 10**7, "t_device": i / 100,
                        "gaze": [0.5, 0.5], "valid": True} for i in range(n)])
        if camera:
            w.add_camera(10**9, Camera(position=[1, 2, 3], focal_point=[0, 0, 0], view_up=[0, 0, 1]))
    return path


def _break_camera(path):
    db = sqlite3.connect(path)
    db.execute("UPDATE cameras SET camera = x'9100c1c1'")      # extra bytes: not one msgpack object
    db.commit()
    db.close()


def test_export_of_damaged_recording_leaves_nothing(tmp_path, capsys):
    rec = _recording(tmp_path / "badcam.gaze3d")
    _break_camera(rec)
    out = tmp_path / "bids4"
    _fails(capsys, ["record", "export", str(rec), str(out)], "record", r"recording is damaged")
    assert not out.exists()
    # an existing dataset keeps what it had, and gets nothing of the failed export
    out.mkdir()
    (out / "dataset_description.json").write_text("{}")
    _fails(capsys, ["record", "export", str(rec), str(out)], "record", r"recording is damaged")
    assert sorted(p.name for p in out.rglob("*")) == ["dataset_description.json"]


def test_damaged_camera_message_is_not_nested(tmp_path):
    rec = _recording(tmp_path / "badcam.gaze3d")
    _break_camera(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Recording(rec) as r, pytest.raises(InputError) as exc:
            r.camera_frames()
    assert str(exc.value).count("recording is damaged") == 1, exc.value


def test_export_warns_in_one_line_on_checksum_damage(tmp_path, capsys):
    rec = _recording(tmp_path / "s.gaze3d", camera=False)
    db = sqlite3.connect(rec)
    db.execute("UPDATE samples SET x = 0.25 WHERE seq = 3")
    db.commit()
    db.close()
    assert main(["record", "export", str(rec), str(tmp_path / "b")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line.lower()]
    assert len(err) == 1 and err[0].startswith("gaze3d record: warning: "), err


@pytest.mark.parametrize("argv, pattern", [
    (["export", "{rec}", ""], r"out_dir: expected the BIDS dataset folder name"),
    (["export", "{rec}", "{tmp}/b", "--run=x"], r"--run: expected a run index"),
    (["export", "{rec}", "{tmp}/b", "--run=-1"], r"--run"),
    (["check", "{rec}", "--salvage", ""], r"--salvage: expected a new OUT\.gaze3d"),
    (["check", "{rec}", "--salvage", "{tmp}/x.txt"], r"--salvage .*x\.txt: expected .*\.gaze3d"),
    (["import", "x.csv", "{tmp}/o.gaze3d", "--format", "edvam", "--min-confidence", "-1"],
     r"--min-confidence: expected a confidence in \[0, 1\]"),
    (["import", "x.csv", "{tmp}/o.gaze3d", "--format", "edvam", "--min-confidence", "nan"], r"--min-confidence"),
])
def test_record_bad_options(tmp_path, capsys, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    rec = _recording(tmp_path / "s.gaze3d")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    _fails(capsys, ["record", *[a.format(rec=rec, tmp=tmp_path) for a in argv]], "record", pattern)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


COLUMNS = ["timestamp", "x_coordinate", "y_coordinate"]


@pytest.mark.parametrize("sidecar, rows, pattern", [
    ([1], b"0\t1\t1\n", r"d_physio\.json: expected a JSON object"),
    ({"Columns": COLUMNS, "gaze3d": {"t0_host_ns": "abc"}}, b"0\t1\t1\n",
     r"d_physio\.json: gaze3d\.t0_host_ns: expected a non-negative integer"),
    ({"Columns": COLUMNS, "gaze3d": {"t0_host_ns": -5}}, b"0\t1\t1\n", r"gaze3d\.t0_host_ns"),
    ({"Columns": COLUMNS, "gaze3d": {"meta": [1]}}, b"0\t1\t1\n", r"gaze3d\.meta"),
    ({"Columns": COLUMNS, "ScreenResolution": ["a", 2]}, b"0\t1\t1\n", r"ScreenResolution"),
    ({"Columns": COLUMNS}, b"", r"d_physio\.tsv\.gz: no samples"),
    ({"Columns": COLUMNS}, b"0.1\t1\t1\n0.0\t1\t1\n", r"timestamps must be non-decreasing \(row 2"),
])
def test_import_bad_sidecar_or_rows(tmp_path, capsys, sidecar, rows, pattern):
    tsv = tmp_path / "d_physio.tsv.gz"
    tsv.write_bytes(gzip.compress(rows))
    (tmp_path / "d_physio.json").write_text(json.dumps(sidecar))
    screen = [] if "ScreenResolution" in str(sidecar) else ["--screen", "1920x1080"]
    _fails(capsys, ["record", "import", str(tsv), str(tmp_path / "out.gaze3d"), *screen], "record", pattern)
    assert not (tmp_path / "out.gaze3d").exists()
