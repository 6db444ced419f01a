"""Procedural labelled scenes for training: terrain or rooms, objects of many shapes and
sizes, seen through a sensor model. Generated on the fly (about 0.1-0.5 s per scene);
nothing is stored.

Outdoor scenes: a terrain (smooth random relief and slope) with cars, boxes and
containers, shrubs, hedges, poles, walls, isolated trees, clusters of touching
trees and buildings (flat or gabled roofs), 0.3-30 m. Indoor scenes: a room
(floor, walls) with tables, chairs, cabinets, sofas, beds and lamps, most of
them touching a wall or each other.

Sensors (:data:`SENSORS`):

* ``"als"``: airborne LiDAR, 5-50 pts/m^2, seen from above within +-20 deg of
  nadir (facades sparse), vegetation partly transparent (multiple returns),
  intensity, colour in half of the scenes (IGN LiDAR HD carries RGB), 3 cm noise;
* ``"photo"``: drone photogrammetry, 50-500 pts/m^2 (capped per scene), nadir plus
  four 45 deg obliques, colour, no intensity, 3-8 cm noise, vegetation surfaces
  only (no penetration);
* ``"tls"``: terrestrial laser from 2-4 stations at 1.7 m, density falling with
  range, intensity, colour in half of the scenes;
* ``"indoor"``: a room scanned from 1-3 stations (like RGB-D / indoor LiDAR), colour.

Every scene is returned as a :class:`~gaze3d.models.data.Tile` whose points all
belong to the training region, with one object id per object instance
(class-agnostic: ``object_class`` only records the kind, for reporting).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .data import Tile, TileSpec

SENSORS = ("als", "photo", "tls", "indoor")
KINDS = ("car", "box", "shrub", "hedge", "pole", "wall", "tree", "trees", "building",
         "table", "chair", "cabinet", "sofa", "bed", "lamp")
KIND_CODE = {k: i + 10 for i, k in enumerate(KINDS)}     # object_class codes (reporting only)
GROUND, VEGETATION, BUILDING, OTHER = 2, 5, 6, 1          # LAS-like semantic codes
MAX_POINTS = 120_000
#: seeds of the procedural validation scenes (`gaze3d train --val-scenes`, `bench/interactive.py
#: --datasets validation`) and test scenes (`bench/interactive.py --datasets procedural`);
#: training draws from its own --seed
VALIDATION_SEED, TEST_SEED = 10_000, 20_000
# voxel edge (metres) the network sees each sensor at
VOXEL = {"als": 0.5, "photo": 0.5, "tls": 0.25, "indoor": 0.1}


# ------------------------------------------------------------------ primitives
def _rect(rng, origin, u, v, density):
    """Points on the parallelogram ``origin + s u + t v``, s, t in [0, 1]."""
    area = np.linalg.norm(np.cross(u, v))
    n = max(1, rng.poisson(area * density))
    st = rng.random((n, 2))
    return origin + st[:, :1] * u + st[:, 1:] * v


def _box(rng, centre, size, yaw, density, bottom=False):
    """Points on a box's faces (no bottom by default), rotated by ``yaw`` about z."""
    sx, sy, sz = size
    c, s = np.cos(yaw), np.sin(yaw)
    ex, ey, ez = np.array([c, s, 0.0]) * sx, np.array([-s, c, 0.0]) * sy, np.array([0, 0, 1.0]) * sz
    o = np.asarray(centre, float) - ex / 2 - ey / 2          # centre of the bottom face -> corner
    faces = [(o + ez, ex, ey), (o, ex, ez), (o + ey, ex, ez), (o, ey, ez), (o + ex, ey, ez)]
    if bottom:
        faces.append((o, ex, ey))
    return np.concatenate([_rect(rng, *f, density) for f in faces])


def _cylinder(rng, base, r, h, density):
    n = max(1, rng.poisson(2 * np.pi * r * h * density))
    a = rng.uniform(0, 2 * np.pi, n)
    return np.asarray(base, float) + np.stack([r * np.cos(a), r * np.sin(a), rng.uniform(0, h, n)], 1)


