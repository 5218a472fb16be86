"""Pitch error of pitched reconstructions, in cents: does a bass note come back as the same note?

The f0 tracker is librosa's pYIN (probabilistic YIN): no learned weights, so nothing to download,
and deterministic. A clip counts as pitched when pYIN finds its real audio voiced in at least
``min_voiced`` of its frames; its error is the median absolute difference in cents over the frames
voiced in both the real clip and the one compared with it.
"""
from __future__ import annotations

import librosa
import numpy as np

from audiovae.config.schema import PitchCfg
from audiovae.progress import Progress

TRACK_CHUNK = 64  # clips per pYIN call: progress shows between them (about 0.1 s a clip here)


def f0_tracks(audio: np.ndarray, sample_rate: int, cfg: PitchCfg) -> np.ndarray:
    """(clips, samples) -> (clips, frames) f0 in Hz, NaN where unvoiced or where pYIN's voicing
    probability is below ``voiced_probability`` (on white noise it calls half the frames voiced, at
    a probability near 0.01, at the floor of its range)."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    tracks = []
    with Progress(len(audio), "pitch tracks", unit="clip") as bar:
        for start in range(0, len(audio), TRACK_CHUNK):
            f0, _, probability = librosa.pyin(audio[start:start + TRACK_CHUNK], fmin=cfg.fmin, fmax=cfg.fmax,
                                              sr=sample_rate, frame_length=cfg.frame_length)
            tracks.append(np.atleast_2d(np.where(probability >= cfg.voiced_probability, f0, np.nan)))
            bar.update(len(tracks[-1]))
    return np.concatenate(tracks) if tracks else np.zeros((0, 0))


def pitched(reference_f0: np.ndarray, min_voiced: float) -> np.ndarray:
    """Which clips are pitched: voiced in at least ``min_voiced`` of their frames."""
    return np.isfinite(reference_f0).mean(-1) >= min_voiced


def cents_error(reference_f0: np.ndarray, other_f0: np.ndarray) -> np.ndarray:
    """Per clip, the median |1200 log2(f / f_ref)| over frames voiced in both (NaN: none are)."""
    both = np.isfinite(reference_f0) & np.isfinite(other_f0)
    cents = np.abs(1200 * np.log2(np.where(both, other_f0, 1.0) / np.where(both, reference_f0, 1.0)))
    return np.array([np.median(c[m]) if m.any() else np.nan for c, m in zip(cents, both)])


def cents_from_note(f0: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Per clip, the median |cents| of its voiced frames from the MIDI ``pitches`` (NaN: no voiced frame)."""
    target = librosa.midi_to_hz(np.asarray(pitches, dtype=np.float64))[:, None]
    voiced = np.isfinite(f0)
    cents = np.abs(1200 * np.log2(np.where(voiced, f0, 1.0) / target))
    return np.array([np.median(c[m]) if m.any() else np.nan for c, m in zip(cents, voiced)])


def heard_entropy(f0: np.ndarray, pitches: np.ndarray) -> float:
    """GANSynth's pitch entropy with pYIN for its classifier: for each requested pitch, the entropy
    in bits of the semitones heard (each clip's median voiced f0, rounded; unheard is an outcome
    of its own), averaged over the requested pitches."""
    voiced = np.isfinite(f0)
    heard = np.array([int(np.rint(librosa.hz_to_midi(np.median(c[m])))) if m.any() else -1
                      for c, m in zip(f0, voiced)])
    pitches = np.asarray(pitches)
    entropies = []
    for p in np.unique(pitches):
        _, counts = np.unique(heard[pitches == p], return_counts=True)
        share = counts / counts.sum()
        entropies.append(float(-(share * np.log2(share)).sum()))
    return float(np.mean(entropies))
