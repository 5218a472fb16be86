"""What crosses machines: the DVC remote that carries the data, the inputs a tuning worker pulls
before its first trial, the checkout a Prefect worker runs in, and the stores every machine must
share.

A worker on another machine has its own clone and nothing else: the coordinator pushes exactly the
outputs the objective reads, the plan names their DVC hashes and the git commit, and the worker
checks its commit, pulls those outputs and verifies their hashes before it touches the study. Each
refusal is one line (``RemoteError``) that says what to change.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

# study storages and tracking URIs that live on one machine's disk: useless to workers elsewhere
LOCAL_STORAGE = ("sqlite:", "journal:")
LOCAL_TRACKING = ("sqlite:", "file:")


class RemoteError(RuntimeError):
    """A machine cannot share what it needs (remote unreachable, wrong commit, stale or machine-local
    stores); the message is one line naming the setting or command that fixes it."""


def dvc_command() -> str:
    """The ``dvc`` of this Python's environment (a worker's PATH may not hold it)."""
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([dvc_command(), *args], cwd=root, capture_output=True, text=True)


def _cause(result: subprocess.CompletedProcess) -> str:
    """DVC's own error line (the last ``ERROR:`` line), else its last line of output."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or [f"exit code {result.returncode}"])[-1]


def default_remote(root: Path) -> str | None:
    """The name of the default DVC remote (``core.remote``, any config level), or None."""
    result = _dvc(root, "remote", "default")
    name = result.stdout.strip()
    return name if result.returncode == 0 and name else None


def git_commit(root: Path) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if result.returncode:
        raise RemoteError(f"{root} is not a git checkout: workers need a commit to check out")
    return result.stdout.strip()


def _modified(root: Path, path: str) -> bool:
    result = subprocess.run(["git", "status", "--porcelain", "--", path], cwd=root, capture_output=True, text=True)
    return bool(result.stdout.strip())


def locked_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """The md5 that ``dvc.lock`` records for each of ``paths`` (outputs of the pipeline)."""
    lock_file = root / "dvc.lock"
    if not lock_file.exists():
        raise RemoteError(f"no dvc.lock in {root}: run `dvc repro` first")
    lock = yaml.safe_load(lock_file.read_text()) or {}
    outs = {out["path"]: out["md5"] for stage in lock.get("stages", {}).values() for out in stage.get("outs", [])}
    missing = [p for p in paths if p not in outs]
    if missing:
        raise RemoteError(f"dvc.lock records no output {', '.join(missing)}: run `dvc repro` first")
    return {p: outs[p] for p in paths}


def workspace_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """The md5 DVC computes for each of ``paths`` as they are on disk (a directory's is the hash of
    its listing, as in ``dvc.lock``): what a worker really has."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        outs = {out.def_path: out for out in repo.index.outs}
        found = {}
        for path in paths:
            if path not in outs or not outs[path].exists:
                found[path] = "missing"
            else:
                found[path] = outs[path].get_hash().value
    return found


def check_shared_stores(storage: str | None, tracking_uri: str | None) -> None:
    """Refuse stores that live on this machine's disk when workers run elsewhere."""
    if not storage or storage.startswith(LOCAL_STORAGE):
        raise RemoteError(f"study storage {storage or 'sqlite:///optuna.db (the default)'} is on this machine's disk, "
                          "which workers elsewhere cannot open: give --storage (or tune.storage) a database URL, "
                          "e.g. postgresql+psycopg2://user@host/optuna")
    if tracking_uri is not None and (tracking_uri.startswith(LOCAL_TRACKING) or "://" not in tracking_uri):
        raise RemoteError(f"tracking URI {tracking_uri} is on this machine's disk, so workers elsewhere would log to "
                          "their own: set MLFLOW_TRACKING_URI (or tracking.uri) to the shared server, "
                          "e.g. http://coordinator:5000")


def publish_inputs(root: Path, paths: list[str]) -> dict[str, str]:
    """On the coordinator: check that ``paths`` are current (``dvc status``) and committed, push them
    to the default remote; returns their hashes for the plan."""
    if _modified(root, "dvc.lock"):
        raise RemoteError("dvc.lock has changes that are not committed: workers check out the commit, so commit "
                          "dvc.lock (and push it to the Git host) first")
    status = _dvc(root, "status", "--json", *paths)
    if status.returncode:
        raise RemoteError(f"dvc status {' '.join(paths)} failed: {_cause(status)}")
    stale = json.loads(status.stdout or "{}")
    if stale:
        raise RemoteError(f"the tuning inputs are not current ({', '.join(sorted(stale))} changed): run `dvc repro` "
                          "and commit dvc.lock first")
    _transfer(root, "push", *paths, missing="no default DVC remote to share the inputs through: "
                                         "`dvc remote add -d NAME s3://bucket/path`")
    return locked_hashes(root, paths)


