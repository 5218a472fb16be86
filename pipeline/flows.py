"""Prefect 3 flows over the same stages: ``repro``, ``tune`` and ``retrain``.

They call DVC and the audiovae library; none repeats a stage's logic. Locally they run in
Prefect's ephemeral mode with ``PREFECT_HOME`` in the project (``.prefect/``); scaled out they
are deployed to the ``gpu`` process work pool (``prefect.yaml``).

    python -m pipeline.flows repro --push          # dvc repro, one stage per task; push outputs + run-cache
    python -m pipeline.flows tune inner --trials 20 --workers 2   # K tune-worker flow runs
    python -m pipeline.flows tune-worker plan.json --index 1   # join a study by hand (no Prefect)
    python -m pipeline.flows retrain --push        # the CI entry point
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, cast

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the local (ephemeral) API server starts in a subprocess; Prefect's 20 s wait is not always enough
# on a busy 2-core machine (measured: one CI run timed out there)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import yaml  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402

from audiovae import layout  # noqa: E402
from audiovae.training.tuning.plan import TunePlan  # noqa: E402

GPU_TAG = "gpu"
TUNE_WORKER = "tune-worker/tune-worker"  # flow name / deployment name in prefect.yaml


def _dvc() -> str:
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


class StageFailed(RuntimeError):
    """A command of the pipeline exited non-zero; exit code 2 is a deterministic failure (bad
    params, missing inputs) that no retry can fix."""

    def __init__(self, cmd: list[str], returncode: int):
        super().__init__(f"{' '.join(cmd)} failed with exit code {returncode}")
        self.returncode = returncode


def retry_unless_deterministic(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry crashes and flaky failures, not exit code 2."""
    return not (isinstance(state.data, StageFailed) and state.data.returncode == 2)


