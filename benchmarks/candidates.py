"""The fast loop for model candidates: train one stage on the cached inputs, score what a listener hears.

Run after `make repro` (it reads data/encodings, data/features, data/filtered and the trained
outer model; it writes nothing under data/ and leaves DVC state alone). Each candidate is a set
of `-S`-style overrides of params.yaml, trained by the library's own `train` on inputs in memory and
scored by `audiovae.evaluation.validation` on a fixed validation subset (never the test split), next to the
reference rows (the real audio, the project's outer model alone):

    .venv/bin/python benchmarks/candidates.py --clips 120 \
        --variant "inner.latent=global" \
        --variant "inner.latent=sequence inner.beta=0.1" \
        --variant "inner.latent=sequence inner.latent_channels=32 inner.train.epochs=100"
    .venv/bin/python benchmarks/candidates.py --stage outer --variant "outer.conv1d.blocks=1"

`--stage inner` (default) trains the inner VAE on the cached codes: one line per candidate with
the rate (KL, nats per clip), the full-path loss, PESQ-NB, STOI, DNSMOS, the clean classifier on
reconstructions and generations (`--spreads`: at other generation spreads too) and the training
seconds. `--stage outer` trains the outer autoencoder and scores it alone (its codes change, so an
inner VAE for it needs `dvc exp run`). Rows are appended to benchmarks/reports/candidates.csv, so a search's
history survives between runs. An inner candidate costs its training time plus half a minute.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import yaml
from roots import REPORTS, linked_root

from audiovae.config.params import load_params, with_values
from audiovae.config.schema import Params
from audiovae.data.artifacts import load_encodings, open_features
from audiovae.evaluation import quality
from audiovae.evaluation.validation import Validation
from audiovae.inference import bundle
from audiovae.stages import encode, train_inner
from audiovae.training import inner as inner_training
from audiovae.training import outer as outer_training


def overrides(text: str) -> dict:
    """``"a.b=1 c=[1, 2]"`` -> ``{"a.b": 1, "c": [1, 2]}`` (values parsed as YAML, as `dvc exp run -S`)."""
    pairs = [p for p in re.split(r"\s+(?=[\w.]+=)", text.strip()) if p]
    return {key: yaml.safe_load(value) for key, value in (p.split("=", 1) for p in pairs)}


def with_changes(params: Params, changes: dict) -> Params:
    """``params`` with a candidate's overrides, tracking off (a candidate is not a stage run)."""
    return with_values(params, {"tracking.enabled": False, **changes})


def describe(changes: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in changes.items()) or "(params.yaml)"


def run_outer(root: Path, params: Params, changes: dict, scorer: Validation) -> dict:
    trial = with_changes(params, changes)
    specs, index, codec = open_features(root / "data" / "features")
    trained = outer_training.train(trial.outer, trial.seed, specs, index, codec)
    result = {"model": trained.model, "history": trained.history, "info": trained.info}
    started = time.perf_counter()
    scores = replace(scorer, base=replace(scorer.base, outer=result["model"].cpu().eval())).references()["outer"]
    history = result["history"]
    return {"stage": "outer", "variant": describe(changes), "val_loss": history.epochs[history.best_epoch]["val_loss"],
            **scores, "params": result["info"]["params"], "epochs": len(history.epochs),
            "train_seconds": history.seconds, "score_seconds": time.perf_counter() - started}


def run_candidate(root: Path, params: Params, changes: dict, scorer: Validation, spreads: list[float],
                  bundle_path: Path | None = None) -> dict:
    """Train one inner VAE; an ``encode.*`` change (augmentation) re-encodes first, in the scratch root."""
    trial = with_changes(params, changes)
    reencode = any(key.startswith("encode.") for key in changes)
    inputs = ["data/features", "data/filtered", "data/models/outer"] + ([] if reencode else ["data/encodings"])
    if reencode or bundle_path is not None:  # the stages themselves, in a root of their own
        with linked_root(root, inputs, prefix="audiovae-search-") as scratch:
            if reencode:
                encode.run(trial, scratch)
            result = train_inner.run(trial, scratch)
            if bundle_path is not None:  # for benchmarks that take a model file (unheard_voices.py)
                (scratch / "params.yaml").write_text(yaml.safe_dump(trial.model_dump(), sort_keys=False))
                bundle.write(bundle.from_project(scratch), bundle_path)
    else:  # the cached codes, in memory
        trained = inner_training.train(trial.inner, trial.seed, *load_encodings(root))
        result = {"model": trained.model, "history": trained.history, "info": trained.info}
    started = time.perf_counter()
    model = scorer.model(result["model"], result["info"])
    scores = scorer.listen(model)
    for spread in spreads:  # generation at other spreads: no retraining needed
        audio, labels = replace(scorer, spread=spread).generations(model)
        scores[f"generated_accuracy@{spread:g}"] = scorer.classifier.accuracy(audio, labels)
        if scorer.speech:
            scores[f"generated_dnsmos_ovrl@{spread:g}"] = quality.dnsmos(audio, model.codec.sample_rate)["ovrl"]
    history = result["history"]
    best = history.epochs[history.best_epoch]
    return {"stage": "inner", "variant": describe(changes), "kl_nats": best.get("val_kl"), "val_loss": best["val_loss"], "train_loss": best["train_loss"], **scores,
            "params": result["info"]["params"], "epochs": len(history.epochs), "train_seconds": history.seconds,
            "score_seconds": time.perf_counter() - started}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("inner", "outer"), default="inner", help="(default: %(default)s)")
    parser.add_argument("--variant", action="append", default=[],
                        help="space-separated key=value overrides (repeatable); none: params.yaml as it is")
    parser.add_argument("--clips", type=int, default=120, help="validation files scored (default: %(default)s)")
    parser.add_argument("--generated", type=int, default=10, help="generations per label (default: %(default)s)")
    parser.add_argument("--spreads", default="", help="comma-separated generation spreads to score too (e.g. 0.2,0.6)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    parser.add_argument("--out", default=str(REPORTS / "candidates.csv"))
    parser.add_argument("--bundles", help="write each inner candidate's whole model here as N.avae")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path.cwd()
    params = load_params(root / "params.yaml")
    scorer = Validation.from_project(root, params, args.clips, args.generated)
    # what the candidates stand on: the outer model (its codes) and the base values they override
    base = {"outer_model": json.loads((root / "data" / "encodings" / "manifest.json").read_text())["outer_model_sha256"][:12],
            "params": hashlib.sha256(json.dumps(params.model_dump(), sort_keys=True, default=str).encode()).hexdigest()[:12]}
    for name, row in scorer.references().items():  # what every candidate is read against
        print(f"reference {name}: " + " | ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
    out = root / args.out
    for n, text in enumerate(args.variant or [""]):
        bundle_path = Path(args.bundles) / f"{n}.avae" if args.bundles else None
        spreads = [float(v) for v in args.spreads.split(",") if v]
        row = (run_outer(root, params, overrides(text), scorer) if args.stage == "outer"
               else run_candidate(root, params, overrides(text), scorer, spreads, bundle_path))
        row = {**row, **base}
        print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        table = pd.concat([pd.read_csv(out), pd.DataFrame([row])]) if out.exists() else pd.DataFrame([row])
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False, float_format="%.5g")


if __name__ == "__main__":
    main()
