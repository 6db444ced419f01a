"""Label volumes and SynthSeg-style synthetic images for training the volume model.

Label volumes at hand (:data:`LABEL_VOLUMES`):

``totalseg``
    TotalSegmentator's example: 41 organ labels on the 122 x 101 x 30 CT at 3 mm
    (``shared/data/medical/totalsegmentator``), with the real CT. The test
    volume of the leave-one-volume-out protocol: never trained on.
``frog``
    ``frog_tissues.vti`` shipped inside the pyvista wheel: 26 tissues,
    500 x 470 x 136 at 1 x 1 x 1.5 mm.
``channels``
    ``channels.vti`` (pyvista wheel): 5 facies of a geological channel model,
    251 x 251 x 101; not anatomy, but shapes (meanders, sheets) with labels.
``mni``
    The MNI152 2009a template inside the nilearn wheel (197 x 233 x 189 at
    1 mm): labels from its grey/white-matter probability maps (> 0.5) and the
    T1 (other head tissue), with the real T1 as its image.
``organs``
    :data:`N_ORGANS_TORSOS` procedural abdomens
    (:func:`~.procedural_volumes.procedural_abdomen`, seeds 0, 1, ...):
    touching organs, spine, vessels, hollow organs, with tissue classes so
    that neighbours can share an intensity as in CT. Made on the fly, nothing
    stored; :func:`load_training_volumes` expands the name into the torsos.

SynthSeg recipe (Billot et al. 2023), :func:`synthseg_image` (the training
augmentation; :func:`gaze3d.models.volume_eval.synth_image` is the bench's one
fixed-seed evaluation image, without blur or gamma): every label gets a
random mean intensity and spread; then a random blur (resolution), a smooth
multiplicative bias field, Gaussian noise and a random gamma; the result is
normalised to [0, 1]. Images of any contrast come from one label map, so a
model trained on them is not tied to CT or MR. Where a label volume has tissue
classes (``LabelVolume.tissue``), the mean is drawn per class and each label
gets a small offset from it, so structures of one tissue touch at nearly the
same intensity.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from gaze3d.errors import InputError

LABEL_VOLUMES = ("totalseg", "frog", "channels", "mni", "organs")
#: how many procedural torsos the name ``organs`` stands for in training
N_ORGANS_TORSOS = 2
#: spread of a label's mean intensity around its tissue class's mean (images in [0, 1])
TISSUE_OFFSET_SD = 0.03


@dataclass
class LabelVolume:
    """A label map with its voxel size and, where one exists, the real image on its grid.

    Attributes
    ----------
    name : str
    labels : (I, J, K) int32
    spacing : (3,) float64, mm
    image : (I, J, K) float32, optional
        Real intensities (CT in HU, MR in scanner units).
    modality : str
        ``"ct"``, ``"mr"`` or ``"none"`` (label map only).
    names : dict int -> str
    tissue : dict int -> int, optional
        Tissue class of every label (procedural volumes): SynthSeg images draw
        one mean per class (see the module docstring).
    """
    name: str
    labels: np.ndarray
    spacing: np.ndarray
    image: Optional[np.ndarray] = None
    modality: str = "none"
    names: Dict[int, str] = field(default_factory=dict)
    tissue: Optional[Dict[int, int]] = None


def _pyvista_example(fname: str) -> Path:
    spec = importlib.util.find_spec("pyvista")
    if spec is None or not spec.origin:
        raise FileNotFoundError(f"{fname}: pyvista is not installed (pip install 'gaze3d[viewer]')")
    p = Path(spec.origin).parent / "examples" / fname
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not in this pyvista wheel")
    return p


def _read_vti(path: Path, array: str) -> tuple:
    """(labels (I, J, K) int32, spacing (3,)) of a ``.vti`` array, read without VTK."""
    from gaze3d.io.vti import read_vti

    lab, spacing, _, _ = read_vti(path, array)
    return lab.astype(np.int32), spacing


def load_label_volume(name: str, data_root=None) -> LabelVolume:
    """One of :data:`LABEL_VOLUMES` (FileNotFoundError when its files are absent here).

    ``organs`` gives the first procedural torso (seed 0); :func:`load_training_volumes` gives them all.
    """
    if name == "organs":
        return procedural_label_volume(0)
    if name == "totalseg":
        from gaze3d.io import load_scan

        from .data import data_root as _root
        d = _root(data_root) / "medical" / "totalsegmentator"
        seg = load_scan(d / "example_seg.nii.gz")
        ct = load_scan(d / "example_ct_sm.nii.gz")     # the CT on the mask's grid (30 slices)
        if ct.array.shape != seg.array.shape:
            raise InputError(f"{d}: CT {ct.array.shape} and mask {seg.array.shape} differ in shape")
        names = {}
        jm = d / "label_map_total_and_total_mr.json"
        if jm.is_file():
            import json
            raw = json.loads(jm.read_text())
            raw = raw.get("total", raw) if isinstance(raw, dict) else {}
            names = {int(k): str(v) for k, v in raw.items() if str(k).isdigit()}
        return LabelVolume("totalseg", np.asarray(seg.array, np.int32), np.asarray(seg.spacing, np.float64),
                           np.asarray(ct.array, np.float32), "ct", names)
    if name == "frog":
        lab, sp = _read_vti(_pyvista_example("frog_tissues.vti"), "MetaImage")
        return LabelVolume("frog", lab, sp)
    if name == "channels":
        lab, sp = _read_vti(_pyvista_example("channels.vti"), "facies")
        return LabelVolume("channels", lab, sp)
    if name == "mni":
        spec = importlib.util.find_spec("nilearn")
        if spec is None or not spec.origin:
            raise FileNotFoundError("mni: nilearn is not installed (pip install nilearn: its wheel holds "
                                    "the MNI152 template)")
        from gaze3d.io import load_scan

        d = Path(spec.origin).parent / "datasets" / "data"
        t1 = load_scan(d / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
        gm = load_scan(d / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array
        wm = load_scan(d / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array
        img = np.asarray(t1.array, np.float32)
        lab = np.zeros(img.shape, np.int32)
        lab[img > 0.1 * float(img.max())] = 1          # head tissue and CSF
        lab[gm > 0.5] = 2
        lab[wm > 0.5] = 3
        return LabelVolume("mni", lab, np.asarray(t1.spacing, np.float64), img, "mr",
                           {1: "other head tissue", 2: "grey matter", 3: "white matter"})
    raise InputError(f"label volume: expected one of {LABEL_VOLUMES}, got {name!r}")


def procedural_label_volume(seed: int) -> LabelVolume:
    """Procedural torso ``seed`` (:func:`~.procedural_volumes.procedural_abdomen`) as a label volume."""
    from . import procedural_volumes as pv

    labels, names, tissue = pv.procedural_abdomen(seed, pv.SHAPE, pv.SPACING_MM)
    return LabelVolume(f"organs{seed}", labels, np.full(3, pv.SPACING_MM), None, "none", names, tissue)


def load_training_volumes(names, data_root=None) -> List[LabelVolume]:
    """The label volumes of ``names`` (from :data:`LABEL_VOLUMES`); ``organs`` stands for
    :data:`N_ORGANS_TORSOS` procedural torsos (seeds 0, 1, ...)."""
    out = []
    for n in names:
        if n == "organs":
            out.extend(procedural_label_volume(s) for s in range(N_ORGANS_TORSOS))
        else:
            out.append(load_label_volume(n, data_root))
    return out


@dataclass
class Structure:
    """One structure: a label's largest connected component."""
    label: int
    name: str
    voxels: int
    cm3: float
    bbox: tuple      # (lo (3,), hi (3,)) int, hi exclusive


