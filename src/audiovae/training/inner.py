"""Fit the inner VAE on standardised outer codes: ``train`` takes the codes, their statistics and index
in memory and returns the VAE with each label's latent centre and scale (what generation samples
from) and the per-dimension KL of the validation codes (``loop.Trained``). It never loads the outer
model and writes nothing but an epoch checkpoint when given one; the ``train_inner`` stage keeps
the outputs, and tuning trials call it on codes they hold.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiovae.config.params import ParamsError
from audiovae.config.schema import Inner
from audiovae.data.artifacts import note_array, real_rows, split_rows, standardised
from audiovae.models.build import build_vae
from audiovae.models.inner import ACTIVE_KL_THRESHOLD, VAE, vae_loss
from audiovae.models.outer import count_params
from audiovae.training.loop import (
    Trained,
    batches_of,
    fit,
    pick_device,
    seed_everything,
)

log = logging.getLogger("audiovae.train_inner")
LATENT_BATCH = 256


class Annealed:
    """KL weight: linear warm-up from 0 to ``beta`` over ``warmup`` epochs (0: constant)."""

    def __init__(self, beta: float, warmup: int):
        self.beta, self.warmup, self.value = beta, warmup, beta if warmup <= 0 else 0.0

    def __call__(self, model, epoch: int) -> None:
        self.value = self.beta if self.warmup <= 0 else self.beta * min(1.0, (epoch + 1) / self.warmup)


def label_codes(index: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    labels = sorted(index["label"].astype(str).unique())
    lookup = {label: i for i, label in enumerate(labels)}
    return labels, index["label"].astype(str).map(lookup).to_numpy()


def make_step(device, beta: Annealed, reconstruction: str, weight: float, reduction: str, free_bits: float = 0.0):
    def step(model, batch):
        x, y, notes = (t.to(device) for t in batch)
        loss, rec, kl = vae_loss(model, x, y, beta.value, reconstruction, weight, reduction, free_bits,
                                 notes if notes.shape[1] else None)
        return loss, {"n": x.shape[0], "reconstruction": rec.detach(), "kl": kl.detach()}
    return step


def tensor_loader(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None, notes: np.ndarray | None = None):
    """Batches of (codes, label ids, notes); ``notes`` (rows, 2) of pitch and velocity, or none
    (a zero-width tensor: the batch keeps one shape)."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    nt = torch.from_numpy(notes.astype(np.int64) if notes is not None else np.zeros((len(x), 0), np.int64))

    def batches(epoch: int = 0):
        rng = np.random.default_rng([seed, epoch]) if seed is not None else None
        for chunk in batches_of(len(xt), batch_size, shuffle=rng is not None, generator=rng):
            yield xt[chunk], yt[chunk], nt[chunk]
    return batches


def note_inputs(cfg: Inner, index: pd.DataFrame) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """The rows' pitch and velocity and the training notes' pitch range, when they are inputs
    (``inner.note_inputs: auto`` and the data has notes), else (None, None)."""
    notes = note_array(index) if cfg.note_inputs == "auto" else None
    if notes is None:
        return None, None
    train_pitches = notes[split_rows(index, "train"), 0]
    return notes, (int(train_pitches.min()), int(train_pitches.max()))


CLASS_SAMPLING = ("kde", "full", "diagonal", "prior")
COVARIANCE_RIDGE = 1e-4  # keeps a class's covariance positive definite when it has few examples


def check_class_sampling(how: str, model: VAE) -> None:
    if how not in CLASS_SAMPLING:
        raise ParamsError(f"inner.class_sampling must be one of {', '.join(CLASS_SAMPLING)}, not {how!r}")
    if how == "prior" and model.prior != "class_mixture":
        raise ParamsError("inner.class_sampling prior needs inner.prior class_mixture")


