"""VTK XML image data read with numpy alone (gaze3d.io.vti), checked against VTK's own reader and writer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gaze3d.errors import ScanFormatError
from gaze3d.io.vti import read_vti

pv = pytest.importorskip("pyvista")
EXAMPLES = Path(pv.__file__).parent / "examples"


@pytest.mark.parametrize("fname, array, kind", [("frog_tissues.vti", "MetaImage", "point"),
                                                ("channels.vti", "facies", "cell")])
def test_pyvista_example_volumes_read_as_vtk_reads_them(fname, array, kind):
    mesh = pv.read(EXAMPLES / fname)
    values, spacing, origin, direction = read_vti(EXAMPLES / fname, array)
    ref = mesh.point_data[array] if kind == "point" else mesh.cell_data[array]
    dims = mesh.dimensions if kind == "point" else tuple(max(d - 1, 1) for d in mesh.dimensions)
    np.testing.assert_array_equal(values, np.asarray(ref).reshape(dims, order="F"))
    np.testing.assert_allclose(spacing, mesh.spacing)
    centre0 = np.asarray(mesh.origin) + (0.5 * np.asarray(mesh.spacing) if kind == "cell" else 0)
    np.testing.assert_allclose(origin, centre0)
    np.testing.assert_allclose(direction, np.eye(3))


@pytest.mark.parametrize("mode", ["ascii", "binary", "appended-raw", "appended-base64"])
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("header64", [False, True])
def test_every_encoding_vtk_writes(tmp_path, mode, compress, header64):
    from vtkmodules.vtkIOXML import vtkXMLImageDataWriter

    rng = np.random.default_rng(0)
    grid = pv.ImageData(dimensions=(7, 5, 4), spacing=(0.5, 2.0, 3.0), origin=(1.0, -2.0, 4.0))
    vals = rng.normal(0, 100, grid.n_points).astype(np.float32)
    grid.point_data["v"] = vals
    grid.point_data["w"] = np.arange(grid.n_points, dtype=np.int16)
    out = tmp_path / "g.vti"
    w = vtkXMLImageDataWriter()
    w.SetFileName(str(out))
    w.SetInputData(grid)
    if mode == "ascii":
        w.SetDataModeToAscii()
    elif mode == "binary":
        w.SetDataModeToBinary()
    else:
        w.SetDataModeToAppended()
        w.SetEncodeAppendedData(mode == "appended-base64")
    if compress:
        w.SetCompressorTypeToZLib()
        w.SetBlockSize(64)               # several blocks per array
    else:
        w.SetCompressorTypeToNone()
    if header64:
        w.SetHeaderTypeToUInt64()
    assert w.Write() == 1
    v, spacing, origin, _ = read_vti(out, "v")
    np.testing.assert_array_equal(v, vals.reshape((7, 5, 4), order="F"))
    w_arr, _, _, _ = read_vti(out, "w")
    np.testing.assert_array_equal(w_arr.ravel(order="F"), np.arange(grid.n_points))
    np.testing.assert_allclose(spacing, (0.5, 2.0, 3.0))
    np.testing.assert_allclose(origin, (1.0, -2.0, 4.0))


def test_damaged_or_wrong_files_are_one_line_errors(tmp_path):
    good = (EXAMPLES / "channels.vti").read_bytes()
    cases = {
        "truncated.vti": good[: len(good) // 2],
        "notxml.vti": b"\x00\x01 not a vtk file",
        "poly.vti": b'<?xml version="1.0"?><VTKFile type="PolyData"><PolyData/></VTKFile>',
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ScanFormatError) as exc:
            read_vti(tmp_path / name)
        assert name in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ScanFormatError, match=r"no data array 'nope' \(arrays: facies\)"):
        read_vti(EXAMPLES / "channels.vti", "nope")
