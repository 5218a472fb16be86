"""DVC stage ``download``: fetch each enabled source, verify it, extract its audio, describe every file.

Outputs (all written through temporaries and renamed at the end):
- ``data/raw/<dataset>/...``: the extracted audio files, untouched;
- ``data/manifest.csv``: path, size and sha256 of every extracted file (and of a SoundFont the notes
  were rendered from);
- ``data/metadata.csv``: one table for all sources (path, dataset, label, speaker, take,
  sample_rate, channels, duration, split, AudioMNIST speaker metadata, and for rendered notes
  program, instrument, family, pitch and velocity).

This module reads the inputs, writes the outputs atomically and logs; fetching, extracting and
describing the files is audiovae.data.download.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from audiovae import layout
from audiovae.atomic import atomic_path
from audiovae.config.params import ParamsError, project_root
from audiovae.config.schema import Params, SoundfontSource
from audiovae.data.download import (
    METADATA_COLUMNS,
    NOTE_COLUMNS,
    build_manifest,
    describe_audio,
    fetch_source,
)
from audiovae.data.splits import assign_splits
from audiovae.stages import run_stage
from audiovae.tracking import runs

log = logging.getLogger("audiovae.download")


def run(params: Params, root: Path | None = None) -> pd.DataFrame:
    root = root or project_root()
    cache_dir = root / layout.ARCHIVES
    # the schema names every source: an archive's has its entry function in sources.SOURCES, a
    # SoundFont's notes are rendered (data.soundfont)
    enabled = {name: cfg for name, cfg in params.data.sources if cfg.enabled}
    if not enabled:
        raise ParamsError("no data source is enabled in params.yaml (data.sources.*.enabled)")
    with atomic_path(root / layout.RAW) as staging:
        staging.mkdir(parents=True)
        rows: list[dict] = []
        skipped: list[dict] = []
        for name, cfg in enabled.items():
            rows.extend(fetch_source(name, cfg, root, staging, cache_dir, skipped))
        # what a user's library held besides audio, for the filter report
        pd.DataFrame.from_records(skipped, columns=["path", "dataset", "reason"]).to_csv(
            staging / layout.SKIPPED_NAME, index=False)
        describe_audio(rows, staging)
        table = pd.DataFrame.from_records(rows)
        for column in METADATA_COLUMNS:
            if column not in table:
                table[column] = None
        table = table.sort_values("path", kind="stable").reset_index(drop=True)
        notes: list[str] = []
        table["split"] = assign_splits(table, params.data.split, params.seed, notes)
        for note in notes:
            log.warning("split: %s", note)
        pitched = [c for c in NOTE_COLUMNS if c in table]
        table = table[METADATA_COLUMNS + pitched]
        fonts = [Path(cfg.font).expanduser() for name, cfg in enabled.items() if isinstance(cfg, SoundfontSource)]
        manifest = build_manifest(table.to_dict("records"), staging, fonts)
    # the audio is in place; the tables that describe it follow, each atomically
    with atomic_path(root / layout.METADATA) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(root / layout.MANIFEST) as tmp:
        manifest.to_csv(tmp, index=False)
    counts = table.groupby(["dataset", "split"]).size().to_dict()
    log.info("metadata: %d files, %s", len(table), counts)
    runs.log_stage("download", params, metrics={"files": len(table)},
                       extra_params={**{f"files.{d}.{s}": n for (d, s), n in counts.items()},
                                     **({"split_fallbacks": "; ".join(notes)} if notes else {})}, root=root)
    return table


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
