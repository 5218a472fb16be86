"""Benchmark: every quality key of the default as mean and spread over seeds (issue 28, item 4).

One run cannot say whether a 0.90 target is met when the same commit gives 0.86 on one machine and
0.91 on another. This runs the whole pipeline once per seed, each in its own clone of HEAD (so the
project's outputs and DVC state are untouched), and tabulates the evaluate stage's quality keys:

    .venv/bin/python benchmarks/seeds.py --seeds 1 2 [--with-workspace] [--out benchmarks/reports/seeds.md]
    .venv/bin/python benchmarks/seeds.py --seeds 1 2 1234 --commit abc1234 --out benchmarks/reports/seeds_before.md

``--with-metrics SEED=PATH`` adds a metrics.json kept from an earlier `make repro` of the same
commit at that seed. ``--commit`` runs another commit's pipeline (each clone checks it out), so a change is measured
against the commit before it on the same machine: floating point and speed differ between machines.

``--with-table PATH`` adds the seed columns of an earlier table of this script (its CSV beside it, or
the markdown's three decimals when there is none), refused where that commit's pipeline (src,
params.yaml, dvc.yaml, pipeline) differs from the one being run, so seeds measured apart make one
table; ``--despite FILE`` accepts a difference you have read (a docstring), and the table names it.

``--with-workspace`` adds the project's own reports/metrics.json as the run of params.yaml's seed
(it must be the output of HEAD: `dvc status` clean). Each seed costs a full `dvc repro` (about 7
minutes on a 2-core CPU); the table names the commit and the machine.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from roots import REPORTS, cpu_model
from tables import read_metrics

from audiovae.atomic import write_text

KEYS = ["quality.full_pesq_nb", "quality.full_stoi", "quality.outer_pesq_nb", "quality.generated_dnsmos_ovrl",
        "quality.full_dnsmos_ovrl", "classifier.clean_full_accuracy", "classifier.clean_outer_accuracy",
        "classifier.clean_generated_accuracy", "classifier.clean_full_balanced_accuracy",
        "generation.latent_novelty", "generation.audio_coverage", "generation.kid", "inner.kl",
        "outer.train_seconds", "inner.train_seconds"]


def run_seed(root: Path, seed: int, commit: str | None = None) -> tuple[dict[str, float], float]:
    """The whole pipeline at ``seed`` in a fresh clone beside the project (so ../shared is found)."""
    env = {**os.environ, "PATH": f"{root / '.venv' / 'bin'}:{os.environ['PATH']}"}
    mirror = root.parent / "shared" / "datasets"  # the clone sits one folder deeper: name the mirror
    if mirror.is_dir() and "AUDIOVAE_DATA_MIRROR" not in env:
        env["AUDIOVAE_DATA_MIRROR"] = str(mirror)
    with tempfile.TemporaryDirectory(prefix=f"seed{seed}-", dir=root.parent) as tmp:
        clone = Path(tmp) / "project"
        subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
        if commit:
            subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
        env["PYTHONPATH"] = str(clone / "src")  # the clone's code, not the editable install's
        started = time.perf_counter()
        subprocess.run(["dvc", "exp", "run", "-S", f"seed={seed}"], cwd=clone, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        return read_metrics(clone / "reports" / "metrics.json"), seconds


PIPELINE = ["src", "params.yaml", "dvc.yaml", "pipeline"]  # what decides the model: the same in both commits


def pipeline_changes(root: Path, commit_a: str, commit_b: str) -> list[str]:
    """The pipeline's files (code, parameters) that differ between two commits: none, the same model."""
    return subprocess.run(["git", "diff", "--name-only", commit_a, commit_b, "--", *PIPELINE], cwd=root,
                          capture_output=True, text=True, check=True).stdout.split()


