"""The study storage every worker shares: SQLite (one machine), any SQLAlchemy URL (PostgreSQL
across machines) or an Optuna journal file; calls that wait out a database server restarting, and
heartbeats that fail a dead worker's trial and queue its parameters again."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import optuna

from audiovae.config.params import ParamsError
from audiovae.config.schema import Params
from audiovae.tracking import runs

log = logging.getLogger("audiovae.tune")


def _connection_lost(exc: BaseException) -> bool:
    """Whether a storage error is the database being unreachable (a server restarting, a dropped
    connection) rather than a bad query: only those are worth waiting out."""
    import sqlalchemy.exc

    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    return isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or (
        isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated)


class ReconnectingStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose calls wait out a database server that restarts.

    ``pool_pre_ping`` replaces a pooled connection the server dropped, but a call made while the
    server is down (seconds, during a restart) fails, and Optuna fails the trial with it. Here each
    call is retried with back-off for up to ``outage_seconds``; errors that are not a lost
    connection are raised at once."""

    def __init__(self, url: str, outage_seconds: float = 0.0, **kwargs):
        self.outage_seconds = outage_seconds
        super().__init__(url, **kwargs)


def _waiting_out_outages(method):
    def call(self, *args, **kwargs):
        deadline, pause = time.monotonic() + self.outage_seconds, 0.5
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - only lost connections are retried, others re-raised
                if not _connection_lost(exc) or time.monotonic() + pause > deadline:
                    raise
                log.warning("study storage unreachable (%s); retrying %s in %.1f s", type(exc.__cause__ or exc).__name__,
                            method.__name__, pause)
                time.sleep(pause)
                pause = min(2 * pause, 5.0)
    call.__name__, call.__doc__ = method.__name__, method.__doc__
    return call


# every call a worker makes during a study (the base class's constructor and schema upgrades are not:
# a storage that cannot be opened fails at once). Optuna has no hook for retrying a storage call, so
# its methods are wrapped; _get_stale_trial_ids is private (what the heartbeat calls), checked
# against Optuna 5.0.0.
for _name in ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
              "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
              "get_study_system_attrs", "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies",
              "create_new_trial", "set_trial_param", "get_trial_param", "set_trial_state_values",
              "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
              "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "get_best_trial",
              "record_heartbeat", "_get_stale_trial_ids"):
    setattr(ReconnectingStorage, _name, _waiting_out_outages(getattr(optuna.storages.RDBStorage, _name)))


class StaleTrial:
    """What happens to a trial whose worker died: its MLflow run ends FAILED (not left open) and
    its parameters go back to the study as a waiting trial, at most ``max_retries`` times."""

    def __init__(self, max_retries: int, params: Params, root: Path):
        self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
        self.params, self.root = params, root

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        end_trial_run(self.params, self.root, study.study_name, trial.number)
        self.retry(study, trial)


def end_trial_run(params: Params, root: Path, study_name: str, number: int) -> None:
    """Mark a dead trial's MLflow run FAILED (its worker could not); nothing when tracking is off."""
    try:
        mlflow = runs.configure(params, root)
        if mlflow is None:
            return
        client = mlflow.MlflowClient()
        found = mlflow.search_runs(search_all_experiments=True, output_format="list", filter_string=(
            f"tags.`optuna.study` = '{study_name}' and tags.`optuna.trial` = '{number}' and attributes.status = 'RUNNING'"))
        for run in found:
            client.set_tag(run.info.run_id, "optuna.state", "FAIL")
            client.set_terminated(run.info.run_id, "FAILED")
    except Exception as exc:  # noqa: BLE001 - an unreachable tracking store must not stop the study healing
        log.warning("could not end the MLflow run of trial %d: %s", number, exc)


def make_storage(url: str | None, root: Path, params: Params | None = None):
    """SQLite (default, with a busy timeout for several processes), any SQLAlchemy URL, or
    ``journal:PATH`` for an Optuna journal file.

    With ``params`` (their ``tune`` section) a database storage beats a heartbeat for each running
    trial: a trial whose worker died (a preempted machine, the OOM killer) is failed at the next
    start once ``grace_seconds`` have passed without a beat, and its parameters are retried. The
    connection pool pings before use, so a database server that restarted is reconnected to, and
    a call made while it is down waits up to ``storage_retry_seconds`` for it."""
    url = url or f"sqlite:///{root / 'optuna.db'}"
    if url.startswith("journal:"):  # Optuna's journal has no heartbeats: run_processes covers local deaths
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    beats: dict[str, Any] = {}
    cfg = params.tune if params else None
    outage = cfg.storage_retry_seconds if cfg else 0.0
    if params is not None and cfg is not None and cfg.heartbeat_seconds > 0:
        beat, grace = cfg.heartbeat_seconds, cfg.grace_seconds
        if grace <= beat:
            raise ParamsError(f"tune.grace_seconds ({grace}) must exceed tune.heartbeat_seconds ({beat}): "
                              "a live worker would be taken for dead between two beats")
        beats = {"heartbeat_interval": beat, "grace_period": grace,
                 "heartbeat_stale_trial_callback": StaleTrial(cfg.max_retries, params, root)}
    return ReconnectingStorage(url, outage_seconds=outage, engine_kwargs=kwargs, **beats)
