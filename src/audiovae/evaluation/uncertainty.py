"""How far an accuracy measured on a small test set can be trusted: a bootstrap interval.

A music preset's test split holds a few dozen clips, where one clip moves an accuracy by several
points; the interval is what a reader compares, not the point. Balanced accuracy (the mean of the
per-class recalls) is the measure, so a large class does not hide a small one.
"""
from __future__ import annotations

import numpy as np


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean recall over the classes present in ``y_true`` (a class only predicted counts as an error)."""
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    classes = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes])) if len(classes) else float("nan")


def bootstrap_interval(y_true, y_pred, resamples: int, level: float, seed: int) -> tuple[float, float]:
    """The ``level`` percentile interval of balanced accuracy over ``resamples`` resamplings of the
    clips, each class resampled within itself (a stratified bootstrap: every class keeps its size,
    so a rare class is never resampled away)."""
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    if len(y_true) == 0 or resamples == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y_true == c) for c in np.unique(y_true)]
    values = np.empty(resamples)
    for r in range(resamples):
        values[r] = np.mean([np.mean(y_pred[rng.choice(idx, size=len(idx))] == y_true[idx[0]]) for idx in members])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)

