"""DVC stage ``train_outer``: fit the deterministic outer autoencoder on the feature spectrograms.

Writes ``data/models/outer/model.pt`` and ``reports/outer/history.csv`` (a DVC plot: train and
validation loss and the over-fitting ratio per epoch). Interrupted runs resume from
``data/checkpoints/outer.pt``.

This module reads the inputs, writes the outputs atomically and logs; training is
``audiovae.training.outer.train``, on the spectrograms in memory.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from audiovae import layout
from audiovae.atomic import atomic_path, sha256_file, write_json
from audiovae.config.params import project_root
from audiovae.config.schema import Params
from audiovae.data.artifacts import open_features, split_rows
from audiovae.models.checkpoints import save_model
from audiovae.stages import run_stage
from audiovae.tracking import runs
from audiovae.training.loop import config_hash
from audiovae.training.outer import train

log = logging.getLogger("audiovae.train_outer")


def run(params: Params, root: Path | None = None, trial_report=None, epoch_hook=None) -> dict:
    """Stage ``train_outer``: its inputs from the project, ``train``, its outputs kept and logged."""
    root = root or project_root()
    cfg = params.outer
    seed = params.seed
    features_dir = root / layout.FEATURES
    specs, index, codec = open_features(features_dir)
    # the spectrograms' own bytes, not just their index: a filter or feature setting that changes the
    # audio but no path or label (filter.normalise) must not resume another run's checkpoint
    signature = config_hash(cfg, seed, sha256_file(features_dir / layout.INDEX),
                            sha256_file(features_dir / layout.SPECTROGRAMS), specs.shape)
    checkpoint = root / layout.checkpoint("outer")
    with runs.stage_run("train_outer", params, root, section_keys=("outer", "features")) as tracker:
        # a tracking server that goes away mid-training must not stop it: epochs are kept and sent later
        epochs = tracker.epochs(params.tracking.retry_seconds)

        def on_epoch(record):
            epochs({k: v for k, v in record.items() if k != "epoch"}, record["epoch"])
        started = time.monotonic()
        trained = train(cfg, seed, specs, index, codec, checkpoint, signature, on_epoch=on_epoch,
                        trial_report=trial_report, epoch_hook=epoch_hook)
        wall = time.monotonic() - started
        model, history, info = trained.model, trained.history, trained.info
        out_dir = root / layout.OUTER_DIR
        # the checkpoint carries the effective ``outer`` section it was trained with
        digest = save_model(out_dir / layout.MODEL, model, **info, config=cfg.model_dump())
        write_json(out_dir / layout.SUMMARY, {**info, "sha256": digest, "wall_seconds": wall,
                                              "epochs_run": len(history.epochs)})
        frame = pd.DataFrame(history.epochs, columns=list(history.epochs[0]) if history.epochs else
                             ["epoch", "train_loss", "val_loss", "overfit_ratio"])
        with atomic_path(root / layout.OUTER_HISTORY) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        epochs.close()  # the outputs are written: now wait for the server, if it is gone
        tracker.log_metrics({"params": info["params"], "compression": info["compression"],
                             "train_seconds": history.seconds,
                             "best_val_loss": float(frame["val_loss"].min()) if len(frame) else 0.0})
        tracker.set_tag("stopped", history.stopped)
        tracker.log_artifact(root / layout.OUTER_HISTORY)
        if tracker.on:  # the example is read from the spectrograms only for a model that is logged
            tracker.log_torch_model(model, np.array(specs[split_rows(index, "val")[:2]]), "audiovae-outer")
    checkpoint.unlink(missing_ok=True)
    return {"history": history, "model": model, "info": info}


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
