"""What each stage reads: ``STAGE_KEYS`` names its keys, ``effective`` takes their values from resolved
parameters (a preset applied). The params stage writes one file a stage from them; DVC tracks those files.
"""
from __future__ import annotations

import logging
from typing import Any

from audiovae.config.params import ParamsError
from audiovae.config.schema import Params

log = logging.getLogger("audiovae.params")

# the keys each stage reads (dotted); the single table that dvc.yaml mirrors
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "download": ("seed", "data"),
    "filter": ("filter",),
    "features": ("seed", "features"),
    "train_outer": ("seed", "outer"),
    "encode": ("encode", "outer.device"),
    "train_inner": ("seed", "inner"),
    "train_prior": ("seed", "prior", "inner.device"),
    # evaluate also times an inner epoch (inner) and names the run on its report page
    "evaluate": ("seed", "preset", "evaluate", "inner", "prior", "outer.model", "outer.device", "features.n_fft",
                 "features.hop_length", "data.sources", "data.split.method"),
    # the bundle carries the spread generations were evaluated at (the CLI's default), not the
    # rest of evaluate: an evaluation setting does not make a new model version; and how the
    # model windows real recordings (inference)
    "export": ("export", "evaluate.generate_spread", "prior.family", "prior.temperature", "prior.kde_spread",
               "inference"),
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
