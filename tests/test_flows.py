"""Prefect flows: the tune flow fans out workers tagged gpu (ephemeral mode, no server)."""
from __future__ import annotations

import pytest


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


def test_repro_until_names_the_stages_it_knows(prefect_home, tmp_path):
    """A misspelt ``--until`` stage is refused with dvc.yaml's stage names, before any stage runs;
    ``--until`` and ``-S`` together are refused by the command line."""
    from pipeline import flows
    (tmp_path / "dvc.yaml").write_text("stages:\n  params: {cmd: 'true'}\n  train_outer: {cmd: 'true'}\n")
    with pytest.raises(ValueError, match="no stage 'train_outr' in dvc.yaml; its stages: params, train_outer"):
        flows.repro_flow.fn(str(tmp_path), until="train_outr")
    with pytest.raises(SystemExit) as refused:
        flows.main(["repro", "--until", "train_outer", "-S", "inner.beta=0.3"])
    assert refused.value.code == 2
