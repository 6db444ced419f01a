"""Training scenes from label volumes: every labelled structure's surface as a point cloud.

Label volumes hold many touching, nested, irregular shapes that no procedural
generator draws: organs (the TotalSegmentator example mask, 41 labels), frog
tissues and geological channels (``frog_tissues.vti``, ``channels.vti``, which
ship inside the pyvista wheel). Each connected component of each label
becomes one object instance (class-agnostic; ``object_class`` keeps the label
for reporting). Its surface is extracted by marching cubes (scikit-image, the
``io`` extra) or, without it, from its boundary voxels, then sampled at a
chosen density with normals.

Scale: these volumes are millimetres (CT, frog) or model units (channels); a
scene is rescaled so its footprint is 20-60 m across, like a procedural
outdoor scene, which puts its objects at roughly 0.5-30 m. Only geometry
transfers (shapes, contacts, nesting); colour and intensity are absent.

A scene is a random crop of one volume, randomly turned about z and rescaled,
optionally seen through a photogrammetry-like visibility (nadir plus four
obliques: the interfaces between touching structures and the undersides
vanish), with a ground plane under it, noise, and the same
:class:`~gaze3d.models.data.Tile` structure that
:func:`gaze3d.models.procedural.make_scene` returns, so a training sampler can
mix them in (:func:`make_surface_scene` takes the same arguments;
:func:`iter_surface_scenes` yields them forever).

``simple.las`` (laspy's sample) is not a source: its 1,065 points cover
3.4 km x 4.6 km (median spacing 63 m), so no object has more than a point or two.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .data import SPLITS, Tile, TileSpec, data_root

SOURCES = ("totalsegmentator", "frog", "channels")
GROUND_CODE, OBJECT_CODE = 2, 1          # LAS-like codes: every structure is "an object"
MAX_POINTS = 120_000                     # as procedural scenes
SCENE_SIDE_M = (20.0, 60.0)              # footprint of a scene after rescaling
DENSITY = (20.0, 200.0)                  # points per m^2 of surface (before visibility)
MIN_POINTS = 30                          # fewer and the object is dropped (as procedural)
VOXEL_SIZE = 0.5                         # network voxel of these scenes (metres)


@dataclass
class LabelSurface:
    """One connected component of one label, as a triangle mesh in volume units (mm or model units).

    Attributes
    ----------
    label : int
    verts : (v, 3) float64
    faces : (f, 3) int64
    normals : (v, 3) float64, unit, pointing out of the structure
    """
    label: int
    verts: np.ndarray
    faces: np.ndarray
    normals: np.ndarray


def load_label_volume(source: str, root=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A label volume of :data:`SOURCES`: ``(labels (I, J, K) int, spacing (3,), origin (3,))``.

    ``totalsegmentator`` is read from the data root (``medical/totalsegmentator/
    example_seg.nii.gz``, SimpleITK, the ``io`` extra); ``frog`` and ``channels``
    from the installed pyvista package's examples with :func:`gaze3d.io.vti.read_vti`
    (no VTK needed).

    Raises
    ------
    FileNotFoundError
        The file is not there (no shared data; pyvista not installed).
    """
    if source == "totalsegmentator":
        from gaze3d.io.volume import read_image

        path = data_root(root) / "medical" / "totalsegmentator" / "example_seg.nii.gz"
        if not path.is_file():
            raise FileNotFoundError(f"totalsegmentator: {path} not found (set GAZE3D_DATA or pass root)")
        arr, affine = read_image(path)
        return (np.asarray(arr).astype(np.int32), np.abs(np.diag(affine)[:3]).astype(np.float64),
                np.asarray(affine[:3, 3], np.float64))
    if source in ("frog", "channels"):
        from gaze3d.io.vti import read_vti

        path = pyvista_example(f"{'frog_tissues' if source == 'frog' else 'channels'}.vti")
        arr, spacing, origin, _ = read_vti(path)
        return np.asarray(arr).astype(np.int32), spacing, origin
    raise ValueError(f"source: expected one of {SOURCES}, got {source!r}")


def pyvista_example(name: str) -> Path:
    """Path of a file shipped in the installed pyvista wheel's ``examples`` folder (not imported:
    the folder is found from the package's metadata, so VTK is never loaded)."""
    import importlib.util

    spec = importlib.util.find_spec("pyvista")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name}: pyvista is not installed (it ships the example volume)")
    path = Path(list(spec.submodule_search_locations)[0]) / "examples" / name
    if not path.is_file():
        raise FileNotFoundError(f"{name}: not in the installed pyvista ({path})")
    return path


