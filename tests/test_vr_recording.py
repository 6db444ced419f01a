"""VR recordings: gaze.3d validity comes from the ray; EDVAM import -> attention on a scan of its gaze points."""
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gaze3d.attention.batch import accumulate_attention
from gaze3d.errors import InputError
from gaze3d.recording import Recording, RecordingWriter, sample_columns
from gaze3d.scan import PointCloud

EDVAM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vr_gaze" / "edvam" / "1.csv"
if not EDVAM.is_file():
    EDVAM = Path("/work/shared/data/vr_gaze/edvam/1.csv")


def _ray_sample(i, **kw):
    s = {"topic": "gaze.3d", "seq": i, "t_host_ns": 1_000_000 + i * 10_000_000, "t_device": None,
         "ray_origin": [0.0, 0.0, 0.0], "ray_direction": [0.0, 0.0, -1.0]}
    s.update(kw)
    return s


def test_gaze3d_sample_without_2d_point_is_valid():
    # the bug: valid = 0 for every gaze.3d sample without a 2D 'gaze' field
    assert sample_columns(_ray_sample(0))[6] == 1
    assert sample_columns(_ray_sample(0, valid=False))[6] == 0
    assert sample_columns(_ray_sample(0, ray_direction=[0.0, 0.0, 0.0]))[6] == 0
    assert sample_columns(_ray_sample(0, ray_origin=[np.nan, 0.0, 0.0]))[6] == 0
    assert sample_columns(_ray_sample(0, ray_direction=None))[6] == 0
    assert sample_columns(_ray_sample(0, ray_direction="up"))[6] == 0
    # 2D samples keep their rule: a finite display point
    assert sample_columns({"topic": "gaze.2d", "t_host_ns": 1, "gaze": [0.5, 0.5]})[6] == 1
    assert sample_columns({"topic": "gaze.2d", "t_host_ns": 1, "gaze": None})[6] == 0


def _wall_scene():
    """A wall of points at z = -2 in front of the origin, and a plane behind it at z = -4."""
    g = np.linspace(-0.5, 0.5, 21)
    xx, yy = np.meshgrid(g, g)
    wall = np.c_[xx.ravel(), yy.ravel(), np.full(xx.size, -2.0)]
    back = wall.copy()
    back[:, 2] = -4.0
    return PointCloud(xyz=np.r_[wall, back]), len(wall)


def test_ray_recording_gives_attention_and_old_files_are_read_right(tmp_path):
    scan, n_wall = _wall_scene()
    path = tmp_path / "vr.gaze3d"
    with RecordingWriter(path) as w:
        w.add_samples([_ray_sample(i) for i in range(60)])
    with Recording(path) as rec:
        assert rec.samples("gaze.3d")["valid"].all()
    # splats of 2 deg (40 px at 20 px/deg) close the 1.4 deg gaps between the wall's points
    a = accumulate_attention(scan, path, topic="gaze.3d", progress=False, point_size=40.0)
    assert a[:n_wall].sum() > 0 and a[n_wall:].sum() == 0      # occlusion: the plane behind gets none
    # a file written before the fix: the indexed column says 0; the ray in the payload decides
    db = sqlite3.connect(path)
    db.execute("UPDATE samples SET valid = 0")
    db.commit()
    db.close()
    with pytest.warns(Warning):           # the checksums now fail (rows changed): reported, still read
        with Recording(path) as rec:
            assert rec.samples("gaze.3d")["valid"].all()


@pytest.mark.skipif(not EDVAM.is_file(), reason=f"EDVAM data not found at {EDVAM}")
def test_edvam_import_gives_nonzero_attention(tmp_path):
    from gaze3d.vr.edvam import import_edvam, load_edvam

    out = tmp_path / "edvam.gaze3d"
    info = import_edvam(EDVAM, out)
    assert info["samples"] == 4475 and info["valid"] == 1435        # confidence >= 0.6
    with Recording(out) as rec:
        s = rec.samples("gaze.3d")
        points = np.array([p["gaze_point"] for p in rec.payloads("gaze.3d")])
        assert int(s["valid"].sum()) == 1435
        # each ray passes through its point of regard (Unity z mirrored on both)
        v = s["valid"]
        to = points[v] - s["ray_origin"][v]
        cross = np.linalg.norm(np.cross(s["ray_direction"][v], to), axis=1) / np.linalg.norm(to, axis=1)
        assert np.all(cross < 1e-9)
        # head forward (-Z of the head pose) agrees with EDVAM's F (mirrored)
        raw = load_edvam(EDVAM)
        fwd = -s["head_pose"][:, :3, 2]
        np.testing.assert_allclose(fwd, raw["forward"] * [1, 1, -1], atol=1e-9)
    a = accumulate_attention(PointCloud(xyz=points), out, topic="gaze.3d", progress=False)
    assert np.count_nonzero(a) > 100 and np.isfinite(a).all()


@pytest.mark.skipif(not EDVAM.is_file(), reason=f"EDVAM data not found at {EDVAM}")
def test_cli_record_import_edvam(tmp_path):
    out = tmp_path / "e.gaze3d"
    r = subprocess.run([sys.executable, "-m", "gaze3d", "record", "import", "--format", "edvam", str(EDVAM),
                        str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1435 valid" in r.stdout and out.is_file()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    r = subprocess.run([sys.executable, "-m", "gaze3d", "record", "import", "--format", "edvam", str(bad),
                        str(tmp_path / "x.gaze3d")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not an EDVAM CSV" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.gaze3d").exists()


def test_edvam_rows_out_of_order_are_refused(tmp_path):
    from gaze3d.vr.edvam import import_edvam

    p = tmp_path / "e.csv"
    head = "index,time,L_x,L_y,L_z,C_x,C_y,C_z,F_x,F_y,F_z,confidence\n"
    p.write_text(head + "1,0.5,0,0,5,0,0,0,0,0,1,0.9\n2,0.2,0,0,5,0,0,0,0,0,1,0.9\n")
    with pytest.raises(InputError, match="non-decreasing"):
        import_edvam(p, tmp_path / "o.gaze3d")
    p.write_text(head + "1,0.0,0,0,5,0,0,0,0,0,1,0.1\n")
    with pytest.raises(InputError, match="no sample with confidence"):
        import_edvam(p, tmp_path / "o.gaze3d")
    assert not (tmp_path / "o.gaze3d").exists()
