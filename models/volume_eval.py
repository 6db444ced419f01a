"""Interactive volume segmentation with simulated gaze on slices (used by ``bench/volume_interactive.py``).

Per structure (one label of a label volume), an annotator reads the volume
slice by slice and corrects the current mask with fixations, as AGILE3D's
protocol does with clicks: each fixation goes to the centre of the larger
error region (the voxel deepest inside the largest connected component of
missed or wrongly included voxels; missed -> a positive fixation, wrongly
included -> a negative one). The fixation is seen on the axial slice through
that voxel, shown as a radiologist's slice view: a perspective camera above
the slice whose field of view spans the slice (``view_deg``). The gaze of a
fixation is ``samples`` rays at ``rate_hz`` aimed at the target with a
constant angular offset (``offset_deg``, one random direction per session)
plus Gaussian noise (``precision_deg``), deposited by the volume attention
engine (``"slice"`` mode, foveal Gaussian ``sigma_deg``). After every
fixation each method recomputes its mask from the accumulated positive and
negative attention, and its Dice with the structure is recorded.

Methods are ``callable(array, positive, negative, spacing) -> (I, J, K) bool``
(see :data:`BASELINES`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from gaze3d.attention.foveal import FovealModel
from gaze3d.attention.volume import VolumeEngine
from gaze3d.camera import Camera
from gaze3d.errors import InputError

DICE_TARGETS = (0.80, 0.85, 0.90)
KS_REPORTED = (1, 3, 5, 10)      # Dice after this many fixations


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1 when both are empty)."""
    s = np.count_nonzero(pred) + np.count_nonzero(truth)
    return 2.0 * np.count_nonzero(pred & truth) / s if s else 1.0


def _flood(array, pos, neg, spacing):
    from gaze3d.regions import grow_volume

    return grow_volume(array, pos, spacing=spacing)


def _confidence(array, pos, neg, spacing):
    from gaze3d.volume_regions import confidence_connected

    return confidence_connected(array, pos, neg, spacing=spacing)


def _random_walk(array, pos, neg, spacing):
    from gaze3d.volume_regions import random_walk

    return random_walk(array, pos, neg, spacing=spacing)


def _walker_roi(array, pos, neg, spacing):
    from gaze3d.volume_regions import random_walk_roi

    return random_walk_roi(array, pos, neg, spacing=spacing)


#: the classical baselines: the flood fill, SimpleITK ConfidenceConnected, scikit-image random walker
#: (full resolution, and on a region of interest within a voxel budget: the volume network's prior)
BASELINES: Dict[str, Callable] = {"flood": _flood, "confidence": _confidence, "random_walk": _random_walk,
                                  "walker_roi": _walker_roi}


@dataclass
class SliceGazeModel:
    """Simulated annotator reading slices: tracker error, fixation length, foveal size, the slice view."""

    offset_deg: float = 0.5
    precision_deg: float = 0.1
    rate_hz: float = 250.0
    samples: int = 60
    sigma_deg: float = 1.0
    view_deg: float = 40.0

    def validate(self) -> "SliceGazeModel":
        for name in ("rate_hz", "samples", "sigma_deg", "view_deg"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name}: expected a positive number, got {getattr(self, name)}")
        if self.offset_deg < 0 or self.precision_deg < 0:
            raise InputError("offset_deg, precision_deg: expected non-negative angles")
        return self


