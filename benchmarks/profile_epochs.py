"""Benchmark: where a training epoch's time goes, for the outer model and the inner VAE (issue 28).

Run after `make repro` (needs data/features and data/encodings), nothing else running:

    .venv/bin/python benchmarks/profile_epochs.py [--epochs 3] [--out benchmarks/reports/profile.md]

Each model trains ``--epochs`` epochs through the library's own ``train`` (the stage's code path:
its loader, step, validation pass and per-epoch checkpoint), once under cProfile for the share of
each part of the loop, and once under ``torch.profiler`` for the operators that cost the most.
Nothing is logged to MLflow and the project's outputs are not touched (checkpoints go to a
temporary folder). The table names the commit and the machine.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from roots import REPORTS, cpu_model
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from audiovae import layout
from audiovae.config.params import load_params, with_values
from audiovae.data.artifacts import load_encodings, open_features
from audiovae.training import inner as inner_training
from audiovae.training import outer as outer_training
from audiovae.training.loop import native_bf16_cpu

MATMUL_SIZE = 2048  # the square product that measures what this CPU's cores can do in the training dtype
MATMUL_REPEATS = 10
MATMUL_ROUNDS = 3  # the best round: a shared or throttled CPU only ever makes a round slower

# the parts of the shared loop, by the function that does each (file suffix, function name)
PARTS = {
    "batches (read, shuffle, to tensors)": [("training/outer.py", "batches"), ("training/inner.py", "batches")],
    "forward and loss (training batches)": [("training/outer.py", "step"), ("training/inner.py", "step")],
    "backward": [("torch/_tensor.py", "backward")],
    "optimiser step": [("torch/optim/adam.py", "step")],
    "validation pass": [("training/loop.py", "evaluate_loss")],
    "checkpoint each epoch": [("training/loop.py", "_save_checkpoint")],
}


def _cumulative(stats: pstats.Stats, where: list[tuple[str, str]], caller: str | None = None) -> float:
    """Cumulative seconds in the functions ``where`` names; with ``caller``, only of the calls made
    from a function of that name (the loss step runs in training and in the validation pass)."""
    total = 0.0
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if any(filename.endswith(suffix) and name == fn for suffix, fn in where):
            if caller is None:
                total += row[3]
            else:
                total += sum(c[3] for (_, _, caller_name), c in row[4].items() if caller_name == caller)
    return total


def matmul_gflops(dtype: torch.dtype) -> float:
    """What the threads reach on a large square matrix product in ``dtype``: the roof a
    convolution-bound epoch is measured against (a convolution is a matrix product in oneDNN)."""
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, dtype=dtype)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, dtype=dtype)
    a @ b  # warm the kernels
    best = float("inf")
    for _ in range(MATMUL_ROUNDS):
        started = time.perf_counter()
        for _ in range(MATMUL_REPEATS):
            a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * MATMUL_SIZE ** 3 * MATMUL_REPEATS / best / 1e9


def convolution_rate(kind: str, params, root: Path, checkpoint: Path, prof) -> list[str]:
    """The epoch's convolutions as a rate: their floating-point operations (forward and backward,
    counted by torch's FlopCounterMode over one more epoch) over the self time of the
    convolution operators in the profiled epoch, against the CPU's matrix-product rate."""
    conv_seconds = sum(event.self_cpu_time_total for event in prof.key_averages()
                       if "convolution" in event.key) / 1e6
    counter = FlopCounterMode(display=False)
    with counter:
        run_once(kind, params, root, checkpoint)
    conv_flops = sum(count for op, count in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
    dtype = torch.bfloat16 if getattr(params, kind).train.mixed_precision and native_bf16_cpu() else torch.float32
    roof = matmul_gflops(dtype)
    rate = conv_flops / max(conv_seconds, 1e-9) / 1e9
    return [f"Convolutions: {conv_flops / 1e9:.0f} GFLOP an epoch (forward and backward, FlopCounterMode) in "
            f"{conv_seconds:.2f} s of their operators: {rate:.0f} GFLOP/s, {rate / roof:.0%} of the "
            f"{roof:.0f} GFLOP/s of a {MATMUL_SIZE}-square {str(dtype).removeprefix('torch.')} matrix product "
            f"on the same threads (the best of three rounds).", ""]


def run_once(kind: str, params, root: Path, checkpoint: Path):
    if kind == "outer":
        specs, index, codec = open_features(root / layout.FEATURES)
        return outer_training.train(params.outer, params.seed, specs, index, codec, checkpoint, "profile")
    codes, stats, index, manifest = load_encodings(root)
    return inner_training.train(params.inner, params.seed, codes, stats, index, manifest, checkpoint, "profile")


def profile_model(kind: str, params, root: Path, epochs: int) -> tuple[list[str], float]:
    section = kind  # the params section of the model: outer or inner
    params = with_values(params, {f"{section}.train.epochs": epochs, f"{section}.train.patience": epochs,
                                  "tracking.enabled": False})
    with tempfile.TemporaryDirectory() as tmp:
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        trained = run_once(kind, params, root, Path(tmp) / f"{kind}.pt")
        profiler.disable()
        wall = time.perf_counter() - started
        stats = pstats.Stats(profiler)
        fit_total = _cumulative(stats, [("training/loop.py", "fit")])
        per_epoch = trained.history.seconds / max(len(trained.history.epochs), 1)
        lines = [f"### {kind}: {per_epoch:.2f} s per epoch ({len(trained.history.epochs)} epochs, "
                 f"{wall:.1f} s with set-up)", "", "| part of the loop | share of `fit` |", "|---|---|"]
        accounted = 0.0
        for part, where in PARTS.items():
            seconds = _cumulative(stats, where, "fit" if part.startswith("forward") else None)
            accounted += seconds
            lines.append(f"| {part} | {seconds / fit_total:.1%} |")
        lines += [f"| everything else (progress, history, Python) | {max(fit_total - accounted, 0) / fit_total:.1%} |",
                  ""]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_once(kind, with_values(params, {f"{section}.train.epochs": 1}), root, Path(tmp) / f"{kind}-1.pt")
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)
        lines += [f"Top operators of one {kind} epoch (self CPU time, `torch.profiler`):", "", "```",
                  *[row for row in table.splitlines() if row.strip()], "```", ""]
        lines += convolution_rate(kind, with_values(params, {f"{section}.train.epochs": 1}), root,
                                  Path(tmp) / f"{kind}-flops.pt", prof)
    return lines, per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(REPORTS / "profile.md"))
    args = parser.parse_args()
    root = Path.cwd()
    params = load_params(root / "params.yaml")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=root).stdout.strip()
    lines = ["# Where a training epoch's time goes", "",
             f"`benchmarks/profile_epochs.py --epochs {args.epochs}` at commit `{commit}` on "
             f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
             f"with {torch.get_num_threads()} threads; FSDD default parameters.", ""]
    for kind in ("outer", "inner"):
        part, _ = profile_model(kind, params, root, args.epochs)
        lines += part
        print("\n".join(part))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
