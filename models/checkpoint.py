"""Checkpoints: weights in safetensors, the network config and metadata in its header.

An ensemble checkpoint holds several models of one architecture in one file
(:func:`save_ensemble`, read by :func:`load_members`).

Nothing is unpickled on load, so a checkpoint from anywhere is safe to open.
Weights may be stored as float16 (``half=True``) to keep shipped files small;
they are loaded back as float32.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from gaze3d.errors import InputError
from gaze3d.io._common import atomic_path

from .networks.segnet import GazeSegNet, SegNetConfig

FORMAT = "gaze3d.segnet/1"
#: tensor-name prefix of member ``i`` in an ensemble checkpoint (:func:`save_ensemble`): ``members.{i}.``
MEMBER_PREFIX = "members."


def save_checkpoint(model: GazeSegNet, path, meta: Optional[dict] = None, half: bool = False) -> Path:
    """Write ``model`` (weights + config + ``meta``) to ``path`` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point():
            v = v.half()
        tensors[k] = v
    header = {"format": FORMAT, "config": json.dumps(model.config.to_dict()),
              "meta": json.dumps(meta or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:     # temp file, umask mode, fsync, rename
        save_file(tensors, str(tmp), metadata=header)
    return path


def weights_digest(path) -> str:
    """SHA-256 (hex) of a checkpoint's tensors: names, dtypes, shapes and bytes, in name order.

    Unlike the file's hash it ignores the header (its metadata holds paths and validation
    numbers, and safetensors may order it differently from run to run), so two training runs
    that produced the same weights have the same digest.
    """
    import hashlib

    from safetensors import safe_open

    h = hashlib.sha256()
    with _read(path, lambda p: safe_open(p, framework="pt")) as f:
        for k in sorted(f.keys()):
            t = f.get_tensor(k).contiguous().reshape(-1)
            h.update(f"{k}|{t.dtype}|{tuple(f.get_slice(k).get_shape())}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _read(path, reader):
    """``reader(str(path))`` (a safetensors call) with its errors as one line naming the file:
    FileNotFoundError for a missing file, InputError for one that safetensors cannot read."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    try:
        return reader(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"checkpoint {path}: not a readable safetensors file ({exc})") from exc


def _header(path) -> dict:
    """The safetensors header of a checkpoint (format, config, meta, members), checked for the format."""
    from safetensors import safe_open

    with _read(path, lambda p: safe_open(p, framework="pt")) as f:
        header = f.metadata() or {}
    if header.get("format") != FORMAT:
        raise InputError(f"checkpoint {path}: expected format {FORMAT!r}, got {header.get('format')!r}")
    return header


def read_meta(path) -> dict:
    """The ``meta`` dict of a checkpoint (single model or ensemble), from its header alone."""
    return json.loads(_header(Path(path)).get("meta", "{}"))


def _build(config: SegNetConfig, tensors: dict, device) -> GazeSegNet:
    model = GazeSegNet(config).to(device)
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()})
    return model.eval()


def load_checkpoint(path, device="cpu") -> Tuple[GazeSegNet, dict]:
    """``(model in eval mode, meta dict)`` from a checkpoint written by :func:`save_checkpoint`.

    An ensemble (:func:`save_ensemble`) is refused: it is several models, read by :func:`load_members`.
    """
    from safetensors.torch import load_file

    path = Path(path)
    header = _header(path)
    if "members" in header:
        raise InputError(f"checkpoint {path}: an ensemble of {header['members']} models; "
                         "load it with load_members (VolumeSegmenter reads both kinds)")
    tensors = _read(path, lambda p: load_file(p, device=str(device)))
    return _build(SegNetConfig.from_dict(json.loads(header["config"])), tensors, device), \
        json.loads(header.get("meta", "{}"))


def load_members(path, device="cpu") -> Tuple[List[GazeSegNet], dict]:
    """``([models in eval mode], meta)`` of an ensemble checkpoint (:func:`save_ensemble`), or
    ``([model], meta)`` of a single one: the caller averages the members' outputs."""
    from safetensors.torch import load_file

    path = Path(path)
    header = _header(path)
    if "members" not in header:
        model, meta = load_checkpoint(path, device)
        return [model], meta
    config = SegNetConfig.from_dict(json.loads(header["config"]))
    tensors = _read(path, lambda p: load_file(p, device=str(device)))
    k = int(header["members"])
    parts: List[dict] = [{} for _ in range(k)]
    for name, v in tensors.items():
        i, _, rest = name[len(MEMBER_PREFIX):].partition(".")
        if not (name.startswith(MEMBER_PREFIX) and i.isdigit() and int(i) < k):
            raise InputError(f"checkpoint {path}: tensor {name!r} is not '{MEMBER_PREFIX}<i>.<name>' "
                             f"with i < {k} (members)")
        parts[int(i)][rest] = v
    return [_build(config, part, device) for part in parts], json.loads(header.get("meta", "{}"))


def save_ensemble(members: Sequence, path, meta: Optional[dict] = None) -> Path:
    """Write the single-model checkpoints ``members`` (paths) as one ensemble checkpoint, atomically.

    Member ``i``'s tensors are stored as they are (dtype included) under ``members.{i}.``; the
    network config, which every member must share, once; ``meta`` (default: the first member's,
    less its validation) gets ``"members"``: per member its meta and :func:`weights_digest`. A
    caller of :func:`load_members` averages the members' outputs (``VolumeSegmenter`` averages the
    mask logits).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    if len(members) < 2:
        raise InputError(f"members: an ensemble needs at least 2 checkpoints, got {len(members)}")
    tensors, infos, config = {}, [], None
    for i, m in enumerate(members):
        header = _header(Path(m))
        if "members" in header:
            raise InputError(f"checkpoint {m}: already an ensemble; list its members' own files")
        if config is None:
            config = header["config"]
        elif json.loads(header["config"]) != json.loads(config):
            raise InputError(f"checkpoint {m}: its network config differs from {members[0]}'s "
                             "(an ensemble's members share one architecture)")
        with _read(Path(m), lambda p: safe_open(p, framework="pt")) as f:
            for k in f.keys():
                tensors[f"{MEMBER_PREFIX}{i}.{k}"] = f.get_tensor(k).contiguous()
        infos.append({"meta": json.loads(header.get("meta", "{}")), "weights_sha256": weights_digest(m)})
    if meta is None:
        meta = {k: v for k, v in infos[0]["meta"].items() if not k.startswith("val_")}
    meta = dict(meta, members=infos)
    header = {"format": FORMAT, "config": config, "meta": json.dumps(meta), "members": str(len(members))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def init_from_checkpoint(model: GazeSegNet, path) -> dict:
    """Copy the weights of a checkpoint into ``model`` (fine-tuning); returns its meta.

    Every tensor of the same name and shape is copied. A model with ``config.prior`` taking
    weights from one without (two attention channels, not three) gets the old weights with a
    zero column for the new prior channel (``fuse`` and ``gate_a`` of every head block) and
    keeps its zero-initialised classifier, so it starts as exactly the prior (the old head's
    features are reused, its correction is 0). Any other difference is an error.
    """
    old, meta = load_checkpoint(path)
    oc, nc = old.config, model.config
    if oc.unet != nc.unet or oc.task != nc.task or oc.guidance != nc.guidance or oc.head_channels != nc.head_channels:
        raise InputError(f"checkpoint {path}: its backbone/head configuration differs from the "
                         "model being trained (variant, width, task, guidance)")
    add = nc.att_channels - oc.att_channels
    if add not in (0, 1) or (add == 1 and not nc.prior) or (oc.prior and not nc.prior):
        raise InputError(f"checkpoint {path}: {oc.att_channels} attention channels (prior "
                         f"{oc.prior!r}), the model {nc.att_channels} (prior {nc.prior!r})")
    new_state = model.state_dict()
    src = old.state_dict()
    for k, v in new_state.items():
        w = src[k]
        if nc.prior and not oc.prior and k.startswith("classifier."):
            continue                       # the correction starts at 0
        if w.shape != v.shape:
            # the prior channel sits right after the old attention channels
            if k.endswith("gate_a.weight"):
                col = oc.att_channels
            elif k.endswith("fuse.weight"):
                i = int(k.split(".")[1])
                col = model.backbone.out_channels[i] + oc.att_channels
            else:
                raise InputError(f"checkpoint {path}: {k} has shape {tuple(w.shape)}, "
                                 f"expected {tuple(v.shape)}")
            w = torch.cat([w[:, :col], torch.zeros(w.shape[0], add, dtype=w.dtype), w[:, col:]], 1)
        new_state[k] = w
    model.load_state_dict(new_state)
    return meta