def error_target(pred: np.ndarray, truth: np.ndarray, spacing) -> Optional[tuple]:
    """The next fixation: ``(voxel (3,) int, positive: bool)`` or None when the mask is exact.

    The voxel deepest (Euclidean, in mm) inside the largest connected
    component of the larger error kind (missed, or wrongly included voxels).
    """
    from scipy import ndimage

    missed, extra = truth & ~pred, pred & ~truth
    n_missed, n_extra = np.count_nonzero(missed), np.count_nonzero(extra)
    if n_missed == 0 and n_extra == 0:
        return None
    positive = n_missed >= n_extra
    err = missed if positive else extra
    lab, n = ndimage.label(err)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    comp = lab == int(np.argmax(sizes))
    depth = ndimage.distance_transform_edt(np.pad(comp, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    return np.array(np.unravel_index(int(np.argmax(depth)), comp.shape)), bool(positive)


class SliceAnnotator:
    """Fixations on axial slices of a volume, as attention on its grid (deterministic per ``seed``)."""

    def __init__(self, volume, model: Optional[SliceGazeModel] = None, seed: int = 0):
        self.volume = volume
        self.model = (model or SliceGazeModel()).validate()
        self.rng = np.random.default_rng(seed)
        a = self.rng.uniform(0, 2 * np.pi)
        self._offset = np.radians(self.model.offset_deg) * np.array([np.cos(a), np.sin(a)])
        self.engine = self._make_engine()

    def _make_engine(self) -> VolumeEngine:
        """The attention engine of this view: the middle axial slice."""
        return VolumeEngine(self.volume, FovealModel(sigma_deg=self.model.sigma_deg), mode="slice",
                            axis=2, index=self.volume.shape[2] // 2)

    def camera(self, k: int) -> Camera:
        """The slice view of axial slice ``k``: the slice centre seen from above, spanning ``view_deg``."""
        vol = self.volume
        centre = vol.index_to_world(np.array([[(vol.shape[0] - 1) / 2, (vol.shape[1] - 1) / 2, k]]))[0]
        extent = float(np.max(np.array(vol.shape[:2]) * vol.spacing[:2]))
        normal = vol.index_to_world(np.array([[0, 0, 1.0]]))[0] - vol.index_to_world(np.zeros((1, 3)))[0]
        normal /= np.linalg.norm(normal)
        dist = 0.5 * extent / np.tan(np.radians(self.model.view_deg) / 2)
        up = vol.index_to_world(np.array([[0, 1.0, 0]]))[0] - vol.index_to_world(np.zeros((1, 3)))[0]
        return Camera(position=centre + normal * dist, focal_point=centre, view_up=up / np.linalg.norm(up),
                      vfov_deg=self.model.view_deg)

    def _gaze(self, cam: Camera, voxel) -> np.ndarray:
        """(samples, 3) unit gaze directions of one fixation aimed at ``voxel`` from ``cam``: the
        session's constant offset plus Gaussian noise, in the camera's image plane."""
        m = self.model
        target = self.volume.index_to_world(np.asarray(voxel, dtype=np.float64)[None])[0]
        d = target - cam.position
        d /= np.linalg.norm(d)
        e1 = np.cross(d, cam.up)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(e1, d)
        ang = self._offset[None, :] + self.rng.normal(0, np.radians(m.precision_deg), (m.samples, 2))
        dirs = d[None] + ang[:, :1] * e1 + ang[:, 1:] * e2
        return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    def _deposit(self, cam: Camera, voxel) -> np.ndarray:
        m = self.model
        self.engine.reset()
        dirs = self._gaze(cam, voxel)
        fr = self.engine.frame(cam, dirs)
        self.engine.deposit(fr, dirs, np.full(m.samples, 1.0 / m.rate_hz))
        return self.engine.values().astype(np.float64)

    def fixation(self, voxel) -> np.ndarray:
        """(I, J, K) float attention of one fixation aimed at ``voxel`` on its axial slice."""
        k = int(voxel[2])
        self.engine.set_slice(2, k)
        return self._deposit(self.camera(k), voxel)


#: how the simulated reader sees the volume: axial slices, or (slices hidden) the volume rendering or MIP
VIEWS = ("slice", "render", "mip")


class RenderAnnotator(SliceAnnotator):
    """Fixations on the volume rendering (``"render"``) or MIP (``"mip"``), slices hidden.

    The reader sees the whole volume from the front (a perspective camera on
    the +j side of the volume looking along -j, k up, the volume spanning
    ``view_deg``), and aims each fixation at where the target voxel projects
    (same offset and noise model as :class:`SliceAnnotator`). Attention goes
    where the volume attention engine puts it for that mode: along the ray by
    compositing weight (render; default opacity ramp of
    :class:`~gaze3d.attention.volume.VolumeEngine`), or at the ray's maximum
    (MIP); a target behind brighter or more opaque tissue gets little.
    """

    def __init__(self, volume, model: Optional[SliceGazeModel] = None, seed: int = 0, mode: str = "render"):
        if mode not in ("render", "mip"):
            raise InputError(f"mode: expected 'render' or 'mip', got {mode!r}")
        self.mode = mode
        super().__init__(volume, model, seed)
        vol = volume
        centre = vol.index_to_world(np.array([(np.array(vol.shape, float) - 1) / 2]))[0]
        o = vol.index_to_world(np.zeros((1, 3)))[0]
        axis = [vol.index_to_world(np.eye(3)[a][None])[0] - o for a in range(3)]
        normal, up = axis[1] / np.linalg.norm(axis[1]), axis[2] / np.linalg.norm(axis[2])
        extent = float(np.max(np.array(vol.shape)[[0, 2]] * vol.spacing[[0, 2]]))
        depth = 0.5 * float(vol.shape[1] * vol.spacing[1])
        dist = depth + 0.5 * extent / np.tan(np.radians(self.model.view_deg) / 2)
        self._camera = Camera(position=centre + normal * dist, focal_point=centre, view_up=up,
                              vfov_deg=self.model.view_deg)

    def _make_engine(self) -> VolumeEngine:
        """The attention engine of this view: the volume rendering or the MIP (:attr:`mode`)."""
        return VolumeEngine(self.volume, FovealModel(sigma_deg=self.model.sigma_deg), mode=self.mode)

    def fixation(self, voxel) -> np.ndarray:
        """(I, J, K) float attention of one fixation aimed at ``voxel``'s projection on the rendering."""
        return self._deposit(self._camera, voxel)


def make_annotator(volume, view: str = "slice", model: Optional[SliceGazeModel] = None, seed: int = 0):
    """The simulated reader for one of :data:`VIEWS`."""
    if view == "slice":
        return SliceAnnotator(volume, model, seed)
    if view in ("render", "mip"):
        return RenderAnnotator(volume, model, seed, view)
    raise InputError(f"view: expected one of {VIEWS}, got {view!r}")


@dataclass
class StructureResult:
    """One structure, one session: Dice after each fixation per method, and mask update times."""

    label: int
    name: str
    volume_cm3: float
    session: int
    dice: Dict[str, List[float]] = field(default_factory=dict)
    seconds: Dict[str, List[float]] = field(default_factory=dict)
    empty: Dict[str, int] = field(default_factory=dict)

    def dice_at(self, method: str, k: int) -> float:
        """Dice after ``k`` fixations (the loop stops early once Dice >= 0.90 after 10: the last value)."""
        d = self.dice[method]
        return d[min(k, len(d)) - 1]

    def nof(self, method: str, target: float, cap: int) -> int:
        """Fixations until Dice >= target (``cap`` if never)."""
        for i, d in enumerate(self.dice[method][:cap], start=1):
            if d >= target:
                return i
        return cap


def run_structure(volume, truth: np.ndarray, methods: Dict[str, Callable], *, label: int = 1,
                  name: str = "", session: int = 0, max_fixations: int = 20,
                  model: Optional[SliceGazeModel] = None, view: str = "slice") -> StructureResult:
    """The interactive loop for one structure and one simulated session (see the module docstring).

    Each method runs its own loop: its fixations follow its own errors. ``view``
    is how the reader sees the volume (:data:`VIEWS`, :func:`make_annotator`).
    """
    spacing = np.asarray(volume.spacing, dtype=np.float64)
    res = StructureResult(label, name, float(np.count_nonzero(truth) * np.prod(spacing) / 1000.0), session)
    for mname, fn in methods.items():
        ann = make_annotator(volume, view, model, seed=1000 * session + label)
        pos = np.zeros(volume.shape)
        neg = np.zeros(volume.shape)
        pred = np.zeros(volume.shape, dtype=bool)
        scores, secs, empty = [], [], 0
        for k in range(1, max_fixations + 1):
            if k > max(KS_REPORTED) and scores and scores[-1] >= max(DICE_TARGETS):
                break                        # every reported number is known: Dice@k stays the last one
            nxt = error_target(pred, truth, spacing)
            if nxt is None:                  # exact: every later fixation keeps it
                scores.append(1.0)
                continue
            voxel, positive = nxt
            att = ann.fixation(voxel)
            if positive:
                pos += att
            else:
                neg += att
            t0 = time.perf_counter()
            pred = np.asarray(fn(volume.array, pos, neg if neg.any() else None, spacing), dtype=bool)
            secs.append(time.perf_counter() - t0)
            empty += int(not pred.any())
            scores.append(dice(pred, truth))
        res.dice[mname], res.seconds[mname], res.empty[mname] = scores, secs, empty
    return res


def synth_image(labels: np.ndarray, seed: int = 0, *, noise: float = 0.05, bias: float = 0.3,
                tissue: Optional[dict] = None) -> np.ndarray:
    """(I, J, K) float32 synthetic image of a label volume (the SynthSeg recipe, fixed seed).

    Each label gets a random mean intensity in [0, 1] (background 0 too), a
    smooth multiplicative bias field of relative amplitude ``bias`` spans the
    volume, and Gaussian noise of ``noise`` is added. With ``tissue`` (label
    -> tissue class, as procedural torsos have), the mean is drawn per class
    and each label is offset from it by sd
    :data:`~.volume_data.TISSUE_OFFSET_SD`, as in training.
    """
    from scipy import ndimage

    from .volume_data import tissue_means

    rng = np.random.default_rng(seed)
    lab = np.asarray(labels)
    if lab.size == 0 or lab.min() < 0:
        raise InputError("labels: expected a non-empty volume of non-negative label ids")
    means = rng.uniform(0.0, 1.0, int(lab.max()) + 1)                 # one random mean per label id
    if tissue:
        means = tissue_means(np.arange(len(means)), tissue, rng)
    img = means[lab]
    coarse = rng.normal(0.0, 1.0, (4, 4, 4))
    field = ndimage.zoom(coarse, np.array(lab.shape) / 4.0, order=3)[:lab.shape[0], :lab.shape[1], :lab.shape[2]]
    field = 1.0 + bias * field / max(float(np.abs(field).max()), 1e-9)
    return (img * field + rng.normal(0.0, noise, lab.shape)).astype(np.float32)


def load_frog(step: int = 2):
    """pyvista's ``frog_tissues.vti`` (26 tissues) downsampled by ``step``, with :func:`synth_image`.

    Returns
    -------
    volume : gaze3d.scan.Volume
        The synthetic image, with the labels.
    labels : (I, J, K) int
    names : dict int -> str
    """
    from gaze3d.scan import Volume

    from .volume_data import load_label_volume

    frog = load_label_volume("frog")
    labels = frog.labels[::step, ::step, ::step]
    affine = np.diag(list(frog.spacing * step) + [1.0])
    names = {int(i): f"tissue{int(i)}" for i in np.unique(labels) if i > 0}
    return Volume(synth_image(labels, seed=0), affine, labels=labels), labels, names


#: :func:`load_phantom`'s organs: name, centre offset from the grid centre and semi-axes (mm); none touch
PHANTOM_ORGANS = (("liver", (-60, 10, 0), (70, 55, 40)), ("spleen", (75, 10, 0), (40, 35, 30)),
                  ("kidney_left", (45, -80, -10), (22, 22, 35)), ("kidney_right", (-45, -80, -10), (22, 22, 35)),
                  ("aorta", (15, -40, 0), (15, 15, 50)))


def load_phantom(seed: int = 0, spacing_mm: float = 3.0, shape=(128, 110, 40)):
    """An abdomen-like phantom: five ellipsoid organs (:data:`PHANTOM_ORGANS`, a 650 cm^3 liver among
    them) in an ellipsoid body, on a CT-like grid, with :func:`synth_image` (seed ``seed``).

    The label volumes at hand have few large compact structures (frog's largest tissues are thin or
    branched); this is where a method's behaviour on a liver-sized organ shows, without the test CT.
    The body is in the image, not in the labels (it is more context than a structure to look at).

    Returns ``(volume, labels, names)`` as :func:`load_frog`.
    """
    from gaze3d.scan import Volume

    shape = tuple(int(n) for n in shape)
    g = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * spacing_mm for n in shape], indexing="ij"), -1)
    full = np.zeros(shape, np.int32)

    def inside(centre, semi):
        return (((g - np.asarray(centre, float)) / np.asarray(semi, float)) ** 2).sum(-1) <= 1.0

    full[inside((0, 0, 0), (180, 150, 70))] = 1
    names = {}
    for i, (name, centre, semi) in enumerate(PHANTOM_ORGANS, start=2):
        full[inside(centre, semi)] = i
        names[i] = name
    labels = np.where(full >= 2, full, 0)
    affine = np.diag([spacing_mm] * 3 + [1.0])
    return Volume(synth_image(full, seed=seed), affine, labels=labels), labels, names


