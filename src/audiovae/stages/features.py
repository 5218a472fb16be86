"""DVC stage ``features``: batched STFT of the filtered audio into one memory-mapped array.

``data/features/spectrograms.npy`` is ``(files, bins, frames)`` float32 in [0, 1], written in
chunks so that AudioMNIST-sized data never has to be in memory at once; ``index.csv`` says which
file each row is (and its dB min/max under per-file scaling); ``codec.json`` holds every
parameter needed to invert a spectrogram back to audio. With ``features.augment.mix`` the array
ends with mixed training examples (``augmented`` 1 in the index, no row of filtered audio);
``reports/features/summary.json`` counts them.

This module reads the inputs, writes the outputs atomically and logs; the STFT is
audiovae.data.spectrogram's ``Codec``, mixes audiovae.data.augment.
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
from audiovae.data.features import feature_index, feature_shape, spectrograms_into
from audiovae.data.spectrogram import Codec
from audiovae.stages import run_stage
from audiovae.tracking import runs

log = logging.getLogger("audiovae.features")


def run(params: Params, root: Path | None = None) -> Path:
    root = root or project_root()
    cfg = params.features
    filtered = root / layout.FILTERED
    meta = json.loads((filtered / layout.AUDIO_META).read_text())
    codec = Codec.from_params(cfg, meta["sample_rate"])
    waves = np.load(filtered / layout.AUDIO_ARRAY, mmap_mode="r")
    index = pd.read_csv(filtered / layout.INDEX, dtype={"label": str, "speaker": str})
    plan = augment.plan_mixes(index, cfg.augment.mix, params.seed)
    shape = feature_shape(codec, waves, plan)
    n = shape[0]
    out_dir = root / layout.FEATURES
    with atomic_path(out_dir) as staging:
        staging.mkdir(parents=True)
        specs = np.lib.format.open_memmap(staging / layout.SPECTROGRAMS, mode="w+", dtype=np.float32, shape=shape)
        minmax = spectrograms_into(specs, codec, waves, plan, cfg.batch_size)
        specs.flush()
        del specs
        feature_index(index, plan, minmax, codec).to_csv(staging / layout.INDEX, index=False)
        write_json(staging / layout.CODEC, asdict(codec))
    log.info("features: %s spectrograms of %d bins x %d frames (%d mixed training examples)",
             n, shape[1], shape[2], len(plan))
    write_json(root / layout.FEATURES_SUMMARY,
               {"rows": n, "real": waves.shape[0], "mixed": len(plan), "bins": shape[1], "frames": shape[2]})
    runs.log_stage("features", params, section_keys=("features",), root=root,
                       metrics={"files": n, "mixed": len(plan), "bins": shape[1], "frames": shape[2]})
    return out_dir


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
