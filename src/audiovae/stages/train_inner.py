"""DVC stage ``train_inner``: fit the VAE on the cached, standardised outer codes only.

It never loads the outer model: the codes from ``encode`` are all it reads. Writes
``data/models/inner/model.pt`` (with each label's latent mean and spread, used to generate a
chosen class), ``reports/inner/history.csv`` and ``reports/inner/kl_per_dim.csv``; the
number of active latent dimensions is logged so posterior collapse is visible.

This module reads the inputs, writes the outputs atomically and logs; training is
``audiovae.training.inner.train``, on the codes in memory.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from audiovae import layout
from audiovae.atomic import atomic_path, write_json
from audiovae.config.params import project_root
from audiovae.config.schema import Params
from audiovae.data.artifacts import load_encodings, split_rows, standardised
from audiovae.models.checkpoints import save_model
from audiovae.models.inner import VAE
from audiovae.stages import run_stage
from audiovae.tracking import runs
from audiovae.training.inner import kl_table, train
from audiovae.training.loop import config_hash

log = logging.getLogger("audiovae.train_inner")


def run(params: Params, root: Path | None = None, trial_report=None, epoch_hook=None) -> dict:
    """Stage ``train_inner``: the cached codes from the project, ``train``, its outputs kept and logged."""
    root = root or project_root()
    cfg = params.inner
    seed = params.seed
    codes, stats, index, manifest = load_encodings(root)
    signature = config_hash(cfg, seed, manifest)
    checkpoint = root / layout.checkpoint("inner")
    with runs.stage_run("train_inner", params, root, section_keys=("inner", "encode")) as tracker:
        # a tracking server that goes away mid-training must not stop it: epochs are kept and sent later
        epochs = tracker.epochs(params.tracking.retry_seconds)

        def on_epoch(record):
            epochs({k: v for k, v in record.items() if k != "epoch"}, record["epoch"])
        trained = train(cfg, seed, codes, stats, index, manifest, checkpoint, signature, on_epoch=on_epoch,
                        trial_report=trial_report, epoch_hook=epoch_hook)
        model, history, info, val_latent = trained.model, trained.history, trained.info, trained.statistics
        assert isinstance(model, VAE)
        out_dir = root / layout.INNER_DIR
        # the checkpoint carries the effective ``inner`` section it was trained with
        digest = save_model(out_dir / layout.MODEL, model, **info, config=cfg.model_dump())
        summary = {k: v for k, v in info.items()
                   if k not in ("class_means", "class_scales", "class_points", "class_point_labels")}
        write_json(out_dir / layout.SUMMARY, {**summary, "sha256": digest, "epochs_run": len(history.epochs),
                                              "val_kl": float(val_latent["kl_per_dim"].sum())})
        with atomic_path(root / layout.INNER_HISTORY) as tmp:
            pd.DataFrame(history.epochs).to_csv(tmp, index=False, float_format="%.6g")
        with atomic_path(root / layout.INNER_KL) as tmp:
            kl_table(model, val_latent).to_csv(tmp, index=False, float_format="%.6g")
        epochs.close()  # the outputs are written: now wait for the server, if it is gone
        tracker.log_metrics({"active_dims": info["active_dims"], "latent_dims": model.latent_dim,
                             "params": info["params"], "train_seconds": history.seconds,
                             **{f"kl_dim_{i:03d}": float(v) for i, v in enumerate(val_latent["kl_per_dim"])}})
        tracker.log_artifact(root / layout.INNER_HISTORY)
        tracker.log_artifact(root / layout.INNER_KL)
        # a VAE conditioned on labels or notes takes them too: no one-array signature
        if tracker.on and not model.conditional and model.note_pitches is None:
            tracker.log_torch_model(model, standardised(codes, stats, split_rows(index, "val")[:2]), "audiovae-inner")
    checkpoint.unlink(missing_ok=True)
    return {"history": history, "model": model, "info": info}


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
