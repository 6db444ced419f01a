"""Bad input to ``gaze3d tracker`` and ``gaze3d keys``: one error line, exit 2, nothing started or written.

Each case runs the CLI as a subprocess with a timeout: a value that slipped
through would start a tracker that runs (or retries) for ever.
"""
import subprocess
import sys

import numpy as np
import pytest

from gaze3d.tracker.keys import generate_keys

pytestmark = pytest.mark.timeout(120)


def _gaze3d(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gaze3d", *args], capture_output=True, text=True, timeout=30,
                          cwd=cwd)


def _assert_one_error(r, command, *words):
    lines = r.stderr.splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith(f"gaze3d {command}: error:"), r.stderr
    assert r.stdout == ""  # the tracker never got as far as printing its addresses
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("args, word", [
    (["--source", "module::X"], "module::X"),
    (["--source", "module:.rel:X"], "cannot import"),
    (["--source", "module:os:"], "module:pkg.mod:Class"),
    (["--sndhwm=-1"], "--sndhwm"),
    (["--sndhwm=99999999999999"], "--sndhwm"),
    (["--sndbuf=99999999999999"], "--sndbuf"),
    (["--sndbuf=0"], "--sndbuf"),
    (["--backoff-s", "-1", "5"], "--backoff-s"),
    (["--backoff-s", "nan", "nan"], "--backoff-s"),
    (["--backoff-s", "0", "0"], "--backoff-s"),
    (["--backoff-s", "inf", "inf"], "--backoff-s"),
    (["--backoff-s", "5", "1"], "FIRST <= MAX"),
    (["--heartbeat-s", "nan"], "--heartbeat-s"),
    (["--heartbeat-s", "inf"], "--heartbeat-s"),
    (["--heartbeat-s", "0"], "--heartbeat-s"),
    (["--log-level=x"], "--log-level"),
    (["--pub=tcp://127.0.0.1:99999"], "--pub"),
    (["--pub=tcp://127.0.0.1:-1"], "--pub"),
    (["--pub=tcp://127.0.0.1:0"], "--pub"),
    (["--pub="], "--pub"),
    (["--ctrl=tcp://127.0.0.1:abc"], "--ctrl"),
    (["--ctrl=tcp://:5555"], "--ctrl"),
])
def test_tracker_refuses_bad_options(args, word):
    if "--source" not in args:
        args = ["--source", "sim", *args]
    _assert_one_error(_gaze3d("tracker", *args), "tracker", word)


def test_tracker_accepts_log_level_in_any_case_and_sndhwm_zero():
    # the options parse and the sockets bind; the (missing) replay file then stops it when it opens
    r = _gaze3d("tracker", "--source", "replay", "--opt", "path=/nonexistent/x.sqlite", "--log-level", "debug",
                "--sndhwm", "0", "--pub", "tcp://127.0.0.1:*")
    assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith("gaze3d tracker: error:"), r.stderr
    assert "no such file" in r.stderr and '"pub": "tcp://127.0.0.1:' in r.stdout


def test_tracker_refuses_a_folder_as_recording(tmp_path):
    (tmp_path / "dir.gaze3d").mkdir()
    r = _gaze3d("tracker", "--source", "sim", "--record", str(tmp_path / "dir.gaze3d"))
    _assert_one_error(r, "tracker", "--record", "is a folder")


def _bad_files(tmp_path):
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "times.json").write_text('{"times": "x", "cameras": [{"position": [0, 0, 0]}]}')
    (tmp_path / "nofield.json").write_text('{"cameras": []}')
    np.save(tmp_path / "binary.npy", np.zeros((3, 3)))
    (tmp_path / "binary.json").write_bytes(b"\x93\xff\x00")


@pytest.mark.parametrize("option, name", [
    ("camera_path", "folder.json"), ("camera_path", "list.json"), ("camera_path", "times.json"),
    ("camera_path", "nofield.json"), ("camera_path", "binary.npy"),
    ("script", "folder.json"), ("script", "binary.npy"), ("script", "binary.json"), ("script", "list.json"),
])
def test_sim_file_that_cannot_be_parsed_fails_at_once(tmp_path, option, name):
    """A file the user named that is not what was expected is a permanent error, not a retried open."""
    _bad_files(tmp_path)
    opts = ["--opt", f"{option}={tmp_path / name}"]
    if option == "camera_path":  # the scan is only read when the source opens: the path is checked first
        opts += ["--opt", f"scene={tmp_path / 'never-read.las'}"]
    _assert_one_error(_gaze3d("tracker", "--source", "sim", *opts), "tracker", f"sim option '{option}'", name)


# ------------------------------------------------------------------ keys
def _tree(folder):
    return sorted((str(p.relative_to(folder)), p.read_bytes() if p.is_file() else None)
                  for p in folder.rglob("*"))


def test_keys_checks_every_target_before_writing(tmp_path):
    k4 = tmp_path / "k4"
    k4.mkdir()
    (k4 / "authorized_clients").write_text("not a folder")
    before = _tree(k4)
    _assert_one_error(_gaze3d("keys", str(k4)), "keys", "authorized_clients", "not a folder")
    assert _tree(k4) == before

    k3 = tmp_path / "k3"
    generate_keys(k3)
    (k3 / "server.key_secret").unlink()
    (k3 / "server.key_secret").mkdir()
    before = _tree(k3)
    r = _gaze3d("keys", str(k3), "--overwrite")
    _assert_one_error(r, "keys", "server.key_secret", "not a regular file")
    assert ".keys-" not in r.stderr and "tmp" not in r.stderr.replace(str(tmp_path), "")
    assert _tree(k3) == before


def test_keys_refuses_empty_name_and_a_file(tmp_path):
    _assert_one_error(_gaze3d("keys", "", cwd=tmp_path), "keys", "expected a folder name")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "text.txt").write_text("hello")
    _assert_one_error(_gaze3d("keys", str(tmp_path / "text.txt")), "keys", "not a folder")
    _assert_one_error(_gaze3d("keys", str(tmp_path / "text.txt" / "sub")), "keys", "text.txt")
    assert (tmp_path / "text.txt").read_text() == "hello"


def test_keys_refuses_a_partial_set_unless_overwrite(tmp_path):
    k = tmp_path / "k"
    generate_keys(k)
    (k / "server.key_secret").unlink()
    before = _tree(k)
    _assert_one_error(_gaze3d("keys", str(k)), "keys", "server.key", "--overwrite")
    assert _tree(k) == before
    r = _gaze3d("keys", str(k), "--overwrite")
    assert r.returncode == 0, r.stderr
    names = {name for name, _ in _tree(k)}
    assert names == {"server.key", "server.key_secret", "client.key", "client.key_secret",
                     "authorized_clients", "authorized_clients/client.key"}
    assert (k / "client.key").read_bytes() == (k / "authorized_clients" / "client.key").read_bytes()
