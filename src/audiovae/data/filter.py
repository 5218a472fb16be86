"""Which files are usable and how long they are: ``inspect`` decodes each once and names the reason a
file is unusable (unreadable, not_audio, empty, non_finite, silent); ``apply_percentiles`` marks
per-dataset length outliers (the AudioMNIST report's filter: too_short, too_long) and returns the
percentile table; ``small_classes`` merges or drops the labels too small to test (small_class);
``plot_lengths`` draws the histogram with the cuts.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from audiovae import layout
from audiovae.atomic import atomic_path
from audiovae.config.schema import Filter
from audiovae.data import audio
from audiovae.progress import Progress, track

log = logging.getLogger("audiovae.filter")
REASONS = ("unreadable", "not_audio", "empty", "non_finite", "silent", "too_short", "too_long", "small_class")


def target_length(cfg: Filter) -> int:
    return int(round(cfg.seconds * cfg.sample_rate))


def inspect(table: pd.DataFrame, root: Path, silence_peak: float, trim_db: float = 0.0) -> pd.DataFrame:
    """Decode every file once: its length in seconds (after silence trimming), or the reason it is unusable."""
    seconds, reasons, details = [], [], []
    for path in track(table["path"], "inspect audio", unit="file"):
        try:
            signal, sr = audio.read(root / path)
            audio.check(signal, silence_peak)
            seconds.append(audio.trim_silence(audio.to_mono(signal), trim_db, sr).shape[-1] / sr)
            reasons.append("")
            details.append("")
        except audio.AudioError as exc:
            seconds.append(np.nan)
            reasons.append(exc.reason)
            details.append(exc.detail)
    out = table.copy()
    out["seconds"], out["reason"], out["detail"] = seconds, reasons, details
    return out


def cut_fade(cfg: Filter) -> int | None:
    """Samples of the fade-out a cut sound ends with (``long_sounds: cut``), or None (reject)."""
    return int(round(cfg.fade_seconds * cfg.sample_rate)) if cfg.long_sounds == "cut" else None


def normalise_into(out: np.ndarray, paths: list[Path], cfg: Filter) -> None:
    """Fill ``out`` (files x ``target_length``) with each file downmixed, resampled, peak-normalised
    (``filter.normalise: peak``), trimmed of silence and cut or padded to one length."""
    with Progress(len(paths), "normalise audio", unit="file") as bar:
        for i, path in enumerate(paths):
            out[i] = audio.load_normalised(path, cfg.sample_rate, target_length(cfg), cfg.length_mode,
                                           cfg.silence_peak, cfg.trim_db, cut_fade(cfg), cfg.normalise == "peak")
            bar.update()


def read_skipped(root: Path) -> pd.DataFrame:
    """The files the download stage did not take as audio (``data/raw/skipped.csv``), with the reason."""
    path = root / layout.SKIPPED
    if not path.exists():
        return pd.DataFrame(columns=["path", "dataset", "reason"])
    return pd.read_csv(path, dtype=str).fillna("")


def apply_percentiles(table: pd.DataFrame, lower: float, upper: float, keep_long: bool = False) -> pd.DataFrame:
    """Mark files outside the per-dataset length percentiles (``keep_long``: none as too long, they
    are cut); return the percentile table."""
    rows = []
    for dataset, group in table.groupby("dataset", sort=True):
        usable = group[group["reason"] == ""]
        if usable.empty:
            rows.append({"dataset": dataset, "usable": 0})
            continue
        qs = [0, 1, 3, 5, 10, 50, 90, 95, 97, 99, 100]
        values = np.percentile(usable["seconds"], qs)
        lo, hi = np.percentile(usable["seconds"], [lower, upper])
        short = usable.index[usable["seconds"] < lo]
        long = usable.index[usable["seconds"] > hi] if not keep_long else usable.index[:0]
        table.loc[short, "reason"] = "too_short"
        table.loc[short, "detail"] = [f"{s:.3f}s < p{lower:g} = {lo:.3f}s" for s in table.loc[short, "seconds"]]
        table.loc[long, "reason"] = "too_long"
        table.loc[long, "detail"] = [f"{s:.3f}s > p{upper:g} = {hi:.3f}s" for s in table.loc[long, "seconds"]]
        rows.append({"dataset": dataset, "usable": len(usable), "lower_cut": lo, "upper_cut": hi,
                     **{f"p{q}": v for q, v in zip(qs, values)}})
    return pd.DataFrame(rows)


def small_classes(table: pd.DataFrame, min_files: int, policy: str, merge_into: str) -> dict[str, dict]:
    """Labels with fewer than ``min_files`` usable files in their dataset (a test split of 10 % holds
    one or none of them, so their accuracy is one file's): ``merge`` relabels them ``merge_into``,
    ``drop`` marks them small_class, ``keep`` leaves them. ``table`` is changed in place; the return
    says, per label, how many files it had, what was done and why."""
    report: dict[str, dict] = {}
    if policy == "keep" or min_files <= 0:
        return report
    usable = table[table["reason"] == ""]
    for (dataset, label), group in usable.groupby(["dataset", "label"], sort=True):
        if len(group) >= min_files or label == merge_into:
            continue
        why = f"{len(group)} file(s) < filter.min_class_files {min_files}"
        if policy == "merge":
            table.loc[group.index, "label"] = merge_into
            report[f"{dataset}:{label}"] = {"files": len(group), "action": f"merged into {merge_into}", "why": why}
        else:
            table.loc[group.index, "reason"] = "small_class"
            table.loc[group.index, "detail"] = f"label {label!r}: {why}"
            report[f"{dataset}:{label}"] = {"files": len(group), "action": "dropped", "why": why}
    return report


def plot_lengths(table: pd.DataFrame, percentiles: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted(table["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 1, figsize=(7, 2.8 * len(datasets)), squeeze=False)
    for ax, dataset in zip(axes[:, 0], datasets):
        lengths = table.loc[(table["dataset"] == dataset) & table["seconds"].notna(), "seconds"]
        ax.hist(lengths, bins=60, color="#4a7ab5")
        cuts = percentiles[percentiles["dataset"] == dataset]
        if not cuts.empty and "lower_cut" in cuts and pd.notna(cuts["lower_cut"].iloc[0]):
            for column, label in (("lower_cut", "lower"), ("upper_cut", "upper")):
                ax.axvline(cuts[column].iloc[0], color="#c0392b", linestyle="--", label=f"{label} cut")
            ax.legend()
        ax.set_title(f"{dataset}: length of usable files")
        ax.set_xlabel("seconds")
        ax.set_ylabel("files")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