def structures(lv: LabelVolume, min_cm3: float = 5.0, max_fraction: float = 0.5) -> List[Structure]:
    """Structures of a label volume: labels > 0 whose largest 26-connected component is >= ``min_cm3``
    and under ``max_fraction`` of the volume (a structure that is the whole volume is not "looked at")."""
    from scipy import ndimage

    out = []
    vox_cm3 = float(np.prod(lv.spacing)) / 1000.0
    objs = ndimage.find_objects(lv.labels)
    for lab, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        n = int(np.count_nonzero(lv.labels[sl] == lab))
        if n * vox_cm3 < min_cm3 or n > max_fraction * lv.labels.size:
            continue
        lo = np.array([s.start for s in sl])
        hi = np.array([s.stop for s in sl])
        out.append(Structure(lab, lv.names.get(lab, f"label {lab}"), n, n * vox_cm3, (lo, hi)))
    return out


def _smooth_field(shape, rng, n: int = 4, sigma_max: float = 0.4) -> np.ndarray:
    """Multiplicative bias field: exp of a coarse random grid, upsampled (trilinear)."""
    from scipy import ndimage

    coarse = rng.normal(0, rng.uniform(0, sigma_max), (n, n, n))
    z = [s / n for s in shape]
    f = ndimage.zoom(coarse, z, order=1, mode="nearest")
    f = f[:shape[0], :shape[1], :shape[2]]
    if f.shape != tuple(shape):
        f = np.pad(f, [(0, s - fs) for s, fs in zip(shape, f.shape)], mode="edge")
    return np.exp(f)