#: the procedural torso the bench validates on (``torso``): a seed no training run draws
#: (training uses seeds 0 .. N_ORGANS_TORSOS - 1), on a CT-like grid of 3 mm voxels
TORSO_SEED, TORSO_SHAPE, TORSO_SPACING_MM = 1000, (120, 100, 48), 3.0


def load_torso(seed: int = TORSO_SEED):
    """A procedural torso (:func:`~.procedural_volumes.procedural_abdomen`, seed ``seed``) on a 3 mm grid,
    with :func:`synth_image` (image seed 0, tissue classes on: organs of one class touch at nearly one
    intensity). The touching-organ case the phantom lacks; in-distribution for a model trained on
    ``organs`` (other seeds of the same generator), out of it for one that was not.

    Returns ``(volume, labels, names)`` as :func:`load_frog`.
    """
    from gaze3d.scan import Volume

    from .procedural_volumes import procedural_abdomen

    labels, names, tissue = procedural_abdomen(seed, TORSO_SHAPE, TORSO_SPACING_MM)
    affine = np.diag([TORSO_SPACING_MM] * 3 + [1.0])
    return Volume(synth_image(labels, seed=0, tissue=tissue), affine, labels=labels), labels, names


def load_mni(step: int = 2):
    """The MNI152 T1 template (nilearn wheel, real MR intensities) every ``step`` voxels, with its labels
    (other head tissue, grey matter, white matter; :func:`~gaze3d.models.volume_data.load_label_volume`).

    Returns ``(volume, labels, names)`` as :func:`load_frog`; FileNotFoundError without nilearn.
    """
    from gaze3d.scan import Volume

    from .volume_data import load_label_volume

    mni = load_label_volume("mni")
    labels = mni.labels[::step, ::step, ::step]
    affine = np.diag(list(mni.spacing * step) + [1.0])
    return Volume(np.ascontiguousarray(mni.image[::step, ::step, ::step]), affine, labels=labels), labels, \
        dict(mni.names)
