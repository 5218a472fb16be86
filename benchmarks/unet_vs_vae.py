"""Benchmark: the VAE-vs-U-Net report's comparison, with the standard measures.

The report trained a U-Net (skip connections, RMSE only) and a VAE on FSDD spectrograms and found
the U-Net converged in a few epochs, reconstructed better, and moved less when its input was
perturbed by up to ±10 dB. Here both arms are this project's stages on the same features:

- ``unet``: ``train_outer`` with ``outer.model: unet`` (its "code" is the spectrogram: no bottleneck);
- ``vae``: the pipeline's model: the project's trained outer autoencoder, frozen, and ``train_inner``
  on its cached codes (the incremental scheme), scored through outer + inner.

Each epoch the model is scored on ``--clips`` test recordings (Griffin-Lim, then PESQ-NB and STOI
against the real audio); after training, on the same clips with the input perturbed by up to
±``evaluate.perturb_db`` dB: how far the output moves (dB RMSE, as the evaluate stage) and the
PESQ / STOI that is left.

    .venv/bin/python benchmarks/unet_vs_vae.py [--unet-epochs 5] [--vae-epochs 60] [--every 5] [--clips 64]

Run after ``dvc repro`` (it reads data/features, data/filtered, data/encodings and
data/models/outer; writes only to a temp folder and ``benchmarks/reports/unet_vs_vae.md``).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from roots import REPORTS, linked_root, provenance

from audiovae.atomic import write_text
from audiovae.config.params import load_params, with_values
from audiovae.config.schema import Params
from audiovae.data.artifacts import load_codec, open_features, split_rows
from audiovae.evaluation import evaluate, quality
from audiovae.inference.model import AudioVAE
from audiovae.models.checkpoints import load_outer
from audiovae.models.outer import count_params
from audiovae.stages import train_inner, train_outer
from audiovae.training.loop import pick_device

REPO = Path(__file__).resolve().parents[1]
SCORER: "Scorer"  # set in main(): the epoch hooks score with it
EVERY = 5


def wrap(outer, inner, root: Path, device, stats: dict | None = None) -> AudioVAE:
    """An AudioVAE around networks in training (no label statistics: only reconstruction is scored)."""
    meta = json.loads((root / "data" / "filtered" / "audio.json").read_text())
    size = int(np.prod(outer.code_shape()))
    mean = stats["mean"] if stats else np.zeros(size, np.float32)
    std = stats["std"] if stats else np.ones(size, np.float32)
    latent = inner.latent_dim if inner is not None else 1
    return AudioVAE(outer, inner, mean, std, load_codec(root / "data" / "features"), int(meta["length"]),
                    meta["length_mode"], ["x"], np.zeros((1, latent), np.float32),
                    np.zeros((1, latent, latent), np.float32), device)


class Scorer:
    """PESQ-NB / STOI of a reconstruction function on fixed test clips, clean and perturbed."""

    def __init__(self, root: Path, clips: int, perturb_db: float, seed: int):
        specs, index, codec = open_features(root / "data" / "features")
        waves = np.load(root / "data" / "filtered" / "audio.npy", mmap_mode="r")
        test = split_rows(index, "test")
        test = test[quality.subsample(len(test), clips, seed)]
        self.x = np.asarray(specs[test])
        self.real = np.asarray(waves[index["row"].to_numpy()[test]])
        self.sr, self.perturb_db, self.seed = codec.sample_rate, perturb_db, seed

    def clean(self, model: AudioVAE, recon) -> dict:
        audio = model.to_audio(recon(self.x))
        return {"pesq_nb": quality.pesq_mean(self.real, audio, self.sr),
                "stoi": quality.stoi_score(self.real, audio, self.sr)}

    def robustness(self, model: AudioVAE, recon) -> dict:
        clean = recon(self.x)
        moved = recon(evaluate.perturb(model, self.x, self.perturb_db, self.seed))
        audio = model.to_audio(moved)
        return {"perturbed_rmse_db": evaluate.rmse_db(model, moved, clean),
                "perturbed_pesq_nb": quality.pesq_mean(self.real, audio, self.sr),
                "perturbed_stoi": quality.stoi_score(self.real, audio, self.sr)}


def score_epoch(name: str, net, model: AudioVAE, recon: str, epoch: int, started: float) -> dict:
    """Score the network in training as it stands before ``epoch`` (then back to training mode)."""
    net.eval()
    with torch.no_grad():
        row = {"epoch": epoch, "seconds": time.monotonic() - started, **SCORER.clean(model, getattr(model, recon))}
    net.train()
    logging.info("%s epoch %d: %s", name, epoch, row)
    return row


def scored(epoch: int) -> bool:
    return epoch == 1 or epoch % EVERY == 0


def run_unet(params: Params, data: Path, scorer: Scorer, epochs: int) -> tuple[list[dict], dict, dict]:
    p = with_values(params, {"outer.model": "unet", "outer.train.epochs": epochs, "outer.train.patience": epochs + 1,
                             "outer.train.max_seconds": 0, "tracking.enabled": False})
    curve: list[dict] = []
    with linked_root(data, ["data/features", "data/filtered"], prefix="unet-bench-") as root:
        device = pick_device(p.outer.device)
        started = time.monotonic()

        def hook(net, epoch):
            if epoch and scored(epoch):  # before epoch e: the model after e epochs
                curve.append(score_epoch("unet", net, wrap(net, None, root, device), "reconstruct_outer", epoch, started))

        result = train_outer.run(p, root, epoch_hook=hook)
        final = wrap(result["model"].eval(), None, root, device)
        curve.append({"epoch": epochs, "seconds": time.monotonic() - started, **scorer.clean(final, final.reconstruct_outer)})
        return curve, scorer.robustness(final, final.reconstruct_outer), {"params": count_params(result["model"])}


def run_vae(params: Params, data: Path, scorer: Scorer, epochs: int) -> tuple[list[dict], dict, dict]:
    p = with_values(params, {"inner.train.epochs": epochs, "inner.train.patience": epochs + 1,
                             "inner.train.max_seconds": 0, "tracking.enabled": False})
    curve: list[dict] = []
    inputs = ["data/features", "data/filtered", "data/encodings", "data/models/outer"]
    with linked_root(data, inputs, prefix="vae-bench-") as root:
        device = pick_device(p.inner.device)
        outer, _ = load_outer(root / "data" / "models" / "outer" / "model.pt", device)
        stats = dict(np.load(root / "data" / "encodings" / "stats.npz"))
        started = time.monotonic()

        def hook(net, epoch):
            if epoch and scored(epoch):
                curve.append(score_epoch("vae", net, wrap(outer, net, root, device, stats), "reconstruct", epoch, started))

        result = train_inner.run(p, root, epoch_hook=hook)
        final = wrap(outer, result["model"].eval(), root, device, stats)
        curve.append({"epoch": epochs, "seconds": time.monotonic() - started, **scorer.clean(final, final.reconstruct)})
        return curve, scorer.robustness(final, final.reconstruct), {"params": count_params(result["model"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unet-epochs", type=int, default=5, help="the report's U-Net converged in 5")
    parser.add_argument("--vae-epochs", type=int, default=60)
    parser.add_argument("--every", type=int, default=5, help="score every N epochs (and epoch 1)")
    parser.add_argument("--clips", type=int, default=64, help="test recordings scored each epoch")
    parser.add_argument("--data", default=str(REPO), help="project whose dvc repro outputs to read (default: this one)")
    parser.add_argument("--out", default=str(REPORTS / "unet_vs_vae.md"))
    args = parser.parse_args()
    global SCORER, EVERY
    EVERY = args.every
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params = load_params(REPO / "params.yaml")
    seed = params.seed
    data = Path(args.data).resolve()
    SCORER = scorer = Scorer(data, args.clips, params.evaluate.perturb_db, seed)
    results = {"unet": run_unet(params, data, scorer, args.unet_epochs), "vae": run_vae(params, data, scorer, args.vae_epochs)}
    lines = ["# U-Net vs VAE (the seed report's comparison, standard measures)", "",
             f"`.venv/bin/python benchmarks/unet_vs_vae.py --unet-epochs {args.unet_epochs} --vae-epochs {args.vae_epochs} "
             f"--every {args.every} --clips {args.clips}`, {provenance(REPO)}: "
             f"{args.clips} FSDD test clips, Griffin-Lim, PESQ-NB / STOI against the real audio; "
             f"robustness with the input perturbed by up to ±{params.evaluate.perturb_db} dB.", "",
             "## Quality per epoch", "", "| epoch | U-Net PESQ-NB | U-Net STOI | U-Net s | VAE PESQ-NB | VAE STOI | VAE s |",
             "|---|---|---|---|---|---|---|"]
    unet, vae = ({row["epoch"]: row for row in results[k][0]} for k in ("unet", "vae"))
    for epoch in sorted(set(unet) | set(vae)):
        u, v = unet.get(epoch, {}), vae.get(epoch, {})
        cell = lambda d, k, f: format(d[k], f) if k in d else "–"  # noqa: E731
        lines.append(f"| {epoch} | {cell(u, 'pesq_nb', '.2f')} | {cell(u, 'stoi', '.3f')} | {cell(u, 'seconds', '.0f')} "
                     f"| {cell(v, 'pesq_nb', '.2f')} | {cell(v, 'stoi', '.3f')} | {cell(v, 'seconds', '.0f')} |")
    lines += ["", "## Robustness (final model)", "", "| model | trained params | output moves (dB RMSE) | PESQ-NB perturbed | STOI perturbed |",
              "|---|---|---|---|---|"]
    for name, (_, robust, info) in results.items():
        lines.append(f"| {name} | {info['params']:,} | {robust['perturbed_rmse_db']:.2f} | "
                     f"{robust['perturbed_pesq_nb']:.2f} | {robust['perturbed_stoi']:.3f} |")
    write_text(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
