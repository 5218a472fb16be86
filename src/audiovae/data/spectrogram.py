"""The feature codec: waveform <-> scaled log-magnitude STFT, and back to audio by Griffin-Lim.

Scaling is over a *fixed global* dB range by default: 0 dB is a full-scale sinusoid, the floor
(e.g. -80 dB) maps to 0 and the ceiling to 1. Any array in [0, 1] therefore has one defined
inverse, which the seeds' per-file min/max scaling lacks for generated spectrograms (their
min/max never existed). Per-file scaling stays available (``scaling: per_file``) with each
file's min/max stored. ``representation: mu_law`` reproduces the sample-generator seed
(linear magnitude, floor, mu-law companding). The inverse is real Griffin-Lim
(``librosa.griffinlim``), not the zero-phase inverse STFT that one seed called by that name.
"""
from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from audiovae.config.schema import Features

# a decoded level this close to the floor is the floor itself (float rounding), whatever the margin
FLOOR_TOLERANCE_DB = 1e-4


@dataclass(frozen=True)
class Codec:
    sample_rate: int
    n_fft: int = 256
    hop_length: int = 64
    window: str = "hann"
    db_floor: float = -80.0
    db_ceiling: float = 0.0
    silence_margin_db: float = 0.0     # decoded levels within this of the floor are silence
    scaling: str = "global"            # global | per_file
    representation: str = "db"         # db | mu_law
    mu: float = 8.0
    drop_nyquist: bool = True
    gl_iterations: int = 32
    gl_momentum: float = 0.99
    gl_seed: int = 0
    output_peak: float = 0.9

    @classmethod
    def from_params(cls, features: Features, sample_rate: int) -> "Codec":
        gl = features.griffin_lim
        return cls(sample_rate=int(sample_rate), n_fft=features.n_fft, hop_length=features.hop_length,
                   window=features.window, db_floor=features.db_floor, db_ceiling=features.db_ceiling,
                   silence_margin_db=features.silence_margin_db,
                   scaling=features.scaling, representation=features.representation, mu=features.mu,
                   drop_nyquist=features.drop_nyquist, gl_iterations=gl.iterations, gl_momentum=gl.momentum,
                   gl_seed=gl.seed, output_peak=features.output_peak)

    def __post_init__(self):
        if self.scaling not in ("global", "per_file"):
            raise ValueError(f"features.scaling must be 'global' or 'per_file', not {self.scaling!r}")
        if self.representation not in ("db", "mu_law"):
            raise ValueError(f"features.representation must be 'db' or 'mu_law', not {self.representation!r}")
        if self.db_ceiling <= self.db_floor:
            raise ValueError("features.db_ceiling must be above features.db_floor")
        if self.silence_margin_db < 0:
            raise ValueError("features.silence_margin_db must be 0 or more")

    # ------------------------------------------------------------------ shapes
    @property
    def ref(self) -> float:
        """Magnitude of a full-scale sinusoid: half the window's sum."""
        return float(librosa.filters.get_window(self.window, self.n_fft, fftbins=True).sum() / 2)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + (0 if self.drop_nyquist else 1)

    def n_frames(self, length: int) -> int:
        return 1 + length // self.hop_length

    # ------------------------------------------------------------------ forward
    def magnitude(self, audio: np.ndarray) -> np.ndarray:
        spec = np.abs(librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=self.n_fft,
                                   hop_length=self.hop_length, window=self.window))
        return spec[..., : self.n_bins, :]

    def scale(self, magnitude: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Magnitude -> [0, 1]. Returns (features, per-file (min, max) dB or None)."""
        if self.representation == "mu_law":
            linear = np.clip(magnitude / self.ref, 0.0, 1.0)
            linear = np.where(linear < 10 ** (self.db_floor / 20), 0.0, linear)
            return (np.log1p(self.mu * linear) / np.log1p(self.mu)).astype(np.float32), None
        if self.scaling == "global":  # the hot path of the features stage: float32, in place
            x = np.array(magnitude, dtype=np.float32)
            np.maximum(x, self.ref * 10 ** (self.db_floor / 20), out=x)
            np.log10(x, out=x)
            span = self.db_ceiling - self.db_floor
            x *= 20.0 / span
            x -= (20 * np.log10(self.ref) + self.db_floor) / span
            return np.clip(x, 0.0, 1.0, out=x), None
        db = 20 * np.log10(np.maximum(magnitude / self.ref, 10 ** (self.db_floor / 20)))
        if self.scaling == "per_file":
            lo = db.min(axis=(-2, -1), keepdims=True)
            hi = np.maximum(db.max(axis=(-2, -1), keepdims=True), lo + 1e-6)
            scaled = (db - lo) / (hi - lo)
            return scaled.astype(np.float32), np.stack([lo[..., 0, 0], hi[..., 0, 0]], axis=-1)
        raise AssertionError("unreachable: scaling is validated in __post_init__")

    def encode(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.scale(self.magnitude(audio))

    # ------------------------------------------------------------------ inverse
    def to_db(self, features: np.ndarray, minmax: np.ndarray | None = None) -> np.ndarray:
        """Features -> dB relative to full scale (the unit of every ``*_rmse_db`` metric)."""
        x = np.clip(np.asarray(features, dtype=np.float32), 0.0, 1.0)
        if self.representation == "mu_law":
            linear = np.expm1(x * np.log1p(self.mu)) / self.mu
            return 20 * np.log10(np.maximum(linear, 10 ** (self.db_floor / 20)))
        if self.scaling == "per_file":
            if minmax is None:
                raise ValueError("per-file scaling needs each file's (min, max) dB to invert")
            minmax = np.asarray(minmax, dtype=np.float32)
            lo, hi = minmax[..., 0, None, None], minmax[..., 1, None, None]
            return lo + x * (hi - lo)
        return self.db_floor + x * (self.db_ceiling - self.db_floor)

    @property
    def silence_db(self) -> float:
        """The level at and below which a decoded spectrogram is silence: the true features of a silent
        stretch sit at the floor and decode to nothing, but a model's sigmoid never reaches 0 and its
        near-floor output would be hiss ``silence_margin_db`` above it where the recording is silent."""
        return self.db_floor + max(self.silence_margin_db, FLOOR_TOLERANCE_DB)

    def to_magnitude(self, features: np.ndarray, minmax: np.ndarray | None = None) -> np.ndarray:
        db = self.to_db(features, minmax)
        magnitude = self.ref * 10 ** (db / 20)
        magnitude = np.where(db <= self.silence_db, 0.0, magnitude)
        if self.drop_nyquist:
            pad = [(0, 0)] * (magnitude.ndim - 2) + [(0, 1), (0, 0)]
            magnitude = np.pad(magnitude, pad)
        return magnitude.astype(np.float32)

    def griffin_lim(self, magnitude: np.ndarray, length: int | None = None) -> np.ndarray:
        """Phase recovery by Griffin-Lim (seeded), then peak-normalised to ``output_peak``."""
        audio = librosa.griffinlim(magnitude, n_iter=self.gl_iterations, hop_length=self.hop_length,
                                   n_fft=self.n_fft, window=self.window, momentum=self.gl_momentum,
                                   init="random", random_state=self.gl_seed, length=length)
        peak = np.max(np.abs(audio), axis=-1, keepdims=True)
        return (audio * (self.output_peak / np.maximum(peak, 1e-9))).astype(np.float32)

    def to_audio(self, features: np.ndarray, minmax: np.ndarray | None = None,
                 length: int | None = None) -> np.ndarray:
        return self.griffin_lim(self.to_magnitude(features, minmax), length)


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, n_fft: int, hop_length: int,
                          floor_db: float = -80.0) -> np.ndarray:
    """Per-signal log-spectral distance in dB: RMS over bins of the power-dB difference, mean over
    frames. Both signals are peak-normalised first (gain is not an error) and powers are floored at
    ``floor_db`` below a full-scale sinusoid, so silent padding does not dominate."""
    reference = reference / np.maximum(np.max(np.abs(reference), axis=-1, keepdims=True), 1e-9)
    estimate = estimate / np.maximum(np.max(np.abs(estimate), axis=-1, keepdims=True), 1e-9)
    eps = (n_fft / 4 * 10 ** (floor_db / 20)) ** 2
    s_ref = np.abs(librosa.stft(reference, n_fft=n_fft, hop_length=hop_length)) ** 2
    s_est = np.abs(librosa.stft(estimate, n_fft=n_fft, hop_length=hop_length)) ** 2
    diff = 10 * np.log10(s_ref + eps) - 10 * np.log10(s_est + eps)
    return np.sqrt(np.mean(diff ** 2, axis=-2)).mean(axis=-1)


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """||S_ref - S_est||_F / ||S_ref||_F on magnitudes, per signal."""
    s_ref = np.abs(librosa.stft(reference, n_fft=n_fft, hop_length=hop_length))
    s_est = np.abs(librosa.stft(estimate, n_fft=n_fft, hop_length=hop_length))
    num = np.sqrt(np.sum((s_ref - s_est) ** 2, axis=(-2, -1)))
    return num / np.maximum(np.sqrt(np.sum(s_ref ** 2, axis=(-2, -1))), 1e-9)
