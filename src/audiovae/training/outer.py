"""Stage ``train_outer``: fit the deterministic outer autoencoder on the feature spectrograms.

``train`` computes (spectrograms in, a trained model out: tuning calls it on inputs it holds in
memory); ``run`` is the stage around it, reading the project's files and keeping its outputs.

Writes ``data/models/outer/model.pt`` and ``reports/outer/history.csv`` (a DVC plot: train and
validation loss and the over-fitting ratio per epoch). Interrupted runs resume from
``data/checkpoints/outer.pt``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiovae import layout
from audiovae.atomic import atomic_path, sha256_file, write_json
from audiovae.config.params import ParamsError, project_root
from audiovae.config.schema import Outer, Params
from audiovae.data.artifacts import open_features, split_rows
from audiovae.data.spectrogram import Codec
from audiovae.models.build import build_checked, outer_hyper
from audiovae.models.checkpoints import save_model
from audiovae.models.losses import spectrogram_loss
from audiovae.models.outer import count_params
from audiovae.tracking import runs
from audiovae.training.loop import (
    FitConfig,
    History,
    Trained,
    batches_of,
    config_hash,
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
    fit_cfg = FitConfig.from_params(cfg.train)
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
                      fit_cfg, device, checkpoint, signature, "train outer", on_epoch=on_epoch,
                      epoch_hook=epoch_hook, trial_report=trial_report)
    info = {"kind": cfg.model, "hyper": outer_hyper(cfg), "n_bins": n_bins, "n_frames": n_frames,
            "code_shape": list(model.code_shape()), "params": count_params(model),
            "compression": model.compression, "train_seconds": history.seconds,
            "best_epoch": history.best_epoch, "stopped": history.stopped}
    return Trained(model, history, info)


def run(params: Params, root: Path | None = None, trial_report=None, epoch_hook=None) -> dict:
    """Stage ``train_outer``: its inputs from the project, ``train``, its outputs kept and logged."""
    root = root or project_root()
    cfg = params.outer
    seed = params.seed
    features_dir = root / layout.FEATURES
    specs, index, codec = open_features(features_dir)
    signature = config_hash(cfg, seed, sha256_file(features_dir / "index.csv"), specs.shape)
    checkpoint = root / layout.checkpoint("outer")
    with runs.stage_run("train_outer", params, root, section_keys=("outer", "features")) as tracker:
        # a tracking server that goes away mid-training must not stop it: epochs are kept and sent later
        epochs = tracker.epochs(params.tracking.retry_seconds)

        def on_epoch(record):
            epochs({k: v for k, v in record.items() if k != "epoch"}, record["epoch"])
        started = time.monotonic()
        trained = train(cfg, seed, specs, index, codec, checkpoint, signature, on_epoch=on_epoch,
                        trial_report=trial_report, epoch_hook=epoch_hook)
        wall = time.monotonic() - started
        model, history, info = trained.model, trained.history, trained.info
        out_dir = root / layout.OUTER_DIR
        # the checkpoint carries the effective ``outer`` section it was trained with
        digest = save_model(out_dir / "model.pt", model, **info, config=cfg.model_dump())
        write_json(out_dir / "summary.json", {**info, "sha256": digest, "wall_seconds": wall,
                                              "epochs_run": len(history.epochs)})
        frame = pd.DataFrame(history.epochs, columns=list(history.epochs[0]) if history.epochs else
                             ["epoch", "train_loss", "val_loss", "overfit_ratio"])
        with atomic_path(root / layout.OUTER_HISTORY) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        epochs.close()  # the outputs are written: now wait for the server, if it is gone
        tracker.log_metrics({"params": info["params"], "compression": info["compression"],
                             "train_seconds": history.seconds,
                             "best_val_loss": float(frame["val_loss"].min()) if len(frame) else 0.0})
        tracker.set_tag("stopped", history.stopped)
        tracker.log_artifact(root / layout.OUTER_HISTORY)
        if tracker.on:  # the example is read from the spectrograms only for a model that is logged
            tracker.log_torch_model(model, np.array(specs[split_rows(index, "val")[:2]]), "audiovae-outer")
    checkpoint.unlink(missing_ok=True)
    return {"history": history, "model": model, "info": info}
