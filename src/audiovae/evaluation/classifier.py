"""Label classifiers on audio, trained on real training audio only, used to score what we make.

``AudioClassifier``: audio -> log-mel spectrogram (its own STFT settings, not our features) ->
standardise -> PCA -> RBF support-vector machine, all scikit-learn. The PCA projection is the
embedding in which the Fréchet distance between generated and real audio is measured.

``CleanClassifier``: the primary judge. Trained on clean real training audio with no augmentation,
on MFCCs and deltas that keep fine spectral (many coefficients) and temporal (many segments plus
whole-clip spread) detail: it does not learn to forgive the blur a model makes.

``CheckClassifier``: a second opinion of another family (MFCCs and their deltas pooled over a
few time segments -> logistic regression), so a model that merely fools the first classifier
shows up as a gap between the two. Both see waveforms only: sounds are judged as sound.
"""
from __future__ import annotations

import logging
from typing import Callable

import librosa
import numpy as np
from scipy import linalg
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from audiovae.config.schema import (
    CheckClassifierCfg,
    ClassifierCfg,
    CleanClassifierCfg,
    MfccSegmentsCfg,
    StftCfg,
)

log = logging.getLogger("audiovae.classifier")


def _peak_normalised(audio: np.ndarray) -> np.ndarray:
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    return audio / np.maximum(np.abs(audio).max(axis=-1, keepdims=True), 1e-9)


def log_mel(audio: np.ndarray, sample_rate: int, cfg: ClassifierCfg) -> np.ndarray:
    """(n, samples) -> (n, mels * frames): log-mel of peak-normalised audio, floored 80 dB below its peak."""
    mel = librosa.feature.melspectrogram(y=_peak_normalised(audio), sr=sample_rate, n_fft=cfg.n_fft,
                                         hop_length=cfg.hop_length, n_mels=cfg.n_mels)
    db = librosa.power_to_db(mel, ref=1.0, top_db=None)
    db = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - 80.0)
    return db.reshape(len(mel), -1).astype(np.float32)


def mfcc_segments(audio: np.ndarray, sample_rate: int, cfg: MfccSegmentsCfg) -> np.ndarray:
    """(n, samples) -> MFCCs and deltas averaged over ``segments`` equal stretches of time (the
    coarse order of the phonemes survives; the exact alignment does not matter)."""
    mfcc = librosa.feature.mfcc(y=_peak_normalised(audio), sr=sample_rate, n_mfcc=cfg.n_mfcc,
                                n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    feats = np.concatenate([mfcc, librosa.feature.delta(mfcc)], axis=-2)
    pooled = [part.mean(-1) for part in np.array_split(feats, cfg.segments, axis=-1)]
    return np.concatenate(pooled, axis=-1).astype(np.float32)


def mfcc_detail(audio: np.ndarray, sample_rate: int, cfg: MfccSegmentsCfg) -> np.ndarray:
    """MFCC segments (fine time order) plus each coefficient's whole-clip standard deviation."""
    segments = mfcc_segments(audio, sample_rate, cfg)
    mfcc = librosa.feature.mfcc(y=_peak_normalised(audio), sr=sample_rate, n_mfcc=cfg.n_mfcc,
                                n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    return np.concatenate([segments, mfcc.std(-1)], axis=-1).astype(np.float32)


def augmented(audio: np.ndarray, noise_snr_db: list[float], seed: int) -> np.ndarray:
    """The clean audio plus one copy per SNR with white noise added (the usual robustness
    augmentation: without it the classifier keys on the digital silence of the padding)."""
    rng = np.random.default_rng(seed)
    power = np.mean(audio ** 2, axis=-1, keepdims=True)
    copies = [audio]
    for snr in noise_snr_db:
        noise = rng.standard_normal(audio.shape).astype(np.float32)
        copies.append(audio + noise * np.sqrt(power / 10 ** (float(snr) / 10)))
    return np.concatenate(copies)


class _WaveformClassifier:
    """Features of the waveform (``features``, set by each subclass) -> a scikit-learn pipeline,
    fitted on clean plus noisy copies."""

    features: Callable[..., np.ndarray]  # (audio, sample_rate, cfg) -> one row per clip

    def __init__(self, sample_rate: int, cfg: StftCfg, seed: int, pipeline, noise_snr_db: list[float]):
        self.sample_rate, self.cfg, self.seed, self.pipeline = sample_rate, cfg, seed, pipeline
        self.noise_snr_db = list(noise_snr_db)

    def fit(self, audio: np.ndarray, labels):
        snrs = self.noise_snr_db
        x = self.features(augmented(np.asarray(audio, dtype=np.float32), snrs, self.seed), self.sample_rate, self.cfg)
        self.pipeline.fit(x, np.tile(np.asarray(labels).astype(str), 1 + len(snrs)))
        return self

    def predict(self, audio: np.ndarray) -> np.ndarray:
        return self.pipeline.predict(self.features(audio, self.sample_rate, self.cfg))

    def accuracy(self, audio: np.ndarray, labels) -> float:
        return float(np.mean(self.predict(audio) == np.asarray(labels).astype(str)))


class AudioClassifier(_WaveformClassifier):
    """Log-mel -> standardise -> PCA -> RBF SVM; the PCA projection is the Fréchet embedding."""

    features = staticmethod(log_mel)
    cfg: ClassifierCfg

    def __init__(self, sample_rate: int, cfg: ClassifierCfg, seed: int = 0):
        # no whitening: it amplifies the low-variance directions where fine detail and noise live
        self.pca = PCA(cfg.pca_components, whiten=cfg.whiten, random_state=seed)
        super().__init__(sample_rate, cfg, seed,
                         make_pipeline(StandardScaler(), self.pca, SVC(C=cfg.svm_c, random_state=seed)),
                         cfg.noise_snr_db)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self.pipeline[:-1].transform(self.features(audio, self.sample_rate, self.cfg))


class CleanClassifier(_WaveformClassifier):
    """The primary judge: MFCC detail -> standardise -> PCA -> RBF SVM, clean audio only."""

    features = staticmethod(mfcc_detail)
    cfg: CleanClassifierCfg

    def __init__(self, sample_rate: int, cfg: CleanClassifierCfg, seed: int = 0):
        super().__init__(sample_rate, cfg, seed, make_pipeline(
            StandardScaler(), PCA(cfg.pca_components, random_state=seed), SVC(C=cfg.svm_c, random_state=seed)),
            noise_snr_db=[])

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self.pipeline[:-1].transform(self.features(audio, self.sample_rate, self.cfg))


class CheckClassifier(_WaveformClassifier):
    """The independent second opinion: MFCC segments -> standardise -> logistic regression."""

    features = staticmethod(mfcc_segments)
    cfg: CheckClassifierCfg

    def __init__(self, sample_rate: int, cfg: CheckClassifierCfg, seed: int = 0):
        super().__init__(sample_rate, cfg, seed,
                         make_pipeline(StandardScaler(), LogisticRegression(C=cfg.c, max_iter=2000)),
                         cfg.noise_snr_db)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (as in FID / FAD)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(covmean)))
