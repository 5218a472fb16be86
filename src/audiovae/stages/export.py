"""DVC stage ``export``: the trained model as one file, ``data/export/model.avae``, and in the registry.

The bundle (``inference/bundle.py``) holds both networks, the codec, the code statistics, the label centres,
the effective params and the data manifest's hash, so ``audiovae --model model.avae ...`` works
anywhere. With ``export.register_model`` it is also registered in MLflow as ``audiovae``: the version this
run registered is recorded on the pipeline's parent run, which is what retraining aliases.

This module reads the inputs, writes the outputs atomically and logs; the bundle is
audiovae.inference.bundle's, the registry audiovae.tracking.registry's.
"""
from __future__ import annotations

import logging
from pathlib import Path

from audiovae import layout
from audiovae.config.params import project_root
from audiovae.config.schema import Params
from audiovae.inference import bundle
from audiovae.inference.model import AudioVAE
from audiovae.stages import run_stage
from audiovae.tracking import registry, runs

log = logging.getLogger("audiovae.export")


def run(params: Params, root: Path | None = None) -> Path:
    root = root or project_root()
    data = bundle.from_project(root)
    path = bundle.write(data, root / layout.BUNDLE)
    log.info("export: %s (%.1f MB), data manifest %s", path, path.stat().st_size / 1e6, data["data_manifest"])
    with runs.stage_run("export", params, root, section_keys=("export",)) as tracker:
        tracker.log_metrics({"bundle_mb": path.stat().st_size / 1e6})
        def register(mlflow) -> str:  # the bundle as the registry's complete model, with its signature
            version = registry.log_bundle(mlflow, path, AudioVAE.from_bundle(data))
            runs.record_version(mlflow, registry.BUNDLE_MODEL, version)
            return version
        version = tracker.with_mlflow(register) if params.export.register_model else None
        if version is not None:
            log.info("export: registered %s version %s", registry.BUNDLE_MODEL, version)
    return path


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
