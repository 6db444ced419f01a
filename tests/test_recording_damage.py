"""Damaged and crashed recordings: one-line errors, `record check [--salvage]`, checksums, WAL sidecars.

Real files damaged on disk (bytes overwritten, bits flipped), a real writer
process killed with SIGKILL, and the real CLI run as a process.
"""
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from gaze3d.camera import Camera
from gaze3d.errors import InputError
from gaze3d.protocol import pack
from gaze3d.recording import (Recording, RecordingIntegrityWarning, RecordingWriter, check_recording, salvage,
                              sidecars)

from recording_helpers import kill_writer_mid_stream

N = 3253
CAM = Camera(position=[1, 2, 3], focal_point=[0, 0, 0], view_up=[0, 0, 1])


def _sample(i):
    return {"topic": "gaze.2d", "seq": i, "t_host_ns": 10**9 + i * 833_333, "t_device": i / 1200,
            "gaze": [0.3 + 1e-4 * i, 0.6], "valid": True, "left": {"pupil_mm": 3.0},
            "truth": {"label": "building", "note": f"sample-{i:06d}"}}


@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    """A ~1 MB recording made like the tracker makes one: 24 samples per commit, cameras, events."""
    path = tmp_path_factory.mktemp("rec") / "intact.gaze3d"
    with RecordingWriter(path, commit_interval_s=0) as w:
        w.set_meta("source", "sim")
        for b in range(0, N, 24):
            w.add_samples([_sample(i) for i in range(b, min(N, b + 24))])
            if b % 480 == 0:
                w.add_camera(10**9 + b * 833_333, CAM)
        w.add_event(10**9, {"type": "label", "label": "roof"})
    return path


def _flipped(src, dst, offset, n):
    data = bytearray(src.read_bytes())
    for i in range(offset, offset + n):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gaze3d", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("n_bytes", [64, 4096])
def test_overwritten_bytes_give_one_line_errors_and_salvage_recovers_the_rest(intact, tmp_path, n_bytes):
    bad = _flipped(intact, tmp_path / "bad.gaze3d", intact.stat().st_size // 2, n_bytes)
    with pytest.raises(InputError, match=r"bad.gaze3d: recording is damaged \(.*\); `gaze3d record check"):
        Recording(bad).samples()
    scan = tmp_path / "scan.xyz"
    np.savetxt(scan, np.random.default_rng(0).uniform(0, 1, (200, 3)))
    for args in (("record", "info", bad), ("record", "export", bad, tmp_path / "bids"),
                 ("fixations", bad, "-o", tmp_path / "ev.tsv"), ("attention", scan, bad, "-o", tmp_path / "a.ply")):
        proc = _cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "bad.gaze3d" in lines[0] and "Traceback" not in proc.stderr, proc.stderr

    proc = _cli("record", "check", bad)
    assert proc.returncode == 1 and "DAMAGED" in proc.stdout and "checksum blocks fail" in proc.stdout, proc.stdout
    out = tmp_path / "salvaged.gaze3d"
    proc = _cli("record", "check", bad, "--salvage", out)
    assert proc.returncode == 1 and f"salvaged into {out}" in proc.stdout, proc.stdout
    report = check_recording(out)
    assert report["ok"] and report["sidecars"] == [], report
    rec = Recording(out)
    s = rec.samples()
    lost = N - len(s["seq"])
    assert 0 < lost <= 200  # one or two 4 KiB pages of samples, not the whole table
    assert f"samples: {len(s['seq'])} of {N} rows copied, {lost} lost" in proc.stdout
    # every copied sample is the original one, in order
    assert np.all(np.diff(s["seq"]) > 0)
    for got, seq in zip(rec.payloads(), s["seq"].tolist()):
        assert got == _sample(seq)
    assert len(rec.camera_frames()[1]) == 7 and rec.events()[0]["label"] == "roof"
    assert rec.meta["source"] == "sim" and rec.meta["salvaged_from"]["samples"]["lost"] == lost


def _payload_offset(path, seq):
    """Where sample ``seq``'s note text sits in the file (inside its msgpack payload)."""
    data = path.read_bytes()
    needle = f"sample-{seq:06d}".encode()
    assert data.count(needle) == 1
    return data.index(needle)


def test_silent_bit_flips_in_data_are_reported_by_checksums(intact, tmp_path):
    """Flips that SQLite cannot notice (inside row values) become a warning naming the failing blocks."""
    data = bytearray(intact.read_bytes())
    for seq in (100, 101, 2000):
        data[_payload_offset(intact, seq) + 8] ^= 0x01  # one bit of the note text: still valid msgpack
    bad = tmp_path / "flipped.gaze3d"
    bad.write_bytes(bytes(data))
    with sqlite3.connect(bad) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]  # SQLite sees nothing
    with pytest.warns(RecordingIntegrityWarning, match=r"2 of \d+ checksum blocks fail \(48 rows"):
        Recording(bad)
    report = check_recording(bad)
    assert not report["ok"] and report["sqlite"] == [] and "2 of" in report["checksums"]
    proc = _cli("record", "info", bad)
    assert proc.returncode == 0 and "warning: " in proc.stderr and "checksum blocks fail" in proc.stderr
    # every command that reads it says so in one line of its own (gaze3d.cli.main), not Python's
    # two-line "file:line: RecordingIntegrityWarning" + source line
    proc = _cli("fixations", bad, "-o", tmp_path / "f.tsv")
    lines = [ln for ln in proc.stderr.splitlines() if "checksum blocks fail" in ln]
    assert len(lines) == 1 and lines[0].startswith("gaze3d fixations: warning: ") and "Warning" not in proc.stderr
    rep = salvage(bad, tmp_path / "s.gaze3d")
    assert rep["samples"] == {"expected": N, "recovered": N, "lost": 0, "changed": 48}


