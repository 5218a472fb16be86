"""Benchmark: our filter + features stages vs the naive per-file librosa loop of the AudioMNIST report.

Run after `make repro` (it reads data/raw and data/metadata.csv, writes only into a temp dir):

    .venv/bin/python benchmarks/features_speed.py

The naive loop does, per file, what the report's notebook did: librosa.load at the target
rate, centre-trim or right-pad, STFT, amplitude_to_db. Our path does the same work as two
stages: decode/resample/trim per file (filter), then one batched STFT over a memory map
(features). Both are timed in this one run, on the same files and the same machine.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from roots import linked_root

from audiovae.config.params import load_params, with_values
from audiovae.data import filter as filtering
from audiovae.data.audio import fit_length
from audiovae.stages import features
from audiovae.stages import filter as filter_stage


def naive(paths: list[Path], sr: int, length: int, n_fft: int, hop: int) -> np.ndarray:
    out = []
    for path in paths:
        audio, _ = librosa.load(path, sr=sr)
        audio = fit_length(audio, length, "center")
        stft = librosa.amplitude_to_db(np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop)), ref=np.max)
        out.append(stft)
    return np.stack(out)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    root = Path.cwd()
    params = with_values(load_params(root / "params.yaml"), {"tracking.enabled": False})
    table = pd.read_csv(root / "data" / "metadata.csv")
    cfg, feat = params.filter, params.features
    sr, length = cfg.sample_rate, filtering.target_length(cfg)
    # librosa loads its modules (and scipy.signal) lazily on first use: pay that once, untimed,
    # so that neither side is charged for it
    librosa.amplitude_to_db(np.abs(librosa.stft(np.zeros(4096, dtype=np.float32), n_fft=256)))
    librosa.resample(np.zeros(4096, dtype=np.float32), orig_sr=16000, target_sr=8000)
    with linked_root(root, ["data/raw", "data/metadata.csv"]) as tmp:
        start = time.perf_counter()
        kept = filter_stage.run(params, tmp)
        t_filter = time.perf_counter() - start
        start = time.perf_counter()
        features.run(params, tmp)
        t_features = time.perf_counter() - start
    paths = [root / p for p in kept["path"]]
    start = time.perf_counter()
    naive(paths, sr, length, feat.n_fft, feat.hop_length)
    t_naive = time.perf_counter() - start
    n = len(paths)
    ours = t_filter + t_features
    print(f"files: {n} (of {len(table)}; the filter also inspects and rejects)")
    print(f"naive per-file librosa loop : {t_naive:7.2f} s  {n / t_naive:8.1f} files/s")
    print(f"filter stage (all of it)    : {t_filter:7.2f} s")
    print(f"features stage              : {t_features:7.2f} s  {n / t_features:8.1f} files/s")
    print(f"filter + features           : {ours:7.2f} s  {n / ours:8.1f} files/s")
    print(f"speed-up, features stage vs naive      : {t_naive / t_features:5.1f}x")
    print(f"speed-up, filter + features vs naive   : {t_naive / ours:5.1f}x")


if __name__ == "__main__":
    main()
