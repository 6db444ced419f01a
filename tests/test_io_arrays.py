"""gaze3d.io.arrays.read_array: the one reader of attention arrays (segment, render), table-driven."""
import subprocess
import sys

import numpy as np
import pytest

from gaze3d.errors import InputError
from gaze3d.io.arrays import read_array


def _npy_truncated(p):
    np.save(p, np.ones(1000, np.float32))
    p.write_bytes(p.read_bytes()[:300])


CASES = [
    # name, writer, expected message part (None: reads)
    ("ok.npy", lambda p: np.save(p, np.arange(5, dtype=np.float64)), None),
    ("ok.txt", lambda p: p.write_text("1 2\n3 4\n"), None),
    ("ok.csv", lambda p: p.write_text("1,2\n3,4\n"), None),
    ("bool.npy", lambda p: np.save(p, np.array([True, False])), None),
    ("truncated.npy", _npy_truncated, "not a readable array of numbers"),
    ("empty.npy", lambda p: p.write_bytes(b""), "not a readable array of numbers"),
    ("text.npy", lambda p: p.write_text("hello\nworld\n"), "not a readable array of numbers"),
    ("object.npy", lambda p: np.save(p, np.array([1, "a", None], dtype=object), allow_pickle=True),
     "not a readable array of numbers"),
    ("strings.npy", lambda p: np.save(p, np.array(["a", "b"])), "expected real numbers"),
    ("complex.npy", lambda p: np.save(p, np.array([1 + 2j])), "expected real numbers"),
    ("scalar.npy", lambda p: np.save(p, np.float32(3.0)), "a single number"),
    ("words.txt", lambda p: p.write_text("hello world\n"), "not a readable array of numbers"),
    ("ragged.csv", lambda p: p.write_text("1,2\n3\n"), "not a readable array of numbers"),
    ("attention.json", lambda p: p.write_text("[1, 2]"), "expected a .npy, .txt, .csv file"),
]


@pytest.mark.parametrize("name,write,message", CASES, ids=[c[0] for c in CASES])
def test_read_array(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    if message is None:
        a = read_array(path)
        assert a.dtype == np.float32 and a.ndim >= 1
        return
    with pytest.raises(InputError) as info:
        read_array(path, "--attention")
    text = str(info.value)
    assert message in text and text.startswith(f"--attention {path}") and "\n" not in text


def test_a_folder_or_a_missing_file_names_the_option(tmp_path):
    (tmp_path / "dir.npy").mkdir()
    for p in (tmp_path / "dir.npy", tmp_path / "missing.npy"):
        with pytest.raises(InputError, match=r"^--attention "):
            read_array(p, "--attention")


def test_segment_and_render_refuse_a_broken_attention_file_in_one_line(tmp_path):
    from gaze3d.demo import bundled_tile

    scan = bundled_tile()
    bad = tmp_path / "att.npy"
    _npy_truncated(bad)
    for cmd in (["segment", str(scan), "--attention", str(bad), "-o", str(tmp_path / "s.ply")],
                ["render", str(scan), "--attention", str(bad), "--out", str(tmp_path / "r.png")]):
        r = subprocess.run([sys.executable, "-m", "gaze3d", *cmd], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "not a readable array" in r.stderr
    assert not (tmp_path / "s.ply").exists() and not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("cmd, message", [
    (["segment", "{scan}", "--attention", "{att}", "-o", "{out}.ply", "--metres-per-unit", "1e99"], "m across"),
    (["segment", "{scan}", "--attention", "{att}", "-o", "{out}.ply", "--metres-per-unit", "1e-300"], "m across"),
    (["segment", "{scan}", "--attention", "{att}", "-o", "{out}.ply", "--metres-per-unit", "inf"], "finite"),
    (["render", "{scan}", "--point-size", "-1", "--out", "{out}.png"], "--point-size"),
    (["render", "{scan}", "--point-size", "1e99", "--out", "{out}.png"], "--point-size"),
])
def test_scales_and_sizes_out_of_range_are_one_line(tmp_path, cmd, message):
    """Each was a traceback, a hang or a smeared picture (a bad-input sweep, 2026-12-08)."""
    from gaze3d.demo import bundled_tile

    att = tmp_path / "att.npy"
    np.save(att, np.ones(70840, np.float32))
    args = [c.format(scan=bundled_tile(), att=att, out=tmp_path / "out") for c in cmd]
    r = subprocess.run([sys.executable, "-m", "gaze3d", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.glob("out*"))
