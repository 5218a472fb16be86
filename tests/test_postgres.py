"""PostgreSQL, the README's multi-machine store, run for real: an Optuna study that two worker
processes share, and an MLflow tracking server that keeps its runs in PostgreSQL."""
from __future__ import annotations

import optuna
from conftest import running_mlflow_server, typed
from test_tune import tiny_tune_params

from audiovae.stages import download, features
from audiovae.stages import filter as filter_stage
from audiovae.tracking import runs as tracking_runs
from audiovae.training import tune


def test_tune_inner_with_two_worker_processes_on_a_postgres_study(trained, postgres):
    root, params, *_ = trained
    storage = postgres("optuna")
    p = tiny_tune_params(params, root)
    p["tracking"]["enabled"] = False
    tune.tune("inner", 4, storage=storage, study_name="pg-study", workers=2, root=root, params=typed(p))
    trials = optuna.load_study(study_name="pg-study", storage=storage).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # every trial once, none lost
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes took a share


def test_mlflow_server_on_postgres_receives_a_pipeline_run(project, postgres, tmp_path, monkeypatch):
    root, params = project
    params["tracking"]["enabled"] = True
    with running_mlflow_server(postgres("mlflow"), tmp_path) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow = tracking_runs.configure(typed(params), root)
        parent = tracking_runs.start_pipeline_run(mlflow, root, typed(params), "pg-pipeline")
        monkeypatch.setenv(tracking_runs.PARENT_ENV, parent)
        download.run(typed(params), root)
        filter_stage.run(typed(params), root)
        features.run(typed(params), root)
        client = mlflow.MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name(params["tracking"]["experiment"])
        runs = client.search_runs([experiment.experiment_id])
        stages = {r.data.tags["stage"] for r in runs if r.data.tags.get("mlflow.parentRunId") == parent}
        assert stages == {"download", "filter", "features"}
        run = client.get_run(parent)
        assert run.data.params["features.n_fft"] == str(params["features"]["n_fft"])
        assert run.inputs.dataset_inputs[0].dataset.digest == tracking_runs.manifest_hash(root)
        filtered = [r for r in runs if r.data.tags.get("stage") == "filter"][0]
        assert filtered.data.metrics["kept"] > 0
