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
    if ext == ".off":
        _check_off_counts(path, len(vertices), len(faces))
    if ext == ".stl":
        mesh.merge_vertices()
        vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    colors = None
    if getattr(mesh.visual, "kind", None) == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
    return Mesh(vertices=vertices, faces=faces, colors=colors, source=str(path))


def _check_off_counts(path: Path, n_vertices: int, n_faces: int) -> None:
    """OFF announces its vertex and face counts: a shortfall means a truncated file."""
    words = []
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.split(b"#")[0].decode("ascii", errors="replace").split()
            words += line
            if len(words) >= 3 and words[0].upper().endswith("OFF") and len(words) >= 4 or \
                    len(words) >= 3 and not words[0].upper().endswith("OFF"):
                break
    counts = words[1:3] if words and words[0].upper().endswith("OFF") else words[:2]
    try:
        want_v, want_f = int(counts[0]), int(counts[1])
    except (ValueError, IndexError):
        return
    if n_vertices < want_v or n_faces < want_f:      # polygons become several triangles
        raise corrupt(path, "OFF", f"header announces {want_v} vertices and {want_f} faces, "
                                   f"read {n_vertices} and {n_faces} triangles")


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
