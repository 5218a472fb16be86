"""What MLflow serves for a registered torch model: one tensor for one input, as its signature says.

The inner VAE's ``forward`` returns ``(reconstruction, mu, logvar, z)`` for its loss, but an
``mlflow.pytorch`` model is served through pyfunc, which takes one output tensor: logged bare, the
registered inner VAE could not predict (MLflow's own check of the input example said so at every
``log_model``). Such a model is logged inside ``FirstOutput``; the trained module is its ``model``.
"""
from __future__ import annotations

from torch import nn


class FirstOutput(nn.Module):
    """``model``'s first output only: the reconstruction, the output of the logged signature."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        return out[0] if isinstance(out, tuple) else out
