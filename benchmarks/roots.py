"""Another project root for a benchmark that runs whole stages with other values: a temporary
folder whose inputs link to the real project's outputs, so nothing under ``data/`` or DVC's state
changes. (The library needs no such root: training and tuning work on inputs in memory.)"""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

# what benchmarks write: apart from the pipeline's reports/, which holds only what dvc.yaml declares
REPORTS = Path(__file__).resolve().parent / "reports"


@contextlib.contextmanager
def linked_root(root: Path, inputs: Iterable[str], prefix: str = "audiovae-bench-") -> Iterator[Path]:
    """Yield a temporary project root where each of ``inputs`` (paths relative to ``root``) is a link."""
    inputs = list(inputs)
    missing = [rel for rel in inputs if not (Path(root) / rel).exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} missing under {root}: run `dvc repro` first")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for rel in inputs:
            link = Path(tmp) / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(Path(root).resolve() / rel, link)
        yield Path(tmp)


def cpu_model() -> str:
    """The processor's name (``AMD EPYC``, ``Intel(R) Xeon(R) Platinum 8488C``): two machines with the
    same architecture and core count still differ by twice in training time, so a table names it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def provenance(root: Path) -> str:
    """The commit and the machine a benchmark ran on, for its table: ``commit abc1234 (uncommitted changes),
    AMD EPYC, 2 CPUs, fp32 training, torch 2.13.0``. Changes under benchmarks/reports/ and docs/ and to README.md do not
    count: benchmarks write the first, and figures are copied into the others while the next benchmark runs;
    neither changes what a run computes, so neither may mark its table as uncommitted code.
    The precision is what the training loop picks on this machine (bf16 only where the CPU computes it)."""
    import torch

    from audiovae.training.loop import native_bf16_cpu

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=root).stdout.strip()

    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/reports", ":!docs", ":!README.md") else ""
    precision = "bf16" if torch.cuda.is_available() or native_bf16_cpu() else "fp32"
    return (f"commit {git('rev-parse', '--short', 'HEAD')}{dirty}, {cpu_model()} ({platform.machine()}), "
            f"{os.cpu_count()} CPUs, {precision} training, torch {torch.__version__}")
