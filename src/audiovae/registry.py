"""Model registry aliases used by retraining: ``challenger`` for the newest model, ``champion`` for
the one in service (``models:/audiovae-inner@champion``). Each version carries its evaluation
metrics as tags, so the gate can compare without re-running anything."""
from __future__ import annotations

import math

MODELS = ("audiovae-outer", "audiovae-inner")
METRIC_TAG = "metric."


def latest_versions(client, names=MODELS) -> dict[str, object]:
    out = {}
    for name in names:
        versions = client.search_model_versions(f"name='{name}'")
        if versions:
            out[name] = max(versions, key=lambda v: int(v.version))
    return out


def mark_challenger(client, metrics: dict[str, float]) -> dict[str, str]:
    """Alias the newest version of each model ``challenger`` and tag it with ``metrics``."""
    marked = {}
    for name, version in latest_versions(client).items():
        client.set_registered_model_alias(name, "challenger", version.version)
        for key, value in metrics.items():
            if isinstance(value, float) and math.isfinite(value):
                client.set_model_version_tag(name, version.version, METRIC_TAG + key, repr(value))
        marked[name] = version.version
    return marked


def champion_metrics(client, name: str = "audiovae-inner") -> dict[str, float] | None:
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except Exception:  # noqa: BLE001 - MLflow raises a generic exception for an unknown alias
        return None
    return {k[len(METRIC_TAG):]: float(v) for k, v in version.tags.items() if k.startswith(METRIC_TAG)}


def promote(client, versions: dict[str, str]) -> None:
    for name, version in versions.items():
        client.set_registered_model_alias(name, "champion", version)
