"""`dvc repro` for real on tiny data: caching, no-op re-runs, and only downstream stages re-run."""
from __future__ import annotations

import yaml

from conftest import DVC, sh


def test_repro_is_cached_and_reruns_only_downstream(dvc_project):
    root, env = dvc_project
    stages = ("params", "download", "filter", "features", "train_outer", "encode", "train_inner", "evaluate")
    first = sh([str(DVC), "repro"], root, env)
    for stage in stages:
        assert f"Running stage '{stage}'" in first
    assert (root / "reports" / "metrics.json").exists()
    second = sh([str(DVC), "repro"], root, env)
    assert "Running stage" not in second
    assert "up to date" in sh([str(DVC), "status"], root, env)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["evaluate"]["perturb_db"] = 6
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = sh([str(DVC), "repro"], root, env)
    assert [s for s in stages if f"Running stage '{s}'" in third] == ["params", "evaluate"]
    params["inner"]["beta"] = 0.5
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    fourth = sh([str(DVC), "repro"], root, env)
    assert [s for s in stages if f"Running stage '{s}'" in fourth] == ["params", "train_inner", "evaluate"]

    # every `dvc repro` that ran something is one parent run in MLflow, each stage a child under it
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("audiovae")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("kind") == "pipeline"]
    assert len(parents) == 3  # the second repro ran nothing, so it opened no run
    children = {p.info.run_id: sorted(r.data.tags["stage"] for r in runs
                                      if r.data.tags.get("mlflow.parentRunId") == p.info.run_id) for p in parents}
    assert sorted(children.values()) == sorted([["evaluate", "params"], sorted(stages),
                                                ["evaluate", "params", "train_inner"]])
    for run in runs:  # the params stage of the first repro runs before there is any data
        assert run.data.tags["git_commit"]
        assert run.data.tags["dataset_manifest"] != "none" or run.data.tags.get("stage") == "params"
    evaluate_runs = [r for r in runs if r.data.tags.get("stage") == "evaluate"]
    assert all("classifier.recon_accuracy" in r.data.metrics for r in evaluate_runs)
    outer_run = next(r for r in runs if r.data.tags.get("stage") == "train_outer")
    assert len(client.get_metric_history(outer_run.info.run_id, "val_loss")) == params["outer"]["train"]["epochs"]
    for name, count in (("audiovae-outer", 1), ("audiovae-inner", 2)):
        versions = client.search_model_versions(f"name='{name}'")
        assert len(versions) == count and {v.run_id for v in versions} <= {r.info.run_id for r in runs}



def test_exp_run_with_a_preset_reruns_exactly_the_stages_it_changes(dvc_project):
    """`dvc exp run -S preset=NAME` is seen by DVC: the stages whose effective values the preset
    changes re-run, the others do not, and dvc.lock / `dvc params diff` show the effective values."""
    root, env = dvc_project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["presets"]["tiny_wider_inner"] = {"inner": {"latent_dim": 6}, "evaluate": {"probe_dims": 1}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh([str(DVC), "repro"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "base run"], root, env)
    out = sh([str(DVC), "exp", "run", "-S", "preset=tiny_wider_inner"], root, env)
    ran = [s for s in ("params", "download", "filter", "features", "train_outer", "encode", "train_inner",
                       "evaluate") if f"Running stage '{s}'" in out]
    assert ran == ["params", "train_inner", "evaluate"]
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["train_inner"]["params"]["reports/params/train_inner.yaml"]["inner"]["latent_dim"] == 6
    diff = sh([str(DVC), "params", "diff"], root, env)
    assert "reports/params/train_inner.yaml" in diff and "inner.latent_dim" in diff
    assert any(line.split()[-2:] == ["4", "6"] for line in diff.splitlines() if "inner.latent_dim" in line)
    assert "up to date" in sh([str(DVC), "status"], root, env)
