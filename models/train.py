"""Training of the gaze-guided networks on simulated annotator gaze.

Interactive task: for a random object of a training tile, the simulated
annotator makes 1..``max_fix`` fixations on its visible surface (and, half of
the time, 1..2 "rejecting" fixations on nearby other surfaces); the network
sees the crop around the object with positive/negative attention and learns
the object's mask (BCE + Dice on points), while its selective-attention head
learns to predict the positive attention from geometry (KL + correlation).

Breadth and interaction (issue 12), all options of :class:`InteractiveSampler`
and :class:`TrainConfig` (``gaze3d train --procedural ... --error-rounds ...``):

* ``procedural``: the fraction of examples drawn from procedural scenes
  (:mod:`gaze3d.models.procedural`: many object shapes and sizes, four sensor
  models), generated on the fly in a small pool that is renewed as training runs;
* ``neighbour_negatives``: AGILE3D's multi-object prompts: with this
  probability the annotator also fixates 1-2 of the *nearest* other objects as
  negatives (a positive on one object is a negative on its neighbours);
* ``augment``: rotation and mirror, scale (0.8-1.25, heights separately
  0.75-1.33), point density (keep 40-100 %), colour dropped (30 %), intensity
  dropped (30 %);
* ``TrainConfig.error_rounds``: AGILE3D's iterative training: before the
  gradient step, 0..``error_rounds`` rounds without gradient in which the model
  predicts the mask and the simulated annotator adds a fixation on the centre
  of the current largest error region (missed object -> positive, wrongly
  included -> negative), with the simulator's gaze noise and foveal spread,
  exactly the correction protocol of :mod:`gaze3d.models.interactive_eval`;
* ``prior="graph"`` (sampler and network): a third attention channel with the
  gaze-seeded random walker's potential on the crop (one
  :class:`~gaze3d.models.segment.GraphSegmenter` per scene, solved again after
  every corrective fixation), and a residual head (logit = walker logit +
  correction; :meth:`~gaze3d.models.networks.segnet.GazeSegNet.point_logits`),
  so the corrective fixations go to the errors of the *combined* mask;
* ``TrainConfig.fixation_weight``: AGILE3D's loss weighting near the prompts:
  each point's BCE weight is ``1 + fixation_weight * max(positive, negative)``
  attention (each scaled to max 1).

Semantic task: crops of the training half with the annotator looking at the
objects of ``gaze_class``; per-point cross-entropy, gaze optional.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gaze3d.errors import Gaze3DError

from .batching import Example, collate, voxel_max
from .data import SPLITS, Tile
from .gaze_sim import AnnotatorSimulator, GazeModel
from .networks.segnet import GazeSegNet, SegNetConfig
from .networks.selective_attention import attention_loss
from .networks.unet import UNetConfig
from .sparse.conv import kernel_map_only


def _scale(a: np.ndarray) -> np.ndarray:
    m = float(a.max()) if len(a) else 0.0
    return a / m if m > 0 else a


def crop_box(xyz: np.ndarray, center_pts: np.ndarray, margin: float, allowed: np.ndarray) -> np.ndarray:
    """Indices of ``allowed`` points inside the xy box of ``center_pts`` grown by ``margin``."""
    lo = center_pts[:, :2].min(0) - margin
    hi = center_pts[:, :2].max(0) + margin
    inside = np.all((xyz[:, :2] >= lo) & (xyz[:, :2] <= hi), axis=1) & allowed
    return np.flatnonzero(inside)


class InteractiveSampler:
    """Random interactive training examples from the objects of some tiles.

    Parameters
    ----------
    tiles : list of Tile
    split : "train", "val" or "test"
        Objects and crop points come from this region of each tile only.
    margin : (float, float)
        Metres of context around the object in each crop, drawn uniformly in
        this range: wide crops hold other, unattended objects, which the
        network must learn to leave out.
    max_fix : int
    seed : int
    engine : str
        Attention deposition of the simulator (see :class:`AnnotatorSimulator`).
    procedural : float
        Fraction of examples from procedural scenes (0: real tiles only; 1: no
        real tile needed). Scenes are generated on the fly, ``pool`` at a time,
        one replaced every ``renew_every`` examples.
    neighbour_negatives : float
        Probability of negative fixations on 1-2 of the nearest other objects
        (else, half of the time, on random other surfaces, as before).
    strong_augment : bool
        Scale, height scale, density, colour and intensity drop on top of rotation.
    ground : str
        Ground model of the procedural scenes' features (the real tiles carry their own).
    prior : str
        ``""`` or ``"graph"``: add the random walker's potential as a third attention channel.
    surface : float
        Fraction of the generated scenes taken from label volumes instead of the procedural
        generator (:func:`gaze3d.models.surface_clouds.make_surface_scene`: organ, tissue and
        channel surfaces, shapes no generator draws). 0 draws nothing extra from the random
        stream, so earlier runs replay unchanged.
    surface_sources : sequence of str
        Label volumes for ``surface`` (:data:`gaze3d.models.surface_clouds.SOURCES`); the
        default, the two that ship inside the pyvista wheel, is what every clone has.
    """

    def __init__(self, tiles: Sequence[Tile], split: str = "train", margin=(6.0, 30.0),
                 max_fix: int = 10, seed: int = 0, gaze: Optional[GazeModel] = None,
                 engine: str = "attention", procedural: float = 0.0, pool: int = 4,
                 renew_every: int = 16, neighbour_negatives: float = 0.0,
                 strong_augment: bool = False, ground: str = "dtm", prior: str = "",
                 surface: float = 0.0, surface_sources: Sequence[str] = ("frog", "channels")):
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        if not 0.0 <= procedural <= 1.0:
            raise ValueError(f"procedural: expected a fraction in [0, 1], got {procedural!r}")
        if not 0.0 <= neighbour_negatives <= 1.0:
            raise ValueError(f"neighbour_negatives: expected a probability, got {neighbour_negatives!r}")
        if not 0.0 <= surface <= 1.0:
            raise ValueError(f"surface: expected a fraction in [0, 1], got {surface!r}")
        if surface > 0:
            from .surface_clouds import check_sources

            surface_sources = check_sources(surface_sources, "surface_sources")
        self.surface, self.surface_sources = float(surface), tuple(surface_sources)
        self.tiles = list(tiles)
        self.rng = np.random.default_rng(seed)
        self.gaze, self.engine, self.seed = gaze, engine, seed
        self.sims = [AnnotatorSimulator(t.xyz, gaze, seed=seed + i, engine=engine)
                     for i, t in enumerate(self.tiles)]
        self.margin = margin
        self.max_fix = max_fix
        self.items = []
        for ti, t in enumerate(self.tiles):
            self.items += [(ti, int(o)) for o in t.split_objects(split)]
        if not self.items and procedural < 1.0:
            raise ValueError(f"tiles: no objects in the {split} split")
        self.split = split
        self.procedural = float(procedural) if self.items else 1.0
        self.neighbour_negatives = float(neighbour_negatives)
        self.strong_augment = bool(strong_augment)
        self.ground = ground
        if prior not in ("", "graph"):
            raise ValueError(f"prior: expected '' or 'graph', got {prior!r}")
        self.prior = prior
        self._graphs = {}        # tile name -> GraphSegmenter (procedural: pruned with the pool)
        self.pool_size, self.renew_every = int(pool), int(renew_every)
        self._pool = []
        self._drawn = 0
        self.scenes_made = 0

    def _scene(self):
        """(tile, simulator) of a generated scene from the pool (renewed as it is used)."""
        from .procedural import make_scene
        from .surface_clouds import make_surface_scene

        self._drawn += 1
        if len(self._pool) < self.pool_size or self._drawn % self.renew_every == 0:
            name = f"procedural{self.scenes_made}"
            if self.surface > 0 and self.rng.random() < self.surface:
                t = make_surface_scene(self.rng, name=name, ground=self.ground, split=self.split,
                                       sources=self.surface_sources)
            else:
                t = make_scene(self.rng, name=name, ground=self.ground)
            self.scenes_made += 1
            entry = (t, AnnotatorSimulator(t.xyz, self.gaze, seed=self.seed + 7919 * self.scenes_made,
                                           engine=self.engine))
            if len(self._pool) < self.pool_size:
                self._pool.append(entry)
            else:
                i = int(self.rng.integers(len(self._pool)))
                self._graphs.pop(self._pool[i][0].name, None)
                self._pool[i] = entry
        return self._pool[int(self.rng.integers(len(self._pool)))]

    def sample(self) -> Example:
        """One example; ``Example.state`` keeps what :meth:`correct` needs to add fixations."""
        for _ in range(20):
            # (no draw without procedural scenes: the real-tile stream stays as it was)
            if self.procedural >= 1.0 or (self.procedural > 0 and self.rng.random() < self.procedural):
                t, sim = self._scene()
                objs = t.split_objects(self.split)
                if len(objs) == 0:
                    continue
                o = int(objs[self.rng.integers(len(objs))])
            else:
                ti, o = self.items[self.rng.integers(len(self.items))]
                t, sim = self.tiles[ti], self.sims[ti]
            return self._example(t, sim, o)
        raise RuntimeError("procedural scenes without objects 20 times in a row")

    def _example(self, t: Tile, sim: AnnotatorSimulator, o: int) -> Example:
        allowed = t.in_split(self.split)
        obj = np.flatnonzero(t.objects == o)
        cam, vis = sim.view(obj)
        k = int(self.rng.integers(1, self.max_fix + 1))
        pos = sim.attention(cam, vis, t.xyz[sim.pick_targets(obj, vis, k)])
        crop = crop_box(t.xyz, t.xyz[obj], self.rng.uniform(*self.margin), allowed | (t.objects == o))
        if self.strong_augment and self.split == "train" and self.rng.random() < 0.5:
            keep = self.rng.random(len(crop)) < self.rng.uniform(0.4, 1.0)
            if np.count_nonzero(keep & (t.objects[crop] == o)) >= 10:
                crop = crop[keep]
        neg = np.zeros_like(pos)
        r = self.rng.random()
        if r < self.neighbour_negatives:
            # multi-object prompt: the nearest other objects are negatives
            ids = np.unique(t.objects[crop])
            ids = ids[(ids >= 0) & (ids != o)]
            if len(ids):
                centre = t.xyz[obj].mean(0)
                d = [np.linalg.norm(t.xyz[t.objects == i].mean(0) - centre) for i in ids]
                for i in ids[np.argsort(d)[:int(self.rng.integers(1, 3))]]:
                    others = crop[t.objects[crop] == i]
                    neg += sim.attention(cam, vis, t.xyz[sim.pick_targets(others, vis, 1)])
        elif r < self.neighbour_negatives + 0.5 * (1 - self.neighbour_negatives):
            others = crop[(t.objects[crop] != o)]
            if len(others):
                neg = sim.attention(cam, vis, t.xyz[sim.pick_targets(others, vis, int(self.rng.integers(1, 3)))])
        pos_c, neg_c = pos[crop], neg[crop]
        att = self._att(t, crop, pos_c, neg_c)
        target = (t.objects[crop] == o).astype(np.float32)
        xyz, feats = self.augment(t.xyz[crop], t.feats[crop])
        ex = Example(xyz, feats, att, target, t.voxel_size)
        ex.state = {"tile": t, "sim": sim, "cam": cam, "vis": vis, "crop": crop, "pos": pos_c.copy(),
                    "neg": neg_c.copy()}
        return ex

    def correct(self, ex: Example, pred: np.ndarray) -> bool:
        """Add one fixation to ``ex`` on the centre of its largest error region given the
        current prediction ``pred`` (crop points, bool): missed object -> positive, wrongly
        included -> negative (the protocol of :mod:`gaze3d.models.interactive_eval`).
        Returns False when there is no visible error."""
        from .interactive_eval import _centre_of

        st = ex.state
        t, crop, vis = st["tile"], st["crop"], st["vis"][st["crop"]]
        truth = ex.target > 0.5
        fn = np.flatnonzero(truth & ~pred & vis)
        fp = np.flatnonzero(~truth & pred & vis)
        if len(fn) == 0 and len(fp) == 0:
            return False
        positive = len(fn) >= len(fp)
        err = fn if positive else fp
        target = _centre_of(err, np.flatnonzero(truth == pred), t.xyz[crop])
        a = st["sim"].attention(st["cam"], st["vis"], t.xyz[[crop[target]]])[crop]
        st["pos" if positive else "neg"] += a
        ex.att = self._att(t, crop, st["pos"], st["neg"])
        return True

    def _att(self, t: Tile, crop: np.ndarray, pos_c: np.ndarray, neg_c: np.ndarray) -> np.ndarray:
        """Attention channels ``(len(crop), 2 or 3)`` float32: positive and negative, each
        scaled to max 1, and with ``prior="graph"`` the walker's potential from them (the
        walker sees the crop's attention only, as the network does)."""
        chans = [_scale(pos_c), _scale(neg_c)]
        if self.prior == "graph":
            g = self._graphs.get(t.name)
            if g is None:
                from .interactive_eval import tile_graph

                g = self._graphs[t.name] = tile_graph(t)
            p = np.zeros(len(t.xyz), np.float32)
            n = np.zeros(len(t.xyz), np.float32)
            p[crop], n[crop] = pos_c, neg_c
            chans.append(g.segment(p, n if n.max() > 0 else None).score[crop])
        return np.stack(chans, 1).astype(np.float32)

    def augment(self, xyz: np.ndarray, feats: np.ndarray) -> tuple:
        """(xyz, feats) with random rotation about z and mirror; with ``strong_augment`` also
        scale, height scale, colour drop and intensity drop (train split only)."""
        if self.split != "train":
            return xyz, feats
        a = self.rng.uniform(0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        if self.rng.random() < 0.5:
            rot[:, 0] *= -1
        centre = xyz.mean(0)
        if not self.strong_augment:
            return (xyz - centre) @ rot.T * self.rng.uniform(0.9, 1.1) + centre, feats
        zs = self.rng.uniform(0.75, 1.33)
        rot[2, 2] = zs
        out = (xyz - centre) @ rot.T * self.rng.uniform(0.8, 1.25) + centre
        feats = feats.copy()
        feats[:, 0] *= zs          # heights follow the vertical scale
        if self.rng.random() < 0.3:
            feats[:, 2:5] = 0.0    # colour missing
        if self.rng.random() < 0.3:
            feats[:, 1] = 0.0      # intensity missing
        return out, feats


def dice_loss(prob: torch.Tensor, target: torch.Tensor, batch: torch.Tensor, eps: float = 1.0):
    nb = int(batch.max().item()) + 1
    inter = torch.zeros(nb, dtype=prob.dtype).index_add_(0, batch, prob * target)
    total = torch.zeros(nb, dtype=prob.dtype).index_add_(0, batch, prob + target)
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def point_channels(examples) -> tuple:
    """(prior (p,) or None, attention peak (p,)) float32 tensors of the examples' points, in
    batch order: the walker's potential (third channel, if any) and max(positive, negative)."""
    att = torch.from_numpy(np.concatenate([ex.att for ex in examples]).astype(np.float32))
    prior = att[:, 2].contiguous() if att.shape[1] > 2 else None
    return prior, att[:, :2].max(1).values


def interactive_loss(model: GazeSegNet, batch, sel_weight: float = 0.2, prior=None,
                     point_weight=None):
    """(total loss, mask loss) of one batch of interactive examples.

    ``prior`` (p,): the walker's potential per point (networks with ``config.prior``);
    ``point_weight`` (p,): BCE weight per point (e.g. higher near fixations).
    """
    feats = model.encode(batch.x)
    dev = batch.inverse.device
    lp = model.point_logits(feats, batch.att, batch.inverse,
                            None if prior is None else prior.to(dev))
    tgt = batch.target_points.float()
    bce = F.binary_cross_entropy_with_logits(
        lp, tgt, weight=None if point_weight is None else point_weight.to(dev))
    mask_loss = bce + dice_loss(torch.sigmoid(lp), tgt, batch.point_batch)
    sel = model.selective(feats[-1].feats)
    sel_loss = attention_loss(sel, batch.att[:, 0], batch.x.coords[:, 0])
    return mask_loss + sel_weight * sel_loss, mask_loss


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 4
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    log_every: int = 20
    time_limit_s: Optional[float] = None
    error_rounds: int = 0      # AGILE3D: 0..error_rounds corrective fixations without gradient
    fixation_weight: float = 0.0   # BCE weight 1 + this x max(pos, neg) attention per point

    def validate(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr!r}")
        if not isinstance(self.error_rounds, int) or self.error_rounds < 0:
            raise ValueError(f"error_rounds: expected an int >= 0, got {self.error_rounds!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {self.seed!r}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s: expected > 0 seconds (or None), got {self.time_limit_s!r}")
        if not 0 <= self.fixation_weight < float("inf"):
            raise ValueError(f"fixation_weight: expected a finite value >= 0, got {self.fixation_weight!r}")
        return self


def default_interactive_config(variant="unet14", base_channels=16, voxel_size=0.5,
                               guidance="gate", prior="") -> SegNetConfig:
    return SegNetConfig(unet=UNetConfig(in_channels=5, variant=variant, base_channels=base_channels),
                        num_outputs=1, att_channels=3 if prior else 2, voxel_size=voxel_size,
                        task="interactive", guidance=guidance, prior=prior)


@torch.no_grad()
def corrective_rounds(model: GazeSegNet, sampler: InteractiveSampler, examples, batch, rounds: int) -> None:
    """AGILE3D's no-gradient rounds: the model predicts, the simulated annotator fixates
    the largest error of each example; ``batch.att`` is updated in place."""
    if rounds <= 0:
        return
    was_training = model.training
    model.eval()        # batch-norm statistics are not updated by these passes
    with kernel_map_only():     # the run's own predictions: the same whichever path inference takes
        feats = model.encode(batch.x)
    starts = np.cumsum([0] + [len(ex.xyz) for ex in examples])
    for _ in range(rounds):
        prior, _ = point_channels(examples)
        with kernel_map_only():
            logit = model.point_logits(feats, batch.att, batch.inverse,
                                       None if prior is None else prior.to(batch.inverse.device))
        pred = (logit >= 0).cpu().numpy()       # sigmoid >= 0.5
        changed = False
        for i, ex in enumerate(examples):
            changed |= sampler.correct(ex, pred[starts[i]:starts[i + 1]])
        if not changed:
            break
        att = torch.from_numpy(np.concatenate([ex.att for ex in examples]).astype(np.float32))
        batch.att = voxel_max(att.to(batch.att.device), batch.inverse, len(batch.att))
    model.train(was_training)


def optimise(model, cfg, step_loss, log=print) -> List[float]:
    """The training loop every trainer shares; returns the mask loss of every step.

    AdamW with a one-cycle learning rate over ``cfg.steps`` (seeded by
    ``cfg.seed``), logging every ``cfg.log_every`` steps and stopping once
    ``cfg.time_limit_s`` has passed.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place; left in eval mode.
    cfg : TrainConfig-like
        ``validate()``, ``steps``, ``lr``, ``weight_decay``, ``seed``, ``log_every``, ``time_limit_s``.
    step_loss : callable(numpy.random.Generator) -> (loss, mask_loss)
        One batch: the loss to minimise and the mask loss to report. The
        generator (seeded ``cfg.seed + 1``) is for the step's own draws.
    """
    cfg.validate()
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # warm-up over the first 10 % of the steps; OneCycleLR divides by (pct_start x steps - 1), which is
    # 0 at exactly 10 steps (a ZeroDivisionError at step 1): there the warm-up is 1.5 steps instead,
    # every other step count keeps the schedule (and the weights) it always had
    pct_start = 0.1 if float(0.1 * cfg.steps) - 1 != 0 else 0.15
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=pct_start)
    model.train()
    losses: List[float] = []
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed + 1)
    for step in range(cfg.steps):
        loss, mask_loss = step_loss(rng)
        if not torch.isfinite(loss):
            # one bad step would turn every weight into NaN and the run would save garbage at the end
            raise Gaze3DError(f"training diverged at step {step}: the loss is {loss.item()} (lower --lr, or "
                              f"--fixation-weight for point clouds); nothing was saved")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(mask_loss.item())
        if log and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            log(f"step {step:5d}  mask loss {np.mean(losses[-cfg.log_every:]):.4f}  "
                f"{time.perf_counter() - t0:6.1f} s")
        if cfg.time_limit_s and time.perf_counter() - t0 > cfg.time_limit_s:
            if log:
                log(f"time limit {cfg.time_limit_s} s reached at step {step}")
            break
    model.eval()
    return losses


def train_interactive(model: GazeSegNet, sampler: InteractiveSampler, cfg: TrainConfig,
                      log=print) -> List[float]:
    """Train in place; returns the mask loss of every step."""
    def step_loss(rng):
        examples = [sampler.sample() for _ in range(cfg.batch_size)]
        batch = collate(examples)
        if cfg.error_rounds:
            corrective_rounds(model, sampler, examples, batch, int(rng.integers(0, cfg.error_rounds + 1)))
        prior, peak = point_channels(examples)
        weight = 1.0 + cfg.fixation_weight * peak if cfg.fixation_weight > 0 else None
        return interactive_loss(model, batch, prior=prior, point_weight=weight)

    return optimise(model, cfg, step_loss, log)
