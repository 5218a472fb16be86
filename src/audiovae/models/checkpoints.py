"""Saved models: one ``model.pt`` per trained model, holding what is needed to rebuild it."""
from __future__ import annotations

from pathlib import Path

import torch

from audiovae.atomic import atomic_path, sha256_file
from audiovae.models.inner import VAE
from audiovae.models.outer import OuterAE, build_outer


def save_model(path: Path, model: torch.nn.Module, **info) -> str:
    """Write ``{state_dict, **info}`` atomically; returns the file's sha256."""
    payload = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **info}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return sha256_file(path)


def outer_from_info(info: dict, device: torch.device | str = "cpu") -> OuterAE:
    """Rebuild the outer autoencoder from a checkpoint dict (a ``model.pt`` or an exported bundle)."""
    model = build_outer(info["kind"], info["n_bins"], info["n_frames"], **info["hyper"])
    model.load_state_dict(info["state_dict"])
    return model.to(device).eval()


def inner_from_info(info: dict, device: torch.device | str = "cpu") -> VAE:
    model = VAE(**info["hyper"])
    model.load_state_dict(info["state_dict"])
    return model.to(device).eval()


def read_checkpoint(path: Path, stage: str) -> dict:
    if not Path(path).exists():
        raise FileNotFoundError(f"no model at {path}: run `dvc repro {stage}` first")
    # our own stage output (it holds numpy arrays, which the weights-only loader refuses);
    # files from elsewhere come as bundles, which load weights-only (``bundle.read``)
    return torch.load(path, map_location="cpu", weights_only=False)


def load_outer(path: Path, device: torch.device | str = "cpu") -> tuple[OuterAE, dict]:
    info = read_checkpoint(path, "train_outer")
    return outer_from_info(info, device), info


def load_inner(path: Path, device: torch.device | str = "cpu") -> tuple[VAE, dict]:
    info = read_checkpoint(path, "train_inner")
    return inner_from_info(info, device), info