def _ellipsoid(rng, centre, radii, density, inside=0.0, rough=0.15):
    """Points on (and, a fraction ``inside``, within) a rough ellipsoid."""
    a, b, c = radii
    area = 4 * np.pi * ((a * b) ** 1.6 + (a * c) ** 1.6 + (b * c) ** 1.6) ** (1 / 1.6) / 3
    n = max(1, rng.poisson(area * density * (1 + inside)))
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    rad = 1 + rough * rng.normal(size=(n, 1))
    k = rng.random(n) < inside / (1 + inside)
    rad[k, 0] = rng.random(k.sum()) ** (1 / 3)
    return np.asarray(centre, float) + d * rad * np.array(radii)


def _gable(rng, centre, size, yaw, ridge_h, density):
    """Two roof planes over a box top (ridge along the box's x)."""
    sx, sy, _ = size
    c, s = np.cos(yaw), np.sin(yaw)
    ex, ey = np.array([c, s, 0.0]) * sx, np.array([-s, c, 0.0]) * sy
    o = np.asarray(centre, float) - ex / 2 - ey / 2
    ridge = o + ey / 2 + np.array([0, 0, ridge_h])
    return np.concatenate([_rect(rng, o, ex, ridge - o, density),
                           _rect(rng, o + ey, ex, ridge - (o + ey), density)])


# ------------------------------------------------------------------ terrain
class _Terrain:
    def __init__(self, rng, side):
        self.k = rng.uniform(0.02, 0.1, (4, 2)) * rng.choice([-1, 1], (4, 2))
        self.a = rng.uniform(0.1, 0.8, 4)
        self.ph = rng.uniform(0, 2 * np.pi, 4)
        self.slope = rng.normal(0, 0.04, 2)

    def z(self, xy):
        z = xy @ self.slope
        for k, a, p in zip(self.k, self.a, self.ph):
            z = z + a * np.sin(xy @ k + p)
        return z


