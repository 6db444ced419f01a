"""Procedural abdomen-like label volumes for training the volume model ("train for breadth").

The label volumes at hand for training (pyvista's frog and channels) hold few
compact organ-sized structures and almost none that touch a neighbour of the
same intensity, which is what makes abdominal CT hard for a gaze-seeded
segmenter: liver, spleen, stomach wall, bowel and muscle lie against each other
at nearly the same Hounsfield units, and only shape and the annotator's
fixations separate them. :func:`procedural_abdomen` draws such a scene:

* a torso (elliptic cross-section varying along its length) of subcutaneous
  fat, a muscle wall and visceral fat;
* a spine: vertebral bodies (each its own label) with posterior elements,
  separated by discs, and two paraspinal muscle columns against it;
* two large vessels along the spine and one to three smaller branches;
* 12-18 organs from a perturbed, size-weighted Voronoi partition of the
  abdominal cavity, each cut to its own random extent, so some touch their
  neighbours along a shared face and others sit in fat; one or two are hollow
  (a wall around a lumen of its own label);
* two or three small organs (gallbladder/adrenal-sized) against a large one.

``tissue`` maps every label to a tissue class (fat, muscle, bone, disc, blood,
a shared "soft tissue" class that about half of the organs join, or a class of
its own): :func:`~.volume_data.synthseg_image` draws one mean intensity per
class, so organs of the same class touch at nearly the same intensity, as in
CT, while the SynthSeg recipe keeps every other contrast possible.

Nothing here reads data or a file: a scene is a function of its seed (about
2-4 s for the default 144 x 120 x 160 grid at 2.5 mm). The validation phantom
(:func:`~.volume_eval.load_phantom`: five fixed ellipsoids) and the test CT
are not made here.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

#: default grid (voxels) and voxel size (mm): a 360 x 300 x 400 mm torso section
SHAPE = (144, 120, 160)
SPACING_MM = 2.5

# fixed labels; vertebrae, discs, organs, small organs and lumens are numbered after these
SUBCUT_FAT, MUSCLE_WALL, VISCERAL_FAT, PARASPINAL_L, PARASPINAL_R, AORTA, CAVA = 1, 2, 3, 4, 5, 6, 7
#: tissue classes (see the module docstring); organs not in SOFT get a class of their own from OWN_CLASS up
FAT, MUSCLE, BONE, DISC, BLOOD, SOFT, OWN_CLASS = 1, 2, 3, 4, 5, 6, 10


def _noise(shape, rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth zero-mean noise of unit-order amplitude: a ``cells``^3 random grid, upsampled (cubic)."""
    from scipy import ndimage

    coarse = rng.normal(0, 1, (cells,) * 3)
    f = ndimage.zoom(coarse, [s / cells for s in shape], order=3, mode="nearest")
    return f[:shape[0], :shape[1], :shape[2]].astype(np.float32)


def _tube(grid, path_xy, radius_mm: float) -> np.ndarray:
    """Voxels within ``radius_mm`` of a curve running along z: ``path_xy`` (K, 2) mm, one point per slice."""
    gx, gy, _ = grid
    return (gx - path_xy[None, None, :, 0]) ** 2 + (gy - path_xy[None, None, :, 1]) ** 2 <= radius_mm ** 2


def _wander(z: np.ndarray, rng: np.random.Generator, amp_mm: float) -> np.ndarray:
    """A smooth random offset along z (a few cosines), ``(len(z),)`` mm."""
    span = float(z.max() - z.min()) or 1.0
    out = np.zeros_like(z)
    for k in range(1, 4):
        out += rng.normal(0, amp_mm / k) * np.cos(2 * np.pi * k * (z - z.min()) / (2 * span) + rng.uniform(0, 6.3))
    return out


