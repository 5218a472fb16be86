"""The workers of a study: one share of its trials each, as local processes that share the
machine's cores or as Prefect flow runs elsewhere; a worker that dies has its trial failed and
retried, and SIGTERM stops them all without leaving a trial RUNNING."""
from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
from pathlib import Path

import optuna
from pydantic import ValidationError

from audiovae.config.schema import Params
from audiovae.tracking import remote
from audiovae.training.tuning.objective import objective_for
from audiovae.training.tuning.plan import TunePlan
from audiovae.training.tuning.search import make_pruner, make_sampler, target_of
from audiovae.training.tuning.storage import StaleTrial, make_storage

log = logging.getLogger("audiovae.tune")


def read_plan(path: Path, index: int) -> TunePlan:
    """A plan handed to a worker by hand (``pipeline.flows tune-worker``), checked before it is
    used: a ValueError names what is wrong with the file or the share asked for."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"no plan at {path} (a tune-worker flow run's `plan` parameter, saved as JSON)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None
    try:
        plan = TunePlan.model_validate(data)
    except ValidationError as exc:
        missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and len(e["loc"]) == 1]
        if missing or not isinstance(data, dict):
            raise ValueError(f"{path} is not a tuning plan: it lacks {', '.join(missing) or 'every key'}") from None
        first = exc.errors()[0]
        raise ValueError(f"{path} is not a valid tuning plan: {'.'.join(map(str, first['loc']))}: "
                         f"{first['msg']}") from None
    plan.share(index)
    return plan


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


def run_worker(plan: TunePlan, index: int, root: Path | None = None) -> remote.Pulled | None:
    """One worker's share of the trials (a process or a Prefect task). ``root``: the worker's own
    checkout, for a plan made for workers elsewhere: its commit is checked and the plan's inputs
    pulled and verified there before any trial starts (a refusal runs none). Returns what it
    pulled (None for a worker on the coordinator's machine)."""
    here = str(root or plan.root)
    pulled = None
    if plan.elsewhere and root is not None:
        assert plan.commit is not None and plan.inputs is not None  # ``prepare`` sets them for workers elsewhere
        pulled = remote.bring_inputs(Path(root), plan.commit, plan.inputs)
        log.info("tune worker %d in %s: pulled and verified %s: %d bytes in %.1f s", index, root,
                 ", ".join(sorted(pulled.hashes)), pulled.bytes, pulled.seconds)
    if plan.elsewhere and plan.tracking_uri:  # the coordinator's store, not a mlflow.db here
        os.environ["MLFLOW_TRACKING_URI"] = plan.tracking_uri
    threads = plan.params.tune.threads_per_worker
    if plan.elsewhere and threads:  # workers that share a machine (0: every core of this one)
        import torch
        torch.set_num_threads(threads)
    _worker(plan.target, plan.params, here, plan.storage, plan.study_name, plan.share(index), plan.parent_run,
            plan.seed + index)
    return pulled


def worker_threads(params: Params, workers: int) -> int:
    """Torch threads for each of ``workers`` local processes: they share the machine's cores
    (two processes that each take every core run slower together than one alone)."""
    chosen = params.tune.threads_per_worker
    return chosen or max(1, (os.cpu_count() or 1) // max(1, workers))


def _process_worker(plan: TunePlan, index: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    run_worker(plan, index)


def run_processes(plan: TunePlan) -> None:
    """Every share of ``plan`` in its own (spawned) process on this machine, each with its share of
    the cores. A worker that dies (killed, out of memory) has its running trial failed at once and
    retried, and a replacement finishes the rest of its share; after ``tune.max_retries``
    replacements for one share, the study stops with an error naming the exit codes."""
    ctx = mp.get_context("spawn")
    threads = worker_threads(plan.params, len(plan.shares))
    log.info("tune: %d worker processes, %d torch thread(s) each", len(plan.shares), threads)
    retries = plan.params.tune.max_retries
    pending = list(enumerate(plan.shares))
    attempts = {i: 0 for i, _ in pending}
    deaths: list[int | None] = []
    with stopped_by_sigterm():
        while pending:
            procs = []
            for index, share in pending:
                proc = ctx.Process(target=_process_worker, args=(plan.only(index, share), index, threads))
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


def settle_dead_worker(plan: TunePlan, pid: int) -> int:
    """Fail the trials a dead local worker left RUNNING (ending their MLflow runs), queue their
    parameters again; returns how many trials it finished."""
    root, params = Path(plan.root), plan.params
    study = optuna.load_study(study_name=plan.study_name, storage=make_storage(plan.storage, root, params))
    worker = f"{socket.gethostname()}:{pid}"
    mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == worker]
    dead = StaleTrial(params.tune.max_retries, params, root)
    for trial in mine:
        if trial.state == optuna.trial.TrialState.RUNNING:
            # the public way to end another process's trial: tell the study it failed
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            failed = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
            dead(study, failed)
            log.warning("trial %d of dead worker %s failed; its parameters are queued again", trial.number, worker)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(1 for t in mine if t.state in finished)
