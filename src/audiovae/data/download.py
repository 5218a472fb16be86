"""Stage ``download``: fetch each enabled source, verify it, extract its audio, describe every file.

Outputs (all written through temporaries and renamed at the end):
- ``data/raw/<dataset>/...``: the extracted audio files, untouched;
- ``data/manifest.csv``: path, size and sha256 of every extracted file;
- ``data/metadata.csv``: one table for all sources (path, dataset, label, speaker, take,
  sample_rate, channels, duration, split, and AudioMNIST speaker metadata).
"""
from __future__ import annotations

import logging
import math
import zipfile
from pathlib import Path

import pandas as pd
import soundfile as sf

from audiovae import layout
from audiovae.atomic import atomic_path, sha256_file
from audiovae.config.params import ParamsError, project_root
from audiovae.config.schema import Params, SamplesSource, Source
from audiovae.data import sources
from audiovae.data.fetch import FetchError, locate_archive, verify_archive
from audiovae.data.splits import assign_splits
from audiovae.progress import track
from audiovae.tracking import runs

log = logging.getLogger("audiovae.download")

SKIPPED_FILE = "skipped.csv"  # under data/raw: files of a source that were not taken as audio, and why
METADATA_COLUMNS = ["path", "dataset", "label", "speaker", "take", "sample_rate", "channels",
                    "duration", "split", *sources.AUDIOMNIST_META_COLUMNS]


def _entries(name: str, cfg: Source, names: list[str], from_archive: bool,
             skipped: list[dict]) -> list[sources.Entry]:
    if name == "samples":
        assert isinstance(cfg, SamplesSource)  # the schema gives the samples source its own section
        return sources.sample_entries(names, cfg, from_archive, skipped)
    return sources.SOURCES[name](names, cfg, from_archive)


def _entries_from_archive(name: str, cfg: Source, from_archive: bool, archive: Path,
                          skipped: list[dict]) -> tuple[list[sources.Entry], str | None]:
    with zipfile.ZipFile(archive) as zf:
        names = [info.filename for info in zf.infolist() if not info.is_dir()]
        meta_text = None
        if name == "audiomnist":
            meta_names = [n for n in names if n.endswith("audioMNIST_meta.txt")]
            if meta_names:
                meta_text = zf.read(meta_names[0]).decode("utf-8", errors="replace")
    return _entries(name, cfg, names, from_archive, skipped), meta_text


def fetch_source(name: str, cfg: Source, root: Path, staging: Path, cache_dir: Path,
                 skipped: list[dict] | None = None) -> list[dict]:
    """Bring one source's audio into ``staging/<name>`` and return its metadata rows; files not
    taken from a user's folder or zip go to ``skipped`` with the reason."""
    skipped = [] if skipped is None else skipped
    out_dir = staging / name
    local = getattr(cfg, "path", "")  # only a sample library can come from the user's own folder
    # the include-list selects folders of the Dirt-Samples archive; a user's own library is taken whole
    from_archive = not local
    found: list[dict] = []
    if local and Path(local).expanduser().is_dir():
        folder = Path(local).expanduser()
        names = [str(p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*")) if p.is_file()]
        entries = _entries(name, cfg, names, from_archive, found)
        meta_text, archive = None, None
        where = f"folder {folder}"
    else:
        if local and Path(local).expanduser().is_file():
            archive = Path(local).expanduser()
        elif local and not local.startswith(("http://", "https://")):
            raise FetchError(f"data.sources.{name}.path = {local!r} is neither a folder, a zip file nor a URL")
        else:
            url = local or cfg.url
            archive_name = cfg.archive or Path(url).name
            archive = locate_archive(archive_name, url, root, cache_dir, timeout=cfg.timeout_seconds)
        verify_archive(archive, cfg.sha256 if not local else None)
        entries, meta_text = _entries_from_archive(name, cfg, from_archive, archive, found)
        where = f"archive {archive}"
    if not entries:
        reasons = pd.Series([f["reason"] for f in found], dtype=str).value_counts().to_dict()
        raise FetchError(f"{where} holds no audio files ({', '.join(sources.AUDIO_EXTENSIONS)}) for source "
                         f"{name!r}" + (f"; skipped {sum(reasons.values())} other files {reasons}" if found else "")
                         + (": is it the right archive?" if not local else ""))
    if archive is None:
        sources.copy_folder(folder, entries, out_dir)
    else:
        sources.extract(archive, entries, out_dir)
    skipped.extend({"path": f["member"], "dataset": name, "reason": f["reason"]} for f in found)
    if found:
        log.info("%s: skipped %d files that are not audio (%s)", name, len(found),
                 pd.Series([f["reason"] for f in found]).value_counts().to_dict())
    if name == "audiomnist":
        sources.attach_audiomnist_meta(entries, meta_text)
    log.info("%s: %d audio files", name, len(entries))
    rows = []
    for entry in entries:
        rows.append({**entry.row, "path": f"{layout.RAW.as_posix()}/{name}/{entry.relpath}"})
    return rows


def describe_audio(rows: list[dict], staging: Path) -> None:
    """Fill sample rate, channels and duration from each file's header (NaN when unreadable)."""
    for row in track(rows, "read headers", unit="file"):
        local = staging / Path(row["path"]).relative_to(layout.RAW)
        try:
            info = sf.info(str(local))
            row.update(sample_rate=info.samplerate, channels=info.channels,
                       duration=info.frames / info.samplerate if info.samplerate else math.nan)
        except Exception:  # noqa: BLE001 - any unreadable file is the filter stage's to reject
            row.update(sample_rate=math.nan, channels=math.nan, duration=math.nan)


def build_manifest(rows: list[dict], staging: Path) -> pd.DataFrame:
    records = []
    for row in track(rows, "checksum", unit="file"):
        local = staging / Path(row["path"]).relative_to(layout.RAW)
        records.append({"path": row["path"], "size": local.stat().st_size, "sha256": sha256_file(local)})
    return pd.DataFrame.from_records(records, columns=["path", "size", "sha256"])


def run(params: Params, root: Path | None = None) -> pd.DataFrame:
    root = root or project_root()
    cache_dir = root / layout.ARCHIVES
    # the schema names every source, so each has its entry function in sources.SOURCES
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
            staging / SKIPPED_FILE, index=False)
        describe_audio(rows, staging)
        table = pd.DataFrame.from_records(rows)
        for column in METADATA_COLUMNS:
            if column not in table:
                table[column] = None
        table = table.sort_values("path", kind="stable").reset_index(drop=True)
        table["split"] = assign_splits(table, params.data.split, params.seed)
        table = table[METADATA_COLUMNS]
        manifest = build_manifest(table.to_dict("records"), staging)
    # the audio is in place; the tables that describe it follow, each atomically
    with atomic_path(root / layout.METADATA) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(root / layout.MANIFEST) as tmp:
        manifest.to_csv(tmp, index=False)
    counts = table.groupby(["dataset", "split"]).size().to_dict()
    log.info("metadata: %d files, %s", len(table), counts)
    runs.log_stage("download", params, metrics={"files": len(table)},
                       extra_params={f"files.{d}.{s}": n for (d, s), n in counts.items()}, root=root)
    return table