# ------------------------------------------------------------------ objects
def _object(rng, kind, xy, ground_z, d):
    """(points (m, 3), class code, porous (m,) bool) of one object at ``xy``."""
    yaw = rng.uniform(0, np.pi)
    base = np.array([xy[0], xy[1], ground_z])
    porous = False
    if kind == "car":
        L, W = rng.uniform(3.5, 5.0), rng.uniform(1.6, 2.0)
        body = _box(rng, base + [0, 0, 0.25], (L, W, 0.8), yaw, d)
        cabin = _box(rng, base + [0, 0, 1.05], (L * 0.55, W * 0.9, 0.5), yaw, d)
        pts, code = np.concatenate([body, cabin]), OTHER
    elif kind == "box":
        s = rng.uniform(0.3, 1.0) * rng.choice([1.0, 3.0, 12.0], p=[0.5, 0.35, 0.15])
        size = (s * rng.uniform(0.5, 1.0), s * rng.uniform(0.3, 1.0), min(s, 3.0) * rng.uniform(0.4, 1.0))
        pts, code = _box(rng, base, size, yaw, d), OTHER
    elif kind == "shrub":
        r = rng.uniform(0.3, 1.8)
        pts = _ellipsoid(rng, base + [0, 0, r * 0.8], (r, r * rng.uniform(0.7, 1.2), r * 0.8), d, 0.3, 0.2)
        pts, code, porous = pts, VEGETATION, True
    elif kind == "hedge":
        L, W, H = rng.uniform(3, 20), rng.uniform(0.6, 1.5), rng.uniform(0.8, 2.2)
        pts = _box(rng, base, (L, W, H), yaw, d)
        pts += rng.normal(0, 0.08, pts.shape)
        pts, code, porous = pts, VEGETATION, True
    elif kind == "pole":
        r, h = rng.uniform(0.06, 0.25), rng.uniform(3, 12)
        pts = _cylinder(rng, base, r, h, d * 4)            # thin: oversample, the sensor thins it
        if rng.random() < 0.5:                           # a lamp or sign head
            pts = np.concatenate([pts, _box(rng, base + [0, 0, h], (1.2, 0.4, 0.3), yaw, d * 2)])
        code = OTHER
    elif kind == "wall":
        L, T, H = rng.uniform(3, 30), rng.uniform(0.2, 0.5), rng.uniform(1, 3)
        pts, code = _box(rng, base, (L, T, H), yaw, d), BUILDING if H > 2.5 else OTHER
    elif kind in ("tree", "trees"):
        n = 1 if kind == "tree" else int(rng.integers(2, 7))
        parts = []
        c = base.copy()
        for i in range(n):
            r = rng.uniform(1.5, 6.0)
            h = rng.uniform(2.0, 12.0)
            trunk = _cylinder(rng, c, rng.uniform(0.1, 0.4), h + r * 0.3, d)
            crown = _ellipsoid(rng, c + [0, 0, h + r * 0.7], (r, r * rng.uniform(0.8, 1.2), r * rng.uniform(0.7, 1.3)),
                               d, 0.8, 0.25)
            parts += [trunk[rng.random(len(trunk)) < 0.3], crown]
            # the next crown touches this one (a clustered stand)
            step = rng.normal(size=2)
            c = c + np.r_[step / np.linalg.norm(step) * r * rng.uniform(1.2, 1.8), 0.0]
        pts, code, porous = np.concatenate(parts), VEGETATION, True
    elif kind == "building":
        size = (rng.uniform(6, 30), rng.uniform(6, 20), rng.uniform(3, 15))
        walls = _box(rng, base, size, yaw, d)
        if rng.random() < 0.5:
            top = walls[:, 2] > base[2] + size[2] - 1e-6
            walls = np.concatenate([walls[~top], _gable(rng, base + [0, 0, size[2]], size, yaw,
                                                        rng.uniform(1.5, 5), d)])
        pts, code = walls, BUILDING
    elif kind == "table":
        L, W, H = rng.uniform(0.8, 2.2), rng.uniform(0.6, 1.1), rng.uniform(0.7, 0.8)
        top = _box(rng, base + [0, 0, H - 0.04], (L, W, 0.04), yaw, d, bottom=True)
        legs = [_cylinder(rng, base + _rot([sx * (L / 2 - 0.05), sy * (W / 2 - 0.05), 0], yaw), 0.03, H, d * 3)
                for sx in (-1, 1) for sy in (-1, 1)]
        pts, code = np.concatenate([top] + legs), OTHER
    elif kind == "chair":
        s = rng.uniform(0.4, 0.55)
        seat = _box(rng, base + [0, 0, 0.42], (s, s, 0.05), yaw, d, bottom=True)
        back = _box(rng, base + _rot([-s / 2, 0, 0.47], yaw), (0.05, s, rng.uniform(0.35, 0.5)), yaw, d)
        legs = [_cylinder(rng, base + _rot([sx * s / 2.3, sy * s / 2.3, 0], yaw), 0.02, 0.42, d * 3)
                for sx in (-1, 1) for sy in (-1, 1)]
        pts, code = np.concatenate([seat, back] + legs), OTHER
    elif kind == "cabinet":
        pts, code = _box(rng, base, (rng.uniform(0.4, 2.0), rng.uniform(0.3, 0.6), rng.uniform(0.5, 2.2)),
                         yaw, d), OTHER
    elif kind == "sofa":
        L, W = rng.uniform(1.5, 2.5), rng.uniform(0.8, 1.0)
        pts = np.concatenate([_box(rng, base, (L, W, 0.45), yaw, d),
                              _box(rng, base + _rot([0, -W / 2 + 0.1, 0.45], yaw), (L, 0.2, 0.4), yaw, d)])
        code = OTHER
    elif kind == "bed":
        pts, code = _box(rng, base, (rng.uniform(1.9, 2.1), rng.uniform(0.9, 1.8), 0.5), yaw, d), OTHER
    elif kind == "lamp":
        h = rng.uniform(1.2, 1.8)
        pts = np.concatenate([_cylinder(rng, base, 0.02, h, d * 4),
                              _ellipsoid(rng, base + [0, 0, h], (0.2, 0.2, 0.15), d * 2, 0, 0.02)])
        code = OTHER
    else:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    return pts, code, np.full(len(pts), porous)


