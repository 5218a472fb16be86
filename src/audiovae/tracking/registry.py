"""Model registry: the versions a run registered, the ``challenger`` / ``champion`` aliases of
retraining, and the exported bundle behind ``models:/audiovae@champion``.

Each version carries its evaluation metrics as tags, so the gate can compare without re-running
anything. Aliases go to the versions *this* pipeline run registered (recorded as tags of its parent
run), never to "the newest": two overlapping runs would otherwise swap models.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

BUNDLE_MODEL = "audiovae"   # the complete model (bundle); the two networks are registered apart too
MODELS = ("audiovae-outer", "audiovae-inner", BUNDLE_MODEL)
METRIC_TAG = "metric."


def log_bundle(mlflow, path: Path, model) -> str:
    """Log the bundle as a pyfunc model (signature, input example), register it; returns the
    version that this call registered."""
    from mlflow.models import infer_signature

    from audiovae.tracking import serving

    example = serving.example_input(model)
    signature = infer_signature(example, serving.generate_table(model, example))
    # models from code: the registry keeps serving.py's text, not a pickle of it
    info = mlflow.pyfunc.log_model(name="bundle", python_model=serving.__file__, artifacts={"bundle": str(path)},
                                   signature=signature, input_example=example,
                                   registered_model_name=BUNDLE_MODEL, pip_requirements=["audiovae"])
    return str(info.registered_model_version)


def load_bundle(uri: str, root: Path) -> dict:
    """Download a registered bundle (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``) and read it.

    The store is ``$MLFLOW_TRACKING_URI``, else the project's (``tracking.uri``, else its
    ``mlflow.db``); outside a project, with no ``$MLFLOW_TRACKING_URI``, there is no store to ask."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from audiovae.inference import bundle
    from audiovae.tracking import runs

    store = runs.store_of(root)
    if store is None:
        raise LookupError(f"{uri} names a registered model, but {root} is no audiovae project and "
                          "MLFLOW_TRACKING_URI is not set: set it to the tracking server, or give --model a "
                          ".avae file (audiovae export --out model.avae)")
    with tempfile.TemporaryDirectory(prefix="audiovae-model-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=store)
        except MlflowException as exc:
            raise LookupError(f"{uri} not found in the tracking store {store}: {exc.message}") from exc
        found = sorted(Path(local).rglob("*" + bundle.SUFFIX))
        if not found:
            raise LookupError(f"{uri} holds no {bundle.SUFFIX} bundle: register models with the export stage")
        return bundle.read(found[0])


def registered_by(client, run_id: str) -> dict[str, str]:
    """``{model name: version}`` that one pipeline run registered (its ``registered.*`` tags)."""
    from audiovae.tracking.runs import REGISTERED_TAG

    tags = client.get_run(run_id).data.tags
    return {k[len(REGISTERED_TAG):]: v for k, v in tags.items() if k.startswith(REGISTERED_TAG)}


def mark_challenger(client, metrics: dict[str, float], versions: dict[str, str]) -> dict[str, str]:
    """Alias exactly ``versions`` (what this run registered) ``challenger``; tag them with ``metrics``."""
    for name, version in versions.items():
        client.set_registered_model_alias(name, "challenger", version)
        for key, value in metrics.items():
            if isinstance(value, float) and math.isfinite(value):
                client.set_model_version_tag(name, version, METRIC_TAG + key, repr(value))
    return dict(versions)


def champion_metrics(client, name: str = BUNDLE_MODEL) -> dict[str, float] | None:
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except Exception:  # noqa: BLE001 - MLflow raises a generic exception for an unknown alias
        return None
    return {k[len(METRIC_TAG):]: float(v) for k, v in version.tags.items() if k.startswith(METRIC_TAG)}


def promote(client, versions: dict[str, str]) -> None:
    for name, version in versions.items():
        client.set_registered_model_alias(name, "champion", version)