@dataclass(frozen=True)
class Pulled:
    """What a worker brought: the verified hashes, the bytes on disk and the seconds it took."""

    hashes: dict[str, str]
    bytes: int
    seconds: float


def size_on_disk(root: Path, paths: list[str]) -> int:
    files = [f for p in paths for f in ([root / p] if (root / p).is_file() else (root / p).rglob("*"))]
    return sum(f.stat().st_size for f in files if f.is_file())


def bring_inputs(root: Path, commit: str, inputs: dict[str, str]) -> Pulled:
    """On a worker, in its own clone: check the commit, pull exactly ``inputs`` from the default
    remote and verify their hashes. Refuses before any trial runs."""
    started = time.monotonic()
    here = git_commit(root)
    if here != commit:
        raise RemoteError(f"this checkout ({root}) is at commit {here[:12]}, the study's plan at {commit[:12]}: "
                          f"`git fetch && git checkout {commit[:12]}` first")
    paths = sorted(inputs)
    locked = locked_hashes(root, paths)
    if locked != inputs:
        raise RemoteError(f"dvc.lock at {root} records other inputs than the plan ({locked} vs {inputs})")
    _transfer(root, "pull", *paths, missing=f"no default DVC remote in {root}: configure the team's remote "
                                            "(`dvc remote modify --local NAME endpointurl ...` for an S3-compatible store)")
    found = workspace_hashes(root, paths)
    if found != inputs:
        wrong = {p: found[p] for p in paths if found[p] != inputs[p]}
        raise RemoteError(f"after dvc pull, inputs differ from the plan's hashes: {wrong}")
    return Pulled(found, size_on_disk(root, paths), time.monotonic() - started)


def _transfer(root: Path, verb: str, *args: str, missing: str | None) -> str | None:
    """``dvc push`` or ``dvc pull`` with the default remote; returns its name. No default remote
    raises ``missing`` (or returns None when it is None); a remote that cannot be reached raises
    with its name and DVC's error."""
    remote = default_remote(root)
    if remote is None:
        if missing is None:
            return None
        raise RemoteError(missing)
    result = _dvc(root, verb, "--remote", remote, *args)
    if result.returncode:
        raise RemoteError(f"dvc {verb} {'to' if verb == 'push' else 'from'} remote {remote!r} failed: {_cause(result)}")
    return remote


def pull(root: Path, allow_missing: bool = True) -> bool:
    """``dvc pull`` from the default remote (False when none is configured); a remote that cannot be
    read from raises with its name and DVC's error."""
    return _transfer(root, "pull", *(["--allow-missing"] if allow_missing else []), missing=None) is not None


def push(root: Path, run_cache: bool = True) -> str:
    """``dvc push`` of every output (and the run-cache, so another clone's ``dvc repro`` can restore
    a stage without running it) to the default remote; returns its name."""
    remote = _transfer(root, "push", *(["--run-cache"] if run_cache else []),
                       missing="no default DVC remote to push to: `dvc remote add -d NAME s3://bucket/path`")
    assert remote is not None  # a missing remote raised
    return remote


def checkout_of_this_install() -> Path:
    """The project checkout this environment's ``audiovae`` was installed from (``make setup``
    installs it editable): ``$AUDIOVAE_CHECKOUT`` if set, else the folder above ``src/``."""
    named = os.environ.get("AUDIOVAE_CHECKOUT")
    root = Path(named) if named else Path(__file__).resolve().parents[3]
    if not (root / "dvc.yaml").exists():
        raise RemoteError(f"{root} is no audiovae checkout (no dvc.yaml): set AUDIOVAE_CHECKOUT to the worker's clone")
    return root


def enter_checkout() -> dict[str, str]:
    """A Prefect pull step: run the flow in this worker's own clone. Deployments carry no path, so
    every machine's worker runs the code of the checkout its environment was installed from."""
    root = checkout_of_this_install()
    os.chdir(root)
    return {"directory": str(root)}
