"""STFT features of many recordings, a batch at a time, into an array the caller owns.

``spectrograms_into`` fills ``(files, bins, frames)`` float32 in [0, 1] from the filtered audio and
the planned mixes that follow it (``augment.plan_mixes``), so AudioMNIST-sized data never has to be
in memory at once; ``feature_index`` is the index that says which file each row is (and, under
per-file scaling, its dB min/max, which the codec needs to invert it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audiovae.data import augment
from audiovae.data.spectrogram import Codec
from audiovae.progress import Progress


def feature_shape(codec: Codec, waves: np.ndarray, plan: pd.DataFrame) -> tuple[int, int, int]:
    """The features array's shape: real recordings then planned mixes, bins, frames."""
    real, length = waves.shape
    return real + len(plan), codec.n_bins, codec.n_frames(length)


def spectrograms_into(out: np.ndarray, codec: Codec, waves: np.ndarray, plan: pd.DataFrame,
                      batch_size: int) -> np.ndarray:
    """Fill ``out`` (``feature_shape``) with the spectrograms of ``waves`` then of the mixes of
    ``plan``; returns each row's dB (min, max) (zeros unless the codec scales per file)."""
    real = waves.shape[0]
    n = out.shape[0]
    minmax = np.zeros((n, 2), dtype=np.float32)
    with Progress(n, "STFT features", unit="file") as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            # rows past the real files are the planned mixes, made a batch at a time
            chunk = np.concatenate([np.asarray(waves[start:min(stop, real)]),
                                    augment.mix(waves, plan.iloc[max(start, real) - real:max(stop - real, 0)])])
            scaled, mm = codec.encode(chunk)
            out[start:stop] = scaled
            if mm is not None:
                minmax[start:stop] = mm
            bar.update(stop - start)
    return minmax


def feature_index(index: pd.DataFrame, plan: pd.DataFrame, minmax: np.ndarray, codec: Codec) -> pd.DataFrame:
    """The filter's index, with the mixes' rows appended and per-file dB ranges when the codec has them.
    No mixes: the filter's index unchanged, byte for byte once written."""
    if len(plan):
        index = pd.concat([index.assign(augmented=0), augment.index_rows(index, plan)], ignore_index=True)
    if codec.scaling == "per_file":
        index = index.copy()
        index["db_min"], index["db_max"] = minmax[:, 0], minmax[:, 1]
    return index
