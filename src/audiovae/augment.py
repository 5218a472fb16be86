"""Mixing augmentation (``features.augment.mix``): grow a small training set as the sample
generator grew its library, by mixing two training sounds of the same label at random gains.

Only training files are drawn and only training rows are added, so validation and test stay real
recordings; the new rows are marked ``augmented`` so evaluation never treats them as real audio.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .audio import peak_normalise


def plan_mixes(index: pd.DataFrame, cfg: dict, seed: int) -> pd.DataFrame:
    """Which pairs to mix and at what gains: one row per new example (``a``, ``b`` are rows of
    ``index``), drawn deterministically from ``seed``. Labels with one training file are skipped."""
    columns = ["a", "b", "gain_a_db", "gain_b_db", "label"]
    train = index[index["split"] == "train"]
    groups = {label: rows.to_numpy() for label, rows in train.groupby("label").groups.items() if len(rows) > 1}
    count = int(round(float(cfg["per_train_file"]) * len(train))) if cfg["enabled"] else 0
    if not count or not groups:
        return pd.DataFrame(columns=columns)
    labels = sorted(groups)
    weights = np.array([len(groups[label]) for label in labels], dtype=float)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(labels), size=count, p=weights / weights.sum())
    low, high = sorted(float(g) for g in cfg["gain_db"])
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
