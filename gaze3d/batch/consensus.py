"""Consensus of several annotators' per-point labels, and their agreement.

Labels are small non-negative integers per point (the batch's masks: 0
background, 1 object). SimpleITK's ``LabelVoting`` and ``MultiLabelSTAPLE``
filters work on images, so an ``(n,)`` array is passed as a ``1 x n`` image.
"""
from __future__ import annotations

import itertools
from typing import List, Sequence

import numpy as np

from .._optional import optional_import
from ..errors import InputError

#: the label SimpleITK gives a point whose vote is tied (then resolved to background)
UNDECIDED = 255


def _stack(labels: Sequence[np.ndarray]) -> np.ndarray:
    arrs = [np.asarray(a) for a in labels]
    if len(arrs) < 2:
        raise InputError(f"consensus: expected labels of 2 or more annotators, got {len(arrs)}")
    n = arrs[0].shape
    for k, a in enumerate(arrs):
        if a.shape != n or a.ndim != 1:
            raise InputError(f"consensus: annotator {k}: expected ({n[0]},) labels, got shape {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= UNDECIDED):
            raise InputError(f"consensus: annotator {k}: labels must be in [0, {UNDECIDED})")
    return np.stack(arrs).astype(np.uint8)


def _images(stack: np.ndarray):
    sitk = optional_import("SimpleITK", extra="io")
    return sitk, [sitk.GetImageFromArray(row[None, :]) for row in stack]


def majority_vote(labels: Sequence[np.ndarray]):
    """Per-point majority label of ``k`` annotators (SimpleITK ``LabelVoting``).

    Parameters
    ----------
    labels : sequence of k (n,) int arrays

    Returns
    -------
    consensus : (n,) uint8
        Tied points get 0 (background: no majority says "object").
    ties : int
        How many points were tied.
    """
    stack = _stack(labels)
    sitk, imgs = _images(stack)
    f = sitk.LabelVotingImageFilter()
    f.SetLabelForUndecidedPixels(UNDECIDED)
    out = sitk.GetArrayFromImage(f.Execute(imgs))[0]
    ties = out == UNDECIDED
    return np.where(ties, 0, out).astype(np.uint8), int(ties.sum())


def staple(labels: Sequence[np.ndarray]):
    """STAPLE consensus (SimpleITK ``MultiLabelSTAPLE``) and each annotator's confusion matrix.

    Returns
    -------
    consensus : (n,) uint8
        Undecided points get 0.
    confusion : list of k (L+1, L) float arrays
        ``confusion[j][a, b]``: estimated probability that annotator ``j``
        says ``a`` where the truth is ``b`` (row L: undecided).
    """
    stack = _stack(labels)
    sitk, imgs = _images(stack)
    f = sitk.MultiLabelSTAPLEImageFilter()
    f.SetLabelForUndecidedPixels(UNDECIDED)
    out = sitk.GetArrayFromImage(f.Execute(imgs))[0]
    n_lab = int(stack.max()) + 1
    conf = [np.asarray(f.GetConfusionMatrix(j), dtype=np.float64).reshape(n_lab + 1, n_lab)
            for j in range(len(imgs))]
    return np.where(out == UNDECIDED, 0, out).astype(np.uint8), conf


def dice(a: np.ndarray, b: np.ndarray, label: int = 1) -> float:
    """Dice of ``label`` between two (n,) label arrays (1.0 when neither has it)."""
    x, y = np.asarray(a) == label, np.asarray(b) == label
    s = int(x.sum()) + int(y.sum())
    return 1.0 if s == 0 else 2.0 * int((x & y).sum()) / s


def iou(a: np.ndarray, b: np.ndarray, label: int = 1) -> float:
    """Intersection over union of ``label`` (1.0 when neither has it)."""
    x, y = np.asarray(a) == label, np.asarray(b) == label
    u = int((x | y).sum())
    return 1.0 if u == 0 else int((x & y).sum()) / u


def fleiss_kappa(labels: Sequence[np.ndarray]) -> float:
    """Fleiss' kappa of ``k`` annotators labelling the same ``n`` points.

    1 = perfect agreement, 0 = what chance gives; NaN when every annotator
    gives every point the same single label (agreement by chance is then 1).
    """
    stack = _stack(labels).astype(np.int64)
    k, n = stack.shape
    cats = np.unique(stack)
    counts = np.stack([(stack == c).sum(axis=0) for c in cats], axis=1).astype(np.float64)  # (n, C)
    p_i = ((counts * (counts - 1)).sum(axis=1)) / (k * (k - 1))
    p_bar = float(p_i.mean())
    p_j = counts.sum(axis=0) / (n * k)
    p_e = float((p_j ** 2).sum())
    if p_e >= 1.0:
        return float("nan")
    return (p_bar - p_e) / (1.0 - p_e)


def agreement(labels: Sequence[np.ndarray], names: Sequence[str], consensus: np.ndarray,
              label: int = 1) -> dict:
    """Agreement of annotators: pairwise Dice/IoU, Fleiss' kappa, each one against ``consensus``.

    Returns
    -------
    dict
        ``fleiss_kappa``, ``pairwise`` (list of ``{a, b, dice, iou}``),
        ``mean_pairwise_dice``, and ``per_annotator`` (``name ->
        {mean_dice_to_others, dice_to_consensus, iou_to_consensus, points}``).
    """
    stack = _stack(labels)
    if len(names) != len(stack):
        raise InputError(f"consensus: {len(names)} names for {len(stack)} annotators")
    pairs: List[dict] = []
    for i, j in itertools.combinations(range(len(stack)), 2):
        pairs.append({"a": names[i], "b": names[j], "dice": dice(stack[i], stack[j], label),
                      "iou": iou(stack[i], stack[j], label)})
    per = {}
    for i, name in enumerate(names):
        others = [p["dice"] for p in pairs if name in (p["a"], p["b"])]
        per[name] = {"mean_dice_to_others": float(np.mean(others)),
                     "dice_to_consensus": dice(stack[i], consensus, label),
                     "iou_to_consensus": iou(stack[i], consensus, label),
                     "points": int((stack[i] == label).sum())}
    kappa = fleiss_kappa(stack)
    return {"fleiss_kappa": None if not np.isfinite(kappa) else kappa, "pairwise": pairs,
            "mean_pairwise_dice": float(np.mean([p["dice"] for p in pairs])), "per_annotator": per}
