"""What crosses machines, piece by piece, on small real repositories (git, DVC, a bare Git host):
refusing machine-local stores, a remote that cannot be reached, a worker at the wrong commit or
with other inputs, and publishing a retraining run's dvc.lock. The whole story with every server
is tests/test_two_machines.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, free_port

from audiovae.tracking import remote

pytestmark = pytest.mark.slow  # real git and dvc processes

DVC = Path(sys.executable).with_name("dvc")


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(DVC), *args], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def project(tmp_path) -> Path:
    """A git + DVC repository with one stage whose output is a folder, reproduced and committed."""
    if not DVC.exists():
        pytest.skip("dvc is not installed next to this Python (run `make test`)")
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    (root / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: mkdir -p data/codes && echo one > data/codes/a && echo two > data/codes/b\n"
        "    outs:\n    - data/codes\n")
    dvc(root, "repro", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    return root


def test_machine_local_stores_are_refused_for_workers_elsewhere():
    for storage in (None, "sqlite:///optuna.db", "journal:///tmp/j.log"):
        with pytest.raises(remote.RemoteError, match="give --storage"):
            remote.check_shared_stores(storage, "http://coordinator:5000")
    for uri in ("sqlite:///mlflow.db", "file:///tmp/mlruns", "mlruns"):
        with pytest.raises(remote.RemoteError, match="MLFLOW_TRACKING_URI"):
            remote.check_shared_stores("postgresql+psycopg2://db/optuna", uri)
    remote.check_shared_stores("postgresql+psycopg2://db/optuna", "http://coordinator:5000")  # shared: accepted
    remote.check_shared_stores("postgresql+psycopg2://db/optuna", None)  # tracking off


def test_hashes_from_the_lock_and_from_disk_agree_and_a_change_is_seen(project):
    locked = remote.locked_hashes(project, ["data/codes"])
    assert locked["data/codes"].endswith(".dir")
    assert remote.workspace_hashes(project, ["data/codes"]) == locked
    (project / "data" / "codes" / "b").write_text("changed\n")
    assert remote.workspace_hashes(project, ["data/codes"]) != locked
    with pytest.raises(remote.RemoteError, match="records no output data/other"):
        remote.locked_hashes(project, ["data/other"])


def test_inputs_travel_through_the_remote_to_a_clone_with_no_data(project, tmp_path):
    dvc(project, "remote", "add", "-d", "shared", str(tmp_path / "store"))
    git(project, "commit", "-qam", "remote")
    inputs = remote.publish_inputs(project, ["data/codes"])
    clone = tmp_path / "worker"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    assert not (clone / "data" / "codes").exists()
    commit = git(project, "rev-parse", "HEAD")
    pulled = remote.bring_inputs(clone, commit, inputs)
    assert pulled.hashes == inputs and pulled.bytes == len("one\ntwo\n") and pulled.seconds > 0
    assert (clone / "data" / "codes" / "b").read_text() == "two\n"


def test_a_worker_refuses_another_commit_or_other_inputs(project, tmp_path):
    inputs = remote.locked_hashes(project, ["data/codes"])
    with pytest.raises(remote.RemoteError, match=r"is at commit \w{12}, the study's plan at 0123456789ab"):
        remote.bring_inputs(project, "0123456789ab" * 3, inputs)
    with pytest.raises(remote.RemoteError, match="records other inputs than the plan"):
        remote.bring_inputs(project, git(project, "rev-parse", "HEAD"), {"data/codes": "feed.dir"})


def test_the_coordinator_refuses_stale_or_uncommitted_inputs(project, tmp_path):
    dvc(project, "remote", "add", "-d", "shared", str(tmp_path / "store"))
    git(project, "commit", "-qam", "remote")
    (project / "dvc.yaml").write_text((project / "dvc.yaml").read_text().replace("echo two", "echo three"))
    with pytest.raises(remote.RemoteError, match="not current"):
        remote.publish_inputs(project, ["data/codes"])
    dvc(project, "repro", "-q")
    with pytest.raises(remote.RemoteError, match="dvc.lock has changes that are not committed"):
        remote.publish_inputs(project, ["data/codes"])


def test_an_unreachable_remote_fails_with_its_name(project, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries would only make the refusal slower
    dvc(project, "remote", "add", "-d", "team", "s3://bucket/dvc")
    dvc(project, "remote", "modify", "--local", "team", "endpointurl", f"http://127.0.0.1:{free_port()}")
    for key in ("access_key_id", "secret_access_key"):
        dvc(project, "remote", "modify", "--local", "team", key, "testing")
    with pytest.raises(remote.RemoteError, match="dvc push to remote 'team' failed"):
        remote.push(project)
    with pytest.raises(remote.RemoteError, match="dvc pull from remote 'team' failed"):
        remote.pull(project)


def test_no_remote_means_nothing_to_pull_and_a_push_is_refused(project):
    assert remote.pull(project) is False
    with pytest.raises(remote.RemoteError, match="no default DVC remote"):
        remote.push(project)


def test_publish_commits_the_lock_once_and_pushes_it_to_the_git_host(project, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # pipeline/ is a folder of the repository, not an installed package
    from pipeline.publish import publish

    host = tmp_path / "host.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(host))
    git(project, "remote", "add", "origin", str(host))
    (project / "reports").mkdir()
    (project / "reports" / "metrics.json").write_text('{"loss": 1.0}\n')
    (project / "notes.txt").write_text("not a published file\n")
    commit = publish(project, "retrain/7")
    assert commit and git(host, "rev-parse", "refs/heads/retrain/7") == commit
    assert git(project, "show", "--name-only", "--format=", commit).split() == ["reports/metrics.json"]
    assert publish(project, "retrain/7") is None  # nothing changed: no empty commit, no push
    with pytest.raises(RuntimeError, match="git push"):
        (project / "dvc.lock").write_text((project / "dvc.lock").read_text() + "# edited\n")
        publish(project, "main", remote="nowhere")
