"""Waveform I/O and normalisation: read anything soundfile reads, make it mono, resample, fit a length."""
from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from audiovae.atomic import atomic_path


class AudioError(ValueError):
    """A file cannot be used as audio; ``reason`` is one of the filter's rejection reasons."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def read(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``(channels, frames)``; raise ``AudioError`` with a reason otherwise."""
    path = Path(path)
    if not path.exists():
        raise AudioError("unreadable", f"{path} does not exist")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        text = str(exc).lower()
        reason = "not_audio" if ("format" in text or "recogni" in text) else "unreadable"
        raise AudioError(reason, str(exc)) from exc
    except (OSError, RuntimeError, ValueError) as exc:
        raise AudioError("unreadable", str(exc)) from exc
    return np.ascontiguousarray(data.T), int(sr)


def check(signal: np.ndarray, silence_peak: float) -> None:
    """Reject empty, non-finite and all-silent signals (``AudioError``)."""
    if signal.size == 0 or signal.shape[-1] == 0:
        raise AudioError("empty", "no samples")
    if not np.all(np.isfinite(signal)):
        raise AudioError("non_finite", f"{int(np.sum(~np.isfinite(signal)))} NaN/inf samples")
    peak = float(np.max(np.abs(signal)))
    if peak < silence_peak:
        raise AudioError("silent", f"peak {peak:.2e} below {silence_peak:.2e}")


def to_mono(signal: np.ndarray) -> np.ndarray:
    return signal.mean(axis=0) if signal.ndim == 2 else signal


def resample(signal: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    if sr == target_sr:
        return signal
    return librosa.resample(signal, orig_sr=sr, target_sr=target_sr).astype(np.float32)


# trimming looks at frames of a fixed duration, so it cuts alike at every rate (librosa's default
# of 2048 samples is 256 ms at 8 kHz but 46 ms at 44.1 kHz)
TRIM_FRAME_SECONDS = 0.025


def trim_silence(signal: np.ndarray, top_db: float, sample_rate: int) -> np.ndarray:
    """Drop leading and trailing audio quieter than ``top_db`` below the peak (0: keep all).

    Real recordings have room noise around the sound; trimming first means length fitting keeps
    the sound itself, not the silence before it."""
    if top_db <= 0:
        return signal
    frame = max(16, int(TRIM_FRAME_SECONDS * sample_rate))
    trimmed, _ = librosa.effects.trim(signal, top_db=float(top_db), frame_length=frame, hop_length=frame // 4)
    return trimmed if trimmed.shape[-1] else signal


def peak_normalise(signal: np.ndarray, peak: float = 1.0) -> np.ndarray:
    top = float(np.max(np.abs(signal))) if signal.size else 0.0
    return signal if top == 0 else (signal * (peak / top)).astype(np.float32)


def fit_length(signal: np.ndarray, length: int, mode: str) -> np.ndarray:
    """Trim or right-pad to ``length``: ``center`` trims both ends equally (AudioMNIST report),
    ``right`` keeps the start (FSDD report); both pad with zeros on the right."""
    n = signal.shape[-1]
    if n > length:
        if mode == "center":
            start = (n - length) // 2
        elif mode == "right":
            start = 0
        else:
            raise ValueError(f"length mode must be 'center' or 'right', not {mode!r}")
        return signal[..., start:start + length]
    if n < length:
        pad = [(0, 0)] * (signal.ndim - 1) + [(0, length - n)]
        return np.pad(signal, pad)
    return signal


def load_mono(path: str | Path, sample_rate: int, silence_peak: float = 1e-4, trim_db: float = 0.0,
              normalise: bool = True) -> np.ndarray:
    """Read any audio file as mono at ``sample_rate``, silence trimmed (``trim_db``), peak 1 (unless
    not ``normalise``: a rendered note's level is its velocity); any length."""
    signal, sr = read(path)
    check(signal, silence_peak)
    mono = trim_silence(to_mono(signal), trim_db, sr)  # at the file's own rate: less to resample
    mono = resample(mono, sr, sample_rate)
    return peak_normalise(mono) if normalise else mono.astype(np.float32)


def cut_with_fade(signal: np.ndarray, length: int, fade: int) -> np.ndarray:
    """The first ``length`` samples, the last ``fade`` of them faded out linearly to silence (a
    one-shot's attack and body kept, its tail ended without a click)."""
    out = np.array(signal[..., :length], dtype=np.float32)
    fade = min(fade, out.shape[-1])
    if fade > 0:
        out[..., -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out


def load_normalised(path: str | Path, sample_rate: int, length: int, mode: str,
                    silence_peak: float = 1e-4, trim_db: float = 0.0, cut_fade: int | None = None,
                    normalise: bool = True) -> np.ndarray:
    """Read any audio file and bring it to the model's input form: mono, rate, trimmed, peak 1 (unless
    not ``normalise``), length. ``cut_fade``: a sound longer than ``length`` keeps its start, faded out
    over that many samples."""
    mono = load_mono(path, sample_rate, silence_peak, trim_db, normalise)
    if cut_fade is not None and mono.shape[-1] > length:
        return cut_with_fade(mono, length, cut_fade)
    return fit_length(mono, length, mode).astype(np.float32)


def write_wav(path: str | Path, signal: np.ndarray, sample_rate: int, peak: float | None = None) -> None:
    """Write PCM-16 WAV atomically, optionally scaled to ``peak``."""
    signal = np.asarray(signal, dtype=np.float32)
    if peak is not None:
        signal = peak_normalise(signal, peak)
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), np.clip(signal, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
