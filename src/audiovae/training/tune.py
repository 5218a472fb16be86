"""Optuna tuning, the incremental way: tune the outer autoencoder first, then the inner VAE on the
cached encodings (each inner trial never touches the outer model, so it is cheap).

Search spaces live in ``params.yaml`` under ``tune.<outer|inner>.space`` as dotted keys::

    inner.beta: {type: float, low: 0.25, high: 4.0, log: true}
    inner.latent_dim: {type: categorical, choices: [8, 16, 32]}

Every trial is a nested MLflow run under the study's parent run (its params, per-epoch
validation loss and final state). ``--apply`` writes the best values back into params.yaml
(only the tuned keys; comments and order preserved), so the next ``dvc repro`` uses them.

What a trial is scored by is ``tune.<target>.objectives``: the model's own validation loss
(``val_loss``), or for the inner VAE what a listener hears (``audiovae.evaluation.validation``): the outer
model's spectrogram loss through the whole path (``full_path``) and the clean classifier's
accuracy on generations (``generated_accuracy``). Two objectives make a multi-objective study:
its Pareto front is plotted and logged, and ``--apply`` takes the trial you name (``--trial``)
or the best one on the first objective.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import optuna

from audiovae import layout
from audiovae.config.params import ParamsError, load_params, project_root, with_values
from audiovae.config.schema import Params, SpaceEntry, Tune, TuneTarget
from audiovae.data.artifacts import load_encodings, open_features
from audiovae.evaluation.validation import NEEDS as VALIDATION_NEEDS
from audiovae.evaluation.validation import OBJECTIVES, Validation
from audiovae.tracking import remote, runs
from audiovae.training.loop import Trained

log = logging.getLogger("audiovae.tune")
DATA_FOR = {"outer": [str(layout.FEATURES)], "inner": [str(layout.ENCODINGS)]}


class RatioPruner(optuna.pruners.BasePruner):
    """The sample-generator seed's rule: stop a trial that is ``ratio`` times worse than the best
    completed trial at the same epoch."""

    def __init__(self, ratio: float = 3.0, warmup_steps: int = 0):
        self.ratio, self.warmup_steps = ratio, warmup_steps

    def prune(self, study, trial) -> bool:
        step = trial.last_step
        if step is None or step < self.warmup_steps:
            return False
        value = trial.intermediate_values[step]
        best = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False,
                                                                      states=(optuna.trial.TrialState.COMPLETE,))
                if step in t.intermediate_values]
        return bool(best) and value > self.ratio * min(best)


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
# a storage that cannot be opened fails at once)
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


def make_sampler(cfg: Tune, space: dict[str, SpaceEntry], seed: int):
    name = cfg.sampler
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.n_startup_trials)
    if name == "grid":
        grid = {}
        for key, spec in space.items():
            if spec.type == "categorical":
                grid[key] = list(spec.choices or [])
            elif spec.grid is not None:
                grid[key] = list(spec.grid)
            else:
                raise ParamsError(f"grid sampler: give tune space {key} a 'grid' list or make it categorical")
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ParamsError(f"tune.sampler must be tpe, grid or random, not {name!r}")


def make_pruner(cfg: Tune):
    name = cfg.pruner
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials,
                                           n_warmup_steps=cfg.pruner_warmup_epochs)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    if name == "ratio":
        return RatioPruner(cfg.pruner_ratio, cfg.pruner_warmup_epochs)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ParamsError(f"tune.pruner must be median, hyperband, ratio or none, not {name!r}")


def suggest(trial: optuna.Trial, key: str, spec: SpaceEntry) -> Any:
    low, high = spec.low, spec.high
    if spec.type in ("float", "int") and (low is None or high is None):
        raise ParamsError(f"tune space {key}: a {spec.type} needs low and high")
    if spec.type == "float" and low is not None and high is not None:
        return trial.suggest_float(key, float(low), float(high), log=bool(spec.log))
    if spec.type == "int" and low is not None and high is not None:
        return trial.suggest_int(key, int(low), int(high), step=int(spec.step or 1), log=bool(spec.log))
    if not spec.choices:
        raise ParamsError(f"tune space {key}: a categorical needs choices")
    return trial.suggest_categorical(key, list(spec.choices))


def target_of(params: Params, target: str) -> TuneTarget:
    """The ``tune.outer`` or ``tune.inner`` section."""
    if target not in ("outer", "inner"):
        raise ParamsError(f"tune target must be outer or inner, not {target!r}")
    return params.tune.outer if target == "outer" else params.tune.inner


def objectives_of(params: Params, target: str) -> list[str]:
    """The study's objectives, checked: names from ``validation.OBJECTIVES``, full-path ones for
    the inner VAE only (they decode its output through the trained outer model)."""
    names: list[str] = list(target_of(params, target).objectives)
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names or len(set(names)) != len(names):
        raise ParamsError(f"tune.{target}.objectives: give distinct names from {', '.join(OBJECTIVES)}, not {names}")
    if target == "outer" and names != ["val_loss"]:
        raise ParamsError("tune.outer.objectives: the outer model is tuned on val_loss only")
    return names


def inputs_of(params: Params, target: str) -> list[str]:
    """The pipeline outputs a trial reads (paths of ``dvc.yaml``): what a worker elsewhere pulls."""
    listened = [n for n in objectives_of(params, target) if n != "val_loss"]
    return DATA_FOR[target] + (VALIDATION_NEEDS if listened else [])


def objective_for(target: str, params: Params, root: Path, parent_run: str | None):
    import torch

    from audiovae.training import inner, outer

    cfg = target_of(params, target)
    space = cfg.space
    names = objectives_of(params, target)
    listened = [n for n in names if n != "val_loss"]
    inputs = inputs_of(params, target)
    scorer: list[Validation] = []  # built once per worker, on its first trial
    held: list[tuple] = []  # the inputs a trial trains on, read once per worker (memory-mapped)

    def training_inputs() -> tuple:
        if not held:
            missing = [rel for rel in inputs if not (root / rel).exists()]
            if missing:
                raise FileNotFoundError(f"{', '.join(missing)} missing under {root}: run `dvc repro` first")
            held.append(open_features(root / layout.FEATURES) if target == "outer" else load_encodings(root))
        return held[0]

    def score(result: Trained) -> list[float]:
        history = result.history
        values = {"val_loss": min(e["val_loss"] for e in history.epochs)}
        if listened:
            if not scorer:
                vcfg = params.tune.validation
                scorer.append(Validation.from_project(root, params, vcfg.clips, vcfg.generated_per_label,
                                                      classifier="generated_accuracy" in names))
            model = scorer[0].model(result.model, result.info)
            if "full_path" in names:
                values["full_path"] = scorer[0].full_path(model)
            if "generated_accuracy" in names:
                values["generated_accuracy"] = scorer[0].generated_accuracy(model)
        return [values[n] for n in names]

    def objective(trial: optuna.Trial):
        # which worker ran it: with K workers on K machines, each shows up here
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("checkout", str(root))
        trial.set_user_attr("torch_threads", torch.get_num_threads())
        suggested = {key: suggest(trial, key, spec) for key, spec in space.items()}
        # the trial logs its own nested run below, not a stage run
        trial_params = with_values(params, {**suggested, "tracking.enabled": False,
                                            f"{target}.train.epochs": cfg.epochs})
        tracker = runs.tracker(params, root)
        tracker.start_run(run_name=f"trial-{trial.number}", tags={
            "mlflow.parentRunId": parent_run, "stage": f"tune_{target}", "optuna.trial": str(trial.number),
            "optuna.study": trial.study.study_name, **runs.git_state(root)} if tracker.on else None)
        tracker.log_params(dict(trial.params))

        def report(value: float, epoch: int) -> None:
            tracker.log_metrics({"val_loss": value}, step=epoch)
            if len(names) > 1:  # Optuna prunes single-objective studies only
                return
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (val {value:.5g})")

        state = "FAIL"
        try:
            # the training functions themselves, on inputs in memory: a trial writes no file
            if target == "outer":
                specs, index, codec = training_inputs()
                result = outer.train(trial_params.outer, trial_params.seed, specs, index, codec, trial_report=report)
            else:
                codes, stats, index, manifest = training_inputs()
                result = inner.train(trial_params.inner, trial_params.seed, codes, stats, index, manifest,
                                     trial_report=report)
            history = result.history
            values = score(result)
            trial.set_user_attr("params", int(result.info["params"]))
            trial.set_user_attr("train_seconds", float(history.seconds))
            state = "COMPLETE"
            tracker.log_metrics({"best_val_loss": min(e["val_loss"] for e in history.epochs),
                                 "params": result.info["params"],
                                 **{f"objective.{n}": v for n, v in zip(names, values)}})
            return values[0] if len(values) == 1 else values
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        except ParamsError as exc:  # the parameter cap: a constraint, not a crash
            state = "PRUNED"
            trial.set_user_attr("rejected", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        finally:
            tracker.set_tag("optuna.state", state)
            tracker.end_run(status="FINISHED" if state in ("COMPLETE", "PRUNED") else "FAILED")
    return objective


def _worker(target: str, params: Params, root: str, storage_url: str | None, study_name: str, n_trials: int,
            parent_run: str | None, seed: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root_path = Path(root)
    cfg = params.tune
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url, root_path, params),
                              sampler=make_sampler(cfg, target_of(params, target).space, seed),
                              pruner=make_pruner(cfg))
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:  # one plain line per trial
        log.info("%s trial %d %s%s", study.study_name, trial.number, trial.state.name,
                 f" values={[round(v, 5) for v in trial.values]}" if trial.values is not None else "")
    study.optimize(objective_for(target, params, root_path, parent_run), n_trials=n_trials, callbacks=[report])


def prepare(target: str, trials: int, storage: str | None = None, study_name: str | None = None,
            workers: int = 1, root: Path | None = None, params: Params | None = None,
            elsewhere: bool = False) -> dict:
    """Create (or load) the study and its MLflow parent run; returns what each worker needs.

    ``elsewhere``: the workers run on other machines (Prefect deployments). Then the study storage
    and the tracking URI must be shared servers, the inputs the objective reads must be current and
    are pushed to the DVC remote, and the plan names the git commit and their hashes, which each
    worker checks in its own clone before its first trial (``remote.bring_inputs``)."""
    root = root or project_root()
    params = params or load_params(root / "params.yaml")
    cfg = params.tune
    space = target_of(params, target).space
    seed = params.seed
    storage = storage or cfg.storage or None
    study_name = study_name or f"{target}-{cfg.study_suffix}"
    directions = [OBJECTIVES[name] for name in objectives_of(params, target)]
    uri = runs.tracking_uri(params, root) if params.tracking.enabled else None
    shared: dict[str, Any] = {"elsewhere": False, "commit": None, "inputs": None}
    if elsewhere:
        remote.check_shared_stores(storage, uri)
        inputs = remote.publish_inputs(root, inputs_of(params, target))
        shared = {"elsewhere": True, "commit": remote.git_commit(root), "inputs": inputs}
        log.info("tune: inputs pushed for workers elsewhere at commit %s: %s", shared["commit"][:12], inputs)
    study = optuna.create_study(storage=make_storage(storage, root, params), study_name=study_name, directions=directions,
                                load_if_exists=True, sampler=make_sampler(cfg, space, seed), pruner=make_pruner(cfg))
    if [d.name.lower() for d in study.directions] != directions:
        raise ParamsError(f"study {study_name} was created with other objectives "
                          f"({[d.name.lower() for d in study.directions]}); name a new one with --study")
    tracker = runs.tracker(params, root)
    parent = tracker.start_run(run_name=f"tune-{study_name}", tags={
        "kind": "study", "stage": f"tune_{target}", "optuna.study": study_name, **runs.git_state(root)})
    tracker.log_params({"target": target, "trials": trials, "workers": workers, "sampler": cfg.sampler,
                        "pruner": cfg.pruner, "epochs_per_trial": target_of(params, target).epochs,
                        "objectives": ",".join(objectives_of(params, target))})
    tracker.end_run()
    shares = [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]
    # a plan crosses processes and machines (a Prefect deployment's JSON parameters): its params
    # travel as their plain values and are validated again where they are used (``plan_params``)
    # ``root`` is the coordinator's checkout, used by its local worker processes only; a worker
    # elsewhere runs in its own clone and checks ``commit`` and ``inputs`` there
    return {"target": target, "params": params.model_dump(), "root": str(root), "storage": storage, "study_name": study_name,
            "parent_run": parent, "seed": seed, "shares": [n for n in shares if n], "before": len(study.trials),
            "started": time.monotonic(), "tracking_uri": uri, **shared}


def plan_params(plan: dict) -> Params:
    """The typed parameters a plan carries."""
    return Params.model_validate(plan["params"])


def run_worker(plan: dict, index: int, root: Path | None = None) -> remote.Pulled | None:
    """One worker's share of the trials (a process or a Prefect task). ``root``: the worker's own
    checkout, for a plan made for workers elsewhere: its commit is checked and the plan's inputs
    pulled and verified there before any trial starts (a refusal runs none). Returns what it
    pulled (None for a worker on the coordinator's machine)."""
    here = str(root or plan["root"])
    pulled = None
    if plan.get("elsewhere") and root is not None:
        pulled = remote.bring_inputs(Path(root), plan["commit"], plan["inputs"])
        log.info("tune worker %d in %s: pulled and verified %s: %d bytes in %.1f s", index, root,
                 ", ".join(sorted(pulled.hashes)), pulled.bytes, pulled.seconds)
    if plan.get("elsewhere") and plan.get("tracking_uri"):  # the coordinator's store, not a mlflow.db here
        os.environ["MLFLOW_TRACKING_URI"] = plan["tracking_uri"]
    threads = plan_params(plan).tune.threads_per_worker
    if plan.get("elsewhere") and threads:  # workers that share a machine (0: every core of this one)
        import torch
        torch.set_num_threads(threads)
    _worker(plan["target"], plan_params(plan), here, plan["storage"], plan["study_name"],
            plan["shares"][index], plan["parent_run"], plan["seed"] + index)
    return pulled


def chosen_trial(study: optuna.Study, number: int | None = None) -> optuna.trial.FrozenTrial:
    """The trial ``--apply`` takes: the one numbered ``number``, else the best on the first objective."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ParamsError("no completed trial to apply")
    if number is not None:
        picked = [t for t in complete if t.number == number]
        if not picked:
            raise ParamsError(f"trial {number} of study {study.study_name} did not complete; "
                              f"completed: {[t.number for t in complete]}")
        return picked[0]
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1
    return min(complete, key=lambda t: sign * t.values[0])


def finish(plan: dict, apply: bool = False, trial: int | None = None) -> optuna.Study:
    """Report the study (plots, trials per minute, MLflow) and optionally apply the best values
    (``trial``: a chosen trial's values instead, e.g. one from a Pareto front)."""
    root, params = Path(plan["root"]), plan_params(plan)
    minutes = (time.monotonic() - plan["started"]) / 60
    study = optuna.load_study(study_name=plan["study_name"], storage=make_storage(plan["storage"], root, params))
    done = len(study.trials) - plan["before"]
    rate = done / max(minutes, 1e-9)
    log.info("tune %s: %d trials in %.1f min (%.2f trials/min)", plan["target"], done, minutes, rate)
    out_dir = root / layout.TUNING / plan["study_name"]
    summary = save_study_report(study, out_dir, rate)
    tracker = runs.tracker(params, root)
    if plan["parent_run"]:  # the study's run (none when tracking is off)
        tracker.start_run(run_id=plan["parent_run"])
        tracker.log_metrics({"trials_per_minute": rate, "trials": done,
                             **({"best_value": summary["best_value"]} if summary.get("best_value") is not None else {})})
        tracker.log_artifacts(out_dir, artifact_path="tuning")
        tracker.end_run()
    if apply:
        apply_params(root / "params.yaml", chosen_trial(study, trial).params)
    return study


def tune(target: str, trials: int, storage: str | None = None, study_name: str | None = None, workers: int = 1,
         apply: bool = False, root: Path | None = None, params: Params | None = None,
         trial: int | None = None) -> optuna.Study:
    """Run (or resume) a study of ``trials`` more trials split over ``workers`` processes."""
    plan = prepare(target, trials, storage, study_name, workers, root, params)
    if trials > 0:
        if len(plan["shares"]) == 1:
            run_worker(plan, 0)
        else:
            run_processes(plan)
    return finish(plan, apply, trial)


def worker_threads(params: Params, workers: int) -> int:
    """Torch threads for each of ``workers`` local processes: they share the machine's cores
    (two processes that each take every core run slower together than one alone)."""
    chosen = params.tune.threads_per_worker
    return chosen or max(1, (os.cpu_count() or 1) // max(1, workers))


def _process_worker(plan: dict, index: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    run_worker(plan, index)


def run_processes(plan: dict) -> None:
    """Every share of ``plan`` in its own (spawned) process on this machine, each with its share of
    the cores. A worker that dies (killed, out of memory) has its running trial failed at once and
    retried, and a replacement finishes the rest of its share; after ``tune.max_retries``
    replacements for one share, the study stops with an error naming the exit codes."""
    ctx = mp.get_context("spawn")
    threads = worker_threads(plan_params(plan), len(plan["shares"]))
    log.info("tune: %d worker processes, %d torch thread(s) each", len(plan["shares"]), threads)
    retries = plan_params(plan).tune.max_retries
    pending = list(enumerate(plan["shares"]))
    attempts = {i: 0 for i, _ in pending}
    deaths: list[int | None] = []
    with stopped_by_sigterm():
        while pending:
            procs = []
            for index, share in pending:
                part = dict(plan, shares=[0] * len(plan["shares"]))
                part["shares"][index] = share
                proc = ctx.Process(target=_process_worker, args=(part, index, threads))
                proc.start()
                procs.append((index, share, proc))
            pending = []
            try:
                for index, share, proc in procs:
                    proc.join()
                    if proc.exitcode == 0:
                        continue
                    deaths.append(proc.exitcode)
                    assert proc.pid is not None  # started above
                    left = share - settle_dead_worker(plan, proc.pid)
                    log.warning("tune worker %d (pid %d) died with exit code %s; %d of its trials left",
                                index, proc.pid, proc.exitcode, left)
                    attempts[index] += 1
                    if left > 0 and attempts[index] <= retries:
                        pending.append((index, left))
                    elif left > 0:
                        raise RuntimeError(f"tuning worker {index} died {attempts[index]} times (exit codes "
                                           f"{deaths}); {left} of its trials were not run: resume with the same --study")
            except KeyboardInterrupt:  # Ctrl-C or a scheduler's SIGTERM: stop the workers, leave nothing RUNNING
                for _, _, proc in procs:
                    if proc.is_alive():
                        proc.terminate()
                    proc.join()
                    if proc.pid is not None:
                        settle_dead_worker(plan, proc.pid)
                raise


@contextlib.contextmanager
def stopped_by_sigterm():
    """A scheduler's time limit (SIGTERM) stops ``tune`` as Ctrl-C does, so its workers' trials are
    failed and queued again instead of left RUNNING. Only the main thread may set a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def settle_dead_worker(plan: dict, pid: int) -> int:
    """Fail the trials a dead local worker left RUNNING (ending their MLflow runs), queue their
    parameters again; returns how many trials it finished."""
    root, params = Path(plan["root"]), plan_params(plan)
    study = optuna.load_study(study_name=plan["study_name"], storage=make_storage(plan["storage"], root, params))
    worker = f"{socket.gethostname()}:{pid}"
    mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == worker]
    dead = StaleTrial(params.tune.max_retries, params, root)
    for trial in mine:
        if trial.state == optuna.trial.TrialState.RUNNING:
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            dead(study, study._storage.get_trial(trial._trial_id))
            log.warning("trial %d of dead worker %s failed; its parameters are queued again", trial.number, worker)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(1 for t in mine if t.state in finished)


def save_study_report(study: optuna.Study, out_dir: Path, rate: float) -> dict:
    """Optimisation history, parameter importances and parallel coordinates as PNG, plus a summary."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    from audiovae.atomic import atomic_path, write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    multi = len(study.directions) > 1
    best = chosen_trial(study) if complete else None
    summary = {"study": study.study_name, "trials": len(study.trials), "states": states,
               "directions": [d.name.lower() for d in study.directions],
               "trials_per_minute_last_run": rate,
               "best_value": best.values[0] if best else None,   # on the first objective
               "best_trial": best.number if best else None,
               "best_params": best.params if best else None}
    if multi:
        summary["pareto"] = [{"trial": t.number, "values": t.values, "params": t.params}
                             for t in sorted(study.best_trials, key=lambda t: t.number)]
    write_json(out_dir / "summary.json", summary)
    first: dict[str, Any] = {"target": lambda t: t.values[0], "target_name": "first objective"} if multi else {}
    plots = {"optimization_history": lambda s: vis.plot_optimization_history(s, **first),
             "parallel_coordinate": lambda s: vis.plot_parallel_coordinate(s, **first)}
    if multi and len(study.directions) <= 3:
        plots["pareto_front"] = vis.plot_pareto_front
    if len(complete) >= 2 and best is not None and len(best.params) > 0:
        plots["param_importances"] = lambda s: vis.plot_param_importances(s, **first)
    for name, func in plots.items():
        if not complete:
            break
        try:
            ax: Any = func(study)  # one Axes, or an array of them (a Pareto front of three)
        except (ValueError, RuntimeError) as exc:  # e.g. importances need variation in the values
            log.warning("tuning plot %s skipped: %s", name, exc)
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 5)
        with atomic_path(out_dir / f"{name}.png", suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
    return summary


def apply_params(path: Path, best: dict[str, Any]) -> None:
    """Write ``best`` (dotted keys) into params.yaml, changing nothing else (ruamel round trip)."""
    from ruamel.yaml import YAML

    from audiovae.atomic import atomic_path

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    with open(path) as fh:
        doc = yaml.load(fh)
    for key, value in best.items():
        node = doc
        parts = key.split(".")
        for part in parts[:-1]:
            if part not in node:
                raise ParamsError(f"--apply: params.yaml has no section {part!r} for tuned key {key}")
            node = node[part]
        if parts[-1] not in node:
            raise ParamsError(f"--apply: params.yaml has no key {key}")
        node[parts[-1]] = value
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        yaml.dump(doc, fh)
