"""What a study searches and how: the search space's suggestions, the sampler and pruner, the
objectives a target is scored by and the pipeline outputs its trials read."""
from __future__ import annotations

from typing import Any

import optuna

from audiovae import layout
from audiovae.config.params import ParamsError
from audiovae.config.schema import Params, SpaceEntry, Tune, TuneTarget
from audiovae.evaluation.validation import NEEDS as VALIDATION_NEEDS
from audiovae.evaluation.validation import OBJECTIVES


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
    """The ``tune.outer``, ``tune.inner`` or ``tune.prior`` section."""
    if target not in TARGETS:
        raise ParamsError(f"tune target must be one of {', '.join(TARGETS)}, not {target!r}")
    return {"outer": params.tune.outer, "inner": params.tune.inner, "prior": params.tune.prior}[target]


def objectives_of(params: Params, target: str) -> list[str]:
    """The study's objectives, checked: names from ``validation.OBJECTIVES``, full-path ones for
    the inner VAE only (they decode its output through the trained outer model)."""
    names: list[str] = list(target_of(params, target).objectives)
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names or len(set(names)) != len(names):
        raise ParamsError(f"tune.{target}.objectives: give distinct names from {', '.join(OBJECTIVES)}, not {names}")
    if target == "outer" and names != ["val_loss"]:
        raise ParamsError("tune.outer.objectives: the outer model is tuned on val_loss only")
    allowed = PRIOR_OBJECTIVES if target == "prior" else set(OBJECTIVES) - PRIOR_OBJECTIVES | {"generated_accuracy"}
    if set(names) - allowed:
        raise ParamsError(f"tune.{target}.objectives: {target} is tuned on {', '.join(sorted(allowed))}, not {names}")
    if target != "prior" and target_of(params, target).epochs is None:
        raise ParamsError(f"tune.{target}.epochs: give the epochs a trial trains")
    return names


TARGETS = ("outer", "inner", "prior")
PRIOR_OBJECTIVES = {"val_loglik", "novelty_gap", "generated_accuracy"}
DATA_FOR = {"outer": [str(layout.FEATURES)], "inner": [str(layout.ENCODINGS)], "prior": [str(layout.LATENTS)]}
# a prior's generations decode through the trained inner VAE, with the encodings' statistics
PRIOR_LISTENS = [str(layout.ENCODINGS), str(layout.INNER_DIR)]


def inputs_of(params: Params, target: str) -> list[str]:
    """The pipeline outputs a trial reads (paths of ``dvc.yaml``): what a worker elsewhere pulls."""
    listened = [n for n in objectives_of(params, target) if n not in ("val_loss", "val_loglik", "novelty_gap")]
    if target == "prior":
        return DATA_FOR[target] + (PRIOR_LISTENS + VALIDATION_NEEDS if listened else [])
    return DATA_FOR[target] + (VALIDATION_NEEDS if listened else [])
