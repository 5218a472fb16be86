"""Benchmark table: two commits' seed tables side by side, each key's change against its seed spread.

Issue 28's test for "the same model": every quality key within its seed-to-seed spread, here the
difference of the means at most the larger of the two standard deviations. Training seconds are
compared as a ratio instead (the target is at most half). Both tables come from `seeds.py` on one
machine (its CSV when kept, else the markdown):

    .venv/bin/python benchmarks/seeds_compare.py reports/seeds_fp32_cpu_before.md reports/seeds_fp32_cpu.md \\
        --out reports/seeds_fp32_cpu_compare.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from seeds import KEYS, read_table

from audiovae.atomic import write_text

SECONDS = ["outer.train_seconds", "inner.train_seconds"]
TRAINING = "training seconds (outer + inner)"
DIAGNOSTICS = ["inner.kl"]  # the rate the inner VAE spends: a property of the model, not a quality key


def machine_of(table: Path) -> str:
    """The processor and core count a seeds.py table names (``AMD EPYC (x86_64), 2 CPUs``)."""
    return table.read_text().split("` on ", 1)[1].split(" CPUs", 1)[0] + " CPUs"


def spread(runs: dict[int, dict[str, float]], key: str) -> tuple[float, float]:
    """Mean and standard deviation over seeds (ddof 1) of one key; the training total per seed."""
    if key == TRAINING:
        values = np.array([sum(run[k] for k in SECONDS) for run in runs.values()])
    else:
        values = np.array([run[key] for run in runs.values() if key in run])
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def verdict(key: str, before: tuple[float, float], after: tuple[float, float]) -> str:
    """Within spread, outside it (by how much), or for seconds the ratio."""
    if key in (*SECONDS, TRAINING):
        return f"ratio {after[0] / before[0]:.2f}"
    difference, allowed = after[0] - before[0], max(before[1], after[1])
    if not np.isfinite(allowed):
        return "— (one seed)"
    if key in DIAGNOSTICS:
        return f"{'within' if abs(difference) <= allowed else 'outside'} (a diagnostic, not a quality key)"
    side = "higher" if difference > 0 else "lower"
    return "within" if abs(difference) <= allowed else f"**outside**, {side} ({abs(difference) / allowed:.1f} × the sd)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="seeds.py's table of the earlier commit")
    parser.add_argument("after", type=Path, help="seeds.py's table of the later commit, the same seeds and machine")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        (before_commit, before), (after_commit, after) = read_table(args.before), read_table(args.after)
    except ValueError as error:
        parser.error(str(error))
    if sorted(before) != sorted(after):
        parser.error(f"the tables hold other seeds: {sorted(before)} against {sorted(after)}")
    before_machine, after_machine = machine_of(args.before), machine_of(args.after)
    if before_machine != after_machine:
        parser.error(f"the tables come from other machines ({before_machine} against {after_machine}): "
                     "floating point and speed differ between machines")
    machine = [line for line in args.after.read_text().splitlines() if line.startswith("`benchmarks/seeds.py`")]
    lines = ["# The same model in less time: two commits over the same seeds", "",
             f"`benchmarks/seeds_compare.py {args.before} {args.after}`: `{before_commit}` against "
             f"`{after_commit}`, seeds {', '.join(map(str, sorted(after)))}, mean ± sd over seeds. A key is within "
             "spread when the means differ by at most the larger standard deviation.", "",
             *(["From the later table: " + machine[0], ""] if machine else []),
             f"| key | `{before_commit}` | `{after_commit}` | difference | verdict |", "|---|---|---|---|---|"]
    for key in (*KEYS, TRAINING):
        old, new = spread(before, key), spread(after, key)
        lines.append(f"| `{key}` | {old[0]:.3f} ± {old[1]:.3f} | {new[0]:.3f} ± {new[1]:.3f} | "
                     f"{new[0] - old[0]:+.3f} | {verdict(key, old, new)} |")
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
