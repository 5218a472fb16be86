"""Prefect flows: the tune flow fans out workers tagged gpu (ephemeral mode, no server)."""
from __future__ import annotations


def test_tune_flow_without_a_deployment_runs_worker_processes(trained, tmp_path, monkeypatch, prefect_home):
    """No ``tune-worker`` deployment (Prefect's ephemeral mode): the workers are local processes, never
    threads of the flow (each trial reseeds the global RNGs); every trial runs once."""
    import os

    import optuna

    root, params, *_ = trained
    from test_tune import tiny_tune_params

    from pipeline import flows
    p = tiny_tune_params(params, root)
    p["tracking"]["enabled"] = False
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    value = flows.tune_flow(target="inner", trials=4, workers=2, storage=storage, study="flow-study",
                            root=str(root), params=p)
    assert value["study"] == "flow-study" and value["ran"] == 4 and value["trials"] == 4
    pids = {worker.split(":")[1] for worker in value["workers"]}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    trials = optuna.load_study(study_name="flow-study", storage=storage).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]


def test_stage_retries_skip_deterministic_failures(prefect_home):
    """Exit code 2 (bad params, missing inputs) fails at once; other failures go to the retry policy."""
    from prefect.states import Failed

    from pipeline import flows
    assert not flows.retry_unless_deterministic(None, None, Failed(data=flows.StageFailed(["dvc"], 2)))
    assert flows.retry_unless_deterministic(None, None, Failed(data=flows.StageFailed(["dvc"], 1)))
    assert flows.retry_unless_deterministic(None, None, Failed(data=RuntimeError("crash")))
