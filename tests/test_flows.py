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


@pytest.mark.slow  # one real `python -m pipeline.flows` process
def test_a_worker_joining_by_hand_refuses_a_bad_plan_in_one_line(tmp_path, capsys):
    """``python -m pipeline.flows tune-worker PLAN`` typed with a wrong file, a file that is no plan,
    or a share the plan does not have: one line that says which, exit 2, no traceback. Every case
    through the command's own ``main``; one of them as the shell runs it, a process of its own."""
    import json
    import subprocess
    import sys

    from conftest import REPO, base_params, typed

    from audiovae.training.tuning.plan import TunePlan
    from pipeline import flows

    not_a_plan = tmp_path / "other.json"
    not_a_plan.write_text(json.dumps({"target": "inner"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    plan = tmp_path / "plan.json"
    plan.write_text(TunePlan(target="inner", params=typed(base_params()), root=".", storage=None, study_name="s",
                             parent_run=None, seed=0, shares=[2, 2]).model_dump_json())
    misspelt = tmp_path / "misspelt.json"
    misspelt.write_text(json.dumps({**json.loads(plan.read_text()), "shares": [2, "two"]}))
    cases = [([str(tmp_path / "nope.json")], "no plan at"), ([str(not_a_plan)], "is not a tuning plan: it lacks params"),
             ([str(misspelt)], "is not a valid tuning plan: shares.1"),
             ([str(broken)], "is not JSON"), ([str(plan), "--index", "2"], "--index 2: the plan has shares 0 to 1"),
             (["--index", "5", str(plan)], "--index 5: the plan has shares 0 to 1")]
    for args, message in cases:
        with pytest.raises(SystemExit) as refused:  # anything but this exit escapes and fails the test
            flows.main(["tune-worker", *args])
        lines = capsys.readouterr().err.strip().splitlines()
        assert refused.value.code == 2 and lines[-1].startswith("tune-worker: refused: ") and message in lines[-1], lines
    args, message = cases[-1]
    done = subprocess.run([sys.executable, "-m", "pipeline.flows", "tune-worker", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[-1].startswith("tune-worker: refused: ") and message in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
