"""Benchmark: the incremental scheme against training the same stacked model jointly, end to end.

The scheme's claim is not raw speed (on FSDD the outer encoder is cheap) but what it buys for the
same compute: an outer model trained to convergence on its own loss, a VAE trained on frozen codes,
and tuning that costs N + M trials (outer space, then inner space on cached codes) instead of
N x M for a joint search. Both arms here get the same wall-clock budget on this machine:

- incremental: ``train_outer`` for ``--outer-share`` of the budget, ``encode`` once, ``train_inner``
  for the rest (the stages themselves, with ``max_seconds`` set);
- joint: the same outer and inner architectures from scratch as one model, one loss (the outer's
  spectrogram loss summed over bins, plus beta times the KL), for the whole budget.

Both are scored with the evaluate stage's own functions: PESQ / STOI of the full path, the clean
classifier on reconstructions and generations, DNSMOS of generations.

    .venv/bin/python benchmarks/incremental_vs_joint.py [--budget 300] [--outer-share 0.4]

Run after ``dvc repro features`` (it reads data/filtered and data/features, writes only to a temp
folder and ``reports/incremental_vs_joint.md``).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from roots import linked_root
from torch import nn

from audiovae.config.params import load_params, with_values
from audiovae.config.schema import Params, generation_spread
from audiovae.data.artifacts import open_features, split_rows
from audiovae.evaluation import evaluate
from audiovae.inference.model import AudioVAE
from audiovae.models.build import build_checked, build_vae
from audiovae.models.losses import spectrogram_loss
from audiovae.stages import encode, train_inner, train_outer
from audiovae.training.inner import class_scales, label_codes
from audiovae.training.loop import (
    batches_of,
    fit,
    pick_device,
    seed_everything,
)

REPO = Path(__file__).resolve().parents[1]
KEYS = ("quality.full_pesq_nb", "quality.full_stoi", "quality.generated_dnsmos_ovrl",
        "classifier.clean_full_accuracy", "classifier.clean_generated_accuracy", "train_seconds")


class Joint(nn.Module):
    """Outer encoder -> inner VAE -> outer decoder, trained as one model."""

    def __init__(self, outer, vae):
        super().__init__()
        self.outer, self.vae = outer, vae

    def forward(self, x, y):
        code = self.outer.encode(x)
        code_hat, mu, logvar, z = self.vae(code.flatten(1), y)
        return self.outer.decode(code_hat.reshape(code.shape)), mu, logvar, z


def score(model: AudioVAE, params: Params, root: Path, seed: int) -> dict:
    """The evaluate stage's quality keys for ``model`` on the test split."""
    cfg = params.evaluate
    specs, index, codec = open_features(root / "data" / "features")
    waves = np.load(root / "data" / "filtered" / "audio.npy", mmap_mode="r")
    train = split_rows(index, "train")
    spread = generation_spread(cfg.generate_spread, params.prior, learned=model.prior is not None)
    out = evaluate.make_outputs(model, cfg, specs, index, waves, seed, spread)
    quality = evaluate.quality_metrics(out, codec.sample_rate, cfg.quality, True, seed)
    classes = evaluate.classifier_metrics(out, np.asarray(waves[index["row"].to_numpy()[train]]),
                                          index["label"].astype(str).to_numpy()[train], codec.sample_rate, cfg, seed)
    flat = {f"quality.{k}": v for k, v in quality.items()}
    flat.update({f"classifier.{k}": v for k, v in classes.items()})
    return flat


def incremental(params: Params, root: Path, budget: float, share: float) -> tuple[AudioVAE, float]:
    p = with_values(params, {"outer.train.max_seconds": budget * share,
                             "inner.train.max_seconds": budget * (1 - share)})
    started = time.monotonic()
    train_outer.run(p, root)
    encode.run(p, root)
    train_inner.run(p, root)
    return AudioVAE.from_project(root, pick_device(p.outer.device)), time.monotonic() - started


