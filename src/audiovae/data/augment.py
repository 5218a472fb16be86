"""Mixing augmentation (``features.augment.mix``): grow a small training set as the sample
generator grew its library, by mixing two training sounds of the same label at random gains.

Only training files are drawn and only training rows are added, so validation and test stay real
recordings; the new rows are marked ``augmented`` so evaluation never treats them as real audio.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from audiovae.config.schema import EncodeAugment, Mix
from audiovae.data.audio import peak_normalise


def plan_mixes(index: pd.DataFrame, cfg: Mix, seed: int) -> pd.DataFrame:
    """Which pairs to mix and at what gains: one row per new example (``a``, ``b`` are rows of
    ``index``), drawn deterministically from ``seed``. Labels with one training file are skipped."""
    columns = ["a", "b", "gain_a_db", "gain_b_db", "label"]
    train = index[index["split"] == "train"]
    groups = {label: rows.to_numpy() for label, rows in train.groupby("label").groups.items() if len(rows) > 1}
    count = int(round(cfg.per_train_file * len(train))) if cfg.enabled else 0
    if not count or not groups:
        return pd.DataFrame(columns=columns)
    labels = sorted(groups)
    weights = np.array([len(groups[label]) for label in labels], dtype=float)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(labels), size=count, p=weights / weights.sum())
    low, high = sorted(cfg.gain_db)
    pairs = [rng.choice(groups[labels[i]], size=2, replace=False) for i in picked]
    gains = rng.uniform(low, high, size=(count, 2))
    return pd.DataFrame({"a": [int(a) for a, _ in pairs], "b": [int(b) for _, b in pairs],
                         "gain_a_db": gains[:, 0], "gain_b_db": gains[:, 1],
                         "label": [labels[i] for i in picked]})


def mix(waves: np.ndarray, plan: pd.DataFrame) -> np.ndarray:
    """The planned mixes, each peak-normalised like the filter stage's files."""
    out = np.empty((len(plan), waves.shape[1]), dtype=np.float32)
    for k, row in enumerate(plan.itertuples(index=False)):
        a, b = np.asarray(waves[row.a]), np.asarray(waves[row.b])
        out[k] = peak_normalise(a * 10 ** (row.gain_a_db / 20) + b * 10 ** (row.gain_b_db / 20))
    return out


def index_rows(index: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Index rows for the mixes: training rows of their label, naming both sources; no audio row."""
    first = index.iloc[plan["a"].to_numpy()].reset_index(drop=True)
    second = index.iloc[plan["b"].to_numpy()].reset_index(drop=True)
    return first.assign(path="mix:" + first["path"].astype(str) + "+" + second["path"].astype(str),
                        speaker="mix", split="train", row=-1, augmented=1)


# ---------------------------------------------------------------- encode-once augmentation
# (``encode.augment``): transformed copies of each real training recording, encoded once by the
# frozen outer encoder beside the real codes, so the inner VAE sees more than the training set
# without the outer model ever running in its training loop.

TRANSFORM_COLUMNS = ["source", "copy", "gain_db", "shift_seconds", "speed", "noise_snr_db"]


def plan_transforms(index: pd.DataFrame, cfg: EncodeAugment, seed: int) -> pd.DataFrame:
    """``copies`` rows per real training recording, each with its draws of every enabled transform
    (a transform whose range is 0 or empty stays at identity), deterministic for ``seed``."""
    copies = cfg.copies
    real = index[(index["split"] == "train") & (index["row"] >= 0)]
    if "augmented" in index:
        real = real[real["augmented"] == 0]
    if copies <= 0 or real.empty:
        return pd.DataFrame(columns=TRANSFORM_COLUMNS)
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the features stage's mixes use ``seed``
    n = len(real) * copies
    source = np.repeat(real.index.to_numpy(), copies)
    gain, shift, speed = cfg.gain_db, cfg.shift_seconds, cfg.speed
    snr = sorted(cfg.noise_snr_db)
    return pd.DataFrame({
        "source": source, "copy": np.tile(np.arange(copies), len(real)),
        "gain_db": rng.uniform(-gain, 0.0, n) if gain else np.zeros(n),  # quieter only: louder would clip at 0 dB
        "shift_seconds": rng.uniform(-shift, shift, n) if shift else np.zeros(n),
        "speed": 1.0 + (rng.uniform(-speed, speed, n) if speed else np.zeros(n)),
        "noise_snr_db": rng.uniform(snr[0], snr[-1], n) if snr else np.full(n, np.inf),
        "noise_seed": rng.integers(0, 2 ** 31, n)})


def transform(wave: np.ndarray, row, sample_rate: int) -> np.ndarray:
    """One planned copy: speed (resampled like a tape: tempo and pitch together), time shift
    (zeros shifted in), white noise at the planned SNR, then the gain; the length is kept."""
    import librosa

    out = np.asarray(wave, dtype=np.float32)
    length = len(out)
    if row.speed != 1.0:
        out = librosa.resample(out, orig_sr=sample_rate * row.speed, target_sr=sample_rate).astype(np.float32)
        out = np.pad(out, (0, max(0, length - len(out))))[:length]
    shift = int(round(row.shift_seconds * sample_rate))
    if shift > 0:
        out = np.concatenate([np.zeros(shift, np.float32), out[:length - shift]])
    elif shift < 0:
        out = np.concatenate([out[-shift:], np.zeros(-shift, np.float32)])
    if np.isfinite(row.noise_snr_db):
        power = float(np.mean(out ** 2))
        noise = np.random.default_rng(int(row.noise_seed)).standard_normal(length).astype(np.float32)
        out = out + noise * np.sqrt(power / 10 ** (row.noise_snr_db / 10))
    out = peak_normalise(out)  # as the filter stage's files, before the gain moves the level
    return (out * 10 ** (row.gain_db / 20)).astype(np.float32)


def transformed_rows(index: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Index rows for the copies: training rows of their source's label; no audio row."""
    rows = index.loc[plan["source"].to_numpy()].reset_index(drop=True)
    return rows.assign(path="encode:" + rows["path"].astype(str) + "#" + plan["copy"].astype(str).to_numpy(),
                       split="train", row=-1, augmented=1)
