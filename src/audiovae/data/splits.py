"""Train/val/test splits, deterministic for a seed.

- ``official``: FSDD's rule (takes 0-4 of every speaker and digit are test), also applied to
  AudioMNIST, which uses the same naming; datasets without takes fall back to ``stratified``.
- ``speaker``: whole speakers held out for val and test.
- ``stratified``: 81/9/10 stratified by label, as in the AudioMNIST report.
- ``grouped``: as ``stratified``, but a group (the ``speaker`` column: a speaker, a sample folder's
  pitch series or kit) stays on one side, so no near-copy of a test sound is trained on; the
  class balance is as close as whole groups allow.
- ``instrument``: NSynth's split for rendered notes: the test instruments (the ``speaker`` column)
  are never trained on (grouped, as above); validation is a note-level split of the instruments
  trained on, for the seen-instrument measures.
Validation is always carved from what test leaves (``val_fraction`` of it), stratified by label
where every class allows it.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from audiovae.config.params import ParamsError
from audiovae.config.schema import Split

DIGIT_DATASETS = ("fsdd", "audiomnist")


def _stratified(index: pd.Index, labels: pd.Series, fraction: float, seed: int,
                notes: list[str] | None = None, what: str = "") -> tuple[pd.Index, pd.Index]:
    """Split ``index`` into (rest, held) with ``fraction`` held out, stratified when possible; when
    it is not, ``notes`` gets a line that says why (a split that falls back is never silent)."""
    if len(index) < 2 or fraction <= 0:
        return index, index[:0]
    counts = labels.loc[index].value_counts()
    n_held = max(1, int(round(len(index) * fraction)))
    why = (f"label {str(counts.idxmin()).split(':', 1)[-1]!r} has {counts.min()} file(s)" if counts.min() < 2
           else f"{n_held} held-out files cannot hold {counts.size} labels" if n_held < counts.size
           else f"{len(index) - n_held} remaining files cannot hold {counts.size} labels"
           if len(index) - n_held < counts.size else "")
    stratify = labels.loc[index] if not why else None
    if why and counts.size > 1 and notes is not None:
        notes.append(f"{what}: a random split, not stratified by label: {why}")
    rest, held = train_test_split(list(index), test_size=n_held, random_state=seed, stratify=stratify)
    return pd.Index(rest), pd.Index(held)


GROUPED_TRIES = 20  # shuffles of the group k-fold whose folds compete to be the held-out side


def _grouped(index: pd.Index, labels: pd.Series, groups: pd.Series, fraction: float, seed: int,
             notes: list[str] | None = None, what: str = "") -> tuple[pd.Index, pd.Index]:
    """Split ``index`` into (rest, held), whole groups on each side, about ``fraction`` held and
    each label's share as close as the groups allow. Groups differ in size (one drum machine's 25
    snares, a kit's 13 hits), so one fold of a stratified group k-fold can miss whole labels: every
    fold of ``GROUPED_TRIES`` shuffles competes, and the one whose label counts are nearest
    ``fraction`` of each label's (L1, in files) is held out. Deterministic for a seed."""
    if len(index) < 2 or fraction <= 0:
        return index, index[:0]
    n_groups = groups.loc[index].nunique()
    folds = int(round(1 / fraction))
    if n_groups < 2:
        if notes is not None:
            notes.append(f"{what}: nothing held out: one group holds every file")
        return index, index[:0]
    if n_groups < folds:
        if notes is not None:
            notes.append(f"{what}: {n_groups} groups cannot make folds of {fraction:.2f}: one group of {n_groups} held")
        folds = n_groups
    y = labels.loc[index].to_numpy()
    counts = pd.Series(y).value_counts()
    target = counts * fraction
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    with warnings.catch_warnings():  # scikit-learn's warning of a small class: the note below says it
        warnings.simplefilter("ignore", UserWarning)
        for r in range(GROUPED_TRIES):
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
            for rest, held in splitter.split(np.zeros(len(index)), y, groups.loc[index].to_numpy()):
                error = float((pd.Series(y[held]).value_counts().reindex(counts.index, fill_value=0) - target).abs().sum())
                if best is None or error < best[0]:
                    best = (error, rest, held)
    assert best is not None
    _, rest, held = best
    missing = sorted(str(label).split(":", 1)[-1] for label in counts.index
                     if label not in set(y[held]) and target[label] >= 1)
    if missing and notes is not None:
        notes.append(f"{what}: no group of {', '.join(map(repr, missing))} could be held out with the others")
    return index[rest], index[held]


def assign_splits(table: pd.DataFrame, cfg: Split, seed: int, notes: list[str] | None = None) -> pd.Series:
    """Return a ``split`` column (train/val/test) for ``table``; ``notes`` gets a line for every
    split that could not be stratified by label, and why."""
    method = cfg.method
    val_fraction = cfg.val_fraction
    test_fraction = cfg.test_fraction
    official_test_takes = cfg.official_test_takes
    split = pd.Series("train", index=table.index, dtype=object)
    labels = table["dataset"].astype(str) + ":" + table["label"].astype(str)
    for dataset, group in table.groupby("dataset", sort=True):
        if method == "official" and dataset in DIGIT_DATASETS:
            test = group.index[group["take"].astype(int) < official_test_takes]
            train = group.index.difference(test)
        elif method == "speaker":
            speakers = np.array(sorted(group["speaker"].astype(str).unique()))
            rng = np.random.default_rng(seed)
            rng.shuffle(speakers)
            n_test = max(1, int(round(len(speakers) * test_fraction))) if len(speakers) > 2 else 0
            n_val = max(1, int(round((len(speakers) - n_test) * val_fraction))) if len(speakers) > 2 else 0
            test_speakers, val_speakers = set(speakers[:n_test]), set(speakers[n_test:n_test + n_val])
            speaker = group["speaker"].astype(str)
            split.loc[group.index[speaker.isin(test_speakers)]] = "test"
            split.loc[group.index[speaker.isin(val_speakers)]] = "val"
            continue
        elif method == "grouped":
            groups = group["speaker"].astype(str)
            train, test = _grouped(group.index, labels, groups, test_fraction, seed, notes, f"{dataset} test")
            train, val = _grouped(train, labels, groups, val_fraction, seed, notes, f"{dataset} validation")
            split.loc[test] = "test"
            split.loc[val] = "val"
            continue
        elif method == "instrument":
            train, test = _grouped(group.index, labels, group["speaker"].astype(str), test_fraction, seed, notes,
                                   f"{dataset} test")
        elif method in ("official", "stratified"):
            train, test = _stratified(group.index, labels, test_fraction, seed, notes, f"{dataset} test")
        else:
            raise ParamsError(f"data.split.method must be official, speaker, stratified, grouped or instrument, "
                              f"not {method!r}")
        # val is a fraction of what test leaves (0.1 and 0.1 give 81/9/10)
        train, val = _stratified(train, labels, val_fraction, seed, notes, f"{dataset} validation")
        split.loc[test] = "test"
        split.loc[val] = "val"
    return split