def class_scales(mu: np.ndarray, y: np.ndarray, n_classes: int, how: str, model: VAE,
                 rank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each label's latent centre and scale (new latents: centre + spread * scale applied to eps).

    ``full``: mean and a factor ``L`` of the covariance of the label's posterior means (ex-post
    density estimation: samples follow the directions the label really varies in), ``(labels,
    latent, r)``: the Cholesky factor, or with ``rank`` r < latent the leading r principal
    directions scaled by their standard deviations (a sequence latent has hundreds of dimensions
    and a label a few hundred examples: its covariance has no more directions than that, and a
    full factor per label would weigh tens of megabytes in the model file); ``kde`` uses the same
    scale around each training latent of the label instead of around their mean (see
    ``AudioVAE.sample``); ``diagonal``: the FSDD report's mean and per-dimension std, ``(labels,
    latent)``; ``prior``: the class-mixture prior's own component N(m_y, I)."""
    check_class_sampling(how, model)
    d = mu.shape[1]
    if how == "prior":
        means = model.prior_means.detach().cpu().numpy()
        return means.astype(np.float32), np.ones((n_classes, d), np.float32)
    if how == "diagonal":
        means, scales = np.zeros((n_classes, d)), np.ones((n_classes, d))
        for c in range(n_classes):
            rows = mu[y == c]
            if len(rows):
                means[c] = rows.mean(0)
            if len(rows) > 1:
                scales[c] = rows.std(0)
        return means.astype(np.float32), scales.astype(np.float32)
    r = d if rank <= 0 else min(rank, d)
    means, scales = np.zeros((n_classes, d)), np.broadcast_to(np.eye(d)[:, :r], (n_classes, d, r)).copy()
    for c in range(n_classes):
        rows = mu[y == c]
        if len(rows) == 0:
            continue
        means[c] = rows.mean(0)
        if len(rows) < 2:
            continue
        cov = np.cov(rows, rowvar=False) + COVARIANCE_RIDGE * np.eye(d)
        if r == d:
            scales[c] = np.linalg.cholesky(cov)
        else:
            values, vectors = np.linalg.eigh(cov)  # ascending: the last r are the leading directions
            scales[c] = vectors[:, -r:][:, ::-1] * np.sqrt(values[-r:][::-1])
    return means.astype(np.float32), scales.astype(np.float32)


@torch.no_grad()
def latent_statistics(model: VAE, x: np.ndarray, y: np.ndarray, n_classes: int, device,
                      class_sampling: str | None = None, rank: int = 0, notes: np.ndarray | None = None) -> dict:
    """Per-dimension KL on ``x``; with ``class_sampling``, also each class's latent centre and scale
    (from the posterior means)."""
    model.eval()
    mus, kls = [], []
    for start in range(0, len(x), LATENT_BATCH):  # in batches: a convolutional VAE's activations are large
        xt = torch.from_numpy(x[start:start + LATENT_BATCH]).to(device)
        yt = torch.from_numpy(y[start:start + LATENT_BATCH].astype(np.int64)).to(device)
        nt = torch.from_numpy(notes[start:start + LATENT_BATCH]).to(device) if notes is not None else None
        mu, logvar = model.encode(xt, yt if model.conditional else None, nt)
        mus.append(mu.cpu().numpy())
        kls.append(model.kl_dims(mu, logvar, yt).cpu().numpy())
    kl = np.concatenate(kls).mean(0)
    mu_np = np.concatenate(mus)
    stats = {"kl_per_dim": kl, "mu_mean": mu_np.mean(0), "mu_std": mu_np.std(0), "mu": mu_np}
    if class_sampling is not None:
        stats["class_means"], stats["class_scales"] = class_scales(mu_np.astype(np.float64), y, n_classes,
                                                                   class_sampling, model, rank)
    return stats