def test_random_bit_flips_never_change_data_silently(intact, tmp_path):
    """20 random bit flips: an error, a warning, or exactly the original data; never quietly different."""
    ref = Recording(intact)
    expected = (list(ref.payloads()), ref.events(), ref.meta)
    size = intact.stat().st_size
    for seed in range(6):
        rng = random.Random(seed)
        data = bytearray(intact.read_bytes())
        for _ in range(20):
            data[rng.randrange(100, size)] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip{seed}.gaze3d"
        path.write_bytes(bytes(data))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with Recording(path) as rec:
                    got = (list(rec.payloads()), rec.events(), rec.meta)
            except InputError:
                continue
        if not any(issubclass(w.category, RecordingIntegrityWarning) for w in caught):
            assert got == expected, f"seed {seed}: data changed without a report"


def test_crash_leaves_sidecars_main_file_alone_is_nearly_complete_and_salvage_makes_one_file(tmp_path):
    path = tmp_path / "crash.gaze3d"
    kill_writer_mid_stream(path, ready_after=1000, run_s=1.0, commit_interval_s=0.02, checkpoint_interval_s=0.2)
    assert [p.name for p in sidecars(path)] == ["crash.gaze3d-wal", "crash.gaze3d-shm"]
    full = Recording(path).samples()
    n = len(full["seq"])
    # what a user gets when copying only the main file: a recording, missing at most the last checkpoint interval
    alone = tmp_path / "copy" / "crash.gaze3d"
    alone.parent.mkdir()
    shutil.copy(path, alone)
    part = Recording(alone).samples()
    assert 0 < len(part["seq"]) <= n
    np.testing.assert_array_equal(part["seq"], np.arange(len(part["seq"])))
    assert (full["t_host_ns"][-1] - part["t_host_ns"][-1]) / 1e9 < 0.2 + 0.5  # interval + a loaded machine's lag
    info = _cli("record", "info", path)
    assert info.returncode == 0 and "crash.gaze3d-wal" in info.stderr and "--salvage" in info.stderr
    out = tmp_path / "one.gaze3d"
    res = _cli("record", "check", path, "--salvage", out)
    assert f"samples: {n} of {n} rows copied, 0 lost" in res.stdout, res.stdout
    assert sidecars(out) == [] and len(Recording(out)) == n
    shutil.copy(out, tmp_path / "copy" / "moved.gaze3d")  # one file is the whole recording
    assert len(Recording(tmp_path / "copy" / "moved.gaze3d")) == n
    assert _cli("record", "check", out).returncode == 0


def test_clean_close_leaves_one_self_contained_file(tmp_path):
    path = tmp_path / "clean.gaze3d"
    with RecordingWriter(path) as w:
        w.add_samples([_sample(i) for i in range(50)])
    assert sidecars(path) == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with Recording(path) as rec:
        assert len(rec) == 50 and rec.verify().ok
    assert sidecars(path) == []  # reading does not create sidecars either
    proc = _cli("record", "check", path)
    assert proc.returncode == 0 and "intact" in proc.stdout and "all " in proc.stdout


