"""Benchmark: our filter + features stages vs the naive per-file librosa loop of the AudioMNIST report.

Run after `make repro`, nothing else running (it reads data/raw and data/metadata.csv, writes only
into a temp dir and ``benchmarks/reports/features_speed.md``, commit and machine named):

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
from roots import REPORTS, linked_root, provenance

from audiovae.atomic import write_text
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
    # every file read once, untimed: the side timed first would otherwise pay the disk for both
    for path in table["path"]:
        (root / path).read_bytes()
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
    lines = ["# Features speed: the filter and features stages against a naive per-file librosa loop", "",
             f"`benchmarks/features_speed.py`, {provenance(root)}: {n:,} files kept (of {len(table):,}; the filter "
             f"also inspects and rejects), {feat.n_fft}-point STFT, hop {feat.hop_length}, {sr} Hz.", "",
             "| path | seconds | files per second |", "|---|---|---|",
             f"| naive per-file librosa loop (load, fit, STFT, dB) | {t_naive:.2f} | {n / t_naive:.1f} |",
             f"| filter stage (decode, resample, trim, fit; all of it) | {t_filter:.2f} | {n / t_filter:.1f} |",
             f"| features stage (one batched STFT over a memory map) | {t_features:.2f} | {n / t_features:.1f} |",
             f"| filter + features | {ours:.2f} | {n / ours:.1f} |", "",
             f"Speed-up against the naive loop: the features stage {t_naive / t_features:.1f} ×, filter and features "
             f"together {t_naive / ours:.1f} ×."]
    write_text(REPORTS / "features_speed.md", "\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__":
    main()
