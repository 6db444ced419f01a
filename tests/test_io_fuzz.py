"""Malformed scan files: one-line error naming the file, exit 2, bounded memory, no hang.

The table is ``tests/io_fuzz_cases.py`` (shared with ``bench/io_fuzz.py``):
valid seeds of every read format (which must load) and, for each format,
seeds with one header field or byte range broken. All cases are generated
in a temporary folder and run in ONE subprocess (start-up and imports paid
once): each goes through :func:`gaze3d.load_scan` (must raise
``ScanFormatError``) and through the CLI entry point ``gaze3d.cli.main(["info",
FILE])`` with file descriptors 1 and 2 captured, so a library line printed
by C code counts. That process runs with its address space capped at what
its imports use plus 1 GiB, so a reader that allocates what a header claims
fails the case instead of swapping the machine, and each case's peak RSS
growth is measured. A hang shows as the case the process was in when the
generous timeout hit. Then the headline cases of issue 11 go through the
real ``gaze3d info`` executable, each in its own process. Wall-clock limits
(< 2 s per case) are checked in ``bench/io_fuzz.py``, not here.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import io_fuzz_cases as fuzz  # noqa: E402

if not Path("/proc/self/status").is_file() or not hasattr(os, "mkfifo"):
    pytest.skip("the fuzz runner measures memory in /proc and makes FIFOs (Linux)", allow_module_level=True)
for _module in ("laspy", "SimpleITK", "open3d", "trimesh"):
    pytest.importorskip(_module, reason=f"{_module} (gaze3d[io]) is needed to read every scan format")

RUNNER = Path(fuzz.__file__)
# Generous: the whole table takes a few seconds; a loaded CI machine must not flake.
BATCH_TIMEOUT_S = 300
CLI_TIMEOUT_S = 60
# Address space of each ``gaze3d info`` child: Open3D's import peaks near 0.45 GB of it; a reader
# allocating what a header claims (GBs to TBs) fails instead of filling the machine.
CLI_ADDRESS_SPACE_GB = 2
# The inputs are a few KiB; a reader that sizes its buffers from the file stays far below this.
PEAK_RSS_MB = 64
MIN_MALFORMED = 40
# The cases named in issue 11, run through the installed executable too.
CLI_CASES = ("las_vlr_count_ffffffff", "ply_fifo", "ply_face_list_length_1e9", "ply_faces_1e9",
             "las_points_huge", "nii_bad_dim1", "mha_short_data", "nii_sform_nan", "dcm_rows_65535",
             "mhd_data_is_fifo")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz")
    fuzz.build(out)
    return out


@pytest.fixture(scope="module")
def results(folder) -> dict:
    """Run the whole table in one subprocess; ``{name: result}`` (a hung case: ``{"hung": ...}``)."""
    out, err = folder.parent / "fuzz.jsonl", folder.parent / "fuzz.err"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, str(RUNNER), str(folder)], stdout=fo, stderr=fe,
                                start_new_session=True)
        fuzz.wait_or_kill(proc, BATCH_TIMEOUT_S)
    found, current = fuzz.read_results(out.read_text().splitlines())
    if current is not None:
        found[current] = {"name": current, "hung": f"no result after {BATCH_TIMEOUT_S} s or the runner "
                                                  f"died (exit {proc.returncode}): "
                                                  f"{err.read_text()[-2000:]}"}
    return found


def test_table_has_enough_malformed_inputs_across_formats():
    malformed = [c for c in fuzz.CASES if not c.valid]
    assert len(malformed) >= MIN_MALFORMED, len(malformed)
    from gaze3d.io import READ_EXTENSIONS
    from gaze3d.io._common import extension

    covered = {extension(c.filename) for c in malformed}
    missing = {e for e in READ_EXTENSIONS if e not in covered} - {".xyzn", ".xyzrgb", ".pts", ".gltf",
                                                                  ".nhdr"}
    assert not missing, f"no malformed case for {sorted(missing)}"


@pytest.mark.parametrize("case", fuzz.CASES, ids=[c.name for c in fuzz.CASES])
def test_case(case, results):
    row = results.get(case.name)
    assert row is not None, "the runner stopped before this case (an earlier case hung or crashed)"
    assert "hung" not in row, row["hung"]
    if row["peak_rss_mb"] is not None:        # None: VmHWM reset refused here; the cap still holds
        assert row["peak_rss_mb"] <= PEAK_RSS_MB, f"peak RSS grew by {row['peak_rss_mb']} MB"
    if case.valid:
        assert row["ok"], f"a valid seed failed: {row['api']}: {row['message']}"
        assert row["cli_code"] == 0, row["cli_err"]
        return
    name = Path(row["path"]).name
    assert row["api"] == "ScanFormatError", f"{row['api']}: {row['message']}"
    message = row["message"]
    assert "\n" not in message and name in message, message
    for word in case.words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    assert row["api_noise"] == "", f"the library printed: {row['api_noise']!r}"
    assert row["cli_code"] == 2, row
    lines = row["cli_err"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("gaze3d info: error: ") and name in lines[0], \
        row["cli_err"]
    assert row["cli_out"] == "", f"stdout: {row['cli_out']!r}"


def _gaze3d_command():
    exe = Path(sys.executable).with_name("gaze3d")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "gaze3d"]


def test_issue_cases_through_the_installed_cli(folder):
    """Each headline case in its own ``gaze3d info`` process: exit 2, one stderr line, capped memory."""
    paths = {c.name: folder / c.filename for c in fuzz.CASES}
    running = {}
    for name in CLI_CASES:
        out = open(folder.parent / f"{name}.out", "w+")
        err = open(folder.parent / f"{name}.err", "w+")
        proc = subprocess.Popen([*_gaze3d_command(), "info", str(paths[name])], stdout=out, stderr=err,
                                start_new_session=True, preexec_fn=_cap_address_space)
        running[name] = (proc, out, err)
    failures = []
    deadline = time.monotonic() + CLI_TIMEOUT_S
    for name, (proc, out, err) in running.items():
        if not fuzz.wait_or_kill(proc, max(deadline - time.monotonic(), 1)):
            failures.append(f"{name}: still running after {CLI_TIMEOUT_S} s")
            continue
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        lines = stderr.splitlines()
        if proc.returncode != 2 or len(lines) != 1 or paths[name].name not in lines[0] or stdout:
            failures.append(f"{name}: exit {proc.returncode}, stdout {stdout!r}, stderr {stderr!r}")
    assert not failures, "\n".join(failures)


def _cap_address_space():
    """In the CLI child: at most CLI_ADDRESS_SPACE_GB of address space (imports take < 0.5 GB)."""
    import resource

    limit = int(CLI_ADDRESS_SPACE_GB * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_quiet_stderr_captures_c_level_writes_and_restores_fd2(tmp_path):
    """Library lines written straight to fd 2 are captured; fd 2 is restored, also under threads."""
    log = tmp_path / "stderr.txt"
    script = (
        "import os, threading\n"
        "from gaze3d.io._common import quiet_stderr\n"
        "with quiet_stderr() as err:\n"
        "    os.write(2, b'** ERROR: nifti_convert_nhdr2nim: bad dim[1]\\n')\n"
        "assert err.last_line == 'ERROR: nifti_convert_nhdr2nim: bad dim[1]', err.text\n"
        "def work(i):\n"
        "    for _ in range(50):\n"
        "        with quiet_stderr() as e:\n"
        "            os.write(2, b'hidden %d\\n' % i)\n"
        "        assert e.text == 'hidden %d\\n' % i, e.text\n"
        "threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "os.write(2, b'visible\\n')\n")
    with open(log, "w") as fh:
        r = subprocess.run([sys.executable, "-c", script], stderr=fh, timeout=CLI_TIMEOUT_S)
    assert r.returncode == 0, log.read_text()
    assert log.read_text() == "visible\n"
