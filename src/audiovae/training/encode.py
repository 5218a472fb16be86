"""The frozen outer encoder over many spectrograms, a batch at a time (``encode_array``), the
statistics that standardise the codes (``standardisation``), and the augmented copies' spectrograms
made as they are read (``TransformedSpecs``).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from audiovae.data import augment
from audiovae.data.spectrogram import Codec
from audiovae.progress import Progress

log = logging.getLogger("audiovae.encode")
STD_FLOOR = 1e-3  # standardising a near-constant code dimension would only amplify noise


def encode_array(model, specs: np.ndarray | TransformedSpecs, batch_size: int, device: torch.device, out: np.ndarray | None = None,
                 desc: str = "encode") -> np.ndarray:
    n = specs.shape[0]
    with torch.no_grad(), Progress(n, desc, unit="file") as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            x = torch.from_numpy(np.array(specs[start:stop])).to(device)
            code = model.encode(x).float().flatten(1).cpu().numpy()
            if out is None:
                out = np.empty((n, code.shape[1]), dtype=np.float32)
            out[start:stop] = code
            bar.update(stop - start)
    assert out is not None, "encode_array needs at least one spectrogram"
    return out


def standardisation(codes: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    if mode == "none":
        return np.zeros(codes.shape[1], np.float32), np.ones(codes.shape[1], np.float32)
    mean = codes.mean(axis=0)
    if mode == "global":  # one scale for all dimensions, as latent-diffusion models do
        std = np.full(codes.shape[1], max(float(codes.std()), STD_FLOOR))
    elif mode == "per_dim":
        std = np.maximum(codes.std(axis=0), STD_FLOOR)
    else:
        raise ValueError(f"encode.standardise must be per_dim, global or none, not {mode!r}")
    return mean.astype(np.float32), std.astype(np.float32)


class TransformedSpecs:
    """The planned copies' spectrograms, made a batch at a time as ``encode_array`` reads them
    (the copies never sit in memory all at once)."""

    def __init__(self, waves: np.ndarray, plan, codec: Codec):
        self.waves, self.plan, self.codec = waves, plan, codec
        self.shape = (len(plan), codec.n_bins, codec.n_frames(waves.shape[1]))

    def __getitem__(self, rows: slice) -> np.ndarray:
        batch = [augment.transform(self.waves[row.audio_row], row, self.codec.sample_rate)
                 for row in self.plan.iloc[rows].itertuples(index=False)]
        return self.codec.encode(np.stack(batch))[0]
