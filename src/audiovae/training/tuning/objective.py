"""One trial: suggested values, the training function on inputs the worker holds in memory, its
score, and a nested MLflow run; a trial writes no file."""
from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import optuna

from audiovae import layout
from audiovae.config.params import ParamsError, with_values
from audiovae.config.schema import Params
from audiovae.data.artifacts import load_encodings, open_features
from audiovae.evaluation.validation import Validation
from audiovae.tracking import runs
from audiovae.training.loop import Trained
from audiovae.training.tuning.search import inputs_of, objectives_of, suggest, target_of


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
    whole: list = []  # the prior's: the project's whole model, which decodes its generations

    def training_inputs() -> tuple:
        if not held:
            missing = [rel for rel in inputs if not (root / rel).exists()]
            if missing:
                raise FileNotFoundError(f"{', '.join(missing)} missing under {root}: run `dvc repro` first")
            held.append(open_features(root / layout.FEATURES) if target == "outer" else load_encodings(root))
        return held[0]

    def score_prior(trial_params: Params) -> list[float]:
        """Fit the trial's prior on the cached training latents; score it on the validation ones
        (likelihood, novelty) and, when asked, by the clean judge on its decoded generations."""
        import numpy as np
        import pandas as pd

        from audiovae.evaluation import novelty
        from audiovae.inference.model import AudioVAE
        from audiovae.training import prior

        if not held:
            missing = [rel for rel in inputs if not (root / rel).exists()]
            if missing:
                raise FileNotFoundError(f"{', '.join(missing)} missing under {root}: run `dvc repro` first")
            index = pd.read_csv(root / layout.LATENTS_INDEX, dtype={"label": str, "speaker": str})
            held.append((np.load(root / layout.LATENTS_MEANS), index))
            if listened:
                whole.append(AudioVAE.from_project(root))
        latents, index = held[0]
        labels = whole[0].labels if whole else sorted(index["label"].astype(str).unique())
        fitted, _ = prior.train(trial_params.prior, trial_params.seed, latents, index, labels)
        split, names_of = index["split"].to_numpy(), index["label"].astype(str).to_numpy()
        rng = np.random.default_rng(trial_params.seed)
        per = params.tune.validation.generated_per_label
        temperature = trial_params.prior.temperature
        made = [fitted.mixture.sample(i, per, rng, temperature) for i, _ in enumerate(labels)
                if (fitted.mixture.labels == i).any()]
        made_labels = np.repeat([label for i, label in enumerate(labels) if (fitted.mixture.labels == i).any()], per)
        values = {"val_loglik": fitted.val_loglik,
                  "novelty_gap": abs(novelty.novelty_ratio(np.concatenate(made), made_labels, latents[split == "train"],
                                                           names_of[split == "train"], latents[split == "val"],
                                                           names_of[split == "val"]) - 1.0)}
        if "generated_accuracy" in names:
            if not scorer:
                vcfg = params.tune.validation
                scorer.append(Validation.from_project(root, params, vcfg.clips, vcfg.generated_per_label,
                                                      classifier=True))
            model = replace(whole[0], prior=fitted.mixture)
            values["generated_accuracy"] = replace(scorer[0], spread=temperature).generated_accuracy(model)
        return [values[n] for n in names]

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
        epochs = {f"{target}.train.epochs": cfg.epochs} if cfg.epochs is not None else {}
        trial_params = with_values(params, {**suggested, "tracking.enabled": False, **epochs})
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
            if target == "prior":  # fitted in seconds on the cached latents: no epochs to report
                values = score_prior(trial_params)
                state = "COMPLETE"
                tracker.log_metrics({f"objective.{n}": v for n, v in zip(names, values)})
                return values[0] if len(values) == 1 else values
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