def test_format_1_recordings_without_checksums_stay_readable(tmp_path):
    """A recording as gaze3d wrote it before checksums (format 1 schema, no checksums table)."""
    path = tmp_path / "v1.gaze3d"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA application_id=1731421298")
    db.execute("PRAGMA user_version=1")
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE samples (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, seq INTEGER, t_host_ns INTEGER NOT NULL,
            t_device REAL, x REAL, y REAL, valid INTEGER NOT NULL, pupil_mm REAL, payload BLOB NOT NULL);
        CREATE INDEX samples_topic_time ON samples(topic, t_host_ns);
        CREATE TABLE cameras (id INTEGER PRIMARY KEY, t_host_ns INTEGER NOT NULL, camera BLOB NOT NULL);
        CREATE TABLE events (id INTEGER PRIMARY KEY, t_host_ns INTEGER NOT NULL, event BLOB NOT NULL);
        INSERT INTO meta VALUES ('format_version', '1');""")
    db.executemany("INSERT INTO samples (topic, seq, t_host_ns, t_device, x, y, valid, pupil_mm, payload) "
                   "VALUES ('gaze.2d', ?, ?, NULL, 0.5, 0.5, 1, NULL, ?)",
                   [(i, i * 1000, pack({"seq": i, "t_host_ns": i * 1000})) for i in range(30)])
    db.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no integrity warning for a file that has no checksums
        rec = Recording(path)
    assert len(rec) == 30 and rec.meta["format_version"] == 1
    report = rec.verify()
    assert not report.checksummed and report.ok and "format 1" in report.describe()
    rec.close()
    rep = salvage(path, tmp_path / "v2.gaze3d")
    assert rep["samples"] == {"expected": 30, "recovered": 30, "lost": 0, "changed": 0}
    assert Recording(tmp_path / "v2.gaze3d").verify().blocks >= 1


def test_salvage_and_check_refuse_what_they_cannot_do(intact, tmp_path):
    with pytest.raises(InputError, match="already exists"):
        salvage(intact, intact)
    with pytest.raises(InputError, match="does not exist"):
        salvage(intact, tmp_path / "no" / "x.gaze3d")
    junk = tmp_path / "junk.gaze3d"
    junk.write_bytes(b"x" * 5000)
    with pytest.raises(InputError, match="not a gaze3d recording"):
        check_recording(junk)
    proc = _cli("record", "check", junk)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(FileNotFoundError):
        check_recording(tmp_path / "missing.gaze3d")


def test_main_file_alone_is_a_recording_from_the_start_and_has_rows_after_a_checkpoint(tmp_path):
    """Header and schema reach the main file when the writer opens (no more `application_id 0x0` copies)."""
    path = tmp_path / "live.gaze3d"
    w = RecordingWriter(path, checkpoint_interval_s=3600)
    try:
        w.add_samples([_sample(i) for i in range(10)])
        w.commit()
        (tmp_path / "a").mkdir()
        shutil.copy(path, tmp_path / "a" / "copy.gaze3d")
        assert len(Recording(tmp_path / "a" / "copy.gaze3d")) == 0  # a recording; its rows are still in the WAL
        w.checkpoint()
        (tmp_path / "b").mkdir()
        shutil.copy(path, tmp_path / "b" / "copy.gaze3d")
        with Recording(tmp_path / "b" / "copy.gaze3d") as rec:
            assert len(rec) == 10 and rec.verify().ok
    finally:
        w.close()


def test_close_with_a_reader_attached_is_complete_and_not_reported_as_a_crash(tmp_path):
    path = tmp_path / "shared.gaze3d"
    w = RecordingWriter(path)
    w.add_samples([_sample(i) for i in range(40)])
    w.commit()
    reader = Recording(path)
    w.close()  # the reader keeps the file in WAL mode; close does not fail
    assert len(reader) == 40
    reader.close()
    proc = _cli("record", "info", path)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert check_recording(path)["ok"]


def test_rows_reach_the_main_file_when_samples_stop_arriving(tmp_path):
    """The recorder's timer calls maybe_commit: the last commits are checkpointed without new samples."""
    path = tmp_path / "idle.gaze3d"
    w = RecordingWriter(path, commit_interval_s=0, checkpoint_interval_s=0.05)
    try:
        w.add_samples([_sample(i) for i in range(10)])  # committed now (interval 0)
        deadline = time.monotonic() + 10
        while w._wal_rows and time.monotonic() < deadline:
            time.sleep(0.06)
            w.maybe_commit()
        shutil.copy(path, tmp_path / "alone.gaze3d")
        assert len(Recording(tmp_path / "alone.gaze3d")) == 10
    finally:
        w.close()