def label_surfaces(labels: np.ndarray, spacing, min_voxels: int = 20, downsample: int = 1,
                   method: str = "auto") -> List[LabelSurface]:
    """Surface meshes of every connected component of every non-zero label.

    Parameters
    ----------
    labels : (I, J, K) int
        0 = background.
    spacing : (3,) float
        Voxel size along i, j, k (the meshes are in these units, from voxel (0, 0, 0)).
    min_voxels : int
        Smaller components (after ``downsample``) are dropped.
    downsample : int >= 1
        Keep every ``downsample``-th voxel per axis first (large volumes).
    method : {"auto", "marching-cubes", "boundary"}
        Marching cubes needs scikit-image (``auto`` uses it when installed);
        ``boundary``: one quad per exposed voxel face (no dependency beyond scipy).

    Returns
    -------
    list of LabelSurface, 26-connected components, in label order
    """
    from scipy import ndimage

    if method not in ("auto", "marching-cubes", "boundary"):
        raise ValueError(f"method: expected 'auto', 'marching-cubes' or 'boundary', got {method!r}")
    if not isinstance(downsample, (int, np.integer)) or downsample < 1:
        raise ValueError(f"downsample: expected an int >= 1, got {downsample!r}")
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels: expected a 3-D volume, got shape {labels.shape}")
    spacing = np.asarray(spacing, np.float64) * downsample
    lab = labels[::downsample, ::downsample, ::downsample]
    if method == "auto":
        import importlib.util

        method = "marching-cubes" if importlib.util.find_spec("skimage") else "boundary"
    out = []
    objects = ndimage.find_objects(lab)        # bounding box of each label value
    for value, box in enumerate(objects, start=1):
        if box is None:
            continue
        sub = lab[box] == value
        comp, n = ndimage.label(sub, structure=np.ones((3, 3, 3)))
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        for c, cbox in enumerate(ndimage.find_objects(comp), start=1):
            if cbox is None or sizes[c] < min_voxels:
                continue
            mask = np.pad(comp[cbox] == c, 2)          # closed surfaces, room for the blur
            corner = np.array([b.start + s.start - 2 for b, s in zip(box, cbox)], np.float64)
            verts, faces, normals = (_marching_cubes(mask) if method == "marching-cubes"
                                     else _boundary_faces(mask))
            out.append(LabelSurface(int(value), (verts + corner) * spacing, faces,
                                    _unit(normals / spacing)))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _marching_cubes(mask: np.ndarray):
    from gaze3d._optional import optional_import

    measure = optional_import("skimage.measure", extra="io")
    # a light blur turns the staircase of the binary mask into a smooth level set
    from scipy import ndimage

    field = ndimage.gaussian_filter(mask.astype(np.float32), 0.7)
    verts, faces, normals, _ = measure.marching_cubes(field, 0.5 * field.max() if field.max() < 0.5
                                                      else 0.5, gradient_direction="descent")
    return verts.astype(np.float64), faces.astype(np.int64), normals.astype(np.float64)


def _boundary_faces(mask: np.ndarray):
    """Two triangles per voxel face between the mask and the outside, normals outward."""
    verts, faces, normals = [], [], []
    for axis in range(3):
        for sign in (-1, 1):
            nb = np.roll(mask, -sign, axis=axis)
            face = mask & ~nb
            ijk = np.argwhere(face).astype(np.float64)
            if not len(ijk):
                continue
            centre = ijk.copy()
            centre[:, axis] += 0.5 * sign
            u, w = [a for a in range(3) if a != axis]
            du, dw = np.eye(3)[u] * 0.5, np.eye(3)[w] * 0.5
            corners = np.stack([centre - du - dw, centre + du - dw, centre + du + dw, centre - du + dw], 1)
            base = sum(len(v) for v in verts)
            idx = base + 4 * np.arange(len(ijk))[:, None]
            faces.append(np.concatenate([idx + [0, 1, 2], idx + [0, 2, 3]]))
            verts.append(corners.reshape(-1, 3))
            n = np.zeros((4 * len(ijk), 3))
            n[:, axis] = sign
            normals.append(n)
    if not verts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3))
    return np.concatenate(verts), np.concatenate(faces).astype(np.int64), np.concatenate(normals)


