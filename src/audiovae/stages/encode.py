"""DVC stage ``encode``: run the frozen outer encoder over every split once and cache the codes.

The inner VAE then trains on these codes alone, which is what makes it cheap (the
incremental scheme). Writes ``data/encodings/``: ``codes.npy`` (files x code size, memory-
mappable, not standardised), ``stats.npz`` (the train-split mean and std used to standardise),
``index.csv`` and ``manifest.json`` naming the outer model's sha256.

With ``encode.augment.copies`` > 0, transformed copies of each real training recording (gain,
time shift, speed, noise: ``augment.plan_transforms``) are encoded once too and appended as
training rows marked ``augmented``; validation and test rows stay real recordings, and the
standardisation comes from real training codes only. Counts go to ``reports/encode/summary.json``.

This module reads the inputs, writes the outputs atomically and logs; encoding is
``audiovae.training.encode.encode_array``.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from audiovae import layout
from audiovae.atomic import atomic_path, sha256_file, write_json
from audiovae.config.params import project_root
from audiovae.config.schema import Params
from audiovae.data import augment
from audiovae.data.artifacts import open_features, real_rows
from audiovae.models.checkpoints import load_outer
from audiovae.stages import run_stage
from audiovae.tracking import runs
from audiovae.training.encode import TransformedSpecs, encode_array, standardisation
from audiovae.training.loop import pick_device

log = logging.getLogger("audiovae.encode")


def run(params: Params, root: Path | None = None) -> Path:
    root = root or project_root()
    cfg = params.encode
    features_dir = root / layout.FEATURES
    specs, index, codec = open_features(features_dir)
    plan = augment.plan_transforms(index, cfg.augment, params.seed)
    device = pick_device(params.outer.device)
    model_path = root / layout.OUTER_MODEL
    model, info = load_outer(model_path, device)
    size = math.prod(info["code_shape"])
    out_dir = root / layout.ENCODINGS
    with atomic_path(out_dir) as staging:
        staging.mkdir(parents=True)
        codes = np.lib.format.open_memmap(staging / layout.CODES, mode="w+", dtype=np.float32,
                                          shape=(len(index) + len(plan), size))
        encode_array(model, specs, cfg.batch_size, device, out=codes[: len(index)])
        if len(plan):
            waves = np.load(root / layout.FILTERED_AUDIO, mmap_mode="r")
            plan = plan.assign(audio_row=index["row"].to_numpy()[plan["source"].to_numpy()])
            encode_array(model, TransformedSpecs(waves, plan, codec), cfg.batch_size, device,
                         out=codes[len(index):], desc="encode augmented copies")
        codes.flush()
        train = real_rows(index, "train")
        mean, std = standardisation(np.asarray(codes[train]), cfg.standardise)
        np.savez(staging / layout.CODE_STATS, mean=mean, std=std)
        if len(plan):
            base = index if "augmented" in index else index.assign(augmented=0)
            index = pd.concat([base, augment.transformed_rows(base, plan)], ignore_index=True)
        index.to_csv(staging / layout.INDEX, index=False)
        write_json(staging / layout.CODES_MANIFEST, {
            "outer_model_sha256": sha256_file(model_path), "outer_kind": info["kind"],
            "code_shape": info["code_shape"], "code_size": size, "files": len(index),
            "standardise": cfg.standardise, "features_index_sha256": sha256_file(features_dir / layout.INDEX)})
        del codes
    summary = {"rows": len(index), "augmented_copies": len(plan), "copies_per_train_file": cfg.augment.copies,
               "code_size": size}
    write_json(root / layout.ENCODE_SUMMARY, summary)
    log.info("encode: %d rows (%d augmented copies) -> %d-dim codes (%s)", len(index), len(plan), size,
             "x".join(map(str, info["code_shape"])))
    runs.log_stage("encode", params, section_keys=("encode",), root=root,
                       metrics={"files": len(index), "augmented_copies": len(plan), "code_size": size})
    return out_dir


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
