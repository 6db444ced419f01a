"""Checkpoints: weights in safetensors, the network config and metadata in its header.

Nothing is unpickled on load, so a checkpoint from anywhere is safe to open.
Weights may be stored as float16 (``half=True``) to keep shipped files small;
they are loaded back as float32.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Tuple

import torch

from gaze3d.errors import InputError
from gaze3d.io._common import atomic_path

from .networks.segnet import GazeSegNet, SegNetConfig

FORMAT = "gaze3d.segnet/1"


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


def load_checkpoint(path, device="cpu") -> Tuple[GazeSegNet, dict]:
    """``(model in eval mode, meta dict)`` from a checkpoint written by :func:`save_checkpoint`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    with _read(path, lambda p: safe_open(p, framework="pt")) as f:
        header = f.metadata() or {}
    tensors = _read(path, lambda p: load_file(p, device=str(device)))
    if header.get("format") != FORMAT:
        raise InputError(f"checkpoint {path}: expected format {FORMAT!r}, got {header.get('format')!r}")
    config = SegNetConfig.from_dict(json.loads(header["config"]))
    model = GazeSegNet(config).to(device)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    model.load_state_dict(state)
    model.eval()
    return model, json.loads(header.get("meta", "{}"))


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
