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

The parts live in ``audiovae.training.tuning``; this module puts them together: ``prepare`` (the
study and the plan its workers share), ``finish`` (its report) and ``tune`` (both, with the
workers between).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import optuna

from audiovae import layout
from audiovae.config.params import ParamsError, load_params, project_root
from audiovae.config.schema import Params
from audiovae.evaluation.validation import OBJECTIVES
from audiovae.tracking import remote, runs
from audiovae.training.tuning.plan import TunePlan

# the names other modules, the flows and the tests use, from the parts that hold them
from audiovae.training.tuning.report import (
    apply_params,
    chosen_trial,
    save_study_report,
)
from audiovae.training.tuning.search import (
    inputs_of,
    make_pruner,
    make_sampler,
    objectives_of,
    target_of,
)
from audiovae.training.tuning.storage import make_storage
from audiovae.training.tuning.workers import (
    read_plan,
    run_processes,
    run_worker,
)

__all__ = ["TunePlan", "apply_params", "chosen_trial", "finish", "inputs_of", "make_pruner", "make_sampler", "make_storage",
           "objectives_of", "prepare", "read_plan", "run_processes", "run_worker", "target_of", "tune"]

log = logging.getLogger("audiovae.tune")


def prepare(target: str, trials: int, storage: str | None = None, study_name: str | None = None,
            workers: int = 1, root: Path | None = None, params: Params | None = None,
            elsewhere: bool = False) -> TunePlan:
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
    elsewhere_fields: dict[str, Any] = {}
    if elsewhere:
        remote.check_shared_stores(storage, uri)
        inputs = remote.publish_inputs(root, inputs_of(params, target))
        elsewhere_fields = {"elsewhere": True, "commit": remote.git_commit(root), "inputs": inputs}
        log.info("tune: inputs pushed for workers elsewhere at commit %s: %s", elsewhere_fields["commit"][:12], inputs)
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
    # ``root`` is the coordinator's checkout, used by its local worker processes only; a worker
    # elsewhere runs in its own clone and checks ``commit`` and ``inputs`` there
    return TunePlan(target=target, params=params, root=str(root), storage=storage, study_name=study_name,
                    parent_run=parent, seed=seed, shares=[n for n in shares if n], before=len(study.trials),
                    started=time.monotonic(), tracking_uri=uri, **elsewhere_fields)


def finish(plan: TunePlan, apply: bool = False, trial: int | None = None) -> optuna.Study:
    """Report the study (plots, trials per minute, MLflow) and optionally apply the best values
    (``trial``: a chosen trial's values instead, e.g. one from a Pareto front)."""
    root, params = Path(plan.root), plan.params
    minutes = (time.monotonic() - plan.started) / 60
    study = optuna.load_study(study_name=plan.study_name, storage=make_storage(plan.storage, root, params))
    done = len(study.trials) - plan.before
    rate = done / max(minutes, 1e-9)
    log.info("tune %s: %d trials in %.1f min (%.2f trials/min)", plan.target, done, minutes, rate)
    out_dir = root / layout.TUNING / plan.study_name
    summary = save_study_report(study, out_dir, rate)
    tracker = runs.tracker(params, root)
    if plan.parent_run:  # the study's run (none when tracking is off)
        tracker.start_run(run_id=plan.parent_run)
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
        if len(plan.shares) == 1:
            run_worker(plan, 0)
        else:
            run_processes(plan)
    return finish(plan, apply, trial)