def kl_table(model: VAE, stats: dict) -> pd.DataFrame:
    """One row per latent dimension; a sequence latent's rows also name its channel and frame."""
    dims = np.arange(model.latent_dim)
    table = {"dim": dims}
    if model.latent == "sequence":
        channels, frames = model.latent_shape
        table.update(channel=dims // frames, frame=dims % frames)
    return pd.DataFrame({**table, "kl": stats["kl_per_dim"], "mu_mean": stats["mu_mean"], "mu_std": stats["mu_std"]})


def train(cfg: Inner, seed: int, codes: np.ndarray, stats: dict, index: pd.DataFrame, manifest: dict,
          checkpoint: Path | None = None, signature: str = "", on_epoch=None, trial_report=None,
          epoch_hook=None) -> Trained:
    """Fit the VAE of ``cfg`` on outer codes held in memory (or memory-mapped) and return it with its
    label statistics (``info``) and the per-dimension KL of the validation codes (``statistics``);
    writes nothing but the epoch ``checkpoint``, when one is given. ``epoch_hook(model, epoch)``
    runs before each epoch, after the KL warm-up's own hook; ``on_epoch(record)`` after each."""
    seed_everything(seed)
    labels, y = label_codes(index)
    train_rows, val = split_rows(index, "train"), split_rows(index, "val")
    x_train, x_val = standardised(codes, stats, train_rows), standardised(codes, stats, val)
    device = pick_device(cfg.device)
    notes, pitches = note_inputs(cfg, index)
    model = build_vae(cfg, codes.shape[1], len(labels), manifest["code_shape"], pitches).to(device)
    notes_of = (lambda rows: notes[rows]) if notes is not None else (lambda rows: None)
    sampling = cfg.class_sampling
    check_class_sampling(sampling, model)  # before training, not after it
    beta = Annealed(cfg.beta, cfg.kl_warmup_epochs)
    step = make_step(device, beta, cfg.reconstruction, cfg.reconstruction_weight,
                     cfg.reconstruction_reduction, cfg.free_bits)
    batch_size = cfg.batch_size
    log.info("inner: VAE %d -> %d latent, %s parameters on %s%s", codes.shape[1], model.latent_dim,
             f"{count_params(model):,}", device, f"; pitch (MIDI {pitches[0]}-{pitches[1]}) and velocity are inputs"
             if pitches else "")

    def on_epoch_with_beta(record):
        record["beta"] = beta.value
        if on_epoch is not None:
            on_epoch(record)

    def hooks(m: torch.nn.Module, e: int) -> None:  # the KL warm-up first, then the caller's
        beta(m, e)
        if epoch_hook is not None:
            epoch_hook(m, e)

    history = fit(model, step, tensor_loader(x_train, y[train_rows], batch_size, seed, notes_of(train_rows)),
                  tensor_loader(x_val, y[val], 1024, None, notes_of(val)),
                  cfg.train, device, checkpoint, signature, "train inner", on_epoch=on_epoch_with_beta,
                  epoch_hook=hooks, trial_report=trial_report)
    # label statistics and kde centres from real recordings only: a generation starts from a
    # real sound's latent, never from an augmented copy's
    real = np.isin(train_rows, real_rows(index, "train"))
    latent = latent_statistics(model, x_train[real], y[train_rows][real], len(labels), device, sampling,
                               cfg.class_sampling_rank, notes_of(train_rows[real]))
    val_latent = latent_statistics(model, x_val, y[val], len(labels), device, notes=notes_of(val))
    active = int(np.sum(val_latent["kl_per_dim"] > ACTIVE_KL_THRESHOLD))
    info = {"hyper": model.hyper, "labels": labels, "params": count_params(model),
            "train_seconds": history.seconds, "best_epoch": history.best_epoch, "stopped": history.stopped,
            "active_dims": active, "latent_dims": model.latent_dim, "class_means": latent["class_means"],
            "class_scales": latent["class_scales"], "class_sampling": sampling,
            # kde: every training latent is a kernel centre; the others need none
            "class_points": latent["mu"] if sampling == "kde" else np.zeros((0, model.latent_dim), np.float32),
            "class_point_labels": y[train_rows][real] if sampling == "kde" else np.zeros(0, np.int64),
            "outer_model_sha256": manifest["outer_model_sha256"], "beta": cfg.beta}
    if active < model.latent_dim / 2:
        log.warning("posterior collapse: only %d of %d latent dimensions are active (KL > %g nats)",
                    active, model.latent_dim, ACTIVE_KL_THRESHOLD)
    return Trained(model, history, info, statistics=val_latent)
