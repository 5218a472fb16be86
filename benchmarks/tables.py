"""What the benchmarks' tables share: the evaluate stage's metrics as flat keys, and a table with
one column per run (a configuration, a preset) and one row per measure."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def read_metrics(path: Path) -> dict:
    """``reports/metrics.json`` as ``{"group.key": value}``, the names `dvc metrics show` prints."""
    metrics = json.loads(Path(path).read_text())
    return {f"{group}.{key}": value for group, values in metrics.items() for key, value in values.items()}


def columns_markdown(table: pd.DataFrame, index: str) -> str:
    """One column per value of ``index``, one row per other column, numbers to four significant digits."""
    shown = table.set_index(index).T.map(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    return shown.to_markdown()