def read_table(path: Path) -> tuple[str, dict[int, dict[str, float]]]:
    """An earlier table's commit and its seed columns: the CSV beside it when kept, else the markdown."""
    text = path.read_text() if path.is_file() else ""
    if not text.startswith("# Quality keys of the default over seeds") or "at commit `" not in text:
        raise ValueError(f"{path} is not a table written by benchmarks/seeds.py")
    commit = text.split("at commit `", 1)[1].split("`", 1)[0]
    runs: dict[int, dict[str, float]] = {}
    kept = path.with_suffix(".csv")
    if kept.exists():
        with kept.open() as handle:
            for row in csv.DictReader(handle):
                runs.setdefault(int(row["seed"]), {})[row["key"]] = float(row["value"])
        return commit, runs
    header, *rows = [line for line in text.splitlines() if line.startswith("| ")]
    seeds = [int(cell.removeprefix("seed ")) for cell in header.strip("| ").split(" | ") if cell.startswith("seed ")]
    for line in rows:
        cells = line.strip("| ").split(" | ")
        for seed, cell in zip(seeds, cells[1:], strict=False):
            runs.setdefault(seed, {})[cells[0].strip("`")] = float(cell)
    return commit, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--with-workspace", action="store_true")
    parser.add_argument("--out", default=str(REPORTS / "seeds.md"))
    parser.add_argument("--with-metrics", action="append", default=[], metavar="SEED=PATH",
                        help="a kept metrics.json of the same commit at SEED")
    parser.add_argument("--with-table", action="append", default=[], metavar="PATH",
                        help="an earlier table of this script for the same pipeline: its seeds join this one")
    parser.add_argument("--despite", nargs="+", default=[], metavar="FILE",
                        help="pipeline files --with-table may differ in (read the diff first); the table names them")
    parser.add_argument("--commit", help="run this commit's pipeline instead of HEAD's (not with --with-workspace)")
    args = parser.parse_args()
    root = Path.cwd().resolve()
    if args.commit and args.with_workspace:
        parser.error("--with-workspace holds HEAD's outputs: not with --commit")
    runs: dict[int, dict[str, float]] = {}
    if args.with_workspace:
        seed = int(yaml.safe_load((root / "params.yaml").read_text())["seed"])
        runs[seed] = read_metrics(root / "reports" / "metrics.json")
    for item in args.with_metrics:
        seed_text, _, path = item.partition("=")
        runs[int(seed_text)] = read_metrics(Path(path))
    commit = subprocess.run(["git", "rev-parse", "--short", args.commit or "HEAD"], capture_output=True, text=True,
                            cwd=root, check=True).stdout.strip()
    joined: list[str] = []
    for table in args.with_table:
        try:
            earlier, kept = read_table(Path(table))
        except ValueError as error:
            parser.error(str(error))
        changed = pipeline_changes(root, earlier, commit)
        if set(changed) - set(args.despite):
            parser.error(f"{table} was measured at {earlier}; the pipeline differs from {commit}'s in "
                         f"{', '.join(sorted(set(changed) - set(args.despite)))} (--despite FILE, after reading the diff)")
        runs.update({seed: values for seed, values in kept.items() if seed not in args.seeds})
        differs = f", whose pipeline differs only in {', '.join(changed)}," if changed else ""
        joined += [f"seed {seed} from {earlier}{differs}" for seed in sorted(kept) if seed not in args.seeds]
    for seed in args.seeds:
        runs[seed], seconds = run_seed(root, seed, args.commit)
        print(f"seed {seed}: dvc exp run in {seconds / 60:.1f} min; "
              f"PESQ-NB {runs[seed]['quality.full_pesq_nb']:.3f}, "
              f"clean full {runs[seed]['classifier.clean_full_accuracy']:.3f}")
    seeds = sorted(runs)
    joined_text = f"; {', '.join(joined)}" if joined else ""
    lines = ["# Quality keys of the default over seeds", "",
             f"`benchmarks/seeds.py` at commit `{commit}` on {cpu_model()} ({platform.machine()}), {os.cpu_count()} CPUs: "
             f"the whole pipeline once per seed ({', '.join(map(str, seeds))}{joined_text}).", "",
             "| key | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | spread (sd) |",
             "|---|" + "---|" * (len(seeds) + 2)]
    for key in KEYS:
        values = np.array([runs[s].get(key, np.nan) for s in seeds])
        # one seed has no spread: say so rather than print nan
        spread = f"{np.nanstd(values, ddof=1):.3f}" if np.isfinite(values).sum() > 1 else "— (one seed)"
        lines.append(f"| `{key}` | " + " | ".join(f"{v:.3f}" for v in values)
                     + f" | **{np.nanmean(values):.3f}** | {spread} |")
    kept_rows = ["seed,key,value"] + [f"{s},{key},{value!r}" for s in seeds for key, value in runs[s].items()
                                      if key in KEYS]
    write_text(Path(args.out).with_suffix(".csv"), "\n".join(kept_rows) + "\n")  # full precision, for --with-table
    write_text(Path(args.out), "\n".join(lines) + "\n")  # atomic: an interrupted run keeps the last table
    print("\n".join(lines))


if __name__ == "__main__":
    main()
