"""The standard quality measures and the clean classifier on known cases: identical signals give the
ceiling, a degraded copy scores lower, noise scores worst."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import base_params, fsdd_members, sine, tone_classes, typed
from scipy import signal

from audiovae.evaluation import quality
from audiovae.evaluation.classifier import CleanClassifier
from audiovae.tracking.promotion import decide

SR = 8000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Eight real FSDD recordings, 0.76 s each (the model's input form)."""
    import io

    import soundfile as sf
    clips = []
    for data in list(fsdd_members(["jackson", "theo"], digits=range(4), takes=[0]).values()):
        y, _ = sf.read(io.BytesIO(data), dtype="float32")
        clips.append(np.pad(y, (0, max(0, 6080 - len(y))))[:6080])
    return np.stack(clips)


def degraded(clean: np.ndarray) -> np.ndarray:
    """Low-passed at 1.5 kHz plus noise at 20 dB SNR: intelligible, clearly not the original."""
    sos = signal.butter(6, 1500, fs=SR, output="sos")
    low = signal.sosfilt(sos, clean, axis=-1).astype(np.float32)
    rng = np.random.default_rng(0)
    return low + 0.1 * np.sqrt(np.mean(low ** 2)) * rng.standard_normal(low.shape).astype(np.float32)


def noise_like(clean: np.ndarray) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(clean.shape).astype(np.float32)


def test_pesq_orders_identical_degraded_and_noise(speech):
    same = quality.pesq_mean(speech, speech, SR)
    worse = quality.pesq_mean(speech, degraded(speech), SR)
    worst = quality.pesq_mean(speech, noise_like(speech), SR)
    assert same > 4.4 and same > worse + 0.5 and worse > worst and worst < 1.6
    assert quality.pesq_mean(speech, 0.3 * speech, SR) == pytest.approx(same, abs=0.01)  # gain is no error
    with pytest.raises(ValueError, match="16000 Hz"):
        quality.pesq_mean(speech, speech, SR, mode="wb")


def test_pesq_wideband_at_16k(speech):
    import librosa
    wide = librosa.resample(speech, orig_sr=SR, target_sr=16000)
    assert quality.pesq_mean(wide, wide, 16000, "wb") > 4.4
    assert quality.pesq_mean(wide, noise_like(wide), 16000, "wb") < 1.5


def test_stoi_orders_identical_degraded_and_noise(speech):
    assert quality.stoi_score(speech, speech, SR) == pytest.approx(1.0, abs=1e-6)
    worse = quality.stoi_score(speech, degraded(speech), SR)
    assert 0.5 < worse < 0.99 and quality.stoi_score(speech, noise_like(speech), SR) < worse - 0.3


def test_dnsmos_prefers_clean_speech_to_noisy_speech_to_noise(speech):
    clean = quality.dnsmos(speech[:3], SR)
    noisy = quality.dnsmos(speech[:3] + 0.03 * noise_like(speech[:3]) * np.abs(speech[:3]).max(), SR)
    noise = quality.dnsmos(noise_like(speech[:3]), SR)
    assert set(clean) == {"sig", "bak", "ovrl"}
    assert clean["ovrl"] > noisy["ovrl"] + 0.3 > noise["ovrl"] + 0.3 and clean["bak"] > noisy["bak"]


def test_mrstft_distance_is_zero_for_identical_and_grows_with_damage():
    rng = np.random.default_rng(0)
    tones = np.stack([sine(0.5, 22050, f) for f in (220, 440, 660)])
    assert quality.mrstft_distance(tones, tones, 22050) == pytest.approx(0.0, abs=1e-4)
    damaged = quality.mrstft_distance(tones, tones + 0.05 * rng.standard_normal(tones.shape).astype(np.float32), 22050)
    assert 0.0 < damaged < quality.mrstft_distance(tones, rng.standard_normal(tones.shape).astype(np.float32), 22050)


def test_subsample_is_fixed_and_sorted():
    a = quality.subsample(100, 10, seed=3)
    assert len(a) == 10 and list(a) == sorted(a) and (a == quality.subsample(100, 10, seed=3)).all()
    assert (quality.subsample(5, 10, seed=3) == np.arange(5)).all()


def test_clean_classifier_learns_from_clean_audio_only_and_is_not_always_right():
    cfg = typed(base_params()).evaluate.clean_classifier
    rng = np.random.default_rng(0)
    train_x, train_y = tone_classes(12, rng)
    test_x, test_y = tone_classes(5, rng)
    clean = CleanClassifier(SR, cfg.model_copy(update={"pca_components": 8}), seed=0).fit(train_x, train_y)
    assert clean.noise_snr_db == []  # no augmentation
    assert clean.pipeline[-1].support_vectors_.shape[0] <= len(train_x)  # trained on the clean copies alone
    assert clean.accuracy(test_x, test_y) == 1.0
    assert clean.accuracy(test_x, np.roll(test_y, 5)) == 0.0
    assert clean.embed(test_x).shape == (len(test_x), 8)


def test_the_champion_gate_uses_the_independent_primary_metric():
    cfg = base_params()["retrain"]
    assert cfg["primary_metric"].startswith("quality.") and cfg["mode"] == "max"
    champion = {"quality": {"full_pesq_nb": 2.5}}
    challenger = {"quality": {"full_pesq_nb": 2.9}}
    from audiovae.tracking.promotion import flat_metrics
    required = {k: 0.9 for k in cfg["required_metrics"]}
    flat = {**flat_metrics(challenger), **required}
    assert decide(flat, {**flat_metrics(champion), **required}, cfg["primary_metric"], cfg["mode"],
                  cfg["min_margin"], tuple(cfg["required_metrics"])).promote
    # an old champion gate metric alone no longer decides anything
    assert not decide({**required, "classifier.generated_accuracy": 1.0}, flat, cfg["primary_metric"], cfg["mode"],
                      cfg["min_margin"], tuple(cfg["required_metrics"])).promote
