"""DVC knows every file a stage writes (the output twin of test_dvc_deps.py): a file a stage writes
without declaring it is not restored from the run-cache, so it would keep another run's content."""
from __future__ import annotations

from pathlib import Path

import yaml
from conftest import REPO, STAGE_WRITES, linked_project, tree_state, typed, written_by

from audiovae.stages import export
from audiovae.stages import params as params_stage

# scratch that no later stage or report reads: resume checkpoints, and the MLflow store when
# tracking is on (it is a service's database, not a pipeline output)
SCRATCH = ("data/checkpoints/", "mlflow.db", "mlartifacts/")


def declared(stage: str) -> list[str]:
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    paths = []
    for kind in ("outs", "metrics", "plots"):
        for entry in spec.get(kind, []):
            paths.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


def undeclared(stage: str, files: set[str]) -> list[str]:
    outs = declared(stage)
    return sorted(f for f in files if not any(f == o or f.startswith(o.rstrip("/") + "/") for o in outs)
                  and not f.startswith(SCRATCH))


def test_every_file_a_stage_writes_is_a_declared_output(trained, tmp_path):
    root, params, *_ = trained
    writes = dict(STAGE_WRITES)
    # the two stages the fixture does not run, in scratch roots (the shared project stays as it is)
    with linked_project(root, tmp_path, []) as scratch:
        before = tree_state(scratch)
        params_stage.run(typed(params), scratch)
        writes["params"] = written_by(scratch, before)
    inputs = ["data/features", "data/filtered", "data/encodings", "data/models/outer", "data/models/inner"]
    with linked_project(root, tmp_path, inputs) as scratch:
        before = tree_state(scratch)
        export.run(typed(params), scratch)
        writes["export"] = written_by(scratch, before)
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert set(writes) == stages, "every stage is checked"
    problems = {stage: undeclared(stage, files) for stage, files in writes.items()}
    assert not any(problems.values()), f"written but not declared in dvc.yaml: {problems}"
    assert all(writes[s] for s in stages), "every stage wrote something (the recording works)"
    # the reports issue 21 found undeclared
    assert {"reports/filter/rejections.csv", "reports/filter/lengths.csv",
            "reports/filter/percentiles.csv"} <= writes["filter"]


def test_undeclared_writes_are_caught():
    """The check itself: a report outside every declared output is named, scratch is not."""
    assert undeclared("filter", {"reports/filter/other.csv", "data/filtered/audio.npy",
                                 "data/checkpoints/x.pt"}) == ["reports/filter/other.csv"]
    assert Path(REPO / "dvc.yaml").exists()
