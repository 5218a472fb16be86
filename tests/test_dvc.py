"""`dvc repro` for real on tiny data: caching, no-op re-runs, and only downstream stages re-run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, tiny_params

DVC = Path(sys.executable).with_name("dvc")


def sh(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def dvc_project(tmp_path, tiny_fsdd_zip):
    if not DVC.exists():
        pytest.skip("dvc is not installed next to this Python (run `make test`)")
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = tiny_params()
    params["tracking"]["enabled"] = True  # the stages log to a SQLite store in the temp repo
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "AUDIOVAE_DATA_MIRROR": str(tiny_fsdd_zip.parent), "AUDIOVAE_ROOT": str(root),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)
    sh(["git", "init", "-q"], root, env)
    sh([str(DVC), "init", "-q"], root, env)
    sh([str(DVC), "config", "core.analytics", "false"], root, env)
    return root, env


def test_repro_is_cached_and_reruns_only_downstream(dvc_project):
    root, env = dvc_project
    first = sh([str(DVC), "repro", "features"], root, env)
    for stage in ("download", "filter", "features"):
        assert f"Running stage '{stage}'" in first
    assert (root / "data" / "features" / "spectrograms.npy").exists()
    second = sh([str(DVC), "repro", "features"], root, env)
    assert "Running stage" not in second
    assert "up to date" in sh([str(DVC), "status"], root, env) or "Data and pipelines are up to date" in second
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["features"]["n_fft"] = 128
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = sh([str(DVC), "repro", "features"], root, env)
    assert "Running stage 'features'" in third
    assert "Running stage 'download'" not in third and "Running stage 'filter'" not in third

    # every `dvc repro` is one parent run in MLflow, each stage a child run under it
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("audiovae")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("kind") == "pipeline"]
    assert len(parents) == 2  # the second repro ran nothing, so it opened no run
    children = {p.info.run_id: sorted(r.data.tags["stage"] for r in runs
                                      if r.data.tags.get("mlflow.parentRunId") == p.info.run_id) for p in parents}
    assert sorted(children.values()) == [["download", "features", "filter"], ["features"]]
    for run in runs:
        assert run.data.tags["git_commit"] and run.data.tags["dataset_manifest"] != ""
    features_run = next(r for r in runs if r.data.tags.get("stage") == "features" and r.data.params.get("features.n_fft") == "128")
    assert features_run.data.metrics["bins"] == 64
