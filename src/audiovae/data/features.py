"""Stage ``features``: batched STFT of the filtered audio into one memory-mapped array.

``data/features/spectrograms.npy`` is ``(files, bins, frames)`` float32 in [0, 1], written in
chunks so that AudioMNIST-sized data never has to be in memory at once; ``index.csv`` says which
file each row is (and its dB min/max under per-file scaling); ``codec.json`` holds every
parameter needed to invert a spectrogram back to audio. With ``features.augment.mix`` the array
ends with mixed training examples (``augmented`` 1 in the index, no row of filtered audio);
``reports/features/summary.json`` counts them.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from audiovae import layout
from audiovae.atomic import atomic_path, write_json
from audiovae.config.params import project_root
from audiovae.config.schema import Params
from audiovae.data import augment
from audiovae.data.spectrogram import Codec
from audiovae.progress import Progress
from audiovae.tracking import runs

log = logging.getLogger("audiovae.features")


def run(params: Params, root: Path | None = None) -> Path:
    root = root or project_root()
    cfg = params.features
    filtered = root / layout.FILTERED
    meta = json.loads((filtered / "audio.json").read_text())
    codec = Codec.from_params(cfg, meta["sample_rate"])
    waves = np.load(filtered / "audio.npy", mmap_mode="r")
    index = pd.read_csv(filtered / "index.csv", dtype={"label": str, "speaker": str})
    plan = augment.plan_mixes(index, cfg.augment.mix, params.seed)
    real, length = waves.shape
    n = real + len(plan)
    shape = (n, codec.n_bins, codec.n_frames(length))
    batch = cfg.batch_size
    out_dir = root / layout.FEATURES
    with atomic_path(out_dir) as staging:
        staging.mkdir(parents=True)
        specs = np.lib.format.open_memmap(staging / "spectrograms.npy", mode="w+", dtype=np.float32, shape=shape)
        minmax = np.zeros((n, 2), dtype=np.float32)
        with Progress(n, "STFT features", unit="file") as bar:
            for start in range(0, n, batch):
                stop = min(start + batch, n)
                # rows past the real files are the planned mixes, made a batch at a time
                chunk = np.concatenate([np.asarray(waves[start:min(stop, real)]),
                                        augment.mix(waves, plan.iloc[max(start, real) - real:max(stop - real, 0)])])
                scaled, mm = codec.encode(chunk)
                specs[start:stop] = scaled
                if mm is not None:
                    minmax[start:stop] = mm
                bar.update(stop - start)
        specs.flush()
        del specs
        if len(plan):  # off: the index stays the filter's, byte for byte
            index = pd.concat([index.assign(augmented=0), augment.index_rows(index, plan)], ignore_index=True)
        if codec.scaling == "per_file":
            index["db_min"], index["db_max"] = minmax[:, 0], minmax[:, 1]
        index.to_csv(staging / "index.csv", index=False)
        write_json(staging / "codec.json", asdict(codec))
    log.info("features: %s spectrograms of %d bins x %d frames (%d mixed training examples)",
             n, shape[1], shape[2], len(plan))
    write_json(root / layout.FEATURES_SUMMARY,
               {"rows": n, "real": real, "mixed": len(plan), "bins": shape[1], "frames": shape[2]})
    runs.log_stage("features", params, section_keys=("features",), root=root,
                       metrics={"files": n, "mixed": len(plan), "bins": shape[1], "frames": shape[2]})
    return out_dir
