"""The U-Net reconstruction baseline (issue 13) trains through the real stages on the tiny project."""
from __future__ import annotations

import numpy as np
import torch
from conftest import typed

from audiovae.config.params import deep_merge
from audiovae.data.artifacts import open_features, split_rows
from audiovae.models.outer import build_outer
from audiovae.stages import download, encode, features, train_inner, train_outer
from audiovae.stages import filter as filter_stage


def test_unet_outer_trains_and_the_inner_vae_runs_on_it(project):
    root, params = project
    params = deep_merge(params, {"outer": {"model": "unet", "unet": {"channels": 4, "depth": 2},
                                           "train": {"epochs": 2}}})
    download.run(typed(params), root)
    filter_stage.run(typed(params), root)
    features.run(typed(params), root)
    result = train_outer.run(typed(params), root)
    model = result["model"].cpu().eval()
    specs, index, _ = open_features(root / "data" / "features")
    assert model.kind == "unet" and model.code_shape() == specs.shape[1:]  # no bottleneck
    val = torch.from_numpy(np.asarray(specs[split_rows(index, "val")]))
    torch.manual_seed(0)
    untrained = build_outer("unet", *specs.shape[1:], channels=4, depth=2, activation="relu").eval()
    with torch.no_grad():
        before = torch.mean(torch.abs(untrained(val) - val)).item()
        after = torch.mean(torch.abs(model(val) - val)).item()
    assert after < 0.9 * before, (before, after)  # a few steps move it towards the input
    encode.run(typed(params), root)
    inner = train_inner.run(typed(params), root)
    assert len(inner["history"].epochs) == params["inner"]["train"]["epochs"]
