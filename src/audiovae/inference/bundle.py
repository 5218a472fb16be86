"""One-file model export: everything ``AudioVAE`` needs, loadable without the project checkout.

A trained model is otherwise spread over DVC outputs (both checkpoints, the codec, the code
statistics, the audio length and trimming, the label centres in the inner checkpoint). A bundle
gathers them with the effective params and the data manifest's hash into one ``torch.save`` file
that holds only tensors, numbers, strings, lists and dicts, so it loads with PyTorch's
weights-only reader: opening a model someone sent you runs none of their code.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from audiovae import layout
from audiovae.atomic import atomic_path
from audiovae.config.params import deep_merge, load_params
from audiovae.models.checkpoints import read_checkpoint
from audiovae.tracking.runs import manifest_hash

FORMAT = "audiovae-bundle"
VERSION = 1
SUFFIX = ".avae"


class BundleError(ValueError):
    """The file is not an audiovae bundle this version can read."""


def portable(value: Any) -> Any:
    """numpy arrays and scalars -> tensors and Python numbers (the weights-only loader's types)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(v) for v in value)
    return value


def effective_params(root: Path) -> dict:
    """The values the last run trained with: the ``params`` stage's per-stage files merged (preset
    applied; the evaluate stage's left out), else ``params.yaml`` itself, else nothing."""
    # the training stages' values and export's (which holds the sampling spread); evaluation
    # settings are not part of the model
    files = sorted(f for f in (root / layout.STAGE_PARAMS).glob("*.yaml") if f.name != "evaluate.yaml")
    if files:
        merged: dict = {}
        for path in files:
            merged = deep_merge(merged, yaml.safe_load(path.read_text()) or {})
        return merged
    if (root / "params.yaml").exists():
        return load_params(root / "params.yaml").model_dump(exclude={"presets"})
    return {}


def from_project(root: Path) -> dict:
    """The bundle dict of the project's last ``dvc repro``: read from its stage outputs."""
    root = Path(root)
    outer = read_checkpoint(root / layout.OUTER_MODEL, "train_outer")
    inner = read_checkpoint(root / layout.INNER_MODEL, "train_inner")
    stats = np.load(root / layout.ENCODINGS_STATS)
    # a project from before the prior stage has none: generation samples as its inner VAE does
    prior = read_checkpoint(root / layout.PRIOR_MODEL, "train_prior") if (root / layout.PRIOR_MODEL).exists() else None
    return {
        "format": FORMAT, "version": VERSION, "outer": outer, "inner": inner, "prior": prior,
        "codec": json.loads((root / layout.FEATURES_CODEC).read_text()),
        "stats": {"mean": stats["mean"], "std": stats["std"]},
        "audio": json.loads((root / layout.FILTERED_META).read_text()),
        "params": effective_params(root),
        "data_manifest": manifest_hash(root),
    }


def write(bundle: dict, path: Path) -> Path:
    """Save atomically (a crash never leaves half a model where a good one was)."""
    path = Path(path)
    buffer = io.BytesIO()  # torch.save names the archive's folder after a file: a buffer keeps it fixed
    torch.save(portable(bundle), buffer)
    with atomic_path(path, suffix=SUFFIX) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def read(path: Path) -> dict:
    """Load and check a bundle; arrays come back as numpy, state dicts as tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model bundle at {path} (write one with `audiovae export --out {path.name}`)")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for a foreign file
        raise BundleError(f"{path} is not an audiovae model bundle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"{path} is not an audiovae model bundle (no format {FORMAT!r})")
    if int(bundle.get("version", 0)) > VERSION:
        raise BundleError(f"{path} is bundle version {bundle['version']}; this audiovae reads up to {VERSION}: upgrade")
    for key in ("class_means", "class_scales", "class_points", "class_point_labels"):
        if isinstance(bundle["inner"].get(key), torch.Tensor):
            bundle["inner"][key] = bundle["inner"][key].numpy()
    bundle["stats"] = {k: v.numpy() for k, v in bundle["stats"].items()}
    if bundle.get("prior"):
        bundle["prior"] = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in bundle["prior"].items()}
    return bundle
