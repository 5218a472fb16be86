"""The filter stage's rejections and normalisation, and the feature codec's round trip."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import fsdd_members, params_with, sine, typed

from audiovae.data import audio
from audiovae.data import filter as filtering
from audiovae.data.artifacts import open_features
from audiovae.data.spectrogram import Codec, log_spectral_distance
from audiovae.stages import features
from audiovae.stages import filter as filter_stage


def make_case(root, name, writer):
    path = root / "data" / "raw" / "t" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(path)
    return f"data/raw/t/{name}"


@pytest.fixture
def filter_project(tmp_path):
    root = tmp_path
    rows = []

    def add(name, writer, label="x"):
        rows.append({"path": make_case(root, name, writer), "dataset": "t", "label": label, "speaker": "s",
                     "take": len(rows), "split": "train"})
    # 30 usable files of 0.30 .. 0.59 s, two of them outliers in length
    for i in range(30):
        seconds = 0.30 + 0.01 * i
        add(f"ok_{i:02d}.wav", lambda p, s=seconds: sf.write(p, sine(s, 16000, 300), 16000))
    add("tiny.wav", lambda p: sf.write(p, sine(0.05, 16000), 16000))
    add("huge.wav", lambda p: sf.write(p, sine(3.0, 16000), 16000))
    add("stereo.wav", lambda p: sf.write(p, sine(0.45, 44100, 200, channels=2), 44100, subtype="PCM_24"))
    add("empty.wav", lambda p: sf.write(p, np.zeros(0, np.float32), 16000))
    add("nan.wav", lambda p: sf.write(p, np.where(np.arange(8000) == 100, np.nan, 0.1).astype(np.float32),
                                      16000, subtype="FLOAT"))
    add("silent.wav", lambda p: sf.write(p, np.zeros(8000, np.float32), 16000))
    add("text.wav", lambda p: p.write_text("this is not audio at all, just text"))
    add("gone.wav", lambda p: None)  # listed, but the file is missing
    add("lonely.wav", lambda p: sf.write(p, sine(0.45, 16000, 500), 16000), label="rare")  # a class of one file
    pd.DataFrame(rows).to_csv(root / "data" / "metadata.csv", index=False)
    params = params_with({"seed": 0, "tracking": {"enabled": False},
                          "filter": {"lower_percentile": 3, "upper_percentile": 97, "silence_peak": 1e-4,
                                     "sample_rate": 8000, "seconds": 0.5, "length_mode": "center", "trim_db": 0,
                                     "min_class_files": 2, "small_classes": "drop"}})
    return root, params


def test_every_rejection_reason(filter_project):
    root, params = filter_project
    kept = filter_stage.run(typed(params), root)
    rejected = pd.read_csv(root / "reports" / "filter" / "rejections.csv").set_index("path")
    reasons = {p.split("/")[-1]: r for p, r in rejected["reason"].items()}
    assert reasons == {"tiny.wav": "too_short", "huge.wav": "too_long", "empty.wav": "empty",
                       "nan.wav": "non_finite", "silent.wav": "silent", "text.wav": "not_audio",
                       "gone.wav": "unreadable", "lonely.wav": "small_class"}
    summary = json.loads((root / "reports" / "filter" / "summary.json").read_text())
    assert summary["kept"] == 31 and summary["rejected"] == 8
    assert all(v == 1 for v in summary["rejected_by_reason"].values())
    assert summary["small_classes"] == {"t:rare": {"files": 1, "action": "dropped",
                                                   "why": "1 file(s) < filter.min_class_files 2"}}
    assert (root / "reports" / "filter" / "length_hist.png").stat().st_size > 1000
    percentiles = pd.read_csv(root / "reports" / "filter" / "percentiles.csv")
    assert percentiles.loc[0, "lower_cut"] < 0.30 + 1e-6 and percentiles.loc[0, "upper_cut"] < 3.0
    assert "stereo.wav" in " ".join(kept["path"])


def test_long_sounds_are_cut_not_rejected_when_asked(filter_project):
    """``filter.long_sounds: cut``: the 3 s file the percentile rejects as too long is kept, its
    start kept and faded out to silence at the clip's end; every sound longer than the clip is cut
    so, and the report counts them."""
    root, params = filter_project
    params["filter"].update(long_sounds="cut", fade_seconds=0.05)
    kept = filter_stage.run(typed(params), root)
    assert "huge.wav" in " ".join(kept["path"])
    summary = json.loads((root / "reports" / "filter" / "summary.json").read_text())
    assert summary["rejected_by_reason"]["too_long"] == 0 and summary["kept"] == 32
    assert summary["cut"] == summary["longer_than_clip"] == int((kept["seconds"] > 0.5).sum()) >= 1
    waves = np.load(root / "data" / "filtered" / "audio.npy")
    huge = waves[kept.index[kept["path"].str.endswith("huge.wav")][0]]
    start = audio.load_mono(root / kept.loc[kept["path"].str.endswith("huge.wav"), "path"].iloc[0], 8000)
    fade = 400  # 0.05 s at 8 kHz
    assert np.allclose(huge[:4000 - fade], start[:4000 - fade], atol=1e-6)  # the start, not the middle
    assert huge[-1] == 0.0 and np.all(np.abs(huge[-fade:]) <= np.abs(start[4000 - fade:4000]) + 1e-6)
    params["filter"]["long_sounds"] = "reject"
    filter_stage.run(typed(params), root)
    assert json.loads((root / "reports" / "filter" / "summary.json").read_text())["cut"] == 0


def test_normalised_audio_is_mono_resampled_peak_one_and_fixed_length(filter_project):
    root, params = filter_project
    filter_stage.run(typed(params), root)
    waves = np.load(root / "data" / "filtered" / "audio.npy")
    index = pd.read_csv(root / "data" / "filtered" / "index.csv")
    assert waves.shape == (31, 4000)
    assert np.allclose(np.abs(waves).max(axis=1), 1.0, atol=1e-5)
    stereo = waves[index.index[index["path"].str.endswith("stereo.wav")][0]]
    # 0.45 s at 8 kHz is 3600 samples, right-padded with zeros to 4000
    assert np.all(stereo[3610:] == 0) and np.abs(stereo[:3500]).max() > 0.9
    meta = json.loads((root / "data" / "filtered" / "audio.json").read_text())
    assert meta == {"files": 31, "length": 4000, "length_mode": "center", "sample_rate": 8000, "trim_db": 0.0}


def test_length_modes():
    x = np.arange(10, dtype=np.float32)
    assert audio.fit_length(x, 4, "center").tolist() == [3, 4, 5, 6]
    assert audio.fit_length(x, 4, "right").tolist() == [0, 1, 2, 3]
    assert audio.fit_length(x[:3], 5, "center").tolist() == [0, 1, 2, 0, 0]
    with pytest.raises(ValueError, match="center"):
        audio.fit_length(x, 4, "left")


def speech_like(sr=8000, seconds=0.76, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.hanning(len(t))
    return (y / np.abs(y).max()).astype(np.float32) + 0.001 * rng.standard_normal(len(t)).astype(np.float32)


def test_codec_inverse_is_exact_in_db_and_per_file_min_max_is_kept():
    y = np.stack([speech_like(seed=0), 0.3 * speech_like(seed=1)])
    codec = Codec(8000)
    scaled, mm = codec.encode(y)
    assert mm is None and scaled.min() >= 0 and scaled.max() <= 1 and scaled.shape == (2, 128, 96)
    db = 20 * np.log10(np.maximum(codec.magnitude(y) / codec.ref, 1e-4))
    assert np.allclose(codec.to_db(scaled), np.clip(db, -80, 0), atol=1e-3)
    per_file = Codec(8000, scaling="per_file")
    scaled_pf, mm = per_file.encode(y)
    assert mm.shape == (2, 2) and np.allclose(scaled_pf.max(axis=(1, 2)), 1.0)
    assert np.allclose(per_file.to_db(scaled_pf, mm), db, atol=1e-3)
    with pytest.raises(ValueError, match="min, max"):
        per_file.to_db(scaled_pf)
    mu = Codec(8000, representation="mu_law", mu=8)
    scaled_mu, _ = mu.encode(y)
    linear = np.clip(codec.magnitude(y) / codec.ref, 0, 1)
    recovered = 10 ** (mu.to_db(scaled_mu) / 20)
    keep = linear > 1e-3
    assert np.allclose(recovered[keep], linear[keep], rtol=1e-3)


def test_a_silence_margin_turns_a_models_near_floor_output_into_silence():
    """A decoder's sigmoid never reaches 0: what it returns just above the floor is hiss where the
    recording is silent. With ``silence_margin_db`` it decodes to nothing, as the floor itself does;
    louder levels decode exactly as before."""
    y = speech_like(seed=0)
    plain = Codec(8000)
    features = plain.encode(y)[0]
    model_like = np.where(features == 0, 1.0 / 80, features)  # 1 dB above the floor where the truth is silent
    assert (plain.to_magnitude(model_like)[:-1][features == 0] > 0).all()  # without a margin: -79 dB hiss
    margin = Codec(8000, silence_margin_db=1.5)
    magnitude = margin.to_magnitude(model_like)[:-1]
    assert (magnitude[features == 0] == 0).all()
    loud = features > 3 / 80
    assert np.array_equal(magnitude[loud], plain.to_magnitude(model_like)[:-1][loud])
    with pytest.raises(ValueError, match="silence_margin_db"):
        Codec(8000, silence_margin_db=-1)


def test_griffin_lim_of_the_true_magnitude_round_trips():
    """Real recordings: Griffin-Lim of the true magnitude is close to the original audio."""
    import io

    recordings = fsdd_members(["jackson"], digits=[3, 7], takes=[0]).values()
    three, seven = [audio.fit_length(audio.peak_normalise(sf.read(io.BytesIO(b), dtype="float32")[0]), 6080, "center")
                    for b in recordings]
    codec = Codec(8000, gl_iterations=32)
    back = codec.to_audio(codec.encode(three)[0], length=len(three))
    assert back.shape == three.shape and np.abs(back).max() == pytest.approx(0.9, rel=1e-3)
    lsd = log_spectral_distance(three, back, 256, 64)
    assert lsd < 2.5, lsd                     # measured 1.5 dB
    assert log_spectral_distance(three, seven, 256, 64) > 4 * lsd   # another digit is far away


def test_features_stage_writes_a_memmap_index_and_codec(filter_project):
    root, params = filter_project
    filter_stage.run(typed(params), root)
    params["features"] = {"n_fft": 256, "hop_length": 64, "window": "hann", "drop_nyquist": True,
                          "representation": "db", "mu": 8, "scaling": "global", "db_floor": -80,
                          "db_ceiling": 0, "silence_margin_db": 0, "batch_size": 7, "output_peak": 0.9,
                          "griffin_lim": {"iterations": 8, "momentum": 0.99, "seed": 0},
                          "augment": {"mix": {"enabled": False, "per_train_file": 0.5, "gain_db": [-6, 0]}}}
    features.run(typed(params), root)
    specs, index, codec = open_features(root / "data" / "features")
    assert isinstance(specs, np.memmap) and specs.shape == (31, 128, 1 + 4000 // 64)
    waves = np.load(root / "data" / "filtered" / "audio.npy")
    assert np.allclose(specs[30], codec.encode(waves[30])[0], atol=1e-6)  # last, partial batch
    assert codec.sample_rate == 8000 and len(index) == 31


def test_trim_db_drops_the_silence_around_a_sound(tmp_path):
    """1.5 s of quiet room before a 0.3 s tone: without trimming a 0.76 s window keeps only the room;
    with filter.trim_db the tone starts the window, and the filter measures the trimmed length."""
    rng = np.random.default_rng(0)
    room = 1e-4 * rng.standard_normal(int(1.5 * 16000)).astype(np.float32)
    signal = np.concatenate([room, sine(0.3, 16000, 500.0), room[:4000]])
    sf.write(tmp_path / "take.wav", signal, 16000)
    kept = audio.load_normalised(tmp_path / "take.wav", 8000, 6080, "right", trim_db=40)
    untrimmed = audio.load_normalised(tmp_path / "take.wav", 8000, 6080, "right")
    tone = slice(0, 2400)  # the first 0.3 s at 8 kHz
    assert np.abs(kept[tone]).mean() > 0.2 and np.abs(untrimmed[tone]).mean() < 0.01
    table = pd.DataFrame({"path": ["take.wav"]})
    seconds = filtering.inspect(table, tmp_path, 1e-5, trim_db=40)["seconds"].iloc[0]
    assert seconds == pytest.approx(0.3, abs=0.1)
    assert filtering.inspect(table, tmp_path, 1e-5)["seconds"].iloc[0] == pytest.approx(2.05, abs=0.01)
