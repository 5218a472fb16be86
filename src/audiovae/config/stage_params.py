"""Stage ``params``: write the effective parameters each stage reads, preset applied, one file a stage.

A preset is merged over the base values at run time, which DVC cannot see: ``dvc exp run -S
preset=NAME`` would change nothing DVC tracks. This stage resolves the preset (and validates
everything) and writes ``reports/params/<stage>.yaml`` holding exactly the keys that stage reads.
Each stage lists its file as a dependency and a params file, so DVC re-runs exactly the stages whose
effective values changed, and ``dvc.lock`` / ``dvc params diff`` / ``dvc exp show`` show those values.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from audiovae import layout
from audiovae.atomic import atomic_path
from audiovae.config.params import ParamsError, project_root
from audiovae.config.schema import Params
from audiovae.tracking import runs

log = logging.getLogger("audiovae.params")

# the keys each stage reads (dotted); the single table that dvc.yaml mirrors
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "download": ("seed", "data"),
    "filter": ("filter",),
    "features": ("seed", "features"),
    "train_outer": ("seed", "outer"),
    "encode": ("encode", "outer.device"),
    "train_inner": ("seed", "inner"),
    # evaluate also times an inner epoch (inner) and names the run on its report page
    "evaluate": ("seed", "preset", "evaluate", "inner", "outer.model", "outer.device", "features.n_fft",
                 "features.hop_length", "data.sources", "data.split.method"),
    # the bundle carries the spread generations were evaluated at (the CLI's default), not the
    # rest of evaluate: an evaluation setting does not make a new model version; and how the
    # model windows real recordings (inference)
    "export": ("export", "evaluate.generate_spread", "inference"),
}


def _lookup(values: dict, dotted: str) -> Any:
    """``a.b.c`` of the parameters' values, with an error that names a key the table misspells."""
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"STAGE_KEYS names {dotted!r}, which params.yaml does not have")
        node = node[part]
    return node


def effective(params: Params, stage: str) -> dict:
    """The nested mapping of ``STAGE_KEYS[stage]`` taken from resolved ``params`` (as their values:
    this table is the one place that names keys by string, for DVC)."""
    values = params.model_dump()
    out: dict = {}
    for dotted in STAGE_KEYS[stage]:
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _lookup(values, dotted)
    return out


def run(params: Params, root: Path | None = None) -> Path:
    root = root or project_root()
    out_dir = root / layout.STAGE_PARAMS
    out_dir.mkdir(parents=True, exist_ok=True)
    for stage in STAGE_KEYS:
        with atomic_path(root / layout.stage_params(stage), suffix=".yaml") as tmp:
            tmp.write_text(yaml.safe_dump(effective(params, stage), sort_keys=True))
    log.info("params: preset %s; effective values for %d stages in %s", params.preset, len(STAGE_KEYS), out_dir)
    runs.log_stage("params", params, root=root, extra_params={"stages": ",".join(STAGE_KEYS)},
                       artifacts=sorted(out_dir.glob("*.yaml")))
    return out_dir
