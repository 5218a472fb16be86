"""Work survives dying workers: a tune worker process killed with SIGKILL mid-trial (SQLite and
PostgreSQL storages), the PostgreSQL server restarted mid-study, a single-process `tune` killed and
resumed after the heartbeat's grace period, a tracking server killed and restarted mid-training,
the `dvc repro` of a stage under a Prefect flow killed and retried. Real processes, servers and signals, no mocks."""
from __future__ import annotations

import copy
import multiprocessing as mp
import os
import signal
import threading
import time

import optuna
import psutil
import pytest
import sqlalchemy
import yaml
from conftest import (
    DVC,
    free_port,
    linked_project,
    sh,
    start_mlflow_server,
    stop_process,
    typed,
)
from mlflow.tracking import MlflowClient
from test_tune import tiny_tune_params

from audiovae.stages import train_inner
from audiovae.tracking.runs import TrackingError
from audiovae.training import tune

RUNNING, COMPLETE, FAIL = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE,
                           optuna.trial.TrialState.FAIL)


def survival_params(params, root, heartbeat=10, grace=60):
    p = tiny_tune_params(params, root)
    p["tune"].update(pruner="none", heartbeat_seconds=heartbeat, grace_seconds=grace, max_retries=2)
    p["tune"]["inner"]["epochs"] = 12  # long enough to be caught mid-trial
    return p


