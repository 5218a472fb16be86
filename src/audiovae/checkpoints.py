"""Saved models: one ``model.pt`` per trained model, holding what is needed to rebuild it."""
from __future__ import annotations

from pathlib import Path

import torch

from .atomic import atomic_path, sha256_file
from .models.inner import VAE
from .models.outer import OuterAE, build_outer


def save_model(path: Path, model: torch.nn.Module, **info) -> str:
    """Write ``{state_dict, **info}`` atomically; returns the file's sha256."""
    payload = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **info}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return sha256_file(path)


def load_outer(path: Path, device: torch.device | str = "cpu") -> tuple[OuterAE, dict]:
    if not Path(path).exists():
        raise FileNotFoundError(f"no outer model at {path}: run `dvc repro train_outer` first")
    info = torch.load(path, map_location=device, weights_only=False)
    model = build_outer(info["kind"], info["n_bins"], info["n_frames"], **info["hyper"])
    model.load_state_dict(info["state_dict"])
    return model.to(device).eval(), info


def load_inner(path: Path, device: torch.device | str = "cpu") -> tuple[VAE, dict]:
    if not Path(path).exists():
        raise FileNotFoundError(f"no inner model at {path}: run `dvc repro train_inner` first")
    info = torch.load(path, map_location=device, weights_only=False)
    model = VAE(**info["hyper"])
    model.load_state_dict(info["state_dict"])
    return model.to(device).eval(), info
