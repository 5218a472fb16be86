"""Benchmark: the outer model at music rates, one ablation row per choice (issue 30, item 5).

Each variant is a set of `dvc exp run -S`-style overrides on top of a music preset. The data of
the preset are fetched once from the mirror into a temporary project root, then filtered and
turned into spectrograms once per distinct `data` / `filter` / `features` setting; the outer model
trains through the library's own `train`, and its reconstructions of the validation split (never
the test split, which is the evaluate stage's) are scored against the Griffin-Lim ceiling of the
same spectrograms, as the evaluate stage scores the test split:

    .venv/bin/python benchmarks/music_outer.py --preset instruments \
        --variant "" --variant "outer.conv1d.code_channels=64" \
        --variant "features.n_fft=1024 features.hop_length=256"

Columns: MR-STFT distance of the ceiling and of the outer model and their ratio (issue 30's
target: at most 2), pitch (of the pitched validation clips, the share within 50 cents in the
ceiling and the outer model), the clean judge's balanced accuracy on real, ceiling and outer audio,
the outer model's best validation loss, parameters and training seconds. Rows are appended to
benchmarks/reports/music_outer.csv; benchmarks/reports/music_outer.md is the table of every row, with the commit and the
machine each ran on. Nothing under the project's data/ or DVC state is touched, and nothing is
logged to MLflow.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from candidates import describe, overrides
from roots import REPORTS, linked_root, provenance

from audiovae import layout
from audiovae.atomic import atomic_path, write_text
from audiovae.config.params import resolve, with_values
from audiovae.config.schema import Params
from audiovae.data.artifacts import open_features, real_rows
from audiovae.data.fetch import MIRROR_ENV, mirror_dirs
from audiovae.evaluation import pitch, quality, uncertainty
from audiovae.evaluation.classifier import CleanClassifier
from audiovae.stages import download, features
from audiovae.stages import filter as filter_stage
from audiovae.training import outer as outer_training

SPECTROGRAM_SECTIONS = ("filter", "features")  # what the spectrograms depend on, besides the files (``data``)


class Scored:
    """What every variant on the same spectrograms is read against: the validation clips' real audio,
    their Griffin-Lim ceiling, its pitch and the clean judge trained on the training audio."""

    def __init__(self, root: Path, params: Params):
        self.specs, self.index, self.codec = open_features(root / layout.FEATURES)
        waves = np.load(root / layout.FILTERED_AUDIO, mmap_mode="r")
        rows = self.index["row"].to_numpy()
        labels = self.index["label"].astype(str).to_numpy()
        train, self.val = real_rows(self.index, "train"), real_rows(self.index, "val")
        self.labels = labels[self.val]
        self.waves = np.asarray(waves[rows[self.val]])
        self.pitch_cfg = params.evaluate.pitch
        self.judge = CleanClassifier(self.codec.sample_rate, params.evaluate.clean_classifier, params.seed).fit(
            np.asarray(waves[rows[train]]), labels[train])
        self.reference_f0 = pitch.f0_tracks(self.waves, self.codec.sample_rate, self.pitch_cfg)
        self.pitched = pitch.pitched(self.reference_f0, self.pitch_cfg.min_voiced)
        self.rows = {"real": self._row(self.waves, with_pitch=False),
                     "ceiling": self._row(self.codec.to_audio(np.asarray(self.specs[self.val]),
                                                              length=self.waves.shape[-1]))}

    def _row(self, audio: np.ndarray, with_pitch: bool = True) -> dict:
        sr = self.codec.sample_rate
        row = {"balanced_accuracy": uncertainty.balanced_accuracy(self.labels, self.judge.predict(audio))}
        if not with_pitch:
            return row
        row["mrstft"] = quality.mrstft_distance(self.waves, audio, sr)
        if self.pitched.any():
            cents = pitch.cents_error(self.reference_f0[self.pitched],
                                      pitch.f0_tracks(audio[self.pitched], sr, self.pitch_cfg))
            row["within_50_cents"] = float(np.mean(cents < 50))  # not tracked counts as a miss
        return row

    def outer(self, model: torch.nn.Module) -> dict:
        model = model.cpu().eval()
        with torch.no_grad():
            recon = model(torch.from_numpy(np.asarray(self.specs[self.val]))).numpy()
        return self._row(self.codec.to_audio(recon, length=self.waves.shape[-1]))


def section_key(params: Params, sections: tuple[str, ...]) -> str:
    dumped = params.model_dump()
    return json.dumps({s: dumped[s] for s in sections}, sort_keys=True, default=str)


def run_variant(root: Path, params: Params, scored: Scored, text: str) -> dict:
    trained = outer_training.train(params.outer, params.seed, scored.specs, scored.index, scored.codec)
    started = time.perf_counter()
    outer = scored.outer(trained.model)
    ceiling, real = scored.rows["ceiling"], scored.rows["real"]
    history = trained.history
    best = history.epochs[history.best_epoch]
    return {
        "preset": params.preset, "variant": text or "(preset)", "bins_x_frames": f"{scored.specs.shape[1]}x{scored.specs.shape[2]}",
        "code": "x".join(str(s) for s in trained.info["code_shape"]), "compression": trained.info["compression"],
        "val_clips": len(scored.val), "pitched_clips": int(scored.pitched.sum()),
        "ceiling_mrstft": ceiling["mrstft"], "outer_mrstft": outer["mrstft"],
        "outer_to_ceiling": outer["mrstft"] / ceiling["mrstft"],
        "ceiling_within_50_cents": ceiling.get("within_50_cents"), "outer_within_50_cents": outer.get("within_50_cents"),
        "real_balanced": real["balanced_accuracy"], "ceiling_balanced": ceiling["balanced_accuracy"],
        "outer_balanced": outer["balanced_accuracy"],
        "val_loss": best["val_loss"], "train_loss": best["train_loss"], "best_epoch": history.best_epoch + 1,
        "epochs": len(history.epochs), "params": trained.info["params"], "train_seconds": history.seconds,
        "score_seconds": time.perf_counter() - started, "provenance": provenance(root)}


COLUMNS = ["preset", "variant", "bins_x_frames", "code", "compression", "ceiling_mrstft", "outer_mrstft",
           "outer_to_ceiling", "ceiling_within_50_cents", "outer_within_50_cents", "real_balanced",
           "ceiling_balanced", "outer_balanced", "val_loss", "train_loss", "best_epoch", "params", "train_seconds"]


def write_markdown(table: pd.DataFrame, path: Path) -> None:
    shown = table[COLUMNS].map(lambda v: f"{v:.3g}" if isinstance(v, float) else str(v))
    # rows from several commits share the table: each names its run (the list below says where it ran)
    runs = list(table["provenance"].unique())
    shown.insert(2, "run", [str(runs.index(p) + 1) for p in table["provenance"]])
    listed = "\n".join(f"{number}. {p}" for number, p in enumerate(runs, 1))
    write_text(path, "# The outer model at music rates (validation split)\n\n"
               "Produced by `python benchmarks/music_outer.py --preset NAME --variant ...` (its docstring says "
               "how). Every row is one outer model trained on the preset's training split and scored on its "
               "validation split: MR-STFT distance to the real audio (lower is better) of the Griffin-Lim ceiling "
               "and of the outer model, their ratio (target: at most 2), the share of pitched validation clips "
               "whose pitch stays within 50 cents, and the clean judge's balanced accuracy. A variant of (preset) is "
               "the preset as params.yaml had it at the commit of its run (`run`: the numbered list below).\n\n"
               + shown.to_markdown(index=False) + f"\n\nRuns:\n{listed}\n")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, help="a music preset of params.yaml (instruments, drums)")
    parser.add_argument("--variant", action="append", default=[],
                        help="space-separated key=value overrides (repeatable); empty: the preset as it is")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    parser.add_argument("--out", default=str(REPORTS / "music_outer.csv"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path.cwd()
    raw = yaml.safe_load((root / "params.yaml").read_text())
    base = with_values(resolve({**raw, "preset": args.preset}), {"tracking.enabled": False})
    # the temporary root has no ../shared beside it: point the download stage at this project's mirror
    os.environ.setdefault(MIRROR_ENV, str(next((d for d in mirror_dirs(root) if d.is_dir()), mirror_dirs(root)[-1])))
    out = root / args.out
    with linked_root(root, [], prefix="audiovae-music-") as tmp:
        scored, fetched, key = None, None, None
        for text in args.variant or [""]:
            params = with_values(base, overrides(text)) if text else base
            if section_key(params, ("data",)) != fetched:  # the files and their split
                download.run(params, tmp)
                fetched, key = section_key(params, ("data",)), None
            if section_key(params, SPECTROGRAM_SECTIONS) != key:
                filter_stage.run(params, tmp)
                features.run(params, tmp)
                scored, key = Scored(tmp, params), section_key(params, SPECTROGRAM_SECTIONS)
            assert scored is not None
            row = run_variant(root, params, scored, describe(overrides(text)) if text else "")
            print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
            table = pd.concat([pd.read_csv(out), pd.DataFrame([row])]) if out.exists() else pd.DataFrame([row])
            with atomic_path(out) as staging:
                table.to_csv(staging, index=False, float_format="%.5g")
            write_markdown(table, out.with_suffix(".md"))


if __name__ == "__main__":
    main()
