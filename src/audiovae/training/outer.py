"""Fit the deterministic outer autoencoder: ``train`` takes spectrograms in memory (or memory-mapped),
its split index and the codec, and returns the model, its history and its summary (``loop.Trained``).
It writes nothing but an epoch checkpoint when given one; the ``train_outer`` stage keeps the
outputs, and tuning trials call it on inputs they hold.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiovae.config.params import ParamsError
from audiovae.config.schema import Outer
from audiovae.data.artifacts import split_rows
from audiovae.data.spectrogram import Codec
from audiovae.models.build import build_checked, outer_hyper
from audiovae.models.losses import spectrogram_loss
from audiovae.models.outer import count_params
from audiovae.training.loop import (
    History,
    Trained,
    batches_of,
    fit,
    pick_device,
    seed_everything,
)

log = logging.getLogger("audiovae.train_outer")


def make_step(device: torch.device, loss_fn):
    def step(model, batch):
        x = batch.to(device, non_blocking=True)
        loss = loss_fn(model(x).float(), x)
        return loss, {"n": x.shape[0]}
    return step


def loader(specs: np.ndarray, rows: np.ndarray, batch_size: int, seed: int | None):
    """Batches of spectrograms read from the memory map; shuffled per epoch when ``seed`` is given."""
    def batches(epoch: int = 0):
        rng = np.random.default_rng([seed, epoch]) if seed is not None else None
        for chunk in batches_of(len(rows), batch_size, shuffle=rng is not None, generator=rng):
            yield torch.from_numpy(np.array(specs[np.sort(rows[chunk])]))
    return batches


def train(cfg: Outer, seed: int, specs: np.ndarray, index: pd.DataFrame, codec: Codec,
          checkpoint: Path | None = None, signature: str = "", on_epoch=None, trial_report=None,
          epoch_hook=None) -> Trained:
    """Fit the ``outer`` model of ``cfg`` on spectrograms in memory (or memory-mapped) and return
    it; writes nothing but the epoch ``checkpoint``, when one is given (a stage resumes from it).
    ``epoch_hook(model, epoch)`` runs before each epoch (benchmarks score the model as it learns)."""
    seed_everything(seed)
    _, n_bins, n_frames = specs.shape
    device = pick_device(cfg.device)
    model = build_checked(cfg, n_bins, n_frames).to(device)
    train_rows, val = split_rows(index, "train"), split_rows(index, "val")
    if len(train_rows) == 0 or len(val) == 0:
        raise ParamsError("train_outer needs non-empty train and val splits")
    batch_size = cfg.batch_size
    eval_batch = max(batch_size, 256)
    log.info("outer: %s with %s parameters on %s (%d train / %d val)", cfg.model,
             f"{count_params(model):,}", device, len(train_rows), len(val))
    if count_params(model) == 0:  # identity: the inner VAE works on spectrograms directly
        history = History(stopped="nothing to train")
    else:
        loss_fn = spectrogram_loss(cfg.loss, codec, cfg.sc_weight)
        history = fit(model, make_step(device, loss_fn), loader(specs, train_rows, batch_size, seed),
                      loader(specs, val, eval_batch, None),
                      cfg.train, device, checkpoint, signature, "train outer", on_epoch=on_epoch,
                      epoch_hook=epoch_hook, trial_report=trial_report)
    info = {"kind": cfg.model, "hyper": outer_hyper(cfg), "n_bins": n_bins, "n_frames": n_frames,
            "code_shape": list(model.code_shape()), "params": count_params(model),
            "compression": model.compression, "train_seconds": history.seconds,
            "best_epoch": history.best_epoch, "stopped": history.stopped}
    return Trained(model, history, info)
