"""MLflow tracking against a real `mlflow server` over HTTP, and a clear error when it is down."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import free_port, running_mlflow_server, tiny_params, typed

from audiovae.stages import download, features, train_outer
from audiovae.stages import filter as filter_stage
from audiovae.tracking import runs as tracking_runs
from audiovae.tracking.runs import TrackingError


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server: SQLite backend and artifacts in a temp dir, on 127.0.0.1."""
    with running_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path) as url:
        yield url


def test_tiny_pipeline_logs_to_a_real_server(project, mlflow_server, monkeypatch):
    root, params = project
    params["tracking"]["enabled"] = True
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    import mlflow
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("audiovae")
    parent = tracking_runs.start_pipeline_run(mlflow, root, typed(params), "test-pipeline")
    monkeypatch.setenv(tracking_runs.PARENT_ENV, parent)
    download.run(typed(params), root)
    filter_stage.run(typed(params), root)
    features.run(typed(params), root)
    train_outer.run(typed(params), root)

    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("audiovae")
    runs = client.search_runs([experiment.experiment_id])
    children = {r.data.tags["stage"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent}
    assert set(children) == {"download", "filter", "features", "train_outer"}
    outer = children["train_outer"]
    history = client.get_metric_history(outer.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(params["outer"]["train"]["epochs"]))
    assert outer.data.params["outer.model"] == "conv1d" and "overfit_ratio" in outer.data.metrics
    versions = client.search_model_versions("name='audiovae-outer'")
    assert len(versions) == 1 and versions[0].run_id == outer.info.run_id
    artifacts = [a.path for a in client.list_artifacts(outer.info.run_id)]
    assert "history.csv" in artifacts
    # the registered version is the one this run's log_model returned, noted on run and parent
    assert outer.data.tags["registered.audiovae-outer"] == str(versions[0].version)
    assert client.get_run(parent).data.tags["registered.audiovae-outer"] == str(versions[0].version)

    # the parent run is what the compare view shows: a model-training experiment, the effective
    # params under params.yaml's names, the data as a dataset input, a duration spanning the stages
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    run = client.get_run(parent)
    assert run.data.params["outer.loss"] == params["outer"]["loss"]
    assert run.data.params["inner.latent_dim"] == str(params["inner"]["latent_dim"])
    assert len(run.data.params) > 100  # more than one MLflow batch of params
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest == tracking_runs.manifest_hash(root) != "none"
    assert inputs[0].dataset.name == "fsdd"
    assert run.info.end_time >= max(c.info.end_time for c in children.values())
    # the evaluate stage copies its final metrics onto the parent
    with mlflow.start_run(run_name="evaluate", tags={"mlflow.parentRunId": parent}):
        tracking_runs.log_pipeline_metrics(mlflow, {"quality.full_pesq_nb": 2.5, "classifier.clean_full_accuracy": 0.8})
    assert client.get_run(parent).data.metrics["quality.full_pesq_nb"] == 2.5


@pytest.mark.slow  # a subprocess or a server
def test_unreachable_server_fails_before_any_training(project, monkeypatch):
    root, params = project
    params["tracking"]["enabled"] = True
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrackingError, match="not reachable.*fallback_local"):
        tracking_runs.configure(typed(params), root)
    params["tracking"]["fallback_local"] = True
    mlflow = tracking_runs.configure(typed(params), root)
    assert mlflow.get_tracking_uri() == f"sqlite:///{root / 'mlflow.db'}"


def test_a_tracker_with_tracking_off_logs_nothing_and_loads_nothing(tmp_path, monkeypatch):
    """Stages call their tracker the same way whether tracking is on or off; off, no call reaches
    MLflow, creates a store, or loads a model only to log it."""
    import torch

    monkeypatch.chdir(tmp_path)
    tracker = tracking_runs.Tracker()
    assert not tracker.on
    tracker.log_params({"a": 1})
    tracker.log_metrics({"loss": 1.0}, step=0)
    tracker.set_tag("stopped", "epoch limit")
    tracker.log_artifact(tmp_path / "missing.csv")
    tracker.log_artifacts(tmp_path / "missing", artifact_path="report")
    tracker.log_pipeline_metrics({"quality.full_pesq_nb": 2.5})
    epochs = tracker.epochs(retry_seconds=60)
    epochs({"loss": 1.0}, 0)
    epochs.close()  # returns at once: nothing is waiting for a server
    assert tracker.start_run(run_name="trial-0", tags={"stage": "tune_inner"}) is None
    tracker.end_run("FAILED")
    assert tracker.log_torch_model(torch.nn.Linear(2, 2), np.zeros((1, 2), np.float32), "audiovae-outer") is None
    assert tracker.with_mlflow(lambda mlflow: pytest.fail("MLflow was called")) is None
    assert not list(tmp_path.iterdir())  # no mlflow.db, no mlruns, no artifacts


def test_a_registered_inner_vae_predicts_through_pyfunc_as_its_signature_says(tmp_path, monkeypatch):
    """The inner VAE's forward returns a tuple for its loss; the registered version is what a user
    serves (`mlflow models serve`, `pyfunc.load_model`), so it must predict the reconstruction."""
    import math

    import mlflow
    import torch

    from audiovae.config.params import resolve
    from audiovae.models.build import build_vae

    monkeypatch.chdir(tmp_path)
    params = resolve(tiny_params())
    code_shape = [params.outer.conv1d.code_channels, 12]
    vae = build_vae(params.inner, math.prod(code_shape), 10, code_shape).eval()
    example = np.random.default_rng(0).standard_normal((2, math.prod(code_shape))).astype(np.float32)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("audiovae")  # this store's, not one an earlier test left active
    with mlflow.start_run():
        version = tracking_runs.log_torch_model(mlflow, vae, example, "audiovae-inner")
    served = mlflow.pyfunc.load_model(f"models:/audiovae-inner/{version}")
    with torch.no_grad():
        expected = vae(torch.as_tensor(example))[0].numpy()
    np.testing.assert_allclose(np.asarray(served.predict(example)), expected, rtol=1e-5, atol=1e-6)
    assert served.metadata.get_output_schema().inputs[0].shape == (-1, expected.shape[1])