def sample_surface(surface: LabelSurface, density: float, rng: np.random.Generator,
                   scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Points on a mesh at ``density`` per unit area (after ``scale``): ``(xyz (n, 3), normals (n, 3))``.

    Triangles are drawn in proportion to their area, points uniformly inside
    them; normals are the vertex normals interpolated there.
    """
    v = surface.verts * scale
    tri = v[surface.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = float(area.sum())
    n = int(rng.poisson(total * density)) if total > 0 else 0
    if n == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    f = rng.choice(len(area), n, p=area / total)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    xyz = np.einsum("nk,nkd->nd", bary, tri[f])
    nrm = np.einsum("nk,nkd->nd", bary, surface.normals[surface.faces[f]])
    return xyz, _unit(nrm)


@lru_cache(maxsize=len(SOURCES))
def source_surfaces(source: str, root: Optional[str] = None) -> Tuple[LabelSurface, ...]:
    """The label surfaces of one source, extracted once per process (seconds), in metres
    before the scene's rescaling (spacing as given by the file; the frog volume is
    halved per axis: 32 M voxels)."""
    labels, spacing, _ = load_label_volume(source, root)
    return tuple(label_surfaces(labels, spacing, downsample=2 if source == "frog" else 1))


def check_sources(sources: Sequence[str], field: str = "sources") -> Tuple[str, ...]:
    """``sources`` as a tuple of :data:`SOURCES` names; ValueError naming ``field`` otherwise."""
    bad = [s for s in sources if s not in SOURCES]
    if bad or not len(sources):
        raise ValueError(f"{field}: expected names from {SOURCES}, got {list(sources)}")
    return tuple(sources)


def make_surface_scene(rng: np.random.Generator, sensor: Optional[str] = None,
                       name: str = "surface", ground: str = "dtm", split: str = "train",
                       sources: Sequence[str] = SOURCES, root=None) -> Tile:
    """One random scene from a label volume, as a :class:`Tile` (all points in region ``split``).

    Parameters
    ----------
    rng : numpy Generator
    sensor : {"all", "photo"}, optional
        ``"all"``: every surface, interfaces between touching structures included;
        ``"photo"``: only what nadir and four 45 deg oblique views see. Default: drawn.
    name, ground, split
        As :func:`gaze3d.models.procedural.make_scene`.
    sources : sequence of :data:`SOURCES`
        Drawn from uniformly.
    root : data root for ``totalsegmentator`` (default :func:`~gaze3d.models.data.data_root`).
    """
    from gaze3d.scan import PointCloud

    from .features import point_features
    from .procedural import _ortho_visible

    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    check_sources(sources)
    sensor = sensor or str(rng.choice(["all", "photo"]))
    if sensor not in ("all", "photo"):
        raise ValueError(f"sensor: expected 'all' or 'photo', got {sensor!r}")
    source = str(rng.choice(list(sources)))
    surfaces = source_surfaces(source, None if root is None else str(root))
    if not surfaces:
        raise ValueError(f"{source}: no labelled structure large enough")
    # a random crop: structures whose centre falls in a box of 50-100 % of the volume per axis
    centres = np.array([s.verts.mean(0) for s in surfaces])
    lo, hi = np.min([s.verts.min(0) for s in surfaces], 0), np.max([s.verts.max(0) for s in surfaces], 0)
    frac = rng.uniform(0.5, 1.0, 3)
    start = lo + rng.random(3) * (1 - frac) * (hi - lo)
    inside = np.all((centres >= start) & (centres <= start + frac * (hi - lo)), 1)
    chosen = [s for s, k in zip(surfaces, inside) if k] or [surfaces[int(rng.integers(len(surfaces)))]]
    ext = (np.max([s.verts.max(0) for s in chosen], 0) - np.min([s.verts.min(0) for s in chosen], 0))
    scale = rng.uniform(*SCENE_SIDE_M) / max(float(ext[:2].max()), 1e-9)
    area = sum(_mesh_area(s) for s in chosen) * scale ** 2
    density = min(rng.uniform(*DENSITY), 2.5 * MAX_POINTS / max(area, 1e-9))
    parts, normals, inst, kinds = [], [], [], []
    for s in chosen:
        p, n = sample_surface(s, density, rng, scale)
        parts.append(p)
        normals.append(n)
        inst.append(np.full(len(p), len(kinds)))
        kinds.append(s.label)
    xyz, nrm, ob = np.concatenate(parts), np.concatenate(normals), np.concatenate(inst)
    # random yaw, sitting on a ground plane 2 m wider than the footprint on every side
    a = rng.uniform(0, 2 * np.pi)
    c, s_ = np.cos(a), np.sin(a)
    rot = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1.0]])
    xyz, nrm = (xyz - xyz.mean(0)) @ rot.T, nrm @ rot.T
    xyz[:, 2] -= xyz[:, 2].min()
    g_lo, g_hi = xyz[:, :2].min(0) - 2.0, xyz[:, :2].max(0) + 2.0
    g_density = min(density, MAX_POINTS / float(np.prod(g_hi - g_lo)))
    ng = int(rng.poisson(float(np.prod(g_hi - g_lo)) * g_density))
    g = np.c_[rng.uniform(g_lo, g_hi, (ng, 2)), np.zeros(ng)]
    xyz = np.concatenate([g, xyz])
    nrm = np.concatenate([np.tile([0.0, 0.0, 1.0], (ng, 1)), nrm])
    ob = np.concatenate([np.full(ng, -1), ob])          # -1: the ground plane
    if sensor == "photo":
        vis = _ortho_visible(xyz, [0, 0, -1.0], 0.2)
        for az in rng.uniform(0, 2 * np.pi) + np.arange(4) * np.pi / 2:
            vis |= _ortho_visible(xyz, [np.cos(az), np.sin(az), -1.0], 0.2)
        xyz, nrm, ob = xyz[vis], nrm[vis], ob[vis]
    if len(xyz) > MAX_POINTS:
        keep = np.sort(rng.choice(len(xyz), MAX_POINTS, replace=False))
        xyz, nrm, ob = xyz[keep], nrm[keep], ob[keep]
    xyz = xyz + rng.normal(0, 0.02, xyz.shape)
    # objects the sensor barely saw are dropped with their points (they are neither ground nor an
    # object); the rest are renumbered 0..m-1
    counts = np.bincount(ob[ob >= 0], minlength=len(kinds))
    good = counts >= MIN_POINTS
    keep = (ob < 0) | good[np.maximum(ob, 0)]
    xyz, nrm, ob = xyz[keep], nrm[keep], ob[keep]
    remap = np.full(len(kinds), -1)
    remap[np.flatnonzero(good)] = np.arange(good.sum())
    ob = np.where(ob >= 0, remap[np.maximum(ob, 0)], -1)
    xyz = xyz - xyz.min(0)
    labels = np.where(ob >= 0, OBJECT_CODE, GROUND_CODE).astype(np.int32)
    cloud = PointCloud(xyz=xyz)
    feats = point_features(cloud, ground=ground)
    box = (0.0, np.inf, 0.0, np.inf) if split == "val" else (0.0, 0.0, 0.0, 0.0)
    spec = TileSpec(f"<surface {source}>", 1.0, VOXEL_SIZE, (), (GROUND_CODE, OBJECT_CODE), box)
    tile = Tile(name=f"{name}-{source}-{sensor}", xyz=xyz, feats=feats, labels=labels, objects=ob,
                object_class=np.asarray(kinds, np.int64)[good], region=np.full(len(xyz), SPLITS.index(split),
                                                                         np.int8),
                x_split=float("inf"), voxel_size=VOXEL_SIZE, spec=spec, normals=nrm.astype(np.float32))
    return tile


def _mesh_area(s: LabelSurface) -> float:
    tri = s.verts[s.faces]
    return float(0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum())


def iter_surface_scenes(rng: np.random.Generator, sources: Sequence[str] = SOURCES, root=None,
                        ground: str = "dtm", split: str = "train", name: str = "surface",
                        skip_missing: bool = True) -> Iterator[Tile]:
    """Endless random scenes of :func:`make_surface_scene` (``name`` numbered per scene).

    ``skip_missing``: leave out the sources whose file is not there (no shared
    data, no pyvista) instead of failing; with none left, raises FileNotFoundError.
    """
    usable = []
    errors = []
    for s in sources:
        try:
            source_surfaces(s, None if root is None else str(root))
            usable.append(s)
        except (FileNotFoundError, ImportError) as exc:
            if not skip_missing:
                raise
            errors.append(f"{s}: {exc}")
    if not usable:
        raise FileNotFoundError("no label volume available: " + "; ".join(errors))
    k = 0
    while True:
        yield make_surface_scene(rng, name=f"{name}{k}", ground=ground, split=split, sources=usable,
                                 root=root)
        k += 1
