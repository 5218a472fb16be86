"""The registered model: an MLflow ``pyfunc`` around an exported bundle.

The registry's ``audiovae`` model holds the bundle file itself (``artifacts/model.avae``), so
``models:/audiovae@champion`` is complete: the CLI downloads and loads the bundle, and
``mlflow.pyfunc.load_model`` serves generation: a table of ``label``, ``seed`` (and optionally
``spread``) in, one row of audio samples per input row out.

Logged as "models from code": MLflow stores this file, not a pickle, and runs it on loading, so
imports here are absolute (the file runs outside the package).
"""
from __future__ import annotations

import mlflow.models
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from audiovae.inference.model import AudioVAE


def generate_table(model: AudioVAE, table: pd.DataFrame) -> np.ndarray:
    """One generated sound per row: ``label``, ``seed``, and ``spread`` (default: the evaluated one)."""
    default = model.default_spread if model.trained.evaluate else 1.0
    rows = []
    for row in table.itertuples(index=False):
        spread = float(getattr(row, "spread", default))
        specs = model.generate(str(row.label), 1, seed=int(row.seed), spread=spread)
        rows.append(model.to_audio(specs)[0])
    return np.stack(rows).astype(np.float32)


def example_input(model: AudioVAE) -> pd.DataFrame:
    return pd.DataFrame({"label": [model.labels[0]], "seed": [0]})


class BundleModel(PythonModel):
    def load_context(self, context):
        self.model = AudioVAE.from_file(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return generate_table(self.model, model_input)


mlflow.models.set_model(BundleModel())
