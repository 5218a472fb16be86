"""Benchmark: the incremental scheme against training the same stacked model jointly, end to end.

The scheme's claim is not raw speed (on FSDD the outer encoder is cheap) but what it buys for the
same compute: an outer model trained to convergence on its own loss, a VAE trained on frozen codes,
and tuning that costs N + M trials (outer space, then inner space on cached codes) instead of
N x M for a joint search. Both arms here get the same wall-clock budget on this machine:

- incremental: ``train_outer`` for ``--outer-share`` of the budget, ``encode`` once, ``train_inner``
  for the rest (the stages themselves, with ``max_seconds`` set);
- joint: the same outer and inner architectures from scratch as one model, one loss (the outer's
  spectrogram loss summed over bins, plus beta times the KL), for the whole budget.

Each arm's schedule is sized to its budget: the seconds an epoch takes on this machine are measured
first (two epochs of each model), and each training gets the epochs that fit its share of the
budget, so its cosine learning-rate schedule runs its course (``max_seconds`` caps it too). Every
run starts from a fresh folder (a stage resumes from its own checkpoint otherwise). Both arms are
scored with the evaluate stage's own functions, at one scoring seed: PESQ / STOI of the full path,
the clean classifier on reconstructions and on generations (kde around training latents in both
arms: neither has a learned prior), DNSMOS of generations.

A tuning trial's cost is measured, not counted: an inner trial of the incremental scheme is
``train_inner`` on the cached codes plus scoring, a joint trial is a whole joint training plus
scoring; trials per hour = 3600 / those seconds, at each budget.

    .venv/bin/python benchmarks/incremental_vs_joint.py --budgets 60 120 240 --seeds 1 2 3

Run after ``dvc repro features``, nothing else running (it reads data/filtered and data/features,
writes only to temp folders, ``benchmarks/reports/incremental_vs_joint.{csv,md}`` and
``docs/images/incremental_vs_joint.png`` (the results page shows it; reports/plots/ is the evaluate stage's output, which a repro replaces)). Rows are kept in the CSV as each run ends, and a
re-run skips those already there, so an interrupted benchmark loses at most one run.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from roots import REPORTS, linked_root, provenance  # noqa: E402
from torch import nn

from audiovae.atomic import atomic_path, write_text  # noqa: E402
from audiovae.config.params import load_params, with_values  # noqa: E402
from audiovae.config.schema import Params, generation_spread  # noqa: E402
from audiovae.data.artifacts import open_features, split_rows  # noqa: E402
from audiovae.evaluation import evaluate  # noqa: E402
from audiovae.inference.model import AudioVAE  # noqa: E402
from audiovae.models.build import build_checked, build_vae  # noqa: E402
from audiovae.models.losses import spectrogram_loss  # noqa: E402
from audiovae.stages import encode, train_inner, train_outer  # noqa: E402
from audiovae.training.inner import class_scales, label_codes  # noqa: E402
from audiovae.training.loop import (  # noqa: E402
    History,
    batches_of,
    fit,
    pick_device,
    seed_everything,
)

REPO = Path(__file__).resolve().parents[1]
KEYS = ("quality.full_pesq_nb", "quality.full_stoi", "quality.generated_dnsmos_ovrl",
        "classifier.clean_full_accuracy", "classifier.clean_generated_accuracy", "train_seconds")
INPUTS = ["data/filtered", "data/features"]
PLOTTED = (("quality.full_pesq_nb", "full-path PESQ-NB"), ("classifier.clean_full_accuracy", "clean judge, full path"))


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


def incremental(params: Params, root: Path, budget: float, share: float,
                epoch_seconds: dict[str, float]) -> tuple[AudioVAE, dict[str, float]]:
    """``train_outer`` for ``share`` of the budget, ``encode``, ``train_inner`` for the rest, each
    with the epochs that fit its part; returns the model and the seconds of each part."""
    outer_s, inner_s = budget * share, budget * (1 - share)
    p = with_values(params, {"outer.train.max_seconds": outer_s * 1.1, "inner.train.max_seconds": inner_s * 1.1,
                             "outer.train.epochs": epochs_within(outer_s, epoch_seconds["outer"]),
                             "inner.train.epochs": epochs_within(inner_s, epoch_seconds["inner"])})
    seconds = {}
    for name, stage in (("outer", train_outer), ("encode", encode), ("inner", train_inner)):
        started = time.monotonic()
        stage.run(p, root)
        seconds[name] = time.monotonic() - started
    return AudioVAE.from_project(root, pick_device(p.outer.device)), seconds


def epochs_within(seconds: float, per_epoch: float) -> int:
    return max(1, int(seconds / per_epoch))


def joint(params: Params, root: Path, budget: float, seed: int, per_epoch: float) -> tuple[AudioVAE, float, History]:
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

    cfg = params.outer.train.model_copy(update={"epochs": epochs_within(budget, per_epoch), "max_seconds": budget * 1.1})
    started = time.monotonic()
    history = fit(model, step, loader(train, True), loader(val, False), cfg, device, root / "joint.pt", "joint",
                  "train joint")
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
    return result, wall, history


def per_epoch(history: History) -> float:
    """Seconds of an epoch after the first (which also warms up): what a longer run spends per epoch."""
    seconds = [e["seconds"] for e in history.epochs]
    return (seconds[-1] - seconds[0]) / (len(seconds) - 1)


def calibrate(params: Params, seed: int) -> dict[str, float]:
    """Seconds per epoch of the outer model, the inner VAE and the joint model on this machine,
    from three epochs of each (the first, which warms up, left out)."""
    p = with_values(params, {"outer.train.epochs": 3, "inner.train.epochs": 3, "seed": seed})
    with linked_root(REPO, INPUTS) as root:
        outer = train_outer.run(p, root)["history"]
        encode.run(p, root)
        inner = train_inner.run(p, root)["history"]
        *_, both = joint(params, root, 10 ** 6, seed, 10 ** 6 / 3)  # 3 epochs
    return {"outer": per_epoch(outer), "inner": per_epoch(inner), "joint": per_epoch(both)}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every key, per arm and budget."""
    keys = [*KEYS, "trial_seconds"]
    grouped = table.groupby(["budget", "arm"])[keys]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    out = mean.copy()
    for key in keys:
        out[key] = [f"{m:.3g} ± {s:.2g}" if np.isfinite(s) else f"{m:.3g}" for m, s in zip(mean[key], sd[key])]
    out["seeds"] = grouped.size()
    out["trials_per_hour"] = (3600 / mean["trial_seconds"]).map(lambda v: f"{v:.0f}")
    return out.reset_index()


