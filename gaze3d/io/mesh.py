"""Triangle meshes through trimesh: OBJ, STL, OFF, GLB/GLTF.

PLY meshes go through :mod:`gaze3d.io.ply` instead, which keeps per-vertex
scalar fields; these formats keep geometry and per-vertex colours only (a
written OBJ/STL/GLB drops ``fields`` and ``labels``: save PLY to keep them).
STL stores unshared triangle corners, so its vertices are merged on load.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import optional_import
from ..errors import ScanFormatError
from ..scan import Mesh
from ._common import atomic_path, corrupt

EXTENSIONS = (".obj", ".stl", ".off", ".glb", ".gltf")


def load_mesh(path) -> Mesh:
    """Read a mesh file with trimesh, vertex order kept (OBJ/OFF/GLB).

    Returns
    -------
    Mesh
        ``vertices (n, 3) float64``, ``faces (m, 3) int64``, ``colors`` when
        the file has per-vertex colours. Scenes (GLB) are flattened into one
        mesh with their node transforms applied.
    """
    trimesh = optional_import("trimesh", extra="io")
    path = Path(path)
    ext = path.suffix.lower()
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False, maintain_order=True)
    except Exception as exc:  # each trimesh loader raises its own error types
        raise corrupt(path, ext.lstrip(".").upper(), exc) from None
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    if len(vertices) == 0 or len(faces) == 0:
        raise ScanFormatError(f"{path}: empty mesh ({len(vertices)} vertices, {len(faces)} faces), "
                              f"or a corrupt or truncated file")
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():
        raise ScanFormatError(f"{path}: {int(bad.sum())} of {len(vertices)} vertices have NaN/inf coordinates")
    if ext == ".stl":
        mesh.merge_vertices()
        vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    colors = None
    if getattr(mesh.visual, "kind", None) == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
    return Mesh(vertices=vertices, faces=faces, colors=colors, source=str(path))


def save_mesh(mesh: Mesh, path) -> None:
    """Write geometry (and per-vertex colours where the format has them) with trimesh."""
    trimesh = optional_import("trimesh", extra="io")
    out = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=False)
    if mesh.colors is not None:
        rgba = np.concatenate([np.clip(np.round(mesh.colors * 255), 0, 255),
                               np.full((len(mesh.colors), 1), 255)], axis=1).astype(np.uint8)
        out.visual.vertex_colors = rgba
    with atomic_path(path) as tmp:
        try:
            out.export(str(tmp))
        except Exception as exc:
            raise ScanFormatError(f"{path}: trimesh could not write the mesh ({type(exc).__name__}: {exc})") from exc
