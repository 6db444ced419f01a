"""Training the gaze-prompted volume model as interaction, on SynthSeg images of label volumes.

One example (:meth:`VolumeSampler.sample`): a random structure of a random
training label volume; a crop of ``crop`` voxels of ``voxel_mm`` (times a
random scale in 0.8-1.25) centred on a random voxel of the structure, with a
random axis flip; the crop's labels by nearest neighbour; its image a
SynthSeg image of those labels (:func:`~.volume_data.synthseg_image`), or, where
the volume has a real image and with probability ``real_image``, the real
intensities normalised per modality. Gaze comes from
:class:`~.volume_eval.SliceAnnotator` on the crop (axial slice views, 0.5 deg
offset, 0.1 deg noise, 1 deg fovea; the crop shown as the part of a 350 mm
field of view that it is, so a degree covers as many mm as when the whole
volume is on screen): the first fixation on the structure's
deepest voxel (positive), with probability ``negative`` one fixation on a
voxel just outside it (negative), then, as in AGILE3D's iterative training,
0..``error_rounds`` fixations on the model's own largest error (missed ->
positive, wrongly included -> negative) predicted without gradient.

The backbone's input is the crop's image, its attention and the walker's
probability seeded by that attention, recomputed after every added fixation,
as at inference: the full random walker on the crop
(:func:`~.volume_net.walker_prior`, ``prior="crop"``) or the viewer's ROI
walker (:func:`~.volume_net.roi_prior`, ``prior="native"``; the crop is the
training example's native grid).

Loss: BCE + Dice of the mask logits on the crop's voxels, plus the selective
attention head's loss as for clouds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gaze3d.errors import Gaze3DError, InputError

from .networks.segnet import GazeSegNet
from .networks.selective_attention import attention_loss
from .sparse import SparseTensor
from .sparse.conv import kernel_map_only
from .volume_data import LabelVolume, Structure, structures, synthseg_image
from .volume_eval import SliceAnnotator, SliceGazeModel, error_target
from .volume_net import PRIORS, crop_input, mask_logits, normalise_intensity, roi_prior, walker_prior


#: the slice view the training annotator is imagined in: a VIEW_FIELD_MM field (a body section) across
#: VIEW_DEG (SliceGazeModel's default view), of which the crop is a part
VIEW_DEG = SliceGazeModel().view_deg
VIEW_FIELD_MM = 350.0


@dataclass
class VolumeExample:
    """One crop: image (C, C, C) float32 in [0, 1], target (C, C, C) bool, pos/neg (C, C, C) float,
    prior (C, C, C) float32 (the walker's probability for the current attention), voxel_mm, and
    prior_kind (one of :data:`~.volume_net.PRIORS`: which walker)."""
    image: np.ndarray
    target: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    annotator: SliceAnnotator
    voxel_mm: float = 4.0
    prior: Optional[np.ndarray] = None
    prior_kind: str = "crop"

    def refresh_prior(self) -> None:
        """Recompute the walker prior after the attention changed."""
        if self.prior_kind == "native":
            self.prior = roi_prior(self.image, self.pos, self.neg, (self.voxel_mm,) * 3)
        else:
            self.prior = walker_prior(self.image, self.pos, self.neg, self.voxel_mm)


class VolumeSampler:
    """Random interactive crops from label volumes (see the module docstring)."""

    def __init__(self, volumes: Sequence[LabelVolume], crop: int = 32, voxel_mm: float = 4.0,
                 seed: int = 0, real_image: float = 0.3, negative: float = 0.5, min_cm3: float = 10.0,
                 prior: str = "crop"):
        if prior not in PRIORS:
            raise InputError(f"prior: expected one of {PRIORS}, got {prior!r}")
        self.prior = prior
        self.volumes = list(volumes)
        self.structs = [structures(v, min_cm3) for v in self.volumes]
        if not any(self.structs):
            raise InputError("volumes: no structure of at least "
                             f"{min_cm3} cm3 in {[v.name for v in self.volumes]}")
        self.crop, self.voxel_mm = int(crop), float(voxel_mm)
        self.rng = np.random.default_rng(seed)
        self.real_image, self.negative = float(real_image), float(negative)
        self._normed = {}

    def _crop_indices(self, lv: LabelVolume, centre: np.ndarray, vox_mm: float):
        idx = []
        for a in range(3):
            step = vox_mm / lv.spacing[a]
            pos = centre[a] + (np.arange(self.crop) - (self.crop - 1) / 2.0) * step
            idx.append(np.clip(np.round(pos).astype(int), 0, lv.labels.shape[a] - 1))
        return np.ix_(*idx)

    def sample(self) -> VolumeExample:
        from gaze3d.scan import Volume

        rng = self.rng
        vi = int(rng.choice([i for i, s in enumerate(self.structs) if s]))
        lv = self.volumes[vi]
        st: Structure = self.structs[vi][int(rng.integers(len(self.structs[vi])))]
        lo, hi = st.bbox
        sub = lv.labels[tuple(slice(a, b) for a, b in zip(lo, hi))] == st.label
        inside = np.argwhere(sub)
        centre = inside[int(rng.integers(len(inside)))] + lo
        vox = self.voxel_mm * float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        ix = self._crop_indices(lv, centre, vox)
        labels = lv.labels[ix]
        flips = [a for a in range(3) if rng.random() < 0.5]
        labels = np.flip(labels, flips) if flips else labels
        if lv.image is not None and rng.random() < self.real_image:
            if lv.name not in self._normed:
                self._normed[lv.name] = normalise_intensity(lv.image, lv.modality)
            image = self._normed[lv.name][ix]
            image = np.flip(image, flips) if flips else image
        else:
            image = synthseg_image(labels, rng, (vox,) * 3, lv.tissue)
        target = np.ascontiguousarray(labels == st.label)
        image = np.ascontiguousarray(image, dtype=np.float32)
        vol = Volume(image, affine=np.diag([vox, vox, vox, 1.0]))
        # the crop subtends what it would in a slice view of a whole body section (VIEW_FIELD_MM across
        # VIEW_DEG), so a fixation's foveal spot covers as many mm as at inference
        view = SliceGazeModel(view_deg=VIEW_DEG * self.crop * vox / VIEW_FIELD_MM)
        ann = SliceAnnotator(vol, view, seed=int(rng.integers(2 ** 31)))
        pos = np.zeros(image.shape)
        neg = np.zeros(image.shape)
        first = error_target(np.zeros_like(target), target, np.full(3, vox))
        if first is not None:
            pos += ann.fixation(first[0])
        if rng.random() < self.negative:
            from scipy import ndimage
            ring = ndimage.binary_dilation(target, iterations=3) & ~target
            cand = np.argwhere(ring)
            if len(cand):
                neg += ann.fixation(cand[int(rng.integers(len(cand)))])
        ex = VolumeExample(image, target, pos, neg, ann, vox, prior_kind=self.prior)
        ex.refresh_prior()
        return ex

    @staticmethod
    def correct(ex: VolumeExample, pred: np.ndarray, voxel_mm: float) -> bool:
        """Add a fixation on the largest error of ``pred`` (C, C, C) bool; False when exact."""
        nxt = error_target(pred, ex.target, np.full(3, voxel_mm))
        if nxt is None:
            return False
        att = ex.annotator.fixation(nxt[0])
        if nxt[1]:
            ex.pos += att
        else:
            ex.neg += att
        ex.refresh_prior()
        return True


def collate_crops(examples: List[VolumeExample]):
    """(SparseTensor with the batch's crops, (n, 2) gaze channels, (n,) float target, (n,) batch index)."""
    xs, atts, tg = [], [], []
    for b, ex in enumerate(examples):
        x, a = crop_input(ex.image, ex.pos, ex.neg, ex.prior, batch=b)
        xs.append(x)
        atts.append(a)
        tg.append(torch.from_numpy(ex.target.reshape(-1).astype(np.float32)))
    coords = torch.cat([x.coords for x in xs])
    feats = torch.cat([x.feats for x in xs])
    n = len(xs[0].coords)
    batch = torch.arange(len(examples)).repeat_interleave(n)
    return SparseTensor(coords, feats), torch.cat(atts), torch.cat(tg), batch


def _dice_loss(prob, target, batch, nb, eps=1.0):
    inter = torch.zeros(nb, dtype=prob.dtype).index_add_(0, batch, prob * target)
    total = torch.zeros(nb, dtype=prob.dtype).index_add_(0, batch, prob + target)
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def batch_loss(model: GazeSegNet, examples: List[VolumeExample], sel_weight: float = 0.2):
    """(total loss, mask loss): BCE + Dice of the (residual) mask logits, plus the selective head's
    attention loss."""
    x, att, tgt, batch = collate_crops(examples)
    feats = model.encode(x)
    logits = mask_logits(model, x, att, feats)
    mask_loss = F.binary_cross_entropy_with_logits(logits, tgt) + _dice_loss(
        torch.sigmoid(logits), tgt, batch, len(examples))
    sel = model.selective(feats[-1].feats)
    return mask_loss + sel_weight * attention_loss(sel, att[:, 0], x.coords[:, 0]), mask_loss


@dataclass
class VolumeTrainConfig:
    steps: int = 200
    batch_size: int = 2
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    error_rounds: int = 2
    time_limit_s: Optional[float] = None
    log_every: int = 10

    def validate(self) -> "VolumeTrainConfig":
        for name in ("steps", "batch_size", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(f"{name}: expected a positive int, got {v!r}")
        if not self.lr > 0:
            raise InputError(f"lr: expected > 0, got {self.lr!r}")
        if not isinstance(self.error_rounds, int) or self.error_rounds < 0:
            raise InputError(f"error_rounds: expected an int >= 0, got {self.error_rounds!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed: expected an int >= 0, got {self.seed!r}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise InputError(f"time_limit_s: expected > 0 seconds (or None), got {self.time_limit_s!r}")
        return self


@torch.no_grad()
def _error_rounds(model, sampler, examples, rounds):
    if rounds <= 0:
        return None
    was = model.training
    model.eval()
    n = sampler.crop ** 3
    for _ in range(rounds):
        x, att, _, _ = collate_crops(examples)      # the attention (and so the input) changed
        with kernel_map_only():                     # the run's own predictions: the same whichever path
            pred = (mask_logits(model, x, att) >= 0).numpy()
        changed = False
        for i, ex in enumerate(examples):
            changed |= sampler.correct(ex, pred[i * n:(i + 1) * n].reshape(ex.target.shape), sampler.voxel_mm)
        if not changed:
            break
    model.train(was)


def train_volume(model: GazeSegNet, sampler: VolumeSampler, cfg: VolumeTrainConfig, log=print) -> List[float]:
    """Train in place; returns the mask loss of every step (the loop of :func:`~gaze3d.models.train.optimise`)."""
    from .train import optimise

    def step_loss(rng):
        examples = [sampler.sample() for _ in range(cfg.batch_size)]
        _error_rounds(model, sampler, examples, int(rng.integers(0, cfg.error_rounds + 1)))
        return batch_loss(model, examples)

    return optimise(model, cfg, step_loss, log)


def downsample(lv: LabelVolume, factor: int) -> LabelVolume:
    """Every ``factor``-th voxel (labels and image): validation volumes at a CPU-friendly size."""
    if factor <= 1:
        return lv
    s = (slice(None, None, factor),) * 3
    return LabelVolume(lv.name, np.ascontiguousarray(lv.labels[s]), lv.spacing * factor,
                       None if lv.image is None else np.ascontiguousarray(lv.image[s]), lv.modality, lv.names, lv.tissue)


def evaluate_volume(methods: dict, lv: LabelVolume, *, fixations: int = 5, min_cm3: float = 20.0,
                    max_structures: Optional[int] = None, sessions: int = 1, seed: int = 0):
    """The interactive loop of :func:`~.volume_eval.run_structure` on every structure of ``lv``.

    The image is the real one where ``lv`` has it, else one SynthSeg image
    (fixed ``seed``). Returns the list of :class:`~.volume_eval.StructureResult`.
    """
    from gaze3d.scan import Volume

    from .volume_eval import run_structure

    image = lv.image if lv.image is not None else synthseg_image(lv.labels, np.random.default_rng(seed), lv.spacing,
                                                                 lv.tissue)
    vol = Volume(np.asarray(image, np.float32), affine=np.diag(list(lv.spacing) + [1.0]))
    sts = structures(lv, min_cm3)
    if max_structures is not None:
        sts = sorted(sts, key=lambda s: -s.voxels)[:max_structures]
    out = []
    for st in sts:
        truth = lv.labels == st.label
        for s in range(sessions):
            out.append(run_structure(vol, truth, methods, label=st.label, name=st.name, session=s,
                                     max_fixations=fixations))
    return out


def score(results, method: str) -> float:
    """Mean Dice over structures, sessions and fixations (the area under the Dice curve)."""
    return float(np.mean([np.mean(r.dice[method]) for r in results])) if results else float("nan")


def validate_checkpoint(path, val: LabelVolume, fixations: int = 5, baselines: bool = True,
                        max_structures: Optional[int] = 4, log=print) -> dict:
    """Validation of a saved volume checkpoint on ``val`` (the network and, optionally, the baselines).

    Returns ``{"val_volume", "val_score" (network), "val_scores" {method: score}, "val_structures"}``
    where a score is the mean Dice over structures and the first ``fixations`` fixations.
    """
    from .volume_eval import BASELINES
    from .volume_net import network_method

    methods = {"network": network_method(path)}
    if baselines:
        methods.update(BASELINES)
    res = evaluate_volume(methods, val, fixations=fixations, max_structures=max_structures)
    scores = {m: score(res, m) for m in methods}
    if log:
        log(f"validation on {val.name} ({len(res)} structures, {fixations} fixations): " +
            ", ".join(f"{m} {v:.3f}" for m, v in scores.items()))
    return {"val_volume": val.name, "val_score": scores["network"], "val_scores": scores,
            "val_structures": [r.name for r in res]}


def _validation(args, path) -> dict:
    """``validate_checkpoint`` of ``path`` on ``--val-volume`` at ~2 mm (minutes, not hours), or {} when
    there is none (``none``) or ``--val-repeats 0``."""
    from .volume_data import load_label_volume

    val_name = None if args.val_volume in (None, "", "none") else args.val_volume
    if not (val_name and args.val_repeats > 0):
        return {}
    val = load_label_volume(val_name, args.data)
    factor = max(1, int(round(2.0 / float(val.spacing.min()))))   # ~2 mm: validation stays minutes
    return validate_checkpoint(path, downsample(val, factor), fixations=min(args.val_fixations, 5))


def train_members(args) -> None:
    """``gaze3d train --volumes ... --members N``: an ensemble of N models in one checkpoint.

    Member ``i`` is the single-model run of the same command with ``--seed seed+i`` (so member 0
    of ``--seed 0`` is, weight for weight, the single model of that command), trained in its own
    process, ``--jobs`` of them side by side (each with ``--threads`` torch threads), its output
    lines prefixed ``[member i]``. The members are then written as one ensemble checkpoint
    (:func:`~.checkpoint.save_ensemble`; :class:`~.volume_net.VolumeSegmenter` averages their mask
    logits) and the ensemble is validated as a single model would be.
    """
    import os
    import subprocess
    import sys
    import tempfile
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from gaze3d.cli._args import train_arguments

    from .checkpoint import read_meta, save_ensemble, weights_digest

    n = int(args.members)        # both checked by train_volumes
    jobs = int(args.jobs) if args.jobs is not None else min(n, os.cpu_count() or 1)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    common = train_arguments(args, drop=("members", "jobs", "seed", "output", "val_repeats"))
    lock = threading.Lock()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".members-", dir=str(out.parent)) as tmp:
        paths = [Path(tmp) / f"member{i}.safetensors" for i in range(n)]

        def run(i):
            cmd = [sys.executable, "-m", "gaze3d", "train", *common, "--seed", str(args.seed + i),
                   "--val-repeats", "0", "--members", "1", "-o", str(paths[i])]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            tail = []
            for line in proc.stdout:
                tail = (tail + [line.rstrip()])[-5:]
                with lock:
                    print(f"[member {i}] {line.rstrip()}", flush=True)
            return proc.wait(), tail

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(run, range(n)))
        for i, (rc, tail) in enumerate(results):
            if rc != 0:
                # its own output (above, prefixed) has the cause; nothing is written to --output
                raise Gaze3DError(f"member {i} (--seed {args.seed + i}) failed with exit code {rc}: "
                                  + (tail[-1] if tail else "no output"))
        meta = {k: v for k, v in read_meta(paths[0]).items() if not k.startswith("val_")}
        meta.update(train_seconds=round(time.perf_counter() - t0, 1),
                    command="gaze3d train " + " ".join(train_arguments(args)))
        save_ensemble(paths, out, meta)
        print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB), an ensemble of {n} members "
              f"(seeds {args.seed}..{args.seed + n - 1}), weights sha256 {weights_digest(out)}")
        val = _validation(args, out)
        if val:
            meta.update(val)
            save_ensemble(paths, out, meta)
            print(f"validation score {meta['val_score']:.4f} stored in {out}")


