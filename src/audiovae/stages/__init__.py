"""The DVC stages, one module each, in pipeline order: ``params`` -> ``download`` -> ``filter`` ->
``features`` -> ``train_outer`` -> ``encode`` -> ``train_inner`` -> ``train_prior`` -> ``evaluate`` ->
``export``.
``dvc.yaml`` runs ``python -m audiovae.stages.<stage>``.

Each stage keeps and the library computes: a stage's ``run(params, root)`` reads its inputs
through ``audiovae.layout``, calls library functions that take typed config and data in memory and
return results, writes the outputs atomically and logs them (``runs.stage_run``). Library code
never imports this package. What every stage's ``main()`` does around its ``run``: logging, a
tracking pre-flight check (an unreachable MLflow server fails before any work starts), and clear
errors."""
from __future__ import annotations

import logging
from typing import Callable

from audiovae.config.params import ParamsError, load_params
from audiovae.config.schema import Params
from audiovae.data.fetch import FetchError
from audiovae.progress import setup_logging
from audiovae.tracking import runs

log = logging.getLogger("audiovae")


def run_stage(run: Callable[[Params], object]) -> None:
    setup_logging()
    try:
        params = load_params()
        runs.configure(params)
        run(params)
    except (FetchError, ParamsError, runs.TrackingError, FileNotFoundError) as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
