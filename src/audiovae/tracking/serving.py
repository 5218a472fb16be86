"""The registered model: an MLflow ``pyfunc`` around an exported bundle.

The registry's ``audiovae`` model holds the bundle file itself (``artifacts/model.avae``), so
``models:/audiovae@champion`` is complete: the CLI downloads and loads the bundle, and
``mlflow.pyfunc.load_model`` serves generation: a table of ``label``, ``seed`` (and optionally
``spread``; for a model trained on notes ``pitch`` and ``velocity``, MIDI numbers) in, one row of
audio samples per input row out.

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
    """One generated sound per row: ``label``, ``seed``, and ``spread`` (default: the evaluated one);
    ``pitch`` and ``velocity`` where given (a model without notes refuses them)."""
    default = model.default_spread if model.trained.evaluate else 1.0
    rows = []
    for row in table.itertuples(index=False):
        spread = float(getattr(row, "spread", default))
        pitch, velocity = getattr(row, "pitch", None), getattr(row, "velocity", None)
        specs = model.generate(str(row.label), 1, seed=int(row.seed), spread=spread,
                               pitch=None if pitch is None else int(pitch),
                               velocity=None if velocity is None else int(velocity))
        rows.append(model.to_audio(specs)[0])
    return np.stack(rows).astype(np.float32)


def example_input(model: AudioVAE) -> pd.DataFrame:
    """The signature's example: a label and a seed, and for a model trained on notes its default key."""
    notes = {"pitch": [model.default_pitch()], "velocity": [100]} if model.pitch_range is not None else {}
    return pd.DataFrame({"label": [model.labels[0]], "seed": [0], **notes})


class BundleModel(PythonModel):
    def load_context(self, context):
        self.model = AudioVAE.from_file(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return generate_table(self.model, model_input)


mlflow.models.set_model(BundleModel())
