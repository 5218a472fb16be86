"""Generation samplers side by side on the project's trained model: how new, how recognisable, how
clean, how much of the real test set they cover.

Run after `make repro` (it reads the trained model, data/latents, data/features and data/filtered;
it writes nothing under data/). Each `--sampler` is `kde:SPREAD` (around a training latent of the
label, the inner VAE's class sampling) or `gmm:TEMPERATURE` (the learned prior; with `-S`-style
overrides of the `prior` section it is fitted again on the cached latents, in seconds):

    .venv/bin/python benchmarks/samplers.py --sampler kde:0.1 --sampler kde:0.4 \
        --sampler gmm:1.0 --sampler gmm:0.8 --sampler "gmm:1.0 prior.components=4"

Every row is scored by the evaluate stage's own functions on the test split: the clean judge's
accuracy on the generations, DNSMOS (speech), the novelty ratio in the latent space and in the
judge's audio embedding, coverage, KID with its standard error, and NDB/k, with a reference row of
real training clips. Writes benchmarks/reports/samplers.md (with the commit and machine) and benchmarks/reports/samplers.csv.
"""
from __future__ import annotations

import argparse
import logging
import platform
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from candidates import overrides
from roots import REPORTS, cpu_model

from audiovae.atomic import atomic_path, write_text
from audiovae.config.params import load_params, with_values
from audiovae.data.artifacts import open_features, real_rows, split_rows
from audiovae.evaluation import novelty, quality
from audiovae.evaluation.evaluate import clean_judge
from audiovae.inference.model import AudioVAE
from audiovae.training import prior as prior_training

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    return f"{platform.node()}, {cpu_model()}, {torch.get_num_threads()} threads"


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampler", action="append", required=True, help="kde:SPREAD or gmm:TEMPERATURE [key=value ...]")
    parser.add_argument("--per-label", type=int, default=0, help="generations per label (default: evaluate.generated_per_class)")
    parser.add_argument("--out", default=str(REPORTS / "samplers"))
    args = parser.parse_args()
    root = Path.cwd()
    params = load_params(root / "params.yaml")
    model = AudioVAE.from_project(root)
    specs, index, codec = open_features(root / "data" / "features")
    waves = np.load(root / "data" / "filtered" / "audio.npy", mmap_mode="r")
    train, test = real_rows(index, "train"), split_rows(index, "test")
    labels = index["label"].astype(str).to_numpy()
    wav_train, wav_test = np.asarray(waves[index["row"].to_numpy()[train]]), np.asarray(waves[index["row"].to_numpy()[test]])
    y_train, y_test = labels[train], labels[test]
    latent_index = pd.read_csv(root / "data" / "latents" / "index.csv", dtype={"label": str, "speaker": str})
    latents = np.load(root / "data" / "latents" / "latents.npy")
    in_train = (latent_index["split"] == "train").to_numpy()
    test_latents = latents[(latent_index["split"] == "test").to_numpy()]
    test_latent_labels = latent_index["label"].to_numpy()[(latent_index["split"] == "test").to_numpy()]
    cfg = params.evaluate
    per_label = args.per_label or cfg.generated_per_class
    judge = clean_judge(wav_train, y_train, codec.sample_rate, cfg, params.seed)
    train_audio, test_audio = judge.embed(wav_train), judge.embed(wav_test)
    speech = set(index["dataset"].astype(str)) <= {"fsdd", "audiomnist"}
    n = per_label * len(model.labels)
    pick = np.random.default_rng(params.seed).choice(len(wav_train), size=min(n, len(wav_train)), replace=False)
    rows = []

    def score(name: str, audio: np.ndarray, gen_labels: np.ndarray, gen_latents: np.ndarray | None, seconds: float):
        embedded = judge.embed(audio)
        value, se = novelty.kid(test_audio, embedded, cfg.novelty.kid_blocks, params.seed)
        row = {"sampler": name, "recognised": judge.accuracy(audio, gen_labels),
               "audio_novelty": novelty.novelty_ratio(embedded, gen_labels, train_audio, y_train, test_audio, y_test),
               "latent_novelty": (novelty.novelty_ratio(gen_latents, gen_labels, latents[in_train],
                                                        latent_index["label"].to_numpy()[in_train], test_latents,
                                                        test_latent_labels) if gen_latents is not None else np.nan),
               "audio_coverage": novelty.coverage(test_audio, embedded, cfg.novelty.coverage_k),
               "kid": value, "kid_se": se,
               "ndb_k": novelty.ndb(train_audio, train_audio, embedded, cfg.novelty.ndb_bins, params.seed)[1],
               "seconds": seconds}
        if speech:
            row["dnsmos_ovrl"] = quality.dnsmos(audio, codec.sample_rate)["ovrl"]
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)

    score("real test clips", wav_test, y_test, test_latents, 0.0)
    score("real training clips (as many)", wav_train[pick], y_train[pick], None, 0.0)
    for text in args.sampler:
        head, *rest = text.split(maxsplit=1)
        family, value = head.split(":")
        started = time.perf_counter()
        if family == "kde":
            sampler = replace(model, prior=None)
        elif family == "gmm" and not rest and model.prior is not None:
            sampler = model
        elif family == "gmm":
            trial = with_values(params, {"prior.family": "gmm", **overrides(rest[0] if rest else "")})
            fitted, _ = prior_training.train(trial.prior, trial.seed, latents, latent_index, model.labels)
            sampler = replace(model, prior=fitted.mixture)
        else:
            raise SystemExit(f"--sampler {text!r}: kde:SPREAD or gmm:TEMPERATURE")
        spread = float(value)
        z = np.concatenate([sampler.sample(label, per_label, seed=params.seed + i, spread=spread)
                            for i, label in enumerate(model.labels)])
        gen_labels = np.repeat(np.array(model.labels), per_label)
        audio = sampler.to_audio(sampler.from_latents(z, list(gen_labels) if model.inner.conditional else None))
        score(text, audio, gen_labels, z, time.perf_counter() - started)
    table = pd.DataFrame(rows)
    out = REPO / args.out if not Path(args.out).is_absolute() else Path(args.out)
    with atomic_path(out.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4g")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    write_text(out.with_suffix(".md"), "# Generation samplers on the trained model (test split)\n\n"
               f"`benchmarks/samplers.py {' '.join(repr(s) for s in args.sampler)}` at commit {commit} on {machine()}, "
               f"{per_label} generations per label. Novelty: median distance to the nearest training clip of the label "
               "over the same for real test clips (0: copies, 1: as new as an unheard recording). Recognised: the "
               "evaluate stage's clean judge. KID, coverage and NDB/k in the judge's audio embedding.\n\n"
               + table.to_markdown(index=False, floatfmt=".3f") + "\n")


if __name__ == "__main__":
    main()
