"""DVC stage ``filter``: reject unusable files and length outliers, then normalise the rest.

Per dataset, the lengths of the usable files give a lower and an upper percentile (the
AudioMNIST report's filter); files outside them are rejected. Every rejection has a reason:
unreadable, not_audio, empty, non_finite, silent, too_short, too_long, small_class (a label with
too few files to test, when ``filter.small_classes`` is drop; merge relabels it). Kept files are downmixed,
resampled, peak-normalised and trimmed/padded to one length, into one memory-mapped array.

This module reads the inputs, writes the outputs atomically and logs; inspecting and cutting is
audiovae.data.filter, loading audio.data.audio.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from audiovae import layout
from audiovae.atomic import atomic_path, write_json
from audiovae.config.params import project_root
from audiovae.config.schema import Params
from audiovae.data.filter import (
    REASONS,
    apply_percentiles,
    inspect,
    normalise_into,
    plot_lengths,
    read_skipped,
    small_classes,
    target_length,
)
from audiovae.stages import run_stage
from audiovae.tracking import runs

log = logging.getLogger("audiovae.filter")


def run(params: Params, root: Path | None = None) -> pd.DataFrame:
    root = root or project_root()
    cfg = params.filter
    table = pd.read_csv(root / layout.METADATA, dtype={"label": str, "speaker": str})
    trim_db = cfg.trim_db
    table = inspect(table, root, cfg.silence_peak, trim_db)
    percentiles = apply_percentiles(table, cfg.lower_percentile, cfg.upper_percentile, cfg.long_sounds == "cut")
    small = small_classes(table, cfg.min_class_files, cfg.small_classes, cfg.merge_into)
    for label, what in small.items():
        log.warning("filter: label %s %s: %s", label, what["action"], what["why"])
    kept = table[table["reason"] == ""].reset_index(drop=True)
    if kept.empty:
        raise SystemExit("filter: every file was rejected; see reports/filter/rejections.csv")
    sample_rate, length = cfg.sample_rate, target_length(cfg)

    out_dir = root / layout.FILTERED
    with atomic_path(out_dir) as staging:
        staging.mkdir(parents=True)
        array = np.lib.format.open_memmap(staging / layout.AUDIO_ARRAY, mode="w+", dtype=np.float32,
                                          shape=(len(kept), length))
        normalise_into(array, [root / path for path in kept["path"]], cfg)
        array.flush()
        del array
        kept.drop(columns=["reason", "detail"]).assign(row=np.arange(len(kept))).to_csv(
            staging / layout.INDEX, index=False)
        write_json(staging / layout.AUDIO_META, {"sample_rate": sample_rate, "length": length,
                                            "length_mode": cfg.length_mode, "trim_db": trim_db,
                                            "files": len(kept)})

    rejected = table[table["reason"] != ""]
    counts = {reason: int((rejected["reason"] == reason).sum()) for reason in REASONS}
    skipped = read_skipped(root)
    by_dataset = table.assign(kept=table["reason"] == "").groupby("dataset")["kept"].agg(["sum", "size"])
    # sounds longer than the clip: cut to their start and faded (long_sounds: cut), else trimmed
    longer = int((kept["seconds"] > cfg.seconds).sum())
    summary = {"kept": int(len(kept)), "rejected": int(len(rejected)), "rejected_by_reason": counts,
               "longer_than_clip": longer, "cut": longer if cfg.long_sounds == "cut" else 0,
               "small_classes": small,
               "kept_by_label": {f"{d}:{lab}": int(n) for (d, lab), n in kept.groupby(["dataset", "label"]).size().items()},
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
                       metrics={"kept": len(kept), "rejected": len(rejected), "cut": summary["cut"],
                                **{f"rejected_{k}": v for k, v in counts.items()}},
                       artifacts=[root / layout.FILTER_HISTOGRAM, root / layout.FILTER_PERCENTILES], root=root)
    return kept


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
