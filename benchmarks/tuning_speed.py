"""Benchmark: trials per minute of `tune inner` (cached encodings) vs `tune outer` on FSDD.

Run after `make repro` (needs data/features and data/encodings), nothing else running. Studies go
to a temp storage; params.yaml is not modified and nothing is logged to MLflow. Writes
``benchmarks/reports/tuning_speed.md`` (commit and machine named):

    .venv/bin/python benchmarks/tuning_speed.py [--trials 6]
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from roots import REPORTS, provenance

from audiovae.atomic import write_text
from audiovae.config.params import load_params, with_values
from audiovae.training import tune


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    args = parser.parse_args()
    root = Path.cwd()
    # time full trials: pruning would flatter whichever prunes more
    params = with_values(load_params(root / "params.yaml"), {"tracking.enabled": False, "tune.pruner": "none"})
    rates, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for target in ("inner", "outer"):
            start = time.perf_counter()
            tune.tune(target, args.trials, storage=f"sqlite:///{tmp}/bench.db", study_name=f"bench-{target}",
                      root=root, params=params)
            minutes = (time.perf_counter() - start) / 60
            rates[target] = args.trials / minutes
            epochs = tune.target_of(params, target).epochs
            rows.append(f"| `tune {target}` | {args.trials} | {epochs} | {minutes:.2f} | {rates[target]:.2f} | "
                        f"{rates[target] * epochs:.1f} |")
            print(rows[-1], flush=True)
    lines = ["# Tuning speed: trials per minute, `tune inner` on cached codes against `tune outer`", "",
             f"`benchmarks/tuning_speed.py --trials {args.trials}`, {provenance(root)}; one local worker, pruning off "
             "(full trials), tracking off, each trial scored by its study's objectives.", "",
             "| study | trials | epochs a trial | minutes | trials per minute | epochs per minute |", "|---|---|---|---|---|---|",
             *rows, "", f"An inner trial is {rates['inner'] / rates['outer']:.1f} × as many per minute as an outer one."]
    write_text(REPORTS / "tuning_speed.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