def procedural_abdomen(seed: int = 0, shape: Tuple[int, int, int] = SHAPE, spacing_mm: float = SPACING_MM):
    """One procedural abdomen (see the module docstring).

    Parameters
    ----------
    seed : int
    shape : (3,) int
        Grid in voxels (x left-right, y anterior-posterior, z along the body).
    spacing_mm : float
        Isotropic voxel size.

    Returns
    -------
    labels : (I, J, K) int32
        0 outside the body.
    names : dict int -> str
    tissue : dict int -> int
        Tissue class of every label (0 included: air is its own class, 0).
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    axes = [(np.arange(n) - (n - 1) / 2.0) * spacing_mm for n in shape]
    gx, gy, gz = np.meshgrid(*axes, indexing="ij", sparse=True)
    z = axes[2]
    half = [n * spacing_mm / 2.0 for n in shape]
    vox_cm3 = spacing_mm ** 3 / 1000.0
    labels = np.zeros(shape, np.int32)
    names: Dict[int, str] = {SUBCUT_FAT: "subcutaneous fat", MUSCLE_WALL: "muscle wall",
                             VISCERAL_FAT: "visceral fat", PARASPINAL_L: "paraspinal muscle left",
                             PARASPINAL_R: "paraspinal muscle right", AORTA: "large vessel 1", CAVA: "large vessel 2"}
    tissue: Dict[int, int] = {0: 0, SUBCUT_FAT: FAT, MUSCLE_WALL: MUSCLE, VISCERAL_FAT: FAT,
                              PARASPINAL_L: MUSCLE, PARASPINAL_R: MUSCLE, AORTA: BLOOD, CAVA: BLOOD}

    # --- torso: an ellipse per slice whose axes vary along z, with a bumpy outline
    a = half[0] * rng.uniform(0.78, 0.92) * (1 + 0.06 * np.tanh(_wander(z, rng, 1.0)))
    b = half[1] * rng.uniform(0.72, 0.86) * (1 + 0.06 * np.tanh(_wander(z, rng, 1.0)))
    r = np.sqrt((gx / a[None, None, :]) ** 2 + (gy / b[None, None, :]) ** 2)
    body = r <= 1.0 + 0.03 * _noise(shape, rng, 6)
    depth = ndimage.distance_transform_edt(body, sampling=spacing_mm)      # mm inside the skin
    subcut = rng.uniform(8, 22)
    wall = rng.uniform(8, 16)
    labels[body] = SUBCUT_FAT
    labels[body & (depth > subcut)] = MUSCLE_WALL
    cavity = body & (depth > subcut + wall)
    labels[cavity] = VISCERAL_FAT

    # --- spine (posterior midline): vertebral bodies, discs, posterior elements
    spine_y = (b * rng.uniform(0.42, 0.55))[None, None, :]                # (1, 1, K) mm, posterior is +y
    rv = rng.uniform(16, 23)
    sx = _wander(z, rng, 3.0)[None, None, :]
    in_body = (gx - sx) ** 2 + (gy - spine_y) ** 2 <= rv ** 2
    posterior = (np.abs(gx - sx) <= rng.uniform(6, 10)) & (gy > spine_y) & (gy <= spine_y + rv + rng.uniform(22, 34))
    height, disc = rng.uniform(24, 32), rng.uniform(5, 9)
    # one offset for both: vertebra k is one body and the disc below it (a body is never split)
    along = z - z.min() + rng.uniform(0, height + disc)
    phase = along % (height + disc)
    k_index = (along // (height + disc)).astype(int)
    is_disc = (phase >= height)[None, None, :]
    bone = (in_body | posterior) & ~is_disc
    next_label = 10
    kz = np.broadcast_to(k_index[None, None, :], shape)
    for k in np.unique(k_index):
        m = bone & (kz == k)
        if m.any():
            labels[m] = next_label
            names[next_label] = f"vertebra {int(k) + 1}"
            tissue[next_label] = BONE
            next_label += 1
        d = in_body & is_disc & (kz == k)
        if d.any():
            labels[d] = next_label
            names[next_label] = f"disc {int(k) + 1}"
            tissue[next_label] = DISC
            next_label += 1
    spine = in_body | posterior
    for lab, side in ((PARASPINAL_L, -1), (PARASPINAL_R, 1)):
        cx = sx + side * rng.uniform(32, 45)
        cy = spine_y + rng.uniform(18, 30)
        m = (((gx - cx) / rng.uniform(20, 30)) ** 2 + ((gy - cy) / rng.uniform(18, 26)) ** 2 <= 1) & body & ~spine
        labels[m] = lab

    # --- large vessels in front of the spine, then 1-3 branches
    vessels = np.zeros(shape, bool)
    for lab, side in ((AORTA, -1), (CAVA, 1)):
        rad = rng.uniform(8, 13)
        px = sx[0, 0] + side * rng.uniform(12, 30) + _wander(z, rng, 3.0)
        py = spine_y[0, 0] - rv - rad - rng.uniform(2, 10) + _wander(z, rng, 2.0)
        m = _tube((gx, gy, gz), np.stack([px, py], 1), rad) & cavity
        labels[m] = lab
        vessels |= m
    for i in range(int(rng.integers(1, 4))):
        rad = rng.uniform(4, 7)
        lo = rng.uniform(-0.8, 0.2) * half[2]
        span = rng.uniform(0.3, 0.7) * half[2]
        t = np.clip((z - lo) / span, 0, 1)
        ang = rng.uniform(0, 2 * np.pi)
        reach = rng.uniform(40, 110)
        px = sx[0, 0] + np.cos(ang) * reach * t + _wander(z, rng, 4.0) * t
        py = spine_y[0, 0] - rv - 20 + np.sin(ang) * reach * t - 30 * t
        inz = ((z >= lo) & (z <= lo + span))[None, None, :]
        m = _tube((gx, gy, gz), np.stack([px, py], 1), rad) & cavity & inz & ~vessels
        labels[m] = next_label
        names[next_label] = f"vessel branch {i + 1}"
        tissue[next_label] = BLOOD
        vessels |= m
        next_label += 1

    # --- organs: a perturbed, size-weighted Voronoi partition of the free cavity, each cut to its extent
    free = cavity & ~vessels & (labels == VISCERAL_FAT)
    cand = np.argwhere(free)
    n_org = int(rng.integers(12, 19))
    centres = cand[rng.choice(len(cand), n_org, replace=False)]
    # best: each voxel's lowest score, which is its owner's (so the cut below needs no other score)
    best = np.full(shape, np.inf, np.float32)
    owner = np.full(shape, -1, np.int32)
    radii = np.exp(rng.uniform(np.log(35), np.log(90), n_org))
    full_grid = (gx, gy, gz)
    for i, c in enumerate(centres):
        cmm = [axes[a][c[a]] for a in range(3)]
        semi = radii[i] * np.exp(rng.uniform(-0.35, 0.35, 3))
        d = np.sqrt(sum(((full_grid[a] - cmm[a]) / semi[a]) ** 2 for a in range(3))).astype(np.float32)
        d = d + 0.22 * _noise(shape, rng, int(rng.integers(4, 8)))
        closer = d < best
        best[closer] = d[closer]
        owner[closer] = i
    organ_labels = []
    for i in range(n_org):
        extent = rng.uniform(1.0, 1.6)            # > 1: fills its cell where a neighbour claims less
        m = free & (owner == i) & (best <= extent)
        m_lab, n_cc = ndimage.label(m)
        if n_cc > 1:                                # keep the largest piece: an organ is one body
            sizes = ndimage.sum_labels(m, m_lab, range(1, n_cc + 1))
            m = m_lab == (int(np.argmax(sizes)) + 1)
        if m.sum() * vox_cm3 < 4.0:
            continue
        labels[m] = next_label
        names[next_label] = f"organ {i + 1}"
        tissue[next_label] = SOFT if rng.random() < 0.5 else OWN_CLASS + next_label
        organ_labels.append(next_label)
        next_label += 1
    del best, owner

    # --- hollow organs: one or two become a wall around a lumen of their own
    big = [lab for lab in organ_labels if (labels == lab).sum() * vox_cm3 > 60.0]
    for lab in rng.permutation(big)[:int(rng.integers(1, 3))]:
        m = labels == lab
        inner = ndimage.distance_transform_edt(m, sampling=spacing_mm) > rng.uniform(3, 7)
        if inner.any():
            labels[inner] = next_label
            names[next_label] = f"lumen of {names[int(lab)]}"
            tissue[next_label] = OWN_CLASS + next_label
            next_label += 1

    # --- small organs against a large one
    for i in range(int(rng.integers(2, 4))):
        if not organ_labels:
            break
        host = int(rng.choice(organ_labels))
        m = labels == host
        edge = np.argwhere(m & ~ndimage.binary_erosion(m))
        if not len(edge):
            continue
        c = edge[int(rng.integers(len(edge)))]
        cmm = [axes[a][c[a]] for a in range(3)]
        semi = rng.uniform(10, 20) * np.exp(rng.uniform(-0.3, 0.3, 3))
        blob = sum(((full_grid[a] - cmm[a]) / semi[a]) ** 2 for a in range(3)) <= 1
        s = blob & ((labels == VISCERAL_FAT) | m)
        if s.sum() * vox_cm3 < 2.0:
            continue
        labels[s] = next_label
        names[next_label] = f"small organ {i + 1}"
        tissue[next_label] = SOFT if rng.random() < 0.5 else OWN_CLASS + next_label
        next_label += 1
    return labels, names, tissue