def plot(table: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(5 * len(PLOTTED), 3.6))
    for ax, (key, title) in zip(axes, PLOTTED):
        for arm, marker in (("incremental", "o"), ("joint", "s")):
            rows = table[table["arm"] == arm].groupby("budget")[key]
            mean, sd = rows.mean(), rows.std(ddof=1).fillna(0)
            ax.errorbar(mean.index / 60, mean.values, yerr=sd.values, marker=marker, capsize=3, label=arm)
        ax.set_xlabel("training budget (minutes)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[60, 120, 240],
                        help="wall-clock seconds of training per arm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds, per budget and arm")
    parser.add_argument("--outer-share", type=float, default=0.4, help="incremental: the outer model's share")
    parser.add_argument("--out", default=str(REPORTS / "incremental_vs_joint"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    params = with_values(load_params(REPO / "params.yaml"), {"tracking.enabled": False})
    score_seed = params.seed  # one scoring seed: only training differs between rows
    out = REPO / args.out
    csv = out.with_suffix(".csv")
    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["seed", "budget", "arm"])
    epoch_seconds = calibrate(params, score_seed)
    print(f"seconds per epoch: {epoch_seconds}", flush=True)
    rows = done.to_dict("records")
    for seed in args.seeds:
        for budget in args.budgets:
            for arm in ("incremental", "joint"):
                if ((done["seed"] == seed) & (done["budget"] == budget) & (done["arm"] == arm)).any():
                    continue
                p = with_values(params, {"seed": seed})
                with linked_root(REPO, INPUTS) as root:
                    if arm == "incremental":
                        model, parts = incremental(p, root, budget, args.outer_share, epoch_seconds)
                        wall, trial = sum(parts.values()), parts["inner"]
                    else:
                        model, wall, _ = joint(p, root, budget, seed, epoch_seconds["joint"])
                        trial = wall
                    started = time.monotonic()
                    scores = score(model, p, root, score_seed)
                    scored = time.monotonic() - started
                rows.append({"seed": seed, "budget": budget, "arm": arm, **scores, "train_seconds": wall,
                             "trial_seconds": trial + scored})
                print(f"seed {seed}, {budget:.0f} s, {arm}: PESQ-NB {scores['quality.full_pesq_nb']:.3f}, "
                      f"clean full {scores['classifier.clean_full_accuracy']:.3f}, {wall:.0f} s", flush=True)
                table = pd.DataFrame(rows)
                with atomic_path(csv) as tmp:
                    table.to_csv(tmp, index=False, float_format="%.5g")
    table = pd.DataFrame(rows)
    plot(table, REPO / "docs" / "images" / "incremental_vs_joint.png")
    n, m = params.tune.outer.trials, params.tune.inner.trials
    shown = summary(table)[["budget", "arm", "seeds", *KEYS, "trials_per_hour"]]
    lines = ["# Incremental vs joint training at equal wall-clock budgets", "",
             f"`benchmarks/incremental_vs_joint.py --budgets {' '.join(f'{b:.0f}' for b in args.budgets)} --seeds "
             f"{' '.join(map(str, args.seeds))} --outer-share {args.outer_share}`, {provenance(REPO)}. Mean ± sd over "
             f"seeds; budgets in seconds of training per arm; seconds per epoch measured first: outer "
             f"{epoch_seconds['outer']:.2f}, inner {epoch_seconds['inner']:.2f}, joint {epoch_seconds['joint']:.2f}. "
             "`trials_per_hour`: an inner trial on cached codes (incremental) or a whole joint training (joint), "
             "scoring included. Plot: `docs/images/incremental_vs_joint.png`.", "",
             shown.to_markdown(index=False), "",
             f"Tuning by count: the incremental scheme tunes the outer space ({n} trials) then the inner space on cached "
             f"codes ({m} trials), {n + m} trials; a joint search over the same grid needs up to {n * m} ({n} × {m})."]
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
