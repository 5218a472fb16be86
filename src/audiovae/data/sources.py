"""The datasets we know: how to pick audio out of each archive and what metadata each file carries.

Every source turns an archive (or a local folder) into rows of one metadata table:
path, dataset, label, speaker, take, plus source-specific columns (AudioMNIST speaker data).
"""
from __future__ import annotations

import json
import logging
import math
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from audiovae.config.schema import SamplesSource, Source

log = logging.getLogger("audiovae.sources")

AUDIO_EXTENSIONS = (".wav", ".aif", ".aiff", ".flac")
DIGIT_FILE = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9]+)_(?P<take>\d+)\.wav$", re.IGNORECASE)
AUDIOMNIST_META_COLUMNS = ("accent", "age", "gender", "native_speaker", "origin", "recording_date", "recording_room")
MAX_PLAUSIBLE_AGE = 120


@dataclass
class Entry:
    """One audio file taken from a source: where it came from, where it goes, what it is."""
    member: str          # path inside the archive (or source folder)
    relpath: str         # path under data/raw/<dataset>/
    row: dict


def skip_reason(name: str) -> str | None:
    """Why a file is not taken as audio: ``hidden`` (a dot file or inside a dot folder, such as
    ``.DS_Store`` or ``__MACOSX/._x.wav``) or ``extension`` (not one of ``AUDIO_EXTENSIONS``)."""
    path = PurePosixPath(name)
    if any(part.startswith(".") for part in path.parts):
        return "hidden"
    if path.name.startswith("._") or "__MACOSX" in path.parts:
        return "hidden"
    if not path.name.lower().endswith(AUDIO_EXTENSIONS):
        return "extension"
    return None


def is_audio_name(name: str) -> bool:
    return skip_reason(name) is None


# ---------------------------------------------------------------- spoken digits
def digit_entries(names: Iterable[str], dataset: str, subdir: str) -> list[Entry]:
    """FSDD and AudioMNIST share the ``{digit}_{speaker}_{take}.wav`` naming."""
    entries = []
    for name in names:
        parts = PurePosixPath(name).parts
        if subdir not in parts or not is_audio_name(name):
            continue
        match = DIGIT_FILE.match(parts[-1])
        if not match:
            log.warning("%s: %s does not look like digit_speaker_take.wav; skipped", dataset, name)
            continue
        after = PurePosixPath(*parts[parts.index(subdir) + 1:])
        entries.append(Entry(name, str(after), {
            "dataset": dataset, "label": match["digit"], "speaker": match["speaker"],
            "take": int(match["take"])}))
    return entries


def fsdd_entries(names: Iterable[str], cfg: Source, from_archive: bool = True) -> list[Entry]:
    return digit_entries(names, "fsdd", "recordings")


def audiomnist_entries(names: Iterable[str], cfg: Source, from_archive: bool = True) -> list[Entry]:
    return digit_entries(names, "audiomnist", "data")