def tissue_means(ids: np.ndarray, tissue: Dict[int, int], rng: np.random.Generator) -> np.ndarray:
    """``(len(ids),)`` mean intensities in [0, 1] of labels ``ids`` with tissue classes: one uniform draw
    per class, then an offset of sd :data:`TISSUE_OFFSET_SD` per label (a label ``tissue`` does not
    name is a class of its own)."""
    cls = np.array([tissue.get(int(u), -1 - i) for i, u in enumerate(ids)])
    _, cinv = np.unique(cls, return_inverse=True)
    n_cls = int(cinv.max()) + 1 if len(cinv) else 0
    return np.clip(rng.uniform(0, 1, n_cls)[cinv] + rng.normal(0, TISSUE_OFFSET_SD, len(ids)), 0, 1)


def synthseg_image(labels: np.ndarray, rng: np.random.Generator, spacing=(1.0, 1.0, 1.0),
                   tissue: Optional[Dict[int, int]] = None) -> np.ndarray:
    """A SynthSeg image of a label map (see the module docstring).

    Parameters
    ----------
    labels : (I, J, K) int
    rng : numpy Generator
    spacing : (3,) mm
        Voxel size: the blur is drawn in mm (resolution 1-6 mm) and converted.
    tissue : dict int -> int, optional
        Tissue class per label: one mean per class, plus an offset of sd
        :data:`TISSUE_OFFSET_SD` per label. Without it (and for labels it does
        not name) every label draws its own mean, as before.

    Returns
    -------
    (I, J, K) float32 in [0, 1]
    """
    from scipy import ndimage

    lab = np.asarray(labels)
    uniq, inv = np.unique(lab, return_inverse=True)
    means = rng.uniform(0, 1, len(uniq))
    if tissue:
        means = tissue_means(uniq, tissue, rng)
    stds = rng.uniform(0, 0.08, len(uniq))
    img = means[inv].reshape(lab.shape) + rng.normal(0, 1, lab.shape) * stds[inv].reshape(lab.shape)
    res_mm = rng.uniform(1.0, 6.0, 3)                       # acquisition resolution per axis
    sig = np.maximum(res_mm / (2.355 * np.asarray(spacing, float)) - 0.3, 0)
    if np.any(sig > 0):
        img = ndimage.gaussian_filter(img, sig, mode="nearest")
    img = img * _smooth_field(lab.shape, rng)
    img = img + rng.normal(0, rng.uniform(0, 0.05), lab.shape)
    lo, hi = np.percentile(img, [0.5, 99.5])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    img = img ** np.exp(rng.normal(0, 0.25))                # gamma
    return img.astype(np.float32)
