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


def load_checkpoint(path, device="cpu") -> Tuple[GazeSegNet, dict]:
    """``(model in eval mode, meta dict)`` from a checkpoint written by :func:`save_checkpoint`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"checkpoint {path}: not a readable safetensors file ({exc})") from exc
    if header.get("format") != FORMAT:
        raise InputError(f"checkpoint {path}: expected format {FORMAT!r}, got {header.get('format')!r}")
    config = SegNetConfig.from_dict(json.loads(header["config"]))
    model = GazeSegNet(config).to(device)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    model.load_state_dict(state)
    model.eval()
    return model, json.loads(header.get("meta", "{}"))
