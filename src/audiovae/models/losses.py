"""Reconstruction losses of the outer autoencoder, on scaled spectrograms in [0, 1].

- ``mse``: mean squared error of the scaled dB image (the seeds' choice). It averages: a bin that
  might be a harmonic or might be silence is drawn half-way, which is the blur listeners hear.
- ``l1``: mean absolute error of the same image; its optimum is the median, which keeps edges.
- ``l1_sc``: the two terms of a (multi-resolution) STFT loss at the model's own resolution: L1 on
  log magnitude plus spectral convergence on linear magnitude, ``||S - S'||_F / ||S||_F``, which
  weighs loud, harmonic bins the way PESQ and a listener do.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from audiovae.data.spectrogram import Codec

LOSSES = ("mse", "l1", "l1_sc")
DB_TO_LOG_AMPLITUDE = math.log(10.0) / 20.0  # 10 ** (db / 20) == exp(db * this)


def linear_magnitude(x: torch.Tensor, codec: Codec) -> torch.Tensor:
    """Scaled features -> magnitude relative to full scale (differentiable; global dB or mu-law)."""
    x = x.clamp(0.0, 1.0)
    if codec.representation == "mu_law":
        return torch.expm1(x * math.log1p(codec.mu)) / codec.mu
    db = codec.db_floor + x * (codec.db_ceiling - codec.db_floor)
    # 10 ** (db / 20) as one exp: pow with a scalar base and its backward were 5 % of an outer epoch
    # (reports/profile.md), exp half of that
    return torch.exp(db * DB_TO_LOG_AMPLITUDE)


def spectrogram_loss(kind: str, codec: Codec, sc_weight: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind not in LOSSES:
        raise ValueError(f"outer.loss must be one of {', '.join(LOSSES)}, not {kind!r}")
    # x_hat.float(): under bf16 autocast the decoder's output is bf16, and a loss summed in bf16
    # keeps three significant digits: too coarse to pick the best epoch by
    if kind == "mse":
        return lambda x_hat, x: torch.mean((x_hat.float() - x) ** 2)
    if kind == "l1":
        return lambda x_hat, x: torch.mean(torch.abs(x_hat.float() - x))

    def l1_sc(x_hat, x):
        x_hat = x_hat.float()
        lin_hat, lin = linear_magnitude(x_hat, codec), linear_magnitude(x, codec)
        sc = torch.linalg.norm((lin_hat - lin).flatten(1), dim=1) / torch.linalg.norm(lin.flatten(1), dim=1).clamp_min(1e-7)
        return torch.mean(torch.abs(x_hat - x)) + sc_weight * sc.mean()
    return l1_sc