def first_reporting_trial(storage, study_name, root, timeout=300):
    """The first trial of the study that is RUNNING and has reported an epoch (so its MLflow run is
    open and its worker is mid-training), or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    engine, opened = sqlalchemy.create_engine(storage), None
    try:
        while time.monotonic() < deadline:
            # the watcher opens the storage only once `tune` has created the study: Optuna's storage
            # writes its schema version when it opens a fresh database, and two writers would collide
            if opened is None:
                try:
                    with engine.connect() as connection:
                        exists = connection.execute(sqlalchemy.text(
                            "SELECT count(*) FROM studies WHERE study_name = :n"), {"n": study_name}).scalar()
                except sqlalchemy.exc.SQLAlchemyError:  # no tables yet
                    exists = 0
                if exists:
                    opened = tune.make_storage(storage, root)  # one storage, one pooled connection
            if opened is not None:
                study = optuna.load_study(study_name=study_name, storage=opened)
                for t in study.get_trials(deepcopy=False, states=(RUNNING,)):
                    if t.user_attrs.get("worker") and t.intermediate_values:
                        return t
            time.sleep(0.05)
        return None
    finally:
        engine.dispose()
        if opened is not None:
            opened.engine.dispose()


def kill_a_trial_worker(storage, study_name, root, killed, timeout=300):
    """SIGKILL the worker process of the first trial that has reported an epoch; record (trial
    number, params, pid) in ``killed``."""
    trial = first_reporting_trial(storage, study_name, root, timeout)
    if trial is not None:
        pid = int(trial.user_attrs["worker"].rsplit(":", 1)[1])
        assert pid != os.getpid()  # workers are processes of their own
        os.kill(pid, signal.SIGKILL)
        killed.append((trial.number, dict(trial.params), pid))


def assert_healed(study, killed_number, killed_params, requested, mlflow_uri=None):
    states = [t.state for t in study.trials]
    assert states.count(COMPLETE) == requested  # every requested trial, after the death
    assert RUNNING not in states and optuna.trial.TrialState.WAITING not in states
    assert [t.number for t in study.trials if t.state == FAIL] == [killed_number]
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed_number]
    assert len(retried) == 1 and retried[0].state == COMPLETE
    assert retried[0].params == killed_params  # the dead trial's parameters were run again
    if mlflow_uri:
        client = MlflowClient(tracking_uri=mlflow_uri)
        experiment = client.get_experiment_by_name("audiovae")
        runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`optuna.trial` = '{killed_number}'")
        assert [r.info.status for r in runs] == ["FAILED"]  # ended, not left RUNNING
        assert runs[0].data.tags["optuna.state"] == "FAIL"


def run_two_workers_and_kill_one(root, params, storage, study_name):
    killed: list = []
    killer = threading.Thread(target=kill_a_trial_worker, args=(storage, study_name, root, killed))
    killer.start()
    try:
        study = tune.tune("inner", 3, storage=storage, study_name=study_name, workers=2, root=root, params=typed(params))
    finally:
        killer.join()
    assert killed, "no trial was caught running"
    return study, killed[0]


def test_killed_worker_trial_fails_is_retried_and_the_study_completes(trained, tmp_path, monkeypatch):
    root, params, *_ = trained
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study, (number, trial_params, pid) = run_two_workers_and_kill_one(
        root, survival_params(params, root), storage, "inner-killed")
    assert_healed(study, number, trial_params, requested=3, mlflow_uri=mlflow_uri)
    # two workers on this machine share its cores instead of each taking all of them
    threads = {t.user_attrs["torch_threads"] for t in study.trials if t.state == COMPLETE}
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}


def test_killed_worker_on_a_postgres_study(trained, postgres):
    root, params, *_ = trained
    p = survival_params(params, root)
    p["tracking"]["enabled"] = False
    storage = postgres("optuna_killed")
    study, (number, trial_params, _) = run_two_workers_and_kill_one(root, p, storage, "pg-killed")
    assert_healed(study, number, trial_params, requested=3)


def test_a_study_outlives_its_database_server_restarting(trained, postgres, capfd):
    """PostgreSQL stopped (fast shutdown: every connection cut) while two workers train, down for
    three seconds, started again: the workers wait it out and the study holds every trial once."""
    root, params, *_ = trained
    p = survival_params(params, root, heartbeat=1, grace=60)
    p["tracking"]["enabled"] = False
    storage = postgres("optuna_restart")
    outage: list = []

    def restart_mid_trial():
        trial = first_reporting_trial(storage, "pg-restart", root)
        if trial is not None:
            postgres.stop()
            outage.append(trial.number)
            time.sleep(3)
            postgres.start()
    restarter = threading.Thread(target=restart_mid_trial)
    restarter.start()
    try:
        study = tune.tune("inner", 3, storage=storage, study_name="pg-restart", workers=2, root=root, params=typed(p))
    finally:
        restarter.join()
    assert outage, "no trial was caught running"
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    assert [t.state for t in study.trials] == [COMPLETE] * 3  # none failed, none retried, none doubled
    assert "study storage unreachable" in capfd.readouterr().err  # the workers did meet the outage


def test_trial_of_a_killed_tune_is_failed_after_the_grace_period_and_retried(trained, tmp_path, monkeypatch):
    root, params, *_ = trained
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    p = survival_params(params, root, heartbeat=1, grace=3)
    # a whole `tune` (one worker, in its own process) dies with SIGKILL: nothing of it can clean up
    child = mp.get_context("spawn").Process(target=tune.tune, args=("inner", 1),
                                            kwargs={"storage": storage, "study_name": "inner-stale", "workers": 1,
                                                    "root": root, "params": typed(p)})
    child.start()
    killed: list = []
    kill_a_trial_worker(storage, "inner-stale", root, killed)
    child.join(60)
    assert killed and child.exitcode == -signal.SIGKILL
    number, trial_params, _ = killed[0]
    study = optuna.load_study(study_name="inner-stale", storage=tune.make_storage(storage, root))
    assert study.trials[number].state == RUNNING  # the zombie the issue describes
    time.sleep(4)  # past the grace period without a heartbeat
    study = tune.tune("inner", 1, storage=storage, study_name="inner-stale", workers=1, root=root, params=typed(p))
    assert_healed(study, number, trial_params, requested=1, mlflow_uri=mlflow_uri)


def test_grace_period_must_exceed_the_heartbeat(trained, tmp_path):
    root, params, *_ = trained
    p = survival_params(params, root, heartbeat=10, grace=10)
    with pytest.raises(tune.ParamsError, match="grace_seconds"):
        tune.make_storage(f"sqlite:///{tmp_path / 'o.db'}", root, typed(p))


def tracked_inner_params(params, tmp_path, monkeypatch, retry_seconds, epochs):
    """Params that train the inner VAE while logging to an `mlflow server` on a port fixed in
    advance (so it can be restarted where the client looks); returns them with the store and port."""
    store, port = f"sqlite:///{tmp_path / 'store.db'}", free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    p = copy.deepcopy(params)
    p["tracking"].update(enabled=True, retry_seconds=retry_seconds)
    p["inner"]["train"].update(epochs=epochs, patience=100)
    return p, store, port


def test_training_outlives_its_tracking_server(trained, tmp_path, monkeypatch):
    """A real `mlflow server` killed mid-training and restarted on the same store: the stage goes
    on, finishes, and its run holds every epoch's metrics."""
    root, params, *_ = trained
    p, store, port = tracked_inner_params(params, tmp_path, monkeypatch, retry_seconds=120, epochs=8)
    servers = [start_mlflow_server(store, tmp_path, port)]
    events = []

    def blink(model, epoch):  # before epoch 2 the server dies (SIGKILL); before epoch 5 it is back
        if epoch == 2:
            os.killpg(servers[-1].pid, signal.SIGKILL)
            servers[-1].wait()
            events.append("killed")
        elif epoch == 5:
            servers.append(start_mlflow_server(store, tmp_path, port))
            events.append("restarted")

    try:
        with linked_project(root, tmp_path, ["data/encodings"]) as scratch:
            result = train_inner.run(typed(p), scratch, epoch_hook=blink)
    finally:
        for server in servers:
            stop_process(server)
    assert events == ["killed", "restarted"]
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("audiovae")
    run = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'train_inner'")[0]
    assert run.info.status == "FINISHED"
    epochs = [e["epoch"] for e in result["history"].epochs]
    assert len(epochs) == 8
    for key in ("val_loss", "train_loss", "beta"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == epochs, key
    assert "params" in run.data.metrics  # the end-of-stage logging reached the server too


def test_a_tracking_server_that_never_comes_back_is_named_after_the_outputs_are_written(trained, tmp_path,
                                                                                      monkeypatch):
    root, params, *_ = trained
    p, store, port = tracked_inner_params(params, tmp_path, monkeypatch, retry_seconds=2, epochs=3)
    server = start_mlflow_server(store, tmp_path, port)

    def die(model, epoch):
        if epoch == 1 and server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    try:
        with linked_project(root, tmp_path, ["data/encodings"]) as scratch:
            with pytest.raises(TrackingError, match=r"epochs \[1, 2\] were not logged"):
                train_inner.run(typed(p), scratch, epoch_hook=die)
            assert (scratch / "data" / "models" / "inner" / "model.pt").exists()  # the model is kept
            assert (scratch / "reports" / "inner" / "history.csv").exists()
    finally:
        stop_process(server)


def kill_stage_tree(root, stage, checkpoint, killed, timeout=300):
    """Once ``checkpoint`` exists (an epoch is done), SIGKILL the `dvc repro` running ``stage`` in
    ``root`` and every process under it at once, as a machine that dies takes them all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not checkpoint.exists():
        time.sleep(0.05)
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["cwd"] == str(root) and "repro" in cmdline and stage in cmdline and proc.pid != os.getpid():
            tree = [proc, *proc.children(recursive=True)]
            for member in tree:
                member.send_signal(signal.SIGKILL)
            killed.append([member.pid for member in tree])
            return


def test_a_stage_whose_worker_dies_is_retried_by_the_flow_and_resumes(dvc_copy, prefect_home, monkeypatch):
    """`python -m pipeline.flows repro`: the `dvc repro` of train_outer and its stage process are
    killed with SIGKILL after an epoch; the flow retries the stage, DVC passes over the dead
    process's lock, training resumes from its epoch checkpoint (the retry's run logs only the
    epochs after it), the dead attempt's run is ended FAILED and the pipeline ends up to date."""
    root, env = dvc_copy  # a pipeline that ran: the stages before train_outer are up to date
    epochs = 12
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["outer"]["train"].update(epochs=epochs, patience=epochs)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for key in ("AUDIOVAE_DATA_MIRROR", "AUDIOVAE_ROOT", "PATH"):
        monkeypatch.setenv(key, env[key])
    from pipeline import flows
    monkeypatch.setattr(flows, "run_stage", flows.run_stage.with_options(retry_delay_seconds=1))  # not 10 s

    killed: list = []
    killer = threading.Thread(target=kill_stage_tree,
                              args=(root, "train_outer", root / "data" / "checkpoints" / "outer.pt", killed))
    started_ms = int(time.time() * 1000)
    killer.start()
    try:
        ran = flows.repro_flow(str(root), until="train_outer")
    finally:
        killer.join()
    assert killed and len(killed[0]) >= 2, "the stage was not caught running"  # dvc and the stage under it
    assert ran[-1] == "train_outer"
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("audiovae")
    dead, retry = sorted(client.search_runs([experiment.experiment_id], filter_string=(
        f"tags.stage = 'train_outer' and attributes.start_time >= {started_ms}")), key=lambda r: r.info.start_time)
    assert dead.info.status == "FAILED" and retry.info.status == "FINISHED"
    assert dead.data.tags["mlflow.parentRunId"] == retry.data.tags["mlflow.parentRunId"]  # one flow run
    before = sorted(m.step for m in client.get_metric_history(dead.info.run_id, "val_loss"))
    after = sorted(m.step for m in client.get_metric_history(retry.info.run_id, "val_loss"))
    # resumed from the dead attempt's last checkpoint, not from scratch: an epoch it finished and
    # logged but was killed before checkpointing is trained (and logged) again, none is skipped
    assert before and after and after == list(range(after[0], epochs))
    assert 1 <= after[0] <= before[-1] + 1 and set(before) | set(after) == set(range(epochs))
    history = (root / "reports" / "outer" / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + epochs  # every epoch, the ones before the death included
    assert not (root / "data" / "checkpoints" / "outer.pt").exists()
    assert "up to date" in sh([str(DVC), "status", "train_outer"], root, env)
