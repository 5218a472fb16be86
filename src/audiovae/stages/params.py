"""DVC stage ``params``: write the effective parameters each stage reads, preset applied, one file a stage.

A preset is merged over the base values at run time, which DVC cannot see: ``dvc exp run -S
preset=NAME`` would change nothing DVC tracks. This stage resolves the preset (and validates
everything) and writes ``reports/params/<stage>.yaml`` holding exactly the keys that stage reads.
Each stage lists its file as a dependency and a params file, so DVC re-runs exactly the stages whose
effective values changed, and ``dvc.lock`` / ``dvc params diff`` / ``dvc exp show`` show those values.

This module reads the inputs, writes the outputs atomically and logs; ``STAGE_KEYS`` and
``effective`` (audiovae.config.stage_params) say what each stage reads.
"""
from __future__ import annotations

import logging
from pathlib import Path

import yaml

from audiovae import layout
from audiovae.atomic import atomic_path
from audiovae.config.params import project_root
from audiovae.config.schema import Params
from audiovae.config.stage_params import STAGE_KEYS, effective
from audiovae.stages import run_stage
from audiovae.tracking import runs

log = logging.getLogger("audiovae.params")


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


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