def joint(params: Params, root: Path, budget: float, seed: int) -> tuple[AudioVAE, float]:
    seed_everything(seed)
    device = pick_device(params.outer.device)
    specs, index, codec = open_features(root / "data" / "features")
    labels, y = label_codes(index)
    _, n_bins, n_frames = specs.shape
    outer = build_checked(params.outer, n_bins, n_frames)
    code_shape = outer.code_shape()
    vae = build_vae(params.inner, int(np.prod(code_shape)), len(labels), code_shape)
    model = Joint(outer, vae).to(device)
    loss_fn = spectrogram_loss(params.outer.loss, codec, params.outer.sc_weight)
    beta, bins = params.inner.beta, n_bins * n_frames

    def step(net, batch):
        x, labels_ = (t.to(device) for t in batch)
        x_hat, mu, logvar, z = net(x, labels_)
        kl = net.vae.kl(mu, logvar, z, labels_).mean()
        return loss_fn(x_hat.float(), x) * bins + beta * kl, {"n": len(x)}

    train, val = split_rows(index, "train"), split_rows(index, "val")
    x_all, y_all = torch.from_numpy(np.asarray(specs)), torch.from_numpy(y.astype(np.int64))

    def loader(rows, shuffle):
        def batches(epoch=0):
            rng = np.random.default_rng([seed, epoch]) if shuffle else None
            for chunk in batches_of(len(rows), params.outer.batch_size, shuffle, rng):
                yield x_all[rows[np.sort(chunk)]], y_all[rows[np.sort(chunk)]]
        return batches

    cfg = params.outer.train.model_copy(update={"epochs": 10 ** 6, "max_seconds": budget})
    started = time.monotonic()
    fit(model, step, loader(train, True), loader(val, False), cfg, device, root / "joint.pt", "joint", "train joint")
    wall = time.monotonic() - started
    model.eval()
    zeros, ones = np.zeros(int(np.prod(code_shape)), np.float32), np.ones(int(np.prod(code_shape)), np.float32)
    audio_meta = json.loads((root / "data" / "filtered" / "audio.json").read_text())
    result = AudioVAE(outer, vae, zeros, ones, codec, int(audio_meta["length"]), audio_meta["length_mode"],
                      labels, np.zeros((len(labels), vae.latent_dim), np.float32),
                      np.zeros((len(labels), vae.latent_dim, vae.latent_dim), np.float32), device)
    mu = result.latents(np.asarray(specs[train]))
    result.class_means, result.class_scales = class_scales(mu.astype(np.float64), y[train], len(labels),
                                                           params.inner.class_sampling, vae)
    return result, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=300, help="wall-clock seconds of training per arm")
    parser.add_argument("--outer-share", type=float, default=0.4, help="incremental: the outer model's share")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = with_values(load_params(REPO / "params.yaml"), {"tracking.enabled": False})
    seed = params.seed
    rows = {}
    with linked_root(REPO, ["data/filtered", "data/features"]) as root:
        model, wall = incremental(params, root, args.budget, args.outer_share)
        rows["incremental"] = {**score(model, params, root, seed), "train_seconds": wall}
        model, wall = joint(params, root, args.budget, seed)
        rows["joint"] = {**score(model, params, root, seed), "train_seconds": wall}
    n, m = params.tune.outer.trials, params.tune.inner.trials
    lines = [f"# Incremental vs joint training, same budget ({args.budget:.0f} s of training each, this machine)", "",
             f"Command: `.venv/bin/python benchmarks/incremental_vs_joint.py --budget {args.budget:.0f} "
             f"--outer-share {args.outer_share}`", "", "| key | incremental | joint |", "|---|---|---|",
             *(f"| {k} | {rows['incremental'].get(k, float('nan')):.4g} | {rows['joint'].get(k, float('nan')):.4g} |"
               for k in KEYS), "",
             f"Tuning: the incremental scheme tunes the outer space ({n} trials) then the inner space on cached "
             f"codes ({m} trials): **{n + m} trials**, each inner trial without an outer pass. A joint search over "
             f"the same grid of choices needs up to **{n * m} trials** ({n} × {m}), each a full end-to-end training."]
    (REPO / "reports" / "incremental_vs_joint.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
