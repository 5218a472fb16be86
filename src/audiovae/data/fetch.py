"""Find a dataset archive in a local mirror, else download it over HTTP; verify it before use.

Order: ``$AUDIOVAE_DATA_MIRROR``, then ``../shared/datasets`` beside the project root, then the
download cache ``data/archives``, then the network. Downloads go to a temporary file that is
renamed only when complete, so an interrupted download never looks like an archive.
"""
from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from audiovae.atomic import atomic_path, sha256_file
from audiovae.progress import Progress

log = logging.getLogger("audiovae.fetch")

MIRROR_ENV = "AUDIOVAE_DATA_MIRROR"
CHUNK = 1 << 16


class FetchError(RuntimeError):
    """An archive could not be found, downloaded or verified; the message says how to fix it."""


def mirror_dirs(root: Path) -> list[Path]:
    dirs = []
    if os.environ.get(MIRROR_ENV):
        dirs.append(Path(os.environ[MIRROR_ENV]).expanduser())
    dirs.append(root.parent / "shared" / "datasets")
    return dirs


def locate_archive(name: str, url: str, root: Path, cache_dir: Path, timeout: float = 60.0) -> Path:
    """Return a local path to archive ``name``: a mirror copy, a cached download, or a fresh download."""
    looked = []
    for directory in mirror_dirs(root) + [cache_dir]:
        candidate = directory / name
        looked.append(str(directory))
        if candidate.is_file():
            log.info("using %s", candidate)
            return candidate
    if not url:
        raise FetchError(f"{name} is not in any mirror ({', '.join(looked)}) and no URL is configured")
    try:
        return download(url, cache_dir / name, timeout=timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise FetchError(
            f"could not download {url} ({exc}). Without network access, put {name} into "
            f"${MIRROR_ENV} or one of: {', '.join(looked[:-1])}") from exc


def download(url: str, target: Path, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``target`` through a temporary file, with progress."""
    log.info("downloading %s", url)
    request = urllib.request.Request(url, headers={"User-Agent": "audiovae"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with atomic_path(target) as tmp, open(tmp, "wb") as out, \
                Progress(total, f"download {target.name}", unit="B") as bar:
            received = 0
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
            if total is not None and received != total:
                raise FetchError(f"download of {url} stopped after {received} of {total} bytes; run again")
    return target


def verify_archive(path: Path, expected_sha256: str | None = None) -> None:
    """Check the checksum (when known) and every member's CRC; name the file and the fix on failure."""
    fix = (f"delete {path} and run again to re-download it, or replace it with a good copy "
           f"(from the upstream URL or the data mirror)")
    if expected_sha256:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise FetchError(f"{path} has sha256 {actual}, expected {expected_sha256}: "
                             f"the archive is corrupt or truncated; {fix}")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FetchError(f"{path} is not a readable zip archive ({exc}): it is corrupt or truncated; {fix}") from exc
    if bad is not None:
        raise FetchError(f"{path} is corrupt: member {bad} fails its CRC check; {fix}")
