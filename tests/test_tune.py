"""Optuna tuning: two workers on one storage, pruning, one MLflow run per trial, --apply."""
from __future__ import annotations

import copy
from pathlib import Path

import optuna
import pytest

from audiovae import tune


def tiny_tune_params(params: dict, root: Path) -> dict:
    p = copy.deepcopy(params)
    p["tracking"]["enabled"] = True
    p["tune"].update(sampler="tpe", n_startup_trials=2, pruner="ratio", pruner_ratio=0.5, pruner_warmup_epochs=0)
    p["tune"]["inner"] = {"epochs": 3, "space": {
        "inner.beta": {"type": "float", "low": 0.5, "high": 2.0, "log": True},
        "inner.latent_dim": {"type": "categorical", "choices": [2, 4]}}}
    return p


def test_tune_inner_with_two_workers(trained, tmp_path, monkeypatch):
    root, params, *_ = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    p = tiny_tune_params(params, root)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = tune.tune("inner", 6, storage=storage, study_name="inner-test", workers=2, root=root, params=p)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))  # no duplicates, no losses
    states = {t.number: t.state for t in study.trials}
    assert any(s == optuna.trial.TrialState.PRUNED for s in states.values())
    assert any(s == optuna.trial.TrialState.COMPLETE for s in states.values())

    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("audiovae")
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    parent = [r for r in runs if r.data.tags.get("kind") == "study"]
    assert len(parent) == 1
    trial_runs = [r for r in runs if "optuna.trial" in r.data.tags]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trial_runs) == list(range(6))
    for run in trial_runs:
        assert run.data.tags["mlflow.parentRunId"] == parent[0].info.run_id
        assert run.data.tags["optuna.state"] == states[int(run.data.tags["optuna.trial"])].name
        assert set(run.data.params) == {"inner.beta", "inner.latent_dim"}
        assert client.get_metric_history(run.info.run_id, "val_loss")
    assert parent[0].data.metrics["trials_per_minute"] > 0
    report = root / "reports" / "tuning" / "inner-test"
    assert (report / "optimization_history.png").exists() and (report / "summary.json").exists()
    # resuming the same study adds trials to it
    again = tune.tune("inner", 1, storage=storage, study_name="inner-test", workers=1, root=root, params=p)
    assert len(again.trials) == 7


def test_apply_changes_exactly_the_tuned_keys(tmp_path):
    original = (Path(__file__).resolve().parents[1] / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(original)
    tune.apply_params(path, {"inner.beta": 0.75, "outer.train.lr": 0.002})
    new = path.read_text()
    changed = [(a, b) for a, b in zip(original.splitlines(), new.splitlines()) if a != b]
    assert len(original.splitlines()) == len(new.splitlines())
    assert len(changed) == 2, changed
    assert changed[0][1].strip().startswith("lr: 0.002") or changed[1][1].strip().startswith("lr: 0.002")
    assert any(b.strip().startswith("beta: 0.75") for _, b in changed)
    import yaml
    loaded = yaml.safe_load(new)
    assert loaded["inner"]["beta"] == 0.75 and loaded["outer"]["train"]["lr"] == 0.002
    with pytest.raises(Exception, match="no key"):
        tune.apply_params(path, {"inner.nonexistent": 1})


def test_grid_sampler_needs_discrete_spaces():
    with pytest.raises(Exception, match="grid"):
        tune.make_sampler({"sampler": "grid"}, {"x.y": {"type": "float", "low": 0, "high": 1}}, 0)
    sampler = tune.make_sampler({"sampler": "grid"}, {"x.y": {"type": "categorical", "choices": [1, 2]}}, 0)
    assert isinstance(sampler, optuna.samplers.GridSampler)


def test_scratch_root_links_inputs_and_names_what_is_missing(tmp_path):
    from audiovae.scratch import scratch_root
    (tmp_path / "data" / "encodings").mkdir(parents=True)
    (tmp_path / "data" / "encodings" / "codes.npy").write_bytes(b"x")
    with scratch_root(tmp_path, ["data/encodings"]) as scratch:
        assert (scratch / "data" / "encodings" / "codes.npy").read_bytes() == b"x"
        assert (scratch / "data" / "encodings").is_symlink()
    assert not scratch.exists()
    with pytest.raises(FileNotFoundError, match="data/features missing"):
        with scratch_root(tmp_path, ["data/features"]):
            pass


def test_a_killed_run_leaves_no_scratch_folder(tmp_path):
    import signal
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    code = ("import sys, time; from pathlib import Path; from audiovae.scratch import scratch_root\n"
            "with scratch_root(Path(sys.argv[1]), ['data']) as s:\n"
            "    print(s, flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        scratch = Path(proc.stdout.readline().strip())
        assert scratch.is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert not scratch.exists()
