"""Benchmark table: two commits' seed tables side by side, each key's change against its seed spread.

Issue 28's test for "the same model": every quality key within its seed-to-seed spread, here the
difference of the means at most the larger of the two standard deviations. Training seconds are
compared as a ratio instead (the target is at most half). Beside each key, Welch's t-test; below
the table, how often that band is left by chance: a key whose distribution did not change lands
outside it with a probability that depends only on the seed counts (about one in five at three
seeds a side), so the count of keys outside is read against the count expected when nothing
changed. Both tables come from `seeds.py` on one machine (its CSV when kept, else the markdown):

    .venv/bin/python benchmarks/seeds_compare.py benchmarks/reports/seeds_fp32_cpu_before.md benchmarks/reports/seeds_fp32_cpu.md \\
        --out benchmarks/reports/seeds_fp32_cpu_compare.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats
from seeds import KEYS, read_table

from audiovae.atomic import write_text

SECONDS = ["outer.train_seconds", "inner.train_seconds"]
TRAINING = "training seconds (outer + inner)"
DIAGNOSTICS = ["inner.kl"]  # the rate the inner VAE spends: a property of the model, not a quality key
QUALITY = [key for key in KEYS if key not in (*SECONDS, *DIAGNOSTICS)]
NULL_DRAWS = 400_000  # Monte Carlo draws of two unchanged seed samples: the rate is known to about 0.001
NULL_SEED = 0         # the draws are fixed, so the table is the same each time it is drawn
SIGNIFICANCE = 0.05


def machine_of(table: Path) -> str:
    """The processor and core count a seeds.py table names (``AMD EPYC (x86_64), 2 CPUs``)."""
    return table.read_text().split("` on ", 1)[1].split(" CPUs", 1)[0] + " CPUs"


def values_of(runs: dict[int, dict[str, float]], key: str) -> np.ndarray:
    """One key's value per seed; for the training total, outer plus inner seconds."""
    if key == TRAINING:
        return np.array([sum(run[k] for k in SECONDS) for run in runs.values()])
    return np.array([run[key] for run in runs.values() if key in run])


def spread(runs: dict[int, dict[str, float]], key: str) -> tuple[float, float]:
    """Mean and standard deviation over seeds (ddof 1) of one key."""
    values = values_of(runs, key)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def false_alarm_rate(n_before: int, n_after: int) -> float:
    """The chance that a key whose distribution did not change leaves the band (means differing by
    more than the larger sd), for normally distributed seeds: it depends on the seed counts alone."""
    rng = np.random.default_rng(NULL_SEED)
    before = rng.standard_normal((NULL_DRAWS, n_before))
    after = rng.standard_normal((NULL_DRAWS, n_after))
    band = np.maximum(before.std(axis=1, ddof=1), after.std(axis=1, ddof=1))
    return float((np.abs(after.mean(axis=1) - before.mean(axis=1)) > band).mean())


def welch_p(before: np.ndarray, after: np.ndarray) -> float:
    """Welch's t-test of the two seed samples (nan when either has one seed or no spread)."""
    if min(len(before), len(after)) < 2 or (before.std() == 0 and after.std() == 0):
        return float("nan")
    return float(stats.ttest_ind(after, before, equal_var=False).pvalue)


def chance_summary(outside: list[str], pvalues: dict[str, float], n_before: int, n_after: int) -> list[str]:
    """What the count of keys outside the band means: the count expected when nothing changed."""
    rate = false_alarm_rate(n_before, n_after)
    expected = rate * len(QUALITY)
    at_least = float(stats.binom.sf(len(outside) - 1, len(QUALITY), rate)) if outside else 1.0
    none_out = (1 - rate) ** len(QUALITY)
    below = [f"`{key}` ({p:.3f})" for key, p in pvalues.items() if p < SIGNIFICANCE]
    return [f"**{len(outside)} of {len(QUALITY)} quality keys outside the band.** With {n_before} and {n_after} "
            f"seeds, a key whose distribution did not change leaves it with probability {rate:.3f} (normal "
            f"seeds, {NULL_DRAWS:,} Monte Carlo draws): {expected:.1f} of {len(QUALITY)} expected by chance, "
            f"{len(outside)} or more with probability {at_least:.2f}, and all {len(QUALITY)} within it with "
            f"probability {none_out:.2f} (the keys taken as independent, which they are not quite). "
            f"Welch's t-test puts {len(below)} key(s) below p = {SIGNIFICANCE}"
            + (f": {', '.join(below)}" if below else "") + f", before any correction for {len(QUALITY)} tests.",
            ""]


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
             f"| key | `{before_commit}` | `{after_commit}` | difference | Welch p | verdict |",
             "|---|---|---|---|---|---|"]
    outside: list[str] = []
    pvalues: dict[str, float] = {}
    for key in (*KEYS, TRAINING):
        old, new = spread(before, key), spread(after, key)
        pvalue = welch_p(values_of(before, key), values_of(after, key))
        said = verdict(key, old, new)
        if key in QUALITY:
            pvalues[key] = pvalue
            if said.startswith("**outside"):
                outside.append(key)
        lines.append(f"| `{key}` | {old[0]:.3f} ± {old[1]:.3f} | {new[0]:.3f} ± {new[1]:.3f} | "
                     f"{new[0] - old[0]:+.3f} | {pvalue:.3f} | {said} |")
    lines += ["", *chance_summary(outside, pvalues, len(before), len(after))]
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
