"""A label classifier on audio, trained on real training audio only, used to score what we make.

Audio -> log-mel spectrogram (its own STFT settings, not our features) -> standardise ->
PCA -> RBF support-vector machine, all scikit-learn. The PCA projection is the
embedding in which the Fréchet distance between generated and real audio is measured. It
sees waveforms only, so reconstructions and generations are judged as sound.
"""
from __future__ import annotations

import logging

import librosa
import numpy as np
from scipy import linalg
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

log = logging.getLogger("audiovae.classifier")


def log_mel(audio: np.ndarray, sample_rate: int, cfg: dict) -> np.ndarray:
    """(n, samples) -> (n, mels * frames): log-mel of peak-normalised audio, floored 80 dB below its peak."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    audio = audio / np.maximum(np.abs(audio).max(axis=-1, keepdims=True), 1e-9)
    mel = librosa.feature.melspectrogram(y=audio, sr=sample_rate, n_fft=int(cfg["n_fft"]),
                                         hop_length=int(cfg["hop_length"]), n_mels=int(cfg["n_mels"]))
    db = librosa.power_to_db(mel, ref=1.0, top_db=None)
    db = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - 80.0)
    return db.reshape(len(audio), -1).astype(np.float32)


def shifted(audio: np.ndarray, shifts: list[int]) -> np.ndarray:
    """Copies of ``audio`` circularly shifted in time (training augmentation)."""
    return np.concatenate([np.roll(audio, s, axis=-1) for s in shifts])


class AudioClassifier:
    def __init__(self, sample_rate: int, cfg: dict, seed: int = 0):
        self.sample_rate, self.cfg = sample_rate, cfg
        # no whitening: it amplifies the low-variance directions where fine detail and noise live
        self.pca = PCA(int(cfg["pca_components"]), whiten=bool(cfg.get("whiten", False)), random_state=seed)
        self.pipeline = make_pipeline(StandardScaler(), self.pca, SVC(C=float(cfg["svm_c"]), random_state=seed))

    def fit(self, audio: np.ndarray, labels) -> "AudioClassifier":
        shifts = [int(s) for s in self.cfg.get("shift_samples", [0])] or [0]
        x = log_mel(shifted(np.asarray(audio), shifts), self.sample_rate, self.cfg)
        y = np.tile(np.asarray(labels).astype(str), len(shifts))
        self.pipeline.fit(x, y)
        return self

    def predict(self, audio: np.ndarray) -> np.ndarray:
        return self.pipeline.predict(log_mel(audio, self.sample_rate, self.cfg))

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self.pipeline[:-1].transform(log_mel(audio, self.sample_rate, self.cfg))

    def accuracy(self, audio: np.ndarray, labels) -> float:
        return float(np.mean(self.predict(audio) == np.asarray(labels).astype(str)))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (as in FID / FAD)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(covmean)))
