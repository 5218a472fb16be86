"""The field's standard, independent measures of audio quality, on waveforms only.

- PESQ (ITU-T P.862, the ``pesq`` package): narrow-band at 8 kHz, wide-band at 16 kHz when the
  audio's rate allows; the mean over files. Speech only.
- STOI (the ``pystoi`` package): one score over the concatenated files, since STOI needs about
  30 non-silent frames and one short clip has fewer.
- DNSMOS P.835 (the ``speechmos`` package, ONNX weights in its wheel): signal, background and
  overall MOS of 16 kHz audio without a reference, over 9-second segments of concatenated clips.
- Multi-resolution STFT distance (``auraloss``) and log-spectral distance, for any sound.

Every function takes ``(n, samples)`` arrays at one sample rate; references and estimates are
each peak-normalised, since a gain is not an error of the model.
"""
from __future__ import annotations

import logging
import math

import librosa
import numpy as np

from audiovae.progress import Progress

log = logging.getLogger("audiovae.quality")
NB_RATE, WB_RATE = 8000, 16000   # the rates PESQ's narrow- and wide-band modes are defined at
DNSMOS_RATE = 16000


def _peak(audio: np.ndarray) -> np.ndarray:
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    return audio / np.maximum(np.abs(audio).max(axis=-1, keepdims=True), 1e-9)


def _at(audio: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    return audio if sample_rate == target else librosa.resample(audio, orig_sr=sample_rate, target_sr=target)


def pesq_mean(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, mode: str = "nb") -> float:
    """Mean PESQ over files (``mode`` nb at 8 kHz, wb at 16 kHz); a file PESQ cannot score (no
    utterance found) counts as the scale's minimum, 1.0, rather than being dropped."""
    from pesq import NoUtterancesError, pesq

    rate = NB_RATE if mode == "nb" else WB_RATE
    if sample_rate < rate:
        raise ValueError(f"PESQ {mode} needs audio at {rate} Hz or more, not {sample_rate} Hz")
    ref, est = _at(_peak(reference), sample_rate, rate), _at(_peak(estimate), sample_rate, rate)
    scores = []
    with Progress(len(ref), f"PESQ-{mode.upper()}", unit="file") as bar:
        for r, e in zip(ref, est):
            try:
                scores.append(pesq(rate, r.astype(np.float64), e.astype(np.float64), mode))
            except NoUtterancesError:
                scores.append(1.0)
            bar.update()
    return float(np.mean(scores))


def stoi_score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """STOI of the concatenated files (each peak-normalised)."""
    from pystoi import stoi

    return float(stoi(_peak(reference).ravel(), _peak(estimate).ravel(), sample_rate, extended=False))


def dnsmos(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Mean DNSMOS P.835 ``sig`` / ``bak`` / ``ovrl`` of clips at 16 kHz (peak 0.9, so none clips).

    DNSMOS scores 9-second segments; a short clip alone would be tiled (repeated) to that length.
    Consecutive clips are instead concatenated into segments of at least 9 s, as a listener would
    hear a stream of them: the same measure at a twelfth of the cost for 0.76 s clips, and the real
    audio, the ceiling and the models' rows are all scored the same way."""
    from speechmos import dnsmos as speechmos_dnsmos

    clips = 0.9 * _at(_peak(audio), sample_rate, DNSMOS_RATE)
    per_segment = max(1, math.ceil(speechmos_dnsmos.INPUT_LENGTH * DNSMOS_RATE / clips.shape[-1]))
    segments = [clips[i:i + per_segment].ravel() for i in range(0, len(clips), per_segment)]
    totals = {"sig": 0.0, "bak": 0.0, "ovrl": 0.0}
    with Progress(len(segments), "DNSMOS", unit="segment") as bar:
        for segment in segments:
            scores = speechmos_dnsmos.run(np.clip(segment, -1.0, 1.0), sr=DNSMOS_RATE)
            for key in totals:
                totals[key] += float(scores[f"{key}_mos"]) / len(segments)
            bar.update()
    return totals


def mrstft_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Mean multi-resolution STFT distance (``auraloss``: spectral convergence + log magnitude, three
    resolutions scaled to the rate: 1024/2048/512 samples at 44.1 kHz)."""
    import auraloss
    import torch

    scale = sample_rate / 44100
    sizes = [max(64, 2 ** round(math.log2(n * scale))) for n in (1024, 2048, 512)]
    loss = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[s // 4 for s in sizes],
                                                 win_lengths=sizes)
    with torch.no_grad():
        ref = torch.from_numpy(_peak(reference)).unsqueeze(1)
        est = torch.from_numpy(_peak(estimate)).unsqueeze(1)
        return float(np.mean([float(loss(e[None], r[None])) for r, e in zip(ref, est)]))


def subsample(n: int, count: int, seed: int) -> np.ndarray:
    """A fixed, sorted subsample of ``count`` of ``n`` rows (all when count is 0 or >= n)."""
    if count <= 0 or count >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, count, replace=False))
