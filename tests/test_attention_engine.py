"""The attention engine interface written down, typed options from the CLI to the session, public viewer calls."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from gaze3d.attention import AttentionAccumulator, AttentionEngine, AttentionOptions, make_engine
from gaze3d.attention.foveal import FovealModel
from gaze3d.errors import InputError
from gaze3d.scan import Mesh, PointCloud, Volume

REPO = Path(__file__).resolve().parents[1]


def _cloud(n=500, seed=0):
    return PointCloud(np.random.default_rng(seed).random((n, 3)))


def _volume():
    return Volume(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32))


def test_every_engine_implements_the_interface():
    foveal = FovealModel()
    engines = [make_engine(_cloud(), foveal), make_engine(_cloud().xyz, foveal), make_engine(_volume(), foveal)]
    try:
        import open3d  # noqa: F401
        verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
        engines.append(make_engine(Mesh(verts, np.array([[0, 1, 2]])), foveal))
    except ImportError:
        pass
    for engine in engines:
        assert isinstance(engine, AttentionEngine), type(engine).__name__
        assert engine.values().size == engine.n and isinstance(engine.deposit_rows, bool)
    assert [e.deposit_rows for e in engines[:3]] == [True, True, False]
    with pytest.raises(InputError, match="expected a PointCloud, Mesh or Volume"):
        make_engine("cloud.ply", foveal)


def test_nobody_imports_a_private_engine_factory():
    for path in sorted((REPO / "gaze3d").rglob("*.py")) + sorted((REPO / "viewer").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert "_engine_for" not in [a.name for a in node.names], path


def test_options_from_a_dict_and_to_the_accumulator():
    o = AttentionOptions.coerce({"sigma_deg": 2.0, "point_size": 5, "depth_tolerance": 0.01, "method": "idt"})
    assert (o.sigma_deg, o.point_size, o.method, dict(o.engine)) == (2.0, 5, "idt", {"depth_tolerance": 0.01})
    assert AttentionOptions.coerce(None) == AttentionOptions() and AttentionOptions.coerce(o) is o
    kw = o.accumulator_kwargs(_cloud())
    assert kw["point_size"] == 5.0 and kw["depth_tolerance"] == 0.01 and kw["sigma_deg"] == 2.0
    assert "point_size" not in AttentionOptions(point_size=5).accumulator_kwargs(_volume())   # clouds only
    acc = AttentionAccumulator.from_options(_cloud(), o)
    assert acc.foveal.sigma_deg == 2.0 and acc.engine.half_splat == 2 and acc.method == "idt"
    # a default from the viewer does not override what the caller chose
    assert o.with_engine(depth_tolerance=0.5, opacity=1).engine == {"depth_tolerance": 0.01, "opacity": 1}
    for bad in ({"sigma_deg": 0}, {"point_size": -1}, {"visual_deg_per_camera_deg": float("nan")}):
        with pytest.raises(InputError, match=next(iter(bad))):
            AttentionOptions(**bad)
    with pytest.raises(InputError, match="AttentionOptions or a dict"):
        AttentionOptions.coerce([1, 2])


def test_volume_view_calls_replace_poking_the_engine():
    acc = AttentionAccumulator(_volume())
    assert acc.is_volume
    acc.set_volume_view((1, 2, 3))
    assert acc.engine.mode == "slice" and acc.engine.planes == [(0, 1), (1, 2), (2, 3)]
    acc.set_volume_view(None)
    assert acc.engine.mode == "render"
    before = acc.engine.opacity(np.array([0.5]))
    acc.set_volume_opacity([[0.0, 1.0], [0.0, 1.0]])
    assert acc.engine.opacity(np.array([0.5]))[0] == pytest.approx(0.5) != before[0]
    cloud = AttentionAccumulator(_cloud())
    assert not cloud.is_volume
    cloud.set_volume_view((1, 2, 3))        # nothing to follow on a point cloud: no effect, no error
    cloud.set_volume_opacity([[0.0, 1.0], [0.0, 1.0]])


def test_the_viewer_accumulates_with_what_it_draws_and_the_cli_sigma(tmp_path, capsys):
    pytest.importorskip("pyvista", reason="the viewer needs VTK/pyvista (gaze3d[viewer])")
    from gaze3d.cli import main
    from gaze3d.io import save_scan
    from gaze3d.viewer.app import ViewerApp

    app = ViewerApp(_cloud(), off_screen=True, window_size=(64, 48), point_size=5.0,
                    attention_options=AttentionOptions(sigma_deg=2.5))
    try:
        assert app.session.accumulator.foveal.sigma_deg == 2.5
        assert app.session.accumulator.engine.half_splat == 2      # the drawn 5 px splat, not the default 3
    finally:
        app.close()
    save_scan(_cloud(), tmp_path / "c.ply")
    assert main(["view", str(tmp_path / "c.ply"), "--off-screen", "--sigma-deg", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sigma_deg" in err[0], err
    assert main(["view", str(tmp_path / "c.ply"), "--off-screen", "--sigma-deg", "1.5", "--window", "64x48"]) == 0


@pytest.mark.parametrize("field, value", [("sigma_deg", 1e-300), ("sigma_deg", 91.0), ("point_size", 1e6),
                                          ("point_size", 101.0)])
def test_attention_options_out_of_range_are_one_line(field, value):
    """sigma 1e-300 divided by ~0 (ZeroDivisionError); a 1e6 px splat asked for 98 TiB."""
    from gaze3d.attention.engine import AttentionOptions

    with pytest.raises(InputError, match=f"attention {field}: expected a value in"):
        AttentionOptions(**{field: value})
