"""Read what earlier stages wrote: spectrograms, their codec and splits, cached codes.

Library code shared by the stages and the CLI, so that no stage module imports another (a stage
depends, in dvc.yaml, on exactly the modules it imports).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from audiovae import layout
from audiovae.data.spectrogram import Codec


def load_codec(features_dir: Path) -> Codec:
    return Codec(**json.loads((features_dir / layout.CODEC).read_text()))


def open_features(features_dir: Path) -> tuple[np.ndarray, pd.DataFrame, Codec]:
    """Memory-map the spectrograms and read their index and codec."""
    specs = np.load(features_dir / layout.SPECTROGRAMS, mmap_mode="r")
    index = pd.read_csv(features_dir / layout.INDEX, dtype={"label": str, "speaker": str})
    return specs, index, load_codec(features_dir)


def split_rows(index: pd.DataFrame, split: str) -> np.ndarray:
    """Row numbers of one split, in order (so memmap reads stay sequential)."""
    return np.flatnonzero(index["split"].to_numpy() == split)


def real_rows(index: pd.DataFrame, split: str) -> np.ndarray:
    """``split_rows`` without mixing augmentation's examples: rows that are real recordings."""
    rows = split_rows(index, split)
    if "augmented" in index:
        rows = rows[index["augmented"].to_numpy()[rows] == 0]
    return rows


def load_encodings(root: Path) -> tuple[np.ndarray, dict, pd.DataFrame, dict]:
    """Codes (memory-mapped), standardisation stats, index and manifest of the encode stage."""
    enc = root / layout.ENCODINGS
    codes = np.load(enc / layout.CODES, mmap_mode="r")
    stats = dict(np.load(enc / layout.CODE_STATS))
    index = pd.read_csv(enc / layout.INDEX, dtype={"label": str, "speaker": str})
    return codes, stats, index, json.loads((enc / layout.CODES_MANIFEST).read_text())


def standardised(codes: np.ndarray, stats: dict, rows: np.ndarray) -> np.ndarray:
    return ((np.asarray(codes[rows]) - stats["mean"]) / stats["std"]).astype(np.float32)


NOTE_COLUMNS = ["pitch", "velocity"]  # a rendered note's MIDI pitch and velocity (data.sources.soundfont)


def note_array(index: pd.DataFrame) -> np.ndarray | None:
    """``(rows, 2)`` MIDI pitch and velocity of every row, or None when the data has no notes. Data
    with notes on some rows only (a note library mixed with recordings) is refused: a model cannot
    take a pitch for half its examples."""
    if not all(column in index for column in NOTE_COLUMNS):
        return None
    values = index[NOTE_COLUMNS].to_numpy(dtype=np.float64)
    missing = np.isnan(values).any(axis=1)
    if missing.all():
        return None
    if missing.any():
        raise ValueError(f"{int(missing.sum())} of {len(index)} rows have no pitch or velocity: pitch and velocity "
                         "can be inputs only when every sound is a note (set inner.note_inputs: off)")
    return values.astype(np.int64)