def _run(cmd: list[str], cwd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, streaming its output into the Prefect log line by line."""
    logger = get_run_logger()
    logger.info("$ %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    lines = []
    assert proc.stdout is not None  # stdout=PIPE
    for line in proc.stdout:
        lines.append(line)
        logger.info(line.rstrip())
    proc.wait()
    result = subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")
    if check and proc.returncode:
        raise StageFailed(cmd, proc.returncode)
    return result


def stage_names(root: str) -> list[str]:
    """The stages of dvc.yaml in their written (dependency) order."""
    return list(yaml.safe_load((Path(root) / "dvc.yaml").read_text())["stages"])


@task(retries=2, retry_delay_seconds=10, task_run_name="dvc-{stage}", retry_condition_fn=retry_unless_deterministic)
def run_stage(stage: str, root: str) -> None:
    """One DVC stage (skipped by DVC when nothing it depends on changed)."""
    _run([_dvc(), "repro", "--single-item", stage], root)


@task(retries=1, retry_delay_seconds=10, retry_condition_fn=retry_unless_deterministic)
def run_experiment(overrides: dict, root: str) -> None:
    args = [item for key, value in overrides.items() for item in ("-S", f"{key}={value}")]
    _run([_dvc(), "exp", "run", *args], root)


@contextlib.contextmanager
def parent_run(root: str, name: str) -> Iterator[str | None]:
    """One MLflow parent run for the whole flow: the stages run as separate ``dvc`` processes, so
    they are told its id (``$AUDIOVAE_PARENT_RUN_ID``) instead of each opening their own. An
    enclosing flow's parent run (retrain around repro) is kept."""
    from audiovae.config.params import load_params
    from audiovae.tracking import runs

    if os.environ.get(runs.PARENT_ENV):
        yield os.environ[runs.PARENT_ENV]
        return
    params = load_params(Path(root) / "params.yaml")
    mlflow = runs.configure(params, Path(root))
    if mlflow is None:
        yield None
        return
    run_id = runs.start_pipeline_run(mlflow, Path(root), params, name)
    os.environ[runs.PARENT_ENV] = run_id
    try:
        yield run_id
    finally:
        os.environ.pop(runs.PARENT_ENV, None)
        record_lock(mlflow, run_id, Path(root))


def record_lock(mlflow, run_id: str, root: Path) -> None:
    """The parent run keeps the ``dvc.lock`` its stages left (and the commit it started from, a tag):
    with both, any clone restores exactly the data behind a registered model (``git checkout
    COMMIT``, the lock copied in, ``dvc pull``)."""
    lock = root / "dvc.lock"
    if lock.exists():
        mlflow.MlflowClient().log_artifact(run_id, str(lock))


@flow(name="repro")
def repro_flow(root: str | None = None, overrides: dict | None = None, until: str | None = None,
               push: bool = False) -> list[str]:
    """``dvc repro`` (or ``dvc exp run -S ...`` with overrides), one stage at a time: DVC holds a
    repository lock, so stages never run side by side. ``until``: only the stages of dvc.yaml up
    to and including that one. A stage whose process dies (a lost worker, the OOM killer) is
    retried: DVC skips what its cache holds and training resumes from its epoch checkpoint.
    ``push``: afterwards push the outputs and the run-cache to the default DVC remote."""
    root = root or str(ROOT)  # the checkout this code runs in: a deployment carries no machine's path
    if overrides:
        run_experiment(overrides, root)
        if push:
            dvc_push(root)
        return ["exp run"]
    stages = stage_names(root)
    if until is not None:
        if until not in stages:
            raise ValueError(f"no stage {until!r} in dvc.yaml; its stages: {', '.join(stages)}")
        stages = stages[:stages.index(until) + 1]
    with parent_run(root, "repro"):
        for stage in stages:
            run_stage(stage, root)
    if push:
        dvc_push(root)
    return stages


@task(tags=[GPU_TAG], task_run_name="tune-share-{index}")
def tune_share(plan: TunePlan, index: int) -> int:
    """The trials of one worker, as a task tagged ``gpu``: a concurrency limit on the tag (held by
    the Prefect server) counts the cards in use across every machine."""
    from audiovae.training import tune

    # ROOT: the checkout this flow's code was loaded from, the worker's own clone (prefect.yaml's
    # pull step enters it); a plan for workers elsewhere is checked and its inputs pulled there
    pulled = tune.run_worker(plan, index, root=ROOT)
    if pulled is not None:  # what bringing the inputs cost this machine (docs/scale-out.md quotes it)
        get_run_logger().info("worker %d in %s pulled %d bytes of %s in %.1f s", index, ROOT, pulled.bytes,
                              ", ".join(sorted(pulled.hashes)), pulled.seconds)
    return plan.share(index)


@flow(name="tune-worker")
def tune_worker_flow(plan: TunePlan, index: int) -> int:
    """One Optuna worker: its own process and flow run, which any Prefect worker of the pool can
    take, so K workers on K machines each run a share of the study. In its own clone it checks the
    plan's commit, pulls exactly the inputs the plan names and verifies their hashes first."""
    return tune_share(plan, index)


def _deployment_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


def _wait_for(run_ids: list, poll: float = 3.0) -> list:
    """Poll the server until every flow run is final; returns their final runs."""
    import time

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while True:
            runs = [client.read_flow_run(run_id) for run_id in run_ids]
            if all(run.state is not None and run.state.is_final() for run in runs):
                return runs
            time.sleep(poll)


@flow(name="tune")
def tune_flow(target: str = "inner", trials: int = 20, workers: int = 2, storage: str | None = None,
              study: str | None = None, root: str | None = None, params: dict | None = None,
              worker_deployment: str = TUNE_WORKER) -> dict:
    """K Optuna workers against one study storage, each its own process.

    With the ``tune-worker`` deployment on the server (``prefect.yaml``), each worker is a flow run
    of it, started with ``run_deployment`` and taken by whichever Prefect worker is free; without
    one (a laptop, Prefect's ephemeral mode) the workers are local processes. Never threads: each
    trial seeds the global RNGs, which threads would share."""
    root = root or str(ROOT)  # the checkout this code runs in: a deployment carries no machine's path
    from audiovae.training import tune

    logger = get_run_logger()
    from audiovae.config.params import resolve

    # ``params``: a params.yaml mapping (a flow parameter is plain JSON), else the project's file
    elsewhere = bool(worker_deployment) and _deployment_exists(worker_deployment)
    plan = tune.prepare(target, trials, storage, study, workers, Path(root), resolve(params) if params else None,
                        elsewhere=elsewhere)
    if elsewhere:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        # run_deployment returns the flow run itself when called from synchronous code, as here
        # the plan travels as plain JSON and is validated into a TunePlan again by the worker's flow
        plan_json = plan.model_dump(mode="json")
        started = [cast(FlowRun, run_deployment(worker_deployment, parameters={"plan": plan_json, "index": i},
                                                timeout=0, flow_run_name=f"{plan.study_name}-worker-{i}"))
                   for i in range(len(plan.shares))]
        logger.info("started %d %s flow runs", len(started), worker_deployment)
        failed = [f"{run.name} ({run.state.message})" for run in _wait_for([run.id for run in started])
                  if not run.state.is_completed()]
        if failed:
            raise RuntimeError(f"tuning worker flow run(s) failed: {'; '.join(failed)}")
    else:
        logger.info("no %s deployment: running %d local worker processes", worker_deployment, len(plan.shares))
        tune.run_processes(plan)
    result = tune.finish(plan)
    complete = [t for t in result.trials if t.state.name == "COMPLETE"]
    mine = result.trials[plan.before:]
    return {"study": result.study_name, "trials": len(result.trials), "ran": len(mine),
            "workers": sorted({t.user_attrs.get("worker", "?") for t in mine}),
            "best_value": tune.chosen_trial(result).values[0] if complete else None}


@task
def dvc_pull(root: str) -> bool:
    """Fetch data and cache from the default remote: what it lacks is rebuilt (a first run, an empty
    remote), but a remote that cannot be read from fails the flow with its name and DVC's error."""
    from audiovae.tracking import remote

    pulled = remote.pull(Path(root), allow_missing=True)
    get_run_logger().info("dvc pull: %s", "done" if pulled else "no DVC remote configured, nothing pulled")
    return pulled


@task
def dvc_push(root: str) -> str:
    """Push every output and the run-cache to the default remote; a failed push fails the flow."""
    from audiovae.tracking import remote

    name = remote.push(Path(root), run_cache=True)
    get_run_logger().info("dvc push to remote %r: done", name)
    return name


@task
def read_metrics(root: str) -> dict | None:
    path = Path(root) / layout.METRICS
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@flow(name="retrain")
def retrain_flow(root: str | None = None, push: bool = False) -> dict:
    """The CI entry point: pull, reproduce, evaluate, register as challenger, promote only if better."""
    root = root or str(ROOT)  # the checkout this code runs in: a deployment carries no machine's path
    from mlflow.tracking import MlflowClient

    from audiovae.atomic import write_text
    from audiovae.config.params import load_params
    from audiovae.tracking import registry, runs
    from audiovae.tracking.promotion import decide, flat_metrics

    logger = get_run_logger()
    params = load_params(Path(root) / "params.yaml")
    cfg = params.retrain
    dvc_pull(root)
    failed = None
    with parent_run(root, "retrain") as parent:
        try:
            repro_flow(root)
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded and never promoted
            failed = str(exc)
            logger.error("pipeline failed: %s", exc)
    metrics = None if failed else read_metrics(root)
    flat = flat_metrics(metrics) if metrics else None
    client = MlflowClient(tracking_uri=runs.tracking_uri(params, Path(root)))
    champion = registry.champion_metrics(client)
    decision = decide(flat, champion, cfg.primary_metric, cfg.mode, cfg.min_margin, tuple(cfg.required_metrics))
    # exactly the versions this run registered (a run beside it may have registered newer ones)
    registered = registry.registered_by(client, parent) if parent else {}
    versions = registry.mark_challenger(client, flat, registered) if flat else {}
    if decision.promote and versions:
        registry.promote(client, versions)
    logger.info("champion gate: %s (%s)", "PROMOTE" if decision.promote else "keep champion", decision.reason)
    diff = _run([_dvc(), "metrics", "diff", "--md"], root, check=False).stdout if not failed else ""
    lines = ["# Retraining report", "",
             f"**Decision:** {'promoted to champion' if decision.promote else 'champion kept'} — {decision.reason}", "",
             f"Primary metric `{cfg.primary_metric}` ({cfg.mode}, margin {cfg.min_margin}): "
             f"challenger {decision.challenger}, champion {decision.champion}", ""]
    if failed:
        lines += ["Pipeline failed:", "", "```", failed, "```"]
    if flat:
        lines += ["| metric | challenger | champion |", "|---|---|---|"]
        lines += [f"| {k} | {v:.4g} | {champion.get(k, float('nan')) if champion else float('nan'):.4g} |"
                  for k, v in sorted(flat.items())]
    lines += ["", "## dvc metrics diff", "", diff or "(nothing to compare)"]
    report = Path(root) / layout.RETRAIN_REPORT
    write_text(report, "\n".join(lines) + "\n")
    if failed:
        raise RuntimeError(f"retraining failed: {failed} (report: {report})")
    if push:
        dvc_push(root)
    return {"promote": decision.promote, "reason": decision.reason, "versions": versions, "report": str(report)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.flows", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="flow", required=True)
    p = sub.add_parser("repro", help="dvc repro as Prefect tasks")
    p.add_argument("-S", "--set", action="append", default=[], help="override key=value (dvc exp run -S)")
    p.add_argument("--until", metavar="STAGE", help="run the stages up to and including STAGE")
    p.add_argument("--push", action="store_true", help="push the outputs and the run-cache to the DVC remote afterwards")
    p = sub.add_parser("tune", help="Optuna workers as tune-worker flow runs (or local processes)")
    p.add_argument("target", choices=("outer", "inner", "prior"))
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--storage")
    p.add_argument("--study")
    p = sub.add_parser("tune-worker", help="join a study by hand, as the tune-worker deployment does: in this "
                       "checkout, check the plan's commit, pull and verify its inputs, run one share of the trials")
    p.add_argument("plan", type=Path, help="the plan (JSON) that `tune` handed its workers")
    p.add_argument("--index", type=int, default=0, help="which share of the trials (default: %(default)s)")
    p = sub.add_parser("retrain", help="pull, reproduce, evaluate, champion gate, report")
    p.add_argument("--push", action="store_true", help="push the outputs and the run-cache to the DVC remote afterwards "
                   "(a remote that cannot be pulled from or pushed to fails the flow)")
    args = parser.parse_args(argv)
    if args.flow == "repro":
        overrides = dict(item.split("=", 1) for item in args.set)
        if overrides and args.until:
            parser.error("--until runs part of `dvc repro`; -S runs a whole `dvc exp run`: give one of them")
        print(repro_flow(overrides=overrides or None, until=args.until, push=args.push))
    elif args.flow == "tune":
        print(tune_flow(args.target, args.trials, args.workers, args.storage, args.study))
    elif args.flow == "tune-worker":
        from audiovae.tracking.remote import RemoteError
        from audiovae.training import tune

        try:
            tune.run_worker(tune.read_plan(args.plan, args.index), args.index, root=ROOT)
        except (RemoteError, ValueError) as exc:  # one line: what differs and what to run
            print(f"tune-worker: refused: {exc}", file=sys.stderr)
            sys.exit(2)
    else:
        result = retrain_flow(push=args.push)
        print(Path(result["report"]).read_text())


if __name__ == "__main__":
    main()
