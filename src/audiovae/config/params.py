"""Read ``params.yaml``: the single source of truth for every stage.

A ``preset`` key names a block under ``presets`` whose values are merged over the
defaults, so ``dvc exp run -S preset=fsdd_conv_vae`` switches a whole configuration. Sections
merge key by key; a mapping of names to values (a category map such as
``data.sources.samples.keywords``) is data, not structure, and a preset's replaces the default's
whole: the drums preset's categories do not inherit the instruments'.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from audiovae.config import schema
from audiovae.config.schema import Params

PARAMS_FILE = "params.yaml"


class ParamsError(ValueError):
    """A parameter is missing or has a value the stage cannot use."""


def project_root() -> Path:
    """The project root: ``$AUDIOVAE_ROOT`` if set, else the working directory (where DVC runs stages)."""
    return Path(os.environ.get("AUDIOVAE_ROOT", os.getcwd())).resolve()


def deep_merge(base: dict, override: dict, replaced: frozenset[str] = frozenset(), at: str = "") -> dict:
    """Return ``base`` with ``override`` merged in, recursively for nested mappings, except at the
    dotted paths in ``replaced``, whose mapping ``override`` replaces whole."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        path = f"{at}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict) and path not in replaced:
            out[key] = deep_merge(out[key], value, replaced, path + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_preset(raw: dict, preset: dict) -> dict:
    """``preset`` merged over ``raw``: sections key by key, the schema's name maps replaced whole."""
    return deep_merge(raw, preset, schema.name_maps())


def load_params(path: str | os.PathLike | None = None) -> Params:
    """Load params.yaml, apply the selected preset and return the validated, typed parameters."""
    path = Path(path) if path else project_root() / PARAMS_FILE
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the project root or set AUDIOVAE_ROOT")
    with open(path) as fh:
        raw = yaml.safe_load(fh) or {}
    return resolve(raw, str(path))


def resolve(raw: dict, where: str = PARAMS_FILE) -> Params:
    """``raw`` (params.yaml's mapping) validated, its preset applied, as the typed ``Params``."""
    return Params.model_validate(resolve_mapping(raw, where))


def resolve_mapping(raw: dict, where: str = PARAMS_FILE) -> dict[str, Any]:
    """Validate ``raw`` and every preset merged over it, then apply the selected preset.

    Every preset is checked, not only the selected one, so a misspelt key in any of them is
    found before any work rather than on the day someone selects it."""
    problems = schema.validate(raw, where)
    presets = raw.get("presets") or {}
    if not problems:
        for name, override in presets.items():
            if not isinstance(override, dict):
                problems.append(f"{where}: presets.{name}: must be a mapping of sections")
                continue
            problems += schema.validate(merge_preset(raw, override), f"{where} (presets.{name})")
    if problems:
        raise ParamsError("invalid parameters:\n  " + "\n  ".join(problems))
    preset = raw["preset"]
    if preset == "none":
        return raw
    if preset not in presets:
        raise ParamsError(f"preset {preset!r} is not defined under 'presets' in {where}; "
                          f"choose one of: none, {', '.join(sorted(presets))}")
    return merge_preset(raw, presets[preset])


def with_values(params: Params, values: dict[str, Any]) -> Params:
    """``params`` with the dotted keys of ``values`` set (a tuning trial's suggestions, a test's
    overrides), validated again so a wrong key or value is refused here, not deep in a stage."""
    merged = params.model_dump()
    for dotted, value in values.items():
        *parents, last = dotted.split(".")
        node: Any = merged
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ParamsError(f"params.yaml has no key {dotted!r}")
        if last not in node:
            raise ParamsError(f"params.yaml has no key {dotted!r}")
        node[last] = value
    try:
        return Params.model_validate(merged)
    except ValidationError as exc:
        raise ParamsError("invalid parameters:\n  " + "\n  ".join(schema.errors_of(exc))) from None


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested params to ``a.b.c`` keys (for MLflow)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
