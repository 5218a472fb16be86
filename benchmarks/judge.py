"""What the benchmarks that score CLI output share: the evaluate stage's clean classifier, trained on
the project's real training audio, and the way a written sound becomes one of its clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from audiovae.config.schema import Params
from audiovae.data.artifacts import open_features, real_rows
from audiovae.data.audio import fit_length, trim_silence
from audiovae.evaluation.classifier import CleanClassifier

JUDGE_TRIM_DB = 40  # a written sound is trimmed to its sound before the judge sees it, as FSDD's files are


def clean_judge(root: Path, params: Params) -> CleanClassifier:
    """The evaluate stage's primary classifier: FSDD's real training audio, no augmentation."""
    _, index, codec = open_features(root / "data" / "features")
    waves = np.load(root / "data" / "filtered" / "audio.npy", mmap_mode="r")
    train = real_rows(index, "train")
    return CleanClassifier(codec.sample_rate, params.evaluate.clean_classifier, params.seed).fit(
        np.asarray(waves[index["row"].to_numpy()[train]]), index["label"].astype(str).to_numpy()[train])


def as_clips(waves: list[np.ndarray], sample_rate: int, length: int) -> np.ndarray:
    """Each sound trimmed of its silence and fitted to the model's clip length (right-padded)."""
    return np.stack([fit_length(trim_silence(w, JUDGE_TRIM_DB, sample_rate), length, "right")
                     for w in waves]).astype(np.float32)
