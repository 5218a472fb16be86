"""Optuna tuning: two workers on one storage, pruning, one MLflow run per trial, --apply."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import base_params, tree_state, typed, written_by

from audiovae.config.schema import SpaceEntry
from audiovae.training import tune


def tiny_tune_params(params: dict, root: Path) -> dict:
    p = copy.deepcopy(params)
    p["tracking"]["enabled"] = True
    p["tune"].update(sampler="tpe", n_startup_trials=2, pruner="ratio", pruner_ratio=0.5, pruner_warmup_epochs=0)
    p["tune"]["inner"] = {"trials": 6, "epochs": 3, "objectives": ["val_loss"], "space": {
        "inner.beta": {"type": "float", "low": 0.5, "high": 2.0, "log": True},
        "inner.latent_channels": {"type": "categorical", "choices": [1, 2]}}}
    return p


def test_tune_inner_with_two_workers(trained, tmp_path, monkeypatch):
    root, params, *_ = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    p = tiny_tune_params(params, root)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    before = tree_state(root)
    study = tune.tune("inner", 6, storage=storage, study_name="inner-test", workers=2, root=root, params=typed(p))
    # trials train on the codes in memory: nothing under the project changes but the study's report
    # (and its copy in the study run's MLflow artifacts)
    written = written_by(root, before)
    assert written and all(path.startswith(("reports/tuning/inner-test/", "mlartifacts/")) for path in written), written
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
        assert set(run.data.params) == {"inner.beta", "inner.latent_channels"}
        assert client.get_metric_history(run.info.run_id, "val_loss")
    assert parent[0].data.metrics["trials_per_minute"] > 0
    report = root / "reports" / "tuning" / "inner-test"
    assert (report / "optimization_history.png").exists() and (report / "summary.json").exists()
    # resuming the same study adds trials to it
    again = tune.tune("inner", 1, storage=storage, study_name="inner-test", workers=1, root=root, params=typed(p))
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
    cfg = typed(base_params()).tune.model_copy(update={"sampler": "grid"})
    with pytest.raises(Exception, match="grid"):
        tune.make_sampler(cfg, {"x.y": SpaceEntry(type="float", low=0, high=1)}, 0)
    sampler = tune.make_sampler(cfg, {"x.y": SpaceEntry(type="categorical", choices=[1, 2])}, 0)
    assert isinstance(sampler, optuna.samplers.GridSampler)


def test_full_path_objective_ranks_a_better_reconstruction_lower(trained):
    """Known cases: the real spectrograms themselves, then copies blurred along time more and more,
    then noise; the full-path objective orders them best to worst, and scores a model by its
    full-path reconstructions."""
    from scipy.ndimage import uniform_filter1d

    from audiovae.evaluation.validation import Validation

    root, params, _, inner, _ = trained
    scorer = Validation.from_project(root, typed(params), clips=0, generated_per_label=2, classifier=False)
    specs = scorer.specs
    rng = np.random.default_rng(0)
    cases = [specs] + [uniform_filter1d(specs, size, axis=-1) for size in (3, 9, 27)] + [rng.random(specs.shape)]
    scores = [scorer.spectrogram_score(c) for c in cases]
    assert scores[0] == 0.0 and scores == sorted(scores) and len(set(scores)) == len(scores), scores
    model = scorer.model(inner["model"], inner["info"])
    assert scorer.full_path(model) == scorer.spectrogram_score(model.reconstruct(specs)) > 0


def test_two_objective_study_returns_its_pareto_front_and_applies_a_named_trial(trained, tmp_path):
    import json

    root, params, *_ = trained
    p = tiny_tune_params(params, root)
    p["tracking"]["enabled"] = False
    p["tune"]["inner"]["objectives"] = ["full_path", "generated_accuracy"]
    p["tune"]["validation"] = {"clips": 16, "generated_per_label": 2}
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = tune.tune("inner", 3, storage=storage, study_name="pareto-test", root=root, params=typed(p))
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3  # a multi-objective study is not pruned
    front = study.best_trials
    assert front

    def dominates(a, b):
        return a.values[0] <= b.values[0] and a.values[1] >= b.values[1] and a.values != b.values
    for t in front:  # no trial of the study dominates one on the front
        assert not any(dominates(o, t) for o in complete)
    for t in complete:
        assert 0.0 <= t.values[1] <= 1.0 and t.values[0] > 0
    summary = json.loads((root / "reports" / "tuning" / "pareto-test" / "summary.json").read_text())
    assert sorted(e["trial"] for e in summary["pareto"]) == sorted(t.number for t in front)
    assert (root / "reports" / "tuning" / "pareto-test" / "pareto_front.png").exists()
    # --apply takes a named trial; the default is the best on the first objective
    assert tune.chosen_trial(study).number == min(complete, key=lambda t: t.values[0]).number
    named = front[-1].number
    params_file = tmp_path / "params.yaml"
    params_file.write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    p["tune"]["storage"] = storage
    plan = tune.prepare("inner", 0, storage, "pareto-test", 1, tmp_path, typed(p))
    plan = plan.model_copy(update={"root": str(tmp_path)})
    tune.finish(plan, apply=True, trial=named)
    import yaml
    applied = yaml.safe_load(params_file.read_text())
    assert applied["inner"]["beta"] == pytest.approx(study.trials[named].params["inner.beta"])
    with pytest.raises(Exception, match="did not complete"):
        tune.chosen_trial(study, 999)
    # a study keeps its objectives: resuming it with others is refused
    p["tune"]["inner"]["objectives"] = ["val_loss"]
    with pytest.raises(Exception, match="other objectives"):
        tune.prepare("inner", 1, storage, "pareto-test", 1, root, typed(p))


def test_training_runs_on_inputs_in_memory_and_writes_nothing(trained, tmp_path, monkeypatch):
    """The library trains without a project on disk: codes in, a model out, no file written, and
    the same model as the stage that keeps its outputs."""
    from audiovae.data.artifacts import load_encodings
    from audiovae.training import inner

    root, params, _, stage_result, _ = trained
    codes, stats, index, manifest = (np.array(part) if i == 0 else part
                                     for i, part in enumerate(load_encodings(root)))  # in memory, not a map
    monkeypatch.chdir(tmp_path)
    before = tree_state(root)
    result = inner.train(typed(params).inner, params["seed"], codes, stats, index, manifest)
    assert not written_by(root, before) and not list(tmp_path.iterdir())
    assert result.info["labels"] == stage_result["info"]["labels"]
    assert [e["val_loss"] for e in result.history.epochs] == [e["val_loss"] for e in stage_result["history"].epochs]


def test_tune_prior_on_the_cached_latents_scores_each_trial_and_writes_no_model(trained, tmp_path):
    """The prior target: trials fit on data/latents in seconds, on the validation latents' likelihood
    and novelty and the clean judge's accuracy on decoded generations; the objectives keep their
    direction, a wrong one for the target is refused, and nothing under the project changes but
    the study's report."""
    root, params, *_ = trained
    p = copy.deepcopy(params)
    p["tune"]["prior"] = {"trials": 3, "objectives": ["generated_accuracy", "novelty_gap"], "space": {
        "prior.temperature": {"type": "float", "low": 0.5, "high": 1.5},
        "prior.covariance": {"type": "categorical", "choices": ["full", "diag"]}}}
    assert tune.inputs_of(typed(p), "prior")[0] == "data/latents"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    before = tree_state(root)
    study = tune.tune("prior", 3, storage=storage, study_name="prior-test", workers=1, root=root, params=typed(p))
    written = written_by(root, before)
    assert all(path.startswith("reports/tuning/prior-test/") for path in written), written
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3 and all(0 <= t.values[0] <= 1 and t.values[1] >= 0 for t in complete)
    # the temperature is part of the prior's trial: another temperature, other generations
    assert len({round(t.params["prior.temperature"], 6) for t in complete}) == 3
    p["tune"]["prior"]["objectives"] = ["full_path"]
    with pytest.raises(Exception, match="prior is tuned on"):
        tune.objectives_of(typed(p), "prior")
