"""DVC stage ``train_prior``: the prior generation samples from, fitted on the frozen inner VAE's latents.

The incremental scheme once more: the inner VAE's posterior mean of every real recording is
computed once and kept (``data/latents/``: ``latents.npy`` and the ``index.csv`` of its rows), and
the prior trains on those of the training split alone, never touching the VAE or the audio. With
``prior.family`` gmm it writes the fitted mixture (``data/models/prior/model.pt``, each label's
components; ``reports/prior/components.csv``); with kde it writes an empty one, and generation
samples around training latents as the inner VAE's class sampling does.

This module reads the inputs, writes the outputs atomically and logs; the latents and the fit are
``audiovae.training.prior``'s, the mixture ``audiovae.models.prior``'s.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiovae import layout
from audiovae.atomic import atomic_path, sha256_file, write_json
from audiovae.config.params import project_root
from audiovae.config.schema import Params
from audiovae.data.artifacts import load_encodings, note_array
from audiovae.models.checkpoints import load_inner
from audiovae.models.prior import Mixture
from audiovae.stages import run_stage
from audiovae.tracking import runs
from audiovae.training.loop import pick_device, seed_everything
from audiovae.training.prior import label_ids_of, posterior_means, real_index, train

log = logging.getLogger("audiovae.train_prior")


def save_prior(path: Path, mixture: Mixture, **info) -> str:
    """The mixture's arrays and facts, through a buffer (the same bytes every run), atomically."""
    buffer = io.BytesIO()
    torch.save({**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in mixture.arrays().items()}, **info},
               buffer)
    with atomic_path(path, suffix=".pt") as tmp:
        tmp.write_bytes(buffer.getvalue())
    return sha256_file(path)


def run(params: Params, root: Path | None = None) -> dict:
    root = root or project_root()
    cfg = params.prior
    seed_everything(params.seed)
    codes, stats, index, _ = load_encodings(root)
    device = pick_device(params.inner.device)
    vae, info = load_inner(root / layout.INNER_MODEL, device)
    labels = [str(label) for label in info["labels"]]
    rows = real_index(index)
    kept = index.iloc[rows].reset_index(drop=True)
    notes = note_array(kept) if vae.note_pitches is not None else None
    latents = posterior_means(vae, codes, stats, rows, label_ids_of(kept, labels), device, notes)
    with atomic_path(root / layout.LATENTS) as staging:
        staging.mkdir(parents=True)
        np.save(staging / layout.LATENTS_ARRAY, latents)
        kept.assign(encodings_row=rows).to_csv(staging / layout.INDEX, index=False)
    log.info("latents: %d real recordings -> %d-dim posterior means", len(rows), latents.shape[1])
    facts = {"family": cfg.family, "label_names": labels, "latent_dims": int(latents.shape[1]),
             "inner_model_sha256": sha256_file(root / layout.INNER_MODEL)}
    if cfg.family == "gmm":
        fitted, seconds = train(cfg, params.seed, latents, kept, labels)
        mixture = fitted.mixture
        scores = {"train_loglik": fitted.train_loglik, "val_loglik": fitted.val_loglik,
                  "subspace_variance": fitted.subspace_variance, "train_seconds": seconds}
    else:  # kde: nothing to fit; the inner VAE's training latents are the kernel centres
        mixture = Mixture.empty(latents.shape[1])
        scores = {}
    components = pd.DataFrame({"label": [labels[c] for c in mixture.labels], "weight": mixture.weights,
                               "scale": np.sqrt((mixture.scales.astype(np.float64) ** 2).sum((1, 2)))})  # the bases are orthonormal
    with runs.stage_run("train_prior", params, root, section_keys=("prior",)) as tracker:
        digest = save_prior(root / layout.PRIOR_MODEL, mixture, **facts, **scores)
        summary = {**facts, **scores, "components": len(mixture.centres), "sha256": digest}
        write_json(root / layout.PRIOR_SUMMARY, summary)
        with atomic_path(root / layout.PRIOR_COMPONENTS) as tmp:
            components.to_csv(tmp, index=False, float_format="%.6g")
        tracker.log_metrics({"components": len(mixture.centres), **scores})
        tracker.log_artifact(root / layout.PRIOR_COMPONENTS)
    return {"mixture": mixture, "summary": summary, "latents": latents}


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
