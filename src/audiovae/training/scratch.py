"""Scratch project roots: a temporary folder whose inputs link to a real project's outputs, so a
stage can run (a tuning trial, a benchmark configuration) without touching ``data/`` or DVC state."""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator


@contextlib.contextmanager
def scratch_root(root: Path, inputs: Iterable[str], prefix: str = "audiovae-") -> Iterator[Path]:
    """Yield a temp project root where each of ``inputs`` (paths relative to ``root``) is a symlink."""
    inputs = list(inputs)
    missing = [rel for rel in inputs if not (Path(root) / rel).exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} missing under {root}: run `dvc repro` first")
    with _exit_on_sigterm(), tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for rel in inputs:
            link = Path(tmp) / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(Path(root).resolve() / rel, link)
        yield Path(tmp)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """Turn a plain SIGTERM (``kill``, a scheduler cancelling a run) into SystemExit, so the scratch
    folder is removed on the way out; a handler someone else installed is left alone."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
