"""Bring each source's audio into a folder the caller owns and describe every file: ``fetch_source``
(verified archive or a user's folder, audio taken, the rest listed with a reason), ``describe_audio``
(rate, channels, duration from each header) and ``build_manifest`` (size and sha256 of each file).
"""
from __future__ import annotations

import logging
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import soundfile as sf

from audiovae import layout
from audiovae.atomic import sha256_file
from audiovae.config.schema import SamplesSource, SoundfontSource, Source
from audiovae.data import soundfont, sources
from audiovae.data.fetch import FetchError, locate_archive, verify_archive
from audiovae.progress import track

log = logging.getLogger("audiovae.download")

METADATA_COLUMNS = ["path", "dataset", "label", "speaker", "take", "sample_rate", "channels",
                    "duration", "split", *sources.AUDIOMNIST_META_COLUMNS]
# a pitched source's notes carry these too (absent from the table when no such source is enabled)
NOTE_COLUMNS = ["program", "instrument", "family", "pitch", "velocity"]


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


def fetch_source(name: str, cfg: Source | SoundfontSource, root: Path, staging: Path, cache_dir: Path,
                 skipped: list[dict] | None = None) -> list[dict]:
    """Bring one source's audio into ``staging/<name>`` and return its metadata rows; files not
    taken from a user's folder or zip go to ``skipped`` with the reason."""
    skipped = [] if skipped is None else skipped
    out_dir = staging / name
    if isinstance(cfg, SoundfontSource):  # rendered here, not fetched
        rendered = soundfont.render_notes(cfg, out_dir)
        return [{**{k: v for k, v in row.items() if k != "relpath"},
                 "path": f"{layout.RAW.as_posix()}/{name}/{row['relpath']}"} for row in rendered]
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


def build_manifest(rows: list[dict], staging: Path, inputs: Sequence[Path] = ()) -> pd.DataFrame:
    """Size and sha256 of every file, then of each input the files were made from (a SoundFont,
    under its own path): the data's identity changes when either does."""
    records = []
    for row in track(rows, "checksum", unit="file"):
        local = staging / Path(row["path"]).relative_to(layout.RAW)
        records.append({"path": row["path"], "size": local.stat().st_size, "sha256": sha256_file(local)})
    for path in inputs:
        records.append({"path": str(path), "size": path.stat().st_size, "sha256": sha256_file(path)})
    return pd.DataFrame.from_records(records, columns=["path", "size", "sha256"])
