"""Benchmark: does `torch.compile` make an outer training step cheaper on this CPU, in the precision it trains?

An outer epoch's time is its steps (forward, loss, backward, Adam); on a CPU without native bf16 the
stage trains in fp32 and the 60 epochs are most of `make repro`. This times the same step on one batch
of the project's spectrograms, eager and compiled (inductor), in alternating rounds, because one
eager round differs from the next by as much as 15 % here. Run after `dvc repro features`, nothing
else running; it prints, and writes nothing:

    .venv/bin/python benchmarks/compile_step.py [--steps 100] [--rounds 2]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from roots import cpu_model

from audiovae import layout
from audiovae.config.params import load_params
from audiovae.data.artifacts import open_features
from audiovae.models.build import build_checked
from audiovae.models.losses import spectrogram_loss


def seconds_per_step(compiled: bool, batch: torch.Tensor, params, codec, steps: int) -> tuple[float, float]:
    """Mean seconds of one training step after three warm-up steps, and the warm-up's seconds (compiling)."""
    cfg = params.outer
    torch.manual_seed(params.seed)
    model = build_checked(cfg, batch.shape[1], batch.shape[2])
    forward = torch.compile(model) if compiled else model
    optimiser = torch.optim.Adam(model.parameters(), cfg.train.lr)
    loss_fn = spectrogram_loss(cfg.loss, codec, cfg.sc_weight)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        loss_fn(forward(batch).float(), batch).backward()
        optimiser.step()

    started = time.perf_counter()
    for _ in range(3):
        step()
    warm = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    root = Path.cwd()
    params = load_params(root / "params.yaml")
    specs, _, codec = open_features(root / layout.FEATURES)
    batch = torch.from_numpy(np.array(specs[: params.outer.batch_size]))
    print(f"{cpu_model()}, {torch.get_num_threads()} torch threads, fp32, outer batch {len(batch)}")
    for round_ in range(args.rounds):
        for compiled in (False, True):
            per_step, warm = seconds_per_step(compiled, batch, params, codec, args.steps)
            print(f"round {round_ + 1}, {'compiled' if compiled else 'eager'}: {per_step * 1000:.1f} ms a step "
                  f"(first three steps {warm:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
