"""Triangle meshes through trimesh: OBJ, STL, OFF, GLB/GLTF.

PLY meshes go through :mod:`gaze3d.io.ply` instead, which keeps per-vertex
scalar fields; these formats keep geometry and per-vertex colours only (a
written OBJ/STL/GLB drops ``fields`` and ``labels``: save PLY to keep them).
STL stores unshared triangle corners, so its vertices are merged on load.
"""
from __future__ import annotations

import json
import mmap
import re
import struct
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from .._optional import optional_import
from ..errors import ScanFormatError
from ..scan import Mesh
from ._common import atomic_path, check_readable, corrupt, referenced_file, scan_errors, too_short

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
    check_readable(path)
    if ext == ".stl":
        _check_stl_count(path)
    elif ext in (".glb", ".gltf"):
        _check_gltf(path)
    elif ext == ".obj":
        _check_obj_references(path)
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
    with scan_errors(path):
        return Mesh(vertices=vertices, faces=faces, colors=colors, source=str(path))


_STL_HEADER, _STL_TRIANGLE = 84, 50
_GLB_HEADER, _GLB_CHUNK = 12, 8
# glTF accessor component sizes (componentType) and components per element (type).
_GLTF_COMPONENT = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_GLTF_TYPE = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def _check_stl_count(path: Path) -> None:
    """A binary STL's triangle count must fit in the file (an ASCII STL starts with ``solid``)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_STL_HEADER)
    if len(head) < _STL_HEADER or head.lstrip()[:5].lower() == b"solid":
        return                 # ASCII (or a binary one naming itself "solid": trimesh checks sizes)
    n = struct.unpack_from("<I", head, 80)[0]
    need = _STL_HEADER + _STL_TRIANGLE * n
    if need > size:
        raise too_short(path, "STL", f"header claims {n:,} triangles of {_STL_TRIANGLE} bytes", need, size)


_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+(.+?)[ \t]*$", re.MULTILINE)
_MTL_MAPS = re.compile(rb"^[ \t]*(?:map_\w+|bump|disp|decal|refl)[ \t]+(?:-\S+[ \t]+\S+[ \t]+)*(.+?)[ \t]*$",
                       re.MULTILINE)


def _existing_regular(header: Path, name: str, what: str) -> None:
    """A file the scan names must be a regular file if it exists (trimesh skips missing ones)."""
    if (header.parent / name).exists():
        referenced_file(header, name, what)


def _check_obj_references(path: Path) -> None:
    """Material libraries and textures an OBJ names must not be FIFOs or devices (trimesh would block)."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as text:
        if text.find(b"mtllib") < 0:        # most scans: one memchr-speed pass, no copy
            return
        names = [m.group(1).decode("utf-8", errors="replace") for m in _MTLLIB.finditer(text)]
    for name in names:
        _existing_regular(path, name, "material library")
        mtl = path.parent / name
        if mtl.is_file():
            for tex in _MTL_MAPS.finditer(mtl.read_bytes()):
                _existing_regular(path, str(Path(name).parent / tex.group(1).decode("utf-8", errors="replace")),
                                  f"texture (named in {name})")


def _check_gltf(path: Path) -> None:
    """Check a GLB's declared lengths and a glTF's buffers, views and accessors against the bytes present.

    A GLB header's total length and chunk lengths must fit in the file; the
    binary buffer, every buffer view and every accessor must lie inside what
    holds them. External buffers (``.gltf``) must be regular files of the
    declared length (a FIFO would block the reader). Anything else is left
    to trimesh.
    """
    size = path.stat().st_size
    bin_length = None
    with open(path, "rb") as fh:
        if path.suffix.lower() == ".glb":
            magic, version, total = struct.unpack("<4sII", fh.read(_GLB_HEADER).ljust(_GLB_HEADER, b"\0"))
            if magic != b"glTF":
                raise corrupt(path, "GLB", "missing the 'glTF' magic")
            if total > size:
                raise too_short(path, "GLB", "header claims a total length", total, size)
            pos, chunks = _GLB_HEADER, {}
            while pos + _GLB_CHUNK <= total:
                length, kind = struct.unpack("<I4s", fh.read(_GLB_CHUNK))
                if pos + _GLB_CHUNK + length > total:
                    raise too_short(path, "GLB", f"chunk {kind!r} at byte {pos} claims a length", length,
                                    total - pos - _GLB_CHUNK, "the rest of the file holds")
                chunks.setdefault(kind, (pos + _GLB_CHUNK, length))
                fh.seek(pos + _GLB_CHUNK + length)
                pos += _GLB_CHUNK + length
            if b"JSON" not in chunks:
                raise corrupt(path, "GLB", "no JSON chunk")
            fh.seek(chunks[b"JSON"][0])
            text = fh.read(chunks[b"JSON"][1])
            bin_length = chunks.get(b"BIN\0", (0, 0))[1]
        else:
            text = fh.read()
    try:
        doc = json.loads(text)
        buffers = [int(b.get("byteLength", 0)) for b in doc.get("buffers", [])]
        views = doc.get("bufferViews", [])
        accessors = doc.get("accessors", [])
        for i, buf in enumerate(doc.get("buffers", [])):
            uri = buf.get("uri")
            if uri is None:
                have, where = bin_length, "the BIN chunk holds"
            elif uri.startswith("data:"):
                continue
            else:
                have, where = referenced_file(path, unquote(uri), f"buffer {i}").st_size, f"{uri} holds"
            if have is not None and buffers[i] > have:
                raise too_short(path, "glTF", f"buffer {i} claims a byteLength", buffers[i], have, where)
        for i, image in enumerate(doc.get("images", [])):
            uri = image.get("uri")
            if uri and not uri.startswith("data:"):
                _existing_regular(path, unquote(uri), f"image {i}")
        for i, view in enumerate(views):
            end = int(view.get("byteOffset", 0)) + int(view["byteLength"])
            if end > buffers[int(view["buffer"])]:
                raise too_short(path, "glTF", f"bufferView {i} ends at byte", end, buffers[int(view["buffer"])],
                                f"its buffer {view['buffer']} holds")
        for i, acc in enumerate(accessors):
            if "bufferView" not in acc:
                continue
            view = views[int(acc["bufferView"])]
            element = _GLTF_COMPONENT[int(acc["componentType"])] * _GLTF_TYPE[acc["type"]]
            count = int(acc["count"])
            stride = int(view.get("byteStride", element))
            need = int(acc.get("byteOffset", 0)) + (count - 1) * stride + element if count > 0 else 0
            if need > int(view["byteLength"]):
                raise too_short(path, "glTF", f"accessor {i} claims {count:,} elements of {element} bytes",
                                need, int(view["byteLength"]), f"its bufferView {acc['bufferView']} holds")
    except ScanFormatError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise corrupt(path, path.suffix.lstrip(".").upper(), f"bad glTF JSON ({type(exc).__name__}: {exc})") from None


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
