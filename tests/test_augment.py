"""Mixing augmentation (issue 13): off changes nothing; on adds counted, reproducible mixes of two
training sounds of one label, to the training split only."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd

from audiovae import augment, download, features, filter as filter_stage
from audiovae.artifacts import load_codec, real_rows
from audiovae.params import deep_merge


def test_mixing_adds_counted_training_examples_only(project):
    root, params = project
    download.run(params, root)
    filter_stage.run(params, root)
    features.run(params, root)
    out = root / "data" / "features"
    off = {name: (out / name).read_bytes() for name in ("spectrograms.npy", "index.csv", "codec.json")}
    waves = np.load(root / "data" / "filtered" / "audio.npy")
    filtered_index = pd.read_csv(root / "data" / "filtered" / "index.csv", dtype={"label": str, "speaker": str})
    # off: exactly the plain STFT of the filtered audio and the filter's own index
    assert (out / "index.csv").read_bytes() == (root / "data" / "filtered" / "index.csv").read_bytes()
    assert np.array_equal(np.load(out / "spectrograms.npy"), load_codec(out).encode(waves)[0])
    assert json.loads((root / "reports" / "features" / "summary.json").read_text())["mixed"] == 0

    shutil.rmtree(out)
    on = deep_merge(params, {"features": {"augment": {"mix": {"enabled": True, "per_train_file": 0.5}}}})
    features.run(on, root)
    index = pd.read_csv(out / "index.csv", dtype={"label": str, "speaker": str})
    specs = np.load(out / "spectrograms.npy")
    n_train = int((filtered_index["split"] == "train").sum())
    added = int(round(0.5 * n_train))
    assert len(index) == len(specs) == len(filtered_index) + added
    assert json.loads((root / "reports" / "features" / "summary.json").read_text())["mixed"] == added
    mixes = index[index["augmented"] == 1]
    assert len(mixes) == added and set(mixes["split"]) == {"train"} and (mixes["row"] == -1).all()
    for split in ("val", "test"):  # never applied to validation or test
        assert (index["split"] == split).sum() == (filtered_index["split"] == split).sum()
    # the real rows are untouched; each mix is the STFT of its two same-label sources at their gains
    assert np.array_equal(specs[:len(filtered_index)], np.load(_bytes_file(root, off["spectrograms.npy"])))
    plan = augment.plan_mixes(filtered_index, on["features"]["augment"]["mix"], on["seed"])
    assert (filtered_index["label"].to_numpy()[plan["a"]] == filtered_index["label"].to_numpy()[plan["b"]]).all()
    assert (filtered_index["split"].to_numpy()[plan[["a", "b"]].to_numpy().ravel()] == "train").all()
    assert (plan["a"] != plan["b"]).all() and plan["gain_a_db"].between(-6, 0).all()
    expected = load_codec(out).encode(augment.mix(waves, plan))[0]
    assert np.array_equal(specs[len(filtered_index):], expected)
    assert list(mixes["label"]) == list(plan["label"])
    # evaluation's real training rows leave the mixes out
    assert np.array_equal(real_rows(index, "train"), np.flatnonzero(filtered_index["split"] == "train"))


def _bytes_file(root, data: bytes):
    path = root / "off.npy"
    path.write_bytes(data)
    return path
