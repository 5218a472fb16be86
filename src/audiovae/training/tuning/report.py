"""What a study leaves: its plots and summary, the trial ``--apply`` takes, and those values
written back into params.yaml (only the tuned keys; comments and order preserved)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna

from audiovae import layout
from audiovae.config.params import ParamsError

log = logging.getLogger("audiovae.tune")


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
    write_json(out_dir / layout.SUMMARY, summary)
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