def run_cli(args) -> None:
    """``gaze3d train --volumes ...`` (see :mod:`gaze3d.cli.train`)."""
    from gaze3d.cli._args import train_arguments

    from .checkpoint import save_checkpoint, weights_digest
    from .volume_data import LABEL_VOLUMES, load_training_volumes
    from .volume_net import VOLUME_KIND, build_volume_model

    names = [n for n in args.volumes.split(",") if n]
    val_name = None if args.val_volume in (None, "", "none") else args.val_volume
    bad = [n for n in names + ([val_name] if val_name else []) if n not in LABEL_VOLUMES]
    if bad or not names:
        raise InputError(f"--volumes/--val-volume: expected names from {LABEL_VOLUMES}, got {bad or names}")
    if val_name in names:
        raise InputError(f"--val-volume: {val_name} is also a training volume (validation must be held out)")
    if args.crop < 16 or not args.voxel_mm > 0:      # depth 3: the coarsest stage needs 2+ cells per axis
        raise InputError(f"--crop: expected >= 16 and --voxel-mm > 0, got {args.crop} and {args.voxel_mm}")
    # `is None`, not `or`: --members 0 and --jobs 0 are refused, not read as their defaults
    members = 1 if getattr(args, "members", None) is None else args.members
    if members < 1:
        raise InputError(f"--members: expected >= 1 models, got {members}")
    jobs = getattr(args, "jobs", None)
    if jobs is not None and (jobs < 1 or members == 1):
        raise InputError(f"--jobs: expected >= 1 parallel member runs of --members N > 1, got --jobs {jobs} "
                         f"with --members {members}")
    if members > 1:
        return train_members(args)
    torch.set_num_threads(args.threads or 1)
    torch.manual_seed(args.seed)
    cfg = VolumeTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            error_rounds=args.error_rounds, time_limit_s=args.time_limit).validate()
    try:
        model = build_volume_model(args.base_channels, args.voxel_mm)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    sampler = VolumeSampler(load_training_volumes(names, args.data), crop=args.crop,
                            voxel_mm=args.voxel_mm, seed=args.seed, prior=args.volume_prior)
    t0 = time.perf_counter()
    losses = train_volume(model, sampler, cfg)
    meta = {"kind": "volume", "crop": args.crop, "prior": args.volume_prior, "volumes": names,
            "steps_run": len(losses),
            "train_seconds": round(time.perf_counter() - t0, 1),
            "final_mask_loss": float(np.mean(losses[-20:])),
            "command": "gaze3d train " + " ".join(train_arguments(args))}
    assert meta["kind"] == VOLUME_KIND
    path = save_checkpoint(model, args.output, meta, half=args.half)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB), {len(losses)} steps, "
          f"final mask loss {meta['final_mask_loss']:.4f}, weights sha256 {weights_digest(path)}")
    val = _validation(args, path)
    if val:
        meta.update(val)
        save_checkpoint(model, path, meta, half=args.half)
        print(f"validation score {meta['val_score']:.4f} stored in {path}")
