"""One atomic writer (gaze3d.io._common.atomic_path): every file gaze3d writes gets the umask's mode, no temp left.

The writers that used to carry their own temp-file-and-rename (BIDS export and
import, calibration JSON, PNG screenshots, the two files of a MetaImage) go
through it now; a static check keeps new copies out.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from io_helpers import file_mode as _mode

from gaze3d.protocol import TOPIC_GAZE_2D
from gaze3d.recording import RecordingWriter

REPO = Path(__file__).resolve().parents[1]


def _no_temp_left(folder: Path):
    left = [p.name for p in folder.rglob(".*") if p.is_file()]
    assert left == [], f"temporary files left behind: {left}"


def _recording(path: Path, n: int = 200) -> Path:
    with RecordingWriter(path) as w:
        w.set_meta("source", "sim")
        w.add_samples([{"topic": TOPIC_GAZE_2D, "seq": i, "t_host_ns": 10**9 + i * 4_000_000, "t_device": i / 250,
                        "gaze": [0.5, 0.5], "valid": True} for i in range(n)])
    return path


def test_bids_export_and_import_get_the_umask_mode(tmp_path, umask_027):
    from gaze3d.bids import export_bids, import_bids

    paths = export_bids(_recording(tmp_path / "s.gaze3d"), tmp_path / "bids")
    written = [p for p in paths.values() if isinstance(p, Path) and p.is_file()]
    assert written and all(_mode(p) == umask_027 for p in written), {p.name: oct(_mode(p)) for p in written}
    back = import_bids(paths["eyetrack"], tmp_path / "back.gaze3d")
    assert _mode(back) == umask_027
    assert not any(Path(str(back) + s).exists() for s in ("-wal", "-shm"))
    _no_temp_left(tmp_path)


def test_bids_import_that_fails_leaves_nothing(tmp_path):
    from gaze3d.bids import export_bids, import_bids

    paths = export_bids(_recording(tmp_path / "s.gaze3d"), tmp_path / "bids")
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "back.gaze3d"
    # an events file the importer cannot read: the error comes while the recording is being written
    events = paths["eyetrack"].with_name(paths["eyetrack"].name.replace("_physio.tsv.gz", "_physioevents.tsv.gz"))
    if events.exists():
        events.write_bytes(b"not gzip")
    with pytest.raises(Exception):
        import_bids(paths["eyetrack"], target)
    assert list((tmp_path / "out").iterdir()) == []


def test_calibration_files_get_the_umask_mode_and_are_fsynced_writes(tmp_path, umask_027):
    from gaze3d.calib._io import atomic_write_text

    path = atomic_write_text(tmp_path / "new" / "x.json", "{}")
    assert path.read_text() == "{}" and _mode(path) == umask_027
    atomic_write_text(path, '{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    _no_temp_left(tmp_path)


def test_png_and_metaimage_get_the_umask_mode(tmp_path, umask_027):
    pytest.importorskip("PIL", reason="PNG writing needs Pillow (gaze3d[viewer])")
    pytest.importorskip("vtk", reason="the viewer's render module needs VTK (gaze3d[viewer])")
    from gaze3d.viewer.render import write_png

    png = write_png(np.zeros((4, 5, 3), np.uint8), tmp_path / "a.png")
    assert _mode(png) == umask_027
    with pytest.raises(Exception):
        write_png(np.zeros((4, 5, 7, 9), np.uint8), png)      # Pillow refuses: the old PNG stays
    assert _mode(png) == umask_027 and png.read_bytes().startswith(b"\x89PNG")
    pytest.importorskip("SimpleITK", reason="volumes need SimpleITK")
    import gaze3d
    from gaze3d.scan import Volume

    gaze3d.save_scan(Volume(np.zeros((3, 3, 3), np.float32)), tmp_path / "v.mhd")
    pair = sorted(p for p in tmp_path.iterdir() if p.stem == "v")
    assert len(pair) == 2 and all(_mode(p) == umask_027 for p in pair), [(p.name, oct(_mode(p))) for p in pair]
    _no_temp_left(tmp_path)


# The places allowed to call os.replace / mkstemp themselves, and why.
OWN_RENAME = {
    "gaze3d/io/_common.py": "the one helper",
    "gaze3d/io/volume.py": "a MetaImage is two files (header + data), moved header last",
    "gaze3d/recording.py": "salvage writes a SQLite database whose -wal/-shm must be gone before the rename",
    "gaze3d/tracker/keys.py": "CurveZMQ key pairs (secret mode 0600), tracker-only imports",
    "gaze3d/tracker/sources/lsl.py": "liblsl's config file, tracker-only imports",
}


def test_no_other_copy_of_the_atomic_writer():
    bad = []
    for folder in ("gaze3d", "viewer", "calib", "models"):
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            if rel in OWN_RENAME:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("replace", "mkstemp", "rename") \
                        and isinstance(node.value, ast.Name) and node.value.id in ("os", "tempfile"):
                    bad.append(f"{rel}:{node.lineno} {node.value.id}.{node.attr}")
    assert not bad, "write through gaze3d.io._common.atomic_path instead:\n" + "\n".join(bad)
