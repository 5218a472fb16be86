"""`dvc repro` for real on tiny data: caching, no-op re-runs, and only downstream stages re-run."""
from __future__ import annotations

import yaml

from conftest import DVC, sh


def test_repro_is_cached_and_reruns_only_downstream(dvc_project):
    root, env = dvc_project
    stages = ("download", "filter", "features", "train_outer", "encode", "train_inner", "evaluate")
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
    assert "Running stage 'evaluate'" in third
    assert not any(f"Running stage '{stage}'" in third for stage in stages[:-1])
    params["inner"]["beta"] = 0.5
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    fourth = sh([str(DVC), "repro"], root, env)
    assert [s for s in stages if f"Running stage '{s}'" in fourth] == ["train_inner", "evaluate"]

    # every `dvc repro` that ran something is one parent run in MLflow, each stage a child under it
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("audiovae")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("kind") == "pipeline"]
    assert len(parents) == 3  # the second repro ran nothing, so it opened no run
    children = {p.info.run_id: sorted(r.data.tags["stage"] for r in runs
                                      if r.data.tags.get("mlflow.parentRunId") == p.info.run_id) for p in parents}
    assert sorted(children.values()) == sorted([["evaluate"], sorted(stages), ["evaluate", "train_inner"]])
    for run in runs:
        assert run.data.tags["git_commit"] and run.data.tags["dataset_manifest"] != "none"
    evaluate_runs = [r for r in runs if r.data.tags.get("stage") == "evaluate"]
    assert all("classifier.recon_accuracy" in r.data.metrics for r in evaluate_runs)
    outer_run = next(r for r in runs if r.data.tags.get("stage") == "train_outer")
    assert len(client.get_metric_history(outer_run.info.run_id, "val_loss")) == params["outer"]["train"]["epochs"]
    for name, count in (("audiovae-outer", 1), ("audiovae-inner", 2)):
        versions = client.search_model_versions(f"name='{name}'")
        assert len(versions) == count and {v.run_id for v in versions} <= {r.info.run_id for r in runs}
