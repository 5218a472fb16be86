"""Benchmark: our default against each seed preset on the same FSDD split and the same metrics.

Run after `make repro` (reuses data/raw and data/metadata.csv; everything else is rebuilt per
configuration in a temp dir, so the workspace and DVC state are untouched):

    .venv/bin/python benchmarks/presets.py [--presets none fsdd_conv_vae ...]

Writes benchmarks/reports/presets_benchmark.md and .csv: training seconds and the quality keys of
reports/metrics.json for each configuration, in one table. Each configuration's column names the
commit and machine it ran on (`measured_at`): `--presets none` re-runs the default alone and keeps
the other columns, which then say they come from an earlier commit.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
import yaml
from roots import REPORTS, linked_root, provenance
from tables import columns_markdown, read_metrics

from audiovae.atomic import atomic_path, write_text
from audiovae.config.params import resolve, with_values
from audiovae.stages import (
    encode,
    evaluate,
    features,
    train_inner,
    train_outer,
    train_prior,
)
from audiovae.stages import filter as filter_stage

KEYS = ["outer.train_seconds", "inner.train_seconds", "outer.params", "inner.params",
        "quality.outer_pesq_nb", "quality.full_pesq_nb", "quality.full_stoi", "quality.generated_dnsmos_ovrl",
        "classifier.clean_full_accuracy", "classifier.clean_generated_accuracy", "outer.test_rmse_db",
        "inner.test_rmse_db", "inner.active_dims", "inner.latent_dims", "audio.test_lsd_db", "audio.oracle_lsd_db",
        "classifier.real_test_accuracy", "classifier.recon_accuracy", "classifier.generated_accuracy",
        "classifier.generated_frechet", "classifier.check_recon_accuracy", "classifier.check_generated_accuracy",
        "robustness.perturb_10db_rmse_db", "speed.encode_once_speedup"]
PER_CPU_MINUTE = ["quality.full_pesq_nb", "classifier.clean_full_accuracy"]


def run_one(root: Path, raw: dict, preset: str) -> dict:
    params = with_values(resolve({**raw, "preset": preset}), {"tracking.enabled": False})
    with linked_root(root, ["data/raw", "data/metadata.csv"]) as tmp:
        start, cpu_start = time.perf_counter(), time.process_time()
        for stage in (filter_stage, features, train_outer, encode, train_inner, train_prior, evaluate):
            stage.run(params, tmp)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        flat = read_metrics(tmp / "reports" / "metrics.json")
    # quality per CPU-minute: what a minute of this machine's processor buys (every thread's time counted)
    per_minute = {f"{key}_per_cpu_minute": flat[key] / (cpu / 60) for key in PER_CPU_MINUTE if flat.get(key) is not None}
    return {"preset": preset, "measured_at": provenance(root), "wall_seconds": wall, "cpu_minutes": cpu / 60, **per_minute,
            **{key: flat.get(key) for key in KEYS}}


def write_markdown(table: pd.DataFrame, path: Path) -> None:
    """One column per configuration, one row per key, numbers to four significant digits."""
    write_text(path, "# Default vs seed presets (FSDD, official split, test metrics)\n\n"
               "Produced by `python benchmarks/presets.py`; each column names the commit and machine it ran on "
               "(`measured_at`). `cpu_minutes`: the "
               "processor time of the whole run (every thread), and each `..._per_cpu_minute` row a quality key "
               "divided by it. Epochs of the presets are reduced for CPU "
               "(see `presets` in params.yaml: `fsdd_conv_vae` trains 1 of the report's 200 epochs), so "
               "their quality numbers are what a CPU budget buys, not what the seeds reached on a GPU. "
               "The seed presets keep the seeds' normal prior and their class sampling (`prior.family: kde`: no learned prior).\n\n"
               + columns_markdown(table, "configuration") + "\n")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    root = Path.cwd()
    raw = yaml.safe_load((root / "params.yaml").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the seed presets that train on the base's data (FSDD): a preset naming its own sources (the music
    # presets) is another dataset, with its own benchmark (music_presets.py), and hours of training here
    on_base_data = [name for name, body in raw["presets"].items() if "sources" not in (body.get("data") or {})]
    # the heaviest preset last: the table is written after each configuration
    order = sorted(on_base_data, key=lambda name: name == "fsdd_conv_vae")
    parser.add_argument("--presets", nargs="+", default=["none", *order])
    args = parser.parse_args()
    csv_path = REPORTS / "presets_benchmark.csv"
    rows = []
    if csv_path.exists():  # keep the rows of configurations not re-run now
        rows = [r for r in pd.read_csv(csv_path).to_dict("records")
                if r["configuration"] not in {("default" if p == "none" else p) for p in args.presets}]
        for r in rows:
            name = r.pop("configuration")
            r["preset"] = "none" if name == "default" else name
    for preset in args.presets:
        logging.info("benchmark: %s", preset)
        rows.append(run_one(root, raw, preset))
        table = pd.DataFrame(rows).rename(columns={"preset": "configuration"})
        table["configuration"] = table["configuration"].replace({"none": "default"})
        with atomic_path(REPORTS / "presets_benchmark.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.4g")
        write_markdown(table, REPORTS / "presets_benchmark.md")
    print((REPORTS / "presets_benchmark.md").read_text())


if __name__ == "__main__":
    main()
