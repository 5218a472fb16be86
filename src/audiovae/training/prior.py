"""The prior's inputs and its fit: the frozen inner VAE's posterior means of every real recording
(computed once, cached by the ``train_prior`` stage, what tuning the prior reads), and the
label-conditioned mixture fitted on the training ones (``models.prior``)."""
from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from audiovae.config.schema import Prior
from audiovae.data.artifacts import real_rows, standardised
from audiovae.models.inner import VAE
from audiovae.models.prior import Fitted, fit

log = logging.getLogger("audiovae.train_prior")
LATENT_BATCH = 256  # rows per encoder call: a convolutional VAE's activations are large


def real_index(index: pd.DataFrame) -> np.ndarray:
    """Rows of the encodings that are real recordings (augmented copies are not), every split."""
    return np.sort(np.concatenate([real_rows(index, split) for split in ("train", "val", "test")]))


@torch.no_grad()
def posterior_means(model: VAE, codes: np.ndarray, stats: dict, rows: np.ndarray, label_ids: np.ndarray,
                    device: torch.device, notes: np.ndarray | None = None) -> np.ndarray:
    """The inner VAE's posterior mean of each of ``rows`` of the (unstandardised) codes; ``notes``
    (rows of ``rows``' pitch and velocity) for a note-conditioned VAE."""
    model.eval()
    out = np.empty((len(rows), model.latent_dim), np.float32)
    for start in range(0, len(rows), LATENT_BATCH):
        chunk = rows[start:start + LATENT_BATCH]
        x = torch.from_numpy(standardised(codes, stats, chunk)).to(device)
        y = torch.from_numpy(label_ids[start:start + LATENT_BATCH].astype(np.int64)).to(device)
        n = torch.from_numpy(notes[start:start + LATENT_BATCH]).to(device) if notes is not None else None
        mu, _ = model.encode(x, y if model.conditional else None, n)
        out[start:start + len(chunk)] = mu.cpu().numpy()
    return out


def label_ids_of(index: pd.DataFrame, labels: list[str]) -> np.ndarray:
    lookup = {label: i for i, label in enumerate(labels)}
    return index["label"].astype(str).map(lookup).to_numpy()


def train(cfg: Prior, seed: int, latents: np.ndarray, index: pd.DataFrame, labels: list[str]) -> tuple[Fitted, float]:
    """Fit the prior on the training rows of cached ``latents`` (``index`` says each row's split
    and label), scored on the validation rows; returns it and the seconds it took."""
    started = time.monotonic()
    y = label_ids_of(index, labels)
    split = index["split"].astype(str).to_numpy()
    train_rows, val_rows = split == "train", split == "val"
    fitted = fit(cfg, latents[train_rows], y[train_rows], len(labels), seed, latents[val_rows], y[val_rows])
    seconds = time.monotonic() - started
    log.info("prior: %d components over %d labels, validation log-likelihood %.1f per latent, %.1f s",
             len(fitted.mixture.centres), len(labels), fitted.val_loglik, seconds)
    return fitted, seconds
