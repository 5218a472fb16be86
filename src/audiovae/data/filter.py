"""Stage ``filter``: reject unusable files and length outliers, then normalise the rest.

Per dataset, the lengths of the usable files give a lower and an upper percentile (the
AudioMNIST report's filter); files outside them are rejected. Every rejection has a reason:
unreadable, not_audio, empty, non_finite, silent, too_short, too_long. Kept files are downmixed,
resampled, peak-normalised and trimmed/padded to one length, into one memory-mapped array.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from audiovae import layout
from audiovae.atomic import atomic_path, write_json
from audiovae.config.params import project_root
from audiovae.config.schema import Filter, Params
from audiovae.data import audio
from audiovae.progress import Progress, track
from audiovae.tracking import runs

log = logging.getLogger("audiovae.filter")
REASONS = ("unreadable", "not_audio", "empty", "non_finite", "silent", "too_short", "too_long")


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


def read_skipped(root: Path) -> pd.DataFrame:
    """The files the download stage did not take as audio (``data/raw/skipped.csv``), with the reason."""
    path = root / layout.SKIPPED
    if not path.exists():
        return pd.DataFrame(columns=["path", "dataset", "reason"])
    return pd.read_csv(path, dtype=str).fillna("")


def apply_percentiles(table: pd.DataFrame, lower: float, upper: float) -> pd.DataFrame:
    """Mark files outside the per-dataset length percentiles; return the percentile table."""
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
        long = usable.index[usable["seconds"] > hi]
        table.loc[short, "reason"] = "too_short"
        table.loc[short, "detail"] = [f"{s:.3f}s < p{lower:g} = {lo:.3f}s" for s in table.loc[short, "seconds"]]
        table.loc[long, "reason"] = "too_long"
        table.loc[long, "detail"] = [f"{s:.3f}s > p{upper:g} = {hi:.3f}s" for s in table.loc[long, "seconds"]]
        rows.append({"dataset": dataset, "usable": len(usable), "lower_cut": lo, "upper_cut": hi,
                     **{f"p{q}": v for q, v in zip(qs, values)}})
    return pd.DataFrame(rows)


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


def run(params: Params, root: Path | None = None) -> pd.DataFrame:
    root = root or project_root()
    cfg = params.filter
    table = pd.read_csv(root / layout.METADATA, dtype={"label": str, "speaker": str})
    trim_db = cfg.trim_db
    table = inspect(table, root, cfg.silence_peak, trim_db)
    percentiles = apply_percentiles(table, cfg.lower_percentile, cfg.upper_percentile)
    kept = table[table["reason"] == ""].reset_index(drop=True)
    if kept.empty:
        raise SystemExit("filter: every file was rejected; see reports/filter/rejections.csv")
    sample_rate, length = cfg.sample_rate, target_length(cfg)

    out_dir = root / layout.FILTERED
    with atomic_path(out_dir) as staging:
        staging.mkdir(parents=True)
        array = np.lib.format.open_memmap(staging / "audio.npy", mode="w+", dtype=np.float32,
                                          shape=(len(kept), length))
        with Progress(len(kept), "normalise audio", unit="file") as bar:
            for i, path in enumerate(kept["path"]):
                array[i] = audio.load_normalised(root / path, sample_rate, length, cfg.length_mode,
                                                 cfg.silence_peak, trim_db)
                bar.update()
        array.flush()
        del array
        kept.drop(columns=["reason", "detail"]).assign(row=np.arange(len(kept))).to_csv(
            staging / "index.csv", index=False)
        write_json(staging / "audio.json", {"sample_rate": sample_rate, "length": length,
                                            "length_mode": cfg.length_mode, "trim_db": trim_db,
                                            "files": len(kept)})

    report_dir = root / layout.FILTER_REPORT
    rejected = table[table["reason"] != ""]
    counts = {reason: int((rejected["reason"] == reason).sum()) for reason in REASONS}
    skipped = read_skipped(root)
    by_dataset = table.assign(kept=table["reason"] == "").groupby("dataset")["kept"].agg(["sum", "size"])
    summary = {"kept": int(len(kept)), "rejected": int(len(rejected)), "rejected_by_reason": counts,
               "kept_by_dataset": {d: int(r["sum"]) for d, r in by_dataset.iterrows()},
               "total_by_dataset": {d: int(r["size"]) for d, r in by_dataset.iterrows()},
               "skipped_by_reason": skipped["reason"].value_counts().to_dict(),
               "target": {"sample_rate": sample_rate, "length": length, "seconds": length / sample_rate,
                          "trim_db": trim_db}}
    write_json(root / layout.FILTER_SUMMARY, summary)
    with atomic_path(root / layout.FILTER_PERCENTILES) as tmp:
        percentiles.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(root / layout.FILTER_REJECTIONS) as tmp:
        # files that never were audio (a library's readme, a hidden .DS_Store) are listed too
        pd.concat([rejected[["path", "dataset", "label", "reason", "detail", "seconds"]],
                   skipped.assign(reason="skipped_" + skipped["reason"], detail="not taken as audio")],
                  ignore_index=True).to_csv(tmp, index=False)
    with atomic_path(root / layout.FILTER_LENGTHS) as tmp:
        table.assign(kept=(table["reason"] == "").astype(int))[["path", "dataset", "seconds", "kept"]].to_csv(
            tmp, index=False, float_format="%.4f")
    plot_lengths(table, percentiles, root / layout.FILTER_HISTOGRAM)
    log.info("filter: kept %d, rejected %d %s", len(kept), len(rejected),
             {k: v for k, v in counts.items() if v})
    runs.log_stage("filter", params, section_keys=("filter",),
                       metrics={"kept": len(kept), "rejected": len(rejected),
                                **{f"rejected_{k}": v for k, v in counts.items()}},
                       artifacts=[root / layout.FILTER_HISTOGRAM, report_dir / "percentiles.csv"], root=root)
    return kept