def _rot(v, yaw):
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


# ------------------------------------------------------------------ sensors
def _ortho_visible(xyz, direction, cell, tol=0.15):
    """(n,) bool: nearest surface per ``cell`` along ``direction`` (the sensor looks along it)."""
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    u = np.cross(d, [0, 1.0, 0] if abs(d[1]) < 0.9 else [1.0, 0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    depth = xyz @ d
    ij = np.floor(np.stack([xyz @ u, xyz @ v], 1) / cell).astype(np.int64)
    ij -= ij.min(0)
    key = ij[:, 0] * (ij[:, 1].max() + 1) + ij[:, 1]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    near = np.minimum.reduceat(depth[order], starts)        # per cell, in sorted-key order
    out = np.empty(len(xyz), bool)
    out[order] = depth[order] <= np.repeat(near, np.diff(np.r_[starts, len(ks)])) + tol
    return out


def _station_visible(xyz, station, pixel_deg=0.25):
    from gaze3d.camera import Camera

    from .gaze_sim import visible_points

    vis = np.zeros(len(xyz), bool)
    for yaw in range(0, 360, 90):
        for pitch in (-35.0, 20.0):
            a, p = np.radians(yaw), np.radians(pitch)
            f = station + np.array([np.cos(p) * np.cos(a), np.cos(p) * np.sin(a), np.sin(p)])
            cam = Camera(position=station, focal_point=f, view_up=(0, 0, 1), vfov_deg=70.0,
                         width=1600, height=1000, near=0.05, far=1e4)
            vis |= visible_points(xyz, cam, pixel_deg=pixel_deg, depth_tolerance=0.03)
    return vis


# ------------------------------------------------------------------ scenes
def make_scene(rng: np.random.Generator, sensor: Optional[str] = None, name: str = "procedural",
               ground: str = "dtm", split: str = "train") -> Tile:
    """One random labelled scene as a :class:`Tile` (all points in region ``split``).

    Parameters
    ----------
    rng : numpy Generator
    sensor : one of :data:`SENSORS`, optional
        Default: drawn at random (indoor 20 %).
    ground : str
        Ground model of the features (:func:`~gaze3d.models.features.point_features`).
    split : str
        Region of every point (``"train"``, or ``"val"`` for validation scenes).
    """
    from gaze3d.scan import PointCloud

    from .data import SPLITS
    from .features import point_features

    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")

    sensor = sensor or str(rng.choice(SENSORS, p=[0.35, 0.3, 0.15, 0.2]))
    if sensor not in SENSORS:
        raise ValueError(f"sensor: expected one of {SENSORS}, got {sensor!r}")
    indoor = sensor == "indoor"
    target_density = {"als": rng.uniform(5, 50), "photo": rng.uniform(50, 500),
                      "tls": rng.uniform(100, 800), "indoor": rng.uniform(500, 3000)}[sensor]
    if indoor:
        side = np.array([rng.uniform(4, 10), rng.uniform(3, 8)])
    else:
        s = float(np.clip(np.sqrt(MAX_POINTS / target_density / 1.6), 25, 90))
        side = np.array([s, s * rng.uniform(0.7, 1.0)])
    d0 = min(target_density * 2.5, 2 * MAX_POINTS / (side.prod() * 1.6))   # before visibility
    parts, codes, objs, porous = [], [], [], []
    if indoor:
        terrain = None
        H = rng.uniform(2.4, 3.2)
        floor = _rect(rng, np.zeros(3), np.r_[side[0], 0, 0], np.r_[0, side[1], 0], d0)
        walls = np.concatenate([_rect(rng, np.zeros(3), np.r_[side[0], 0, 0], np.r_[0, 0, H], d0),
                                _rect(rng, np.r_[0, side[1], 0], np.r_[side[0], 0, 0], np.r_[0, 0, H], d0),
                                _rect(rng, np.zeros(3), np.r_[0, side[1], 0], np.r_[0, 0, H], d0),
                                _rect(rng, np.r_[side[0], 0, 0], np.r_[0, side[1], 0], np.r_[0, 0, H], d0)])
        parts += [floor, walls]
        codes += [GROUND, BUILDING]
        objs += [-1, -1]
        porous += [np.zeros(len(floor), bool), np.zeros(len(walls), bool)]
        kinds = ["table", "chair", "chair", "cabinet", "sofa", "bed", "lamp", "box"]
        n_obj = int(rng.integers(4, 12))
    else:
        terrain = _Terrain(rng, side)
        g = _rect(rng, np.zeros(3), np.r_[side[0], 0, 0], np.r_[0, side[1], 0], d0)
        g[:, 2] = terrain.z(g[:, :2]) + rng.normal(0, 0.03, len(g))
        parts.append(g)
        codes.append(GROUND)
        objs.append(-1)
        porous.append(np.zeros(len(g), bool))
        kinds = ["car", "box", "shrub", "hedge", "pole", "wall", "tree", "trees", "building"]
        n_obj = int(rng.integers(8, 26))
    placed = []   # (xy, radius)
    oid = 0
    for _ in range(n_obj * 3):
        if oid >= n_obj:
            break
        kind = str(rng.choice(kinds))
        xy = rng.uniform([1.0, 1.0], side - 1.0)
        if indoor and rng.random() < 0.6:     # against a wall
            w = int(rng.integers(4))
            xy[w % 2] = 0.5 if w < 2 else side[w % 2] - 0.5
        gz = 0.0 if terrain is None else float(terrain.z(xy[None])[0])
        pts, code, por = _object(rng, kind, xy, gz, d0)
        keep = np.all((pts[:, :2] >= 0) & (pts[:, :2] <= side), axis=1)
        if indoor:
            keep &= pts[:, 2] <= H
        pts, por = pts[keep], por[keep]
        if len(pts) < 20:
            continue
        c = pts[:, :2].mean(0)
        r = float(np.linalg.norm(pts[:, :2] - c, axis=1).max())
        # mostly apart; a few touch on purpose (hard cases: parked cars, trees by a wall)
        if any(np.linalg.norm(c - q) < (r + rq) * (0.6 if rng.random() < 0.3 else 1.0) for q, rq in placed):
            continue
        placed.append((c, r))
        parts.append(pts)
        codes.append(code)
        objs.append(oid)
        porous.append(por)
        oid += 1
    xyz = np.concatenate(parts)
    lab = np.concatenate([np.full(len(p), c, np.int32) for p, c in zip(parts, codes)])
    ob = np.concatenate([np.full(len(p), o, np.int64) for p, o in zip(parts, objs)])
    por = np.concatenate(porous)
    kind_of = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)])
    # sensor: visibility, then thinning to the target density
    if sensor == "als":
        vis = np.zeros(len(xyz), bool)
        for _ in range(2):                       # two overlapping strips
            a = rng.uniform(0, 2 * np.pi)
            off = np.tan(np.radians(rng.uniform(0, 20)))
            vis |= _ortho_visible(xyz, [off * np.cos(a), off * np.sin(a), -1.0], 0.35)
        vis |= por & (rng.random(len(xyz)) < 0.35)     # returns from inside the canopy
    elif sensor == "photo":
        vis = _ortho_visible(xyz, [0, 0, -1.0], 0.2)
        for a in rng.uniform(0, 2 * np.pi) + np.arange(4) * np.pi / 2:
            vis |= _ortho_visible(xyz, [np.cos(a), np.sin(a), -1.0], 0.2)
    else:
        vis = np.zeros(len(xyz), bool)
        n_st = int(rng.integers(1, 4)) if indoor else int(rng.integers(2, 5))
        for _ in range(n_st):
            st = np.r_[rng.uniform(0.2, 0.8, 2) * side, 0.0]
            st[2] = (0.0 if terrain is None else float(terrain.z(st[None, :2])[0])) + rng.uniform(1.2, 1.8)
            vis |= _station_visible(xyz, st)
    keep = vis & (rng.random(len(xyz)) < min(1.0, target_density / d0))
    if sensor in ("tls", "indoor") and keep.any():
        r = np.linalg.norm(xyz[:, :2] - xyz[keep, :2].mean(0), axis=1)
        keep &= rng.random(len(xyz)) < np.minimum(1.0, (4.0 / np.maximum(r, 1e-3)) ** 1.5 + 0.2)
    if keep.sum() > MAX_POINTS:
        keep &= rng.random(len(xyz)) < MAX_POINTS / keep.sum()
    xyz, lab, ob, por, kind_of = xyz[keep], lab[keep], ob[keep], por[keep], kind_of[keep]
    noise = {"als": 0.03, "photo": rng.uniform(0.03, 0.08), "tls": 0.01, "indoor": 0.01}[sensor]
    xyz = xyz + rng.normal(0, noise, xyz.shape)
    # drop objects the sensor barely saw (and renumber)
    counts = np.bincount(ob[ob >= 0], minlength=oid)
    good = counts >= 30
    remap = np.full(oid + 1, -1)
    remap[np.flatnonzero(good)] = np.arange(good.sum())
    ob = np.where(ob >= 0, remap[np.maximum(ob, 0)], -1)
    obj_class = np.zeros(int(good.sum()), np.int64)
    for o in range(len(obj_class)):
        obj_class[o] = lab[ob == o][0]
    # appearance
    colors = intensity = None
    has_colour = sensor in ("photo", "indoor") or rng.random() < 0.5
    if has_colour:
        base = rng.random((kind_of.max() + 1, 3))
        base[0] = rng.uniform([0.25, 0.3, 0.15], [0.5, 0.55, 0.35])       # ground: grass-soil
        veg = lab == VEGETATION
        colors = base[kind_of]
        colors[veg] = rng.uniform([0.1, 0.25, 0.05], [0.35, 0.55, 0.25], (veg.sum(), 3))
        colors = np.clip(colors + rng.normal(0, 0.05, colors.shape), 0, 1).astype(np.float32)
    if sensor in ("als", "tls"):
        mat = rng.uniform(0.2, 1.0, kind_of.max() + 1)
        intensity = (mat[kind_of] * rng.uniform(0.7, 1.3, len(xyz)) * 1000).astype(np.float32)
    xyz = xyz - xyz.min(0)
    cloud = PointCloud(xyz=xyz, colors=colors, intensity=intensity)
    feats = point_features(cloud, ground=ground)
    spec = TileSpec(f"<procedural {sensor}>", 1.0, VOXEL[sensor], (), (GROUND, VEGETATION, BUILDING, OTHER),
                    (0.0, 0.0, 0.0, 0.0))
    if split == "val":
        spec = TileSpec(spec.path, 1.0, spec.voxel_size, (), spec.semantic_classes, (0.0, np.inf, 0.0, np.inf))
    return Tile(name=f"{name}-{sensor}", xyz=xyz, feats=feats, labels=lab, objects=ob,
                object_class=obj_class, region=np.full(len(xyz), SPLITS.index(split), np.int8),
                x_split=float("inf"),
                voxel_size=VOXEL[sensor], spec=spec)


def validation_scenes(n: int, ground: str = "dtm") -> list:
    """The first ``n`` procedural validation scenes (:data:`VALIDATION_SEED`), split ``"val"``.

    The same scenes for every training run and every bench, so checkpoints are chosen on one
    fixed set that no training run draws from.
    """
    rng = np.random.default_rng(VALIDATION_SEED)
    return [make_scene(rng, name=f"val{i}", ground=ground, split="val") for i in range(n)]
