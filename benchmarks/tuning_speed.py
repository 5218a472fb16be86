"""Benchmark: trials per minute of `tune inner` (cached encodings) vs `tune outer` on FSDD.

Run after `make repro` (needs data/features and data/encodings). Studies go to a temp storage;
params.yaml is not modified and nothing is logged to MLflow:

    .venv/bin/python benchmarks/tuning_speed.py [--trials 6]
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

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
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in ("inner", "outer"):
            start = time.perf_counter()
            tune.tune(target, args.trials, storage=f"sqlite:///{tmp}/bench.db", study_name=f"bench-{target}",
                      root=root, params=params)
            minutes = (time.perf_counter() - start) / 60
            rates[target] = args.trials / minutes
            epochs = tune.target_of(params, target).epochs
            print(f"tune {target}: {args.trials} trials of {epochs} epochs in {minutes:.2f} min "
                  f"= {rates[target]:.2f} trials/min ({rates[target] * epochs:.1f} epochs/min)")
    print(f"inner / outer trials per minute: {rates['inner'] / rates['outer']:.1f}x")


if __name__ == "__main__":
    main()