def parse_audiomnist_meta(text: str) -> dict[str, dict]:
    """Parse ``audioMNIST_meta.txt`` as it really is: mixed types, impossible ages, odd case.

    Returns ``{speaker_id: {column: value}}`` with ages as floats (NaN when missing or
    impossible), strings stripped and lower-cased. Never raises on content; a file that is
    not JSON at all gives an empty mapping and a warning.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        log.warning("audioMNIST_meta.txt is not valid JSON (%s); speaker metadata left empty", exc)
        return {}
    if not isinstance(raw, dict):
        log.warning("audioMNIST_meta.txt is not a JSON object; speaker metadata left empty")
        return {}
    keys = {"accent": "accent", "age": "age", "gender": "gender", "native speaker": "native_speaker",
            "native_speaker": "native_speaker", "origin": "origin", "recordingdate": "recording_date",
            "recording_date": "recording_date", "recordingroom": "recording_room",
            "recording_room": "recording_room"}
    out = {}
    for speaker, fields in raw.items():
        if not isinstance(fields, dict):
            continue
        row: dict[str, object] = {column: None for column in AUDIOMNIST_META_COLUMNS}
        for key, value in fields.items():
            column = keys.get(str(key).strip().lower())
            if column:
                row[column] = value
        row["age"] = _clean_age(row["age"])
        for column in AUDIOMNIST_META_COLUMNS:
            if column != "age" and row[column] is not None:
                row[column] = str(row[column]).strip().lower()
        out[_speaker_id(speaker)] = row
    return out


def _clean_age(value) -> float:
    try:
        age = float(str(value).strip())
    except (TypeError, ValueError):
        return math.nan
    return age if 0 < age <= MAX_PLAUSIBLE_AGE else math.nan


def _speaker_id(value) -> str:
    text = str(value).strip()
    return f"{int(text):02d}" if text.isdigit() else text


def attach_audiomnist_meta(entries: list[Entry], meta_text: str | None) -> None:
    meta = parse_audiomnist_meta(meta_text) if meta_text is not None else {}
    missing = set()
    for entry in entries:
        speaker = _speaker_id(entry.row["speaker"])
        entry.row["speaker"] = speaker
        info = meta.get(speaker)
        if info is None:
            missing.add(speaker)
            info = {column: None for column in AUDIOMNIST_META_COLUMNS}
        entry.row.update(info)
    if missing:
        log.warning("audiomnist: no metadata for speakers %s", ", ".join(sorted(missing)))


# ---------------------------------------------------------------- instrument samples
def words_of(text: str) -> list[str]:
    """The words of a path or a keyword: its runs of letters, lower-cased
    (``sax/C-sharp3.wav`` -> sax, c, sharp, wav; ``bass3`` -> bass; ``e-piano`` -> e, piano)."""
    return re.findall(r"[a-z]+", text.lower())


def keyword_matches(keyword: str, words: list[str]) -> bool:
    """A keyword matches whole words of a path, in order (``harp`` is not in ``sharp``)."""
    parts = words_of(keyword)
    return bool(parts) and any(words[i:i + len(parts)] == parts for i in range(len(words) - len(parts) + 1))


def sample_category(relpath: str, cfg: SamplesSource) -> str:
    """Category of a one-shot: its folder (``category_from: folder``), else the folder's entry in
    ``folder_categories``, else the first keyword group with a keyword among its path's words."""
    parts = PurePosixPath(relpath).parts
    folder = parts[0] if len(parts) > 1 else ""
    if cfg.category_from == "folder":
        return folder or cfg.default_category
    if folder in cfg.folder_categories:
        return cfg.folder_categories[folder]
    words = words_of(relpath)
    for category, keywords in cfg.keywords.items():
        if any(keyword_matches(keyword, words) for keyword in keywords):
            return category
    return cfg.default_category


def common_top_folder(names: list[str]) -> bool:
    """True when every name sits under one and the same top folder (a zip of a folder)."""
    tops = {PurePosixPath(n).parts[0] for n in names if len(PurePosixPath(n).parts) > 1}
    return len(tops) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in names)


def sample_entries(names: Iterable[str], cfg: SamplesSource, from_archive: bool = True,
                   skipped: list[dict] | None = None) -> list[Entry]:
    """Audio files of a sample library. ``include`` (folder names) applies to the Dirt-Samples
    archive only (``from_archive``); a user's folder or zip yields all its audio, recursively.
    Files not taken (hidden, other extensions) are appended to ``skipped`` with the reason."""
    names = list(names)
    include = set(cfg.include) if from_archive else set()
    strip_top = bool(names) and common_top_folder(names)
    entries = []
    for name in names:
        parts = PurePosixPath(name).parts
        inner = parts[1:] if strip_top else parts
        if include and (len(inner) < 2 or inner[0] not in include):
            continue
        reason = skip_reason(name)
        if reason is not None:
            if skipped is not None:
                skipped.append({"member": name, "reason": reason})
            continue
        relpath = str(PurePosixPath(*inner))
        stem_digits = re.findall(r"\d+", PurePosixPath(relpath).stem)
        entries.append(Entry(name, relpath, {
            "dataset": "samples", "label": sample_category(relpath, cfg),
            "speaker": inner[0] if len(inner) > 1 else "", "take": int(stem_digits[-1]) if stem_digits else -1}))
    return entries


SOURCES: dict[str, Callable[..., list[Entry]]] = {
    "fsdd": fsdd_entries, "audiomnist": audiomnist_entries, "samples": sample_entries}


def extract(archive_path: Path, entries: list[Entry], out_dir: Path) -> None:
    with zipfile.ZipFile(archive_path) as archive:
        for entry in entries:
            target = out_dir / entry.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(entry.member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def copy_folder(folder: Path, entries: list[Entry], out_dir: Path) -> None:
    for entry in entries:
        target = out_dir / entry.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / entry.member, target)
