"""``gaze3d calibrate``: validate / correct / drift / profiles, exit codes and one-line errors."""
import json
import re
import subprocess
import sys

import pytest

from gaze3d.cli import main


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("GAZE3D_CONFIG_DIR", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def _one_line_error(err: str, pattern: str):
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1, err
    assert lines[0].startswith("gaze3d calibrate: error: ") and re.search(pattern, lines[0]), lines[0]


def test_validate_headless_reports_offset_and_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "val"
    rc = main(["calibrate", "validate", "--points", "9", "--headless", "--sim-offset", "0.8,-0.5",
               "--sim-precision", "0.1", "--seed", "3", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    m = re.search(r"offset \(([-+\d.]+), ([-+\d.]+)\) deg, precision RMS-S2S ([\d.]+)", text)
    assert abs(float(m.group(1)) - 0.8) < 0.1 and abs(float(m.group(2)) + 0.5) < 0.1
    assert float(m.group(3)) == pytest.approx(0.1, rel=0.1)
    rep = json.loads((out / "validation.json").read_text())
    assert rep["summary"]["passed"] and len(rep["targets"]) == 9
    assert (out / "validation.png").read_bytes()[:4] == b"\x89PNG"


def test_validate_below_thresholds_exits_1(capsys):
    rc = main(["calibrate", "validate", "--headless", "--sim-offset", "1.5,0", "--points", "5"])
    assert rc == 1 and "FAIL" in capsys.readouterr().out
    rc = main(["calibrate", "validate", "--headless", "--sim-offset", "0.5,0", "--points", "5",
               "--accuracy-max", "0.3"])
    assert rc == 1


def test_correct_saves_profile_and_validation_with_it_is_accurate(capsys, config):
    rc = main(["calibrate", "correct", "--points", "13", "--headless", "--sim-offset", "0.9,-0.6",
               "--sim-precision", "0.08", "--profile", "alice", "--annotator", "alice", "--kind", "affine"])
    text = capsys.readouterr().out
    assert rc == 0, text
    m = re.search(r"held-out accuracy \(targets \[9, 10, 11, 12\], affine\): before ([\d.]+) deg, "
                  r"after ([\d.]+) deg", text)
    assert float(m.group(1)) > 0.9 and float(m.group(2)) < 0.2
    prof = json.loads((config / "profiles" / "alice.json").read_text())
    assert prof["correction"]["kind"] == "affine" and prof["annotator"] == "alice"
    # a new session of the same annotator, validated through the profile's correction
    rc = main(["calibrate", "validate", "--headless", "--sim-offset", "0.9,-0.6", "--sim-precision", "0.08",
               "--seed", "5", "--profile", "alice"])
    text = capsys.readouterr().out
    assert rc == 0
    assert float(re.search(r"profile alice\): accuracy ([\d.]+)", text).group(1)) < 0.2
    # drift: the annotator's gaze moved 1.5 deg since; the selected profile is applied
    assert main(["calibrate", "profiles", "select", "alice"]) == 0
    assert main(["calibrate", "drift", "--headless", "--sim-offset", "0.9,-0.6"]) == 0
    assert "drift ok" in capsys.readouterr().out
    assert main(["calibrate", "drift", "--headless", "--sim-offset", "2.4,-0.6"]) == 1
    assert "DRIFT ALERT" in capsys.readouterr().out


def test_profiles_commands(capsys, config):
    assert main(["calibrate", "profiles", "list"]) == 0
    assert "no profiles" in capsys.readouterr().out
    main(["calibrate", "correct", "--headless", "--profile", "bob"])
    capsys.readouterr()
    assert main(["calibrate", "profiles", "select", "bob"]) == 0
    assert main(["calibrate", "profiles", "list"]) == 0
    assert "* bob" in capsys.readouterr().out
    assert main(["calibrate", "profiles", "show", "bob"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "bob"
    assert main(["calibrate", "profiles", "delete", "bob"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "profiles", "show", "bob"]) == 2
    _one_line_error(capsys.readouterr().err, r"profile 'bob': not found in .*profiles \(available: none\)")


@pytest.mark.parametrize("argv, pattern", [
    (["validate", "--headless", "--profile", "nobody"], r"profile 'nobody': not found"),
    (["validate", "--headless", "--viewer-window", "2000,100,800,600"],
     r"viewer window \(x=2000, y=100, 800 x 600\) is outside the tracker's display area"),
    (["validate", "--headless", "--viewer-window", "1500,100,800,600"], r"partly outside"),
    (["validate", "--headless", "--sim-dropout", "0.5", "--min-samples", "500"],
     r"target \d+ at \(.*\): \d+ usable valid samples .* need at least 500"),
    (["validate", "--headless", "--sim-offset", "1,x"], r"--sim-offset: expected 2 comma-separated numbers"),
    (["validate"], r"no gaze: pass --headless"),
    (["drift", "--headless", "--target", "1.5,0.5"], r"--target: expected tracker coordinates in \[0, 1\]"),
    (["correct", "--headless", "--points", "5", "--kind", "poly2", "--holdout", "0"],
     r"poly2: needs at least 6 targets"),
    (["validate", "--recording", "missing.sqlite"], r"missing.sqlite: no such recording"),
])
def test_bad_input_is_one_line_and_exit_2(argv, pattern, capsys):
    assert main(["calibrate", *argv]) == 2
    _one_line_error(capsys.readouterr().err, pattern)


def test_exit_code_2_from_a_real_process(tmp_path):
    env = {"GAZE3D_CONFIG_DIR": str(tmp_path / "cfg"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "gaze3d", "calibrate", "validate", "--headless", "--profile", "x"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    _one_line_error(p.stderr, "profile 'x': not found")


def test_validate_a_recorded_session_with_target_events(tmp_path, capsys):
    """The viewer path: targets announced as events in a recording; validation read back from the file."""
    from calib_helpers import write_session_recording
    from gaze3d.calib.session import simulate_validation
    data, pres = simulate_validation(9, offset_deg=(0.4, 0.7), precision_rms_deg=0.1, seed=13)
    path = tmp_path / "session.sqlite"
    write_session_recording(path, data, pres)
    rc = main(["calibrate", "validate", "--recording", str(path)])
    text = capsys.readouterr().out
    assert rc == 0, text
    m = re.search(r"offset \(([-+\d.]+), ([-+\d.]+)\) deg, precision RMS-S2S ([\d.]+)", text)
    assert abs(float(m.group(1)) - 0.4) < 0.1 and abs(float(m.group(2)) - 0.7) < 0.1
    assert float(m.group(3)) == pytest.approx(0.1, rel=0.1)
