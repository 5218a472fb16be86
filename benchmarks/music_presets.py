"""Benchmark: each music preset end to end (download to evaluate), its measures in one table.

What ``dvc exp run -S preset=drums`` does, run in a temporary project root so the workspace and DVC's
state are untouched: every stage of the pipeline with the preset's values (MLflow off), each
stage's seconds measured, then the music rows of the evaluate stage's ``reports/metrics.json``
(balanced accuracies with their intervals, KID, novelty, NDB, coverage, MR-STFT, pitch) for each
preset side by side:

    .venv/bin/python benchmarks/music_presets.py [--presets drums instruments]
    .venv/bin/python benchmarks/music_presets.py --presets keyboard --set inner.note_inputs=off --name keyboard-no-notes
    .venv/bin/python benchmarks/music_presets.py --redraw     # the markdown again from the CSV

``--set KEY=VALUE`` (as ``dvc exp run -S``) changes the preset's values and ``--name`` names the
column (default: the preset's name); ``--set seed=N`` runs it at another seed.

The archives come from the data mirror as the download stage finds them (``../shared/datasets`` or
``$AUDIOVAE_DATA_MIRROR``). Writes benchmarks/reports/music_presets.md and .csv; each column names the commit
and machine it ran on. Run it with nothing else running: the training seconds are part of the table.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from roots import REPORTS, provenance
from tables import columns_markdown, read_metrics

from audiovae import layout
from audiovae.atomic import atomic_path, write_text
from audiovae.cli import STAGES as PIPELINE
from audiovae.config.params import resolve, with_values

# dvc.yaml's stages in its order, but params (resolved in memory here) and export (not measured)
STAGES = {name: importlib.import_module(f"audiovae.stages.{name}") for name in PIPELINE if name not in ("params", "export")}
# the rows of docs/results.md's music table, in its order
KEYS = ["classifier.clean_real_balanced_accuracy", "classifier.clean_real_balanced_accuracy_low",
        "classifier.clean_real_balanced_accuracy_high", "classifier.clean_ceiling_balanced_accuracy",
        "classifier.clean_outer_balanced_accuracy", "classifier.clean_full_balanced_accuracy",
        "classifier.clean_generated_balanced_accuracy", "classifier.clean_generated_balanced_accuracy_low",
        "classifier.clean_generated_balanced_accuracy_high", "generated_to_real",
        "generation.kid_vs_train", "generation.kid_vs_train_se", "generation.kid_real_test_vs_train",
        "generation.kid_real_test_vs_train_se", "generation.latent_novelty", "generation.audio_novelty",
        "generation.ndb_k", "generation.ndb_k_real_test", "generation.audio_coverage",
        "generation.audio_coverage_real_train", "quality.ceiling_mrstft", "quality.outer_mrstft",
        "quality.full_mrstft", "outer_to_ceiling", "pitch.pitched_clips", "pitch.clips", "pitch.ceiling_tracked",
        "pitch.outer_tracked", "pitch.full_tracked", "pitch.outer_cents_median", "pitch.full_cents_median",
        "pitch.outer_within_50_cents", "pitch.full_within_50_cents",
        # a preset of rendered notes (keyboard): each note against the pitch it was rendered at or asked for
        *[f"notes.{row}_within_{c}_cents" for row in ("real", "ceiling", "outer", "full", "generated") for c in (50, 100)],
        "notes.generated_pitch_entropy", "notes.octave_low_accuracy", "notes.octave_high_accuracy",
        "notes.family_kept_two_octaves", "outer.params", "inner.params"]


def run_one(raw: dict, preset: str, project: Path, values: dict | None = None, name: str | None = None) -> dict:
    """Every stage of ``preset`` (with ``values`` set over it) in a fresh root beside nothing;
    returns its seconds and measures under ``name`` (default: the preset's)."""
    params = with_values(resolve({**raw, "preset": preset}), {"tracking.enabled": False, **(values or {})})
    measured_at = provenance(project)  # before the run: a commit made while it trains is not what ran
    # the root's parent is where the download stage looks for ../shared/datasets: keep the project's
    with tempfile.TemporaryDirectory(prefix="audiovae-music-", dir=project.parent) as tmp:
        root = Path(tmp)
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        for name, stage in STAGES.items():
            t0 = time.perf_counter()
            stage.run(params, root)
            seconds[f"seconds.{name}"] = time.perf_counter() - t0
            logging.info("%s: %s took %.1f s", preset, name, seconds[f"seconds.{name}"])
        seconds["seconds.total"] = time.perf_counter() - start
        flat = read_metrics(root / layout.METRICS)
        kept = pd.read_csv(root / layout.FILTERED_INDEX)
        fetched = len(pd.read_csv(root / layout.METADATA))
    real, generated = flat.get("classifier.clean_real_balanced_accuracy"), flat.get("classifier.clean_generated_balanced_accuracy")
    ceiling, outer = flat.get("quality.ceiling_mrstft"), flat.get("quality.outer_mrstft")
    flat["generated_to_real"] = generated / real if real and generated is not None else None
    flat["outer_to_ceiling"] = outer / ceiling if ceiling and outer is not None else None
    counts = {"files.fetched": fetched, **{f"files.{split}": int((kept["split"] == split).sum()) for split in ("train", "val", "test")}}
    return {"preset": name or preset, "measured_at": measured_at, **seconds, **counts,
            **{key: flat.get(key) for key in KEYS}}


def write_markdown(table: pd.DataFrame, path: Path) -> None:
    """One column per preset, one row per measure, the provenance first."""
    write_text(path, "# Music presets end to end (test split)\n\n"
               "Produced by `python benchmarks/music_presets.py`: every stage of each preset, download to "
               "evaluate, in a temporary root (what `dvc exp run -S preset=NAME` runs). Each column names "
               "the commit and machine it ran on (`measured_at`); `seconds.*` is each stage's wall time, "
               "`files.*` the clips fetched and in each split after filtering. Balanced accuracies are the clean "
               "judge's, with their 95 % bootstrap interval (`_low`, `_high`); KID, with its standard error "
               "(`_se`), is in the judge's embedding (MFCC statistics, not normalised) as the evaluate stage "
               "writes it: unbiased, so it can fall below 0 when the sets are close.\n\n" + columns_markdown(table, "preset") + "\n")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    project = Path.cwd()
    raw = yaml.safe_load((project / "params.yaml").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["drums", "instruments"])
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="values over the preset's, as dvc exp run -S (e.g. inner.note_inputs=off)")
    parser.add_argument("--name", help="the column's name (default: the preset's; one preset only)")
    parser.add_argument("--redraw", action="store_true", help="rewrite the markdown from the CSV, run nothing")
    args = parser.parse_args()
    if args.name and len(args.presets) != 1:
        parser.error("--name names one preset's column: give one preset")
    try:
        values = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    except ValueError:
        parser.error(f"--set takes KEY=VALUE, not {args.set}")
    unknown = sorted(set(args.presets) - set(raw["presets"]))
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; params.yaml has {', '.join(raw['presets'])}")
    csv_path, md_path = REPORTS / "music_presets.csv", REPORTS / "music_presets.md"
    if args.redraw:
        write_markdown(pd.read_csv(csv_path), md_path)
        print(md_path.read_text())
        return
    names = [args.name] if args.name else args.presets
    rows = [r for r in pd.read_csv(csv_path).to_dict("records") if r["preset"] not in names] if csv_path.exists() else []
    for preset, name in zip(args.presets, names):
        logging.info("benchmark: %s", name)
        rows.append(run_one(raw, preset, project, values, name))
        table = pd.DataFrame(rows)
        with atomic_path(csv_path) as tmp:  # written after each preset: an interrupted run keeps the ones done
            table.to_csv(tmp, index=False, float_format="%.4g")
        write_markdown(table, md_path)
    print(md_path.read_text())


if __name__ == "__main__":
    main()
