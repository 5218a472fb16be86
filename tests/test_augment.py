"""Mixing augmentation (issue 13): off changes nothing; on adds counted, reproducible mixes of two
training sounds of one label, to the training split only."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import linked_project, typed

from audiovae.config.params import deep_merge
from audiovae.data import augment
from audiovae.data.artifacts import load_codec, real_rows
from audiovae.stages import download, features
from audiovae.stages import filter as filter_stage


def test_mixing_adds_counted_training_examples_only(project):
    root, params = project
    download.run(typed(params), root)
    filter_stage.run(typed(params), root)
    features.run(typed(params), root)
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
    features.run(typed(on), root)
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
    plan = augment.plan_mixes(filtered_index, typed(on).features.augment.mix, on["seed"])
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


def encode_augment(**cfg) -> dict:
    return {"copies": 1, "gain_db": 0, "shift_seconds": 0, "speed": 0, "noise_snr_db": [], **cfg}


def test_each_encode_transform_does_what_it_says():
    from types import SimpleNamespace

    sr = 8000
    t = np.arange(sr) / sr
    tone = np.zeros(sr, np.float32)
    tone[1000:5000] = np.sin(2 * np.pi * 500 * t[1000:5000])

    def row(**kw):
        return SimpleNamespace(**{"gain_db": 0.0, "shift_seconds": 0.0, "speed": 1.0, "noise_snr_db": np.inf,
                                  "noise_seed": 0, **kw})

    def pitch(x):
        return np.argmax(np.abs(np.fft.rfft(x))) * sr / len(x)

    assert np.allclose(augment.transform(tone, row(), sr), tone)  # identity when every range is 0
    faster = augment.transform(tone, row(speed=1.1), sr)
    assert len(faster) == sr and abs(pitch(faster) - 550) < 5  # a tape played 10 % faster: 10 % higher
    shifted = augment.transform(tone, row(shift_seconds=0.05), sr)
    assert np.flatnonzero(np.abs(shifted) > 0.1)[0] == np.flatnonzero(np.abs(tone) > 0.1)[0] + 400
    assert np.abs(augment.transform(tone, row(gain_db=-6.0), sr)).max() == pytest.approx(10 ** (-6 / 20), rel=1e-4)
    noisy = augment.transform(tone, row(noise_snr_db=20.0), sr)
    a = float(noisy @ tone / (tone @ tone))  # the tone's share of the (peak-normalised) output
    snr = 10 * np.log10(np.mean((a * tone) ** 2) / np.mean((noisy - a * tone) ** 2))
    assert 19 < snr < 21


def test_encode_augmentation_adds_training_codes_only_and_is_deterministic(trained, tmp_path):
    from audiovae.stages import encode

    root, params, *_ = trained
    plain_codes = np.load(root / "data" / "encodings" / "codes.npy")
    plain_index = pd.read_csv(root / "data" / "encodings" / "index.csv", dtype={"label": str, "speaker": str})
    plain_stats = np.load(root / "data" / "encodings" / "stats.npz")
    inputs = ["data/features", "data/filtered", "data/models/outer"]

    def run(seed, **cfg):
        p = deep_merge(params, {"seed": seed, "encode": {"augment": encode_augment(**cfg)}})
        with linked_project(root, tmp_path, inputs) as scratch:
            encode.run(typed(p), scratch)
            enc = scratch / "data" / "encodings"
            summary = json.loads((scratch / "reports" / "encode" / "summary.json").read_text())
            return (np.load(enc / "codes.npy"), pd.read_csv(enc / "index.csv", dtype={"label": str, "speaker": str}),
                    dict(np.load(enc / "stats.npz")), summary)

    codes, index, stats, summary = run(params["seed"], copies=2, speed=0.1)
    real_train = real_rows(plain_index, "train")
    n = len(plain_index)
    assert len(index) == n + 2 * len(real_train) == summary["rows"] and summary["augmented_copies"] == 2 * len(real_train)
    added = index.iloc[n:]
    assert (added["split"] == "train").all() and (added["augmented"] == 1).all() and (added["row"] == -1).all()
    assert sorted(added["label"]) == sorted(np.repeat(plain_index["label"].to_numpy()[real_train], 2))
    # the real rows, every split, and the standardisation are those of the plain run
    assert np.array_equal(codes[:n], plain_codes)
    assert all(np.array_equal(stats[k], plain_stats[k]) for k in ("mean", "std"))
    assert not np.allclose(codes[n:n + 1], plain_codes[real_train[:1]])  # a copy is not its source
    again, *_ = run(params["seed"], copies=2, speed=0.1)
    other, *_ = run(params["seed"] + 1, copies=2, speed=0.1)
    assert np.array_equal(again, codes) and not np.array_equal(other[n:], codes[n:])
    off, off_index, *_ = run(params["seed"], copies=0, speed=0.1)
    assert np.array_equal(off, plain_codes) and len(off_index) == n
