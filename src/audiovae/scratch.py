"""Scratch project roots: a temporary folder whose inputs link to a real project's outputs, so a
stage can run (a tuning trial, a benchmark configuration) without touching ``data/`` or DVC state."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


@contextlib.contextmanager
def scratch_root(root: Path, inputs: Iterable[str], prefix: str = "audiovae-") -> Iterator[Path]:
    """Yield a temp project root where each of ``inputs`` (paths relative to ``root``) is a symlink."""
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
