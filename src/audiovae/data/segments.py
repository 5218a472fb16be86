"""Where the sound is in a real recording: regions above the silence level, for windowing.

The models learnt clips that start at the sound (FSDD's recordings are cut tight, shorter ones are
padded with silence after the sound). A recording with seconds of near-silence around a word,
cut into fixed windows, shows the model windows unlike any it learnt, and it answers each with a
whole hallucinated word. Placing windows on the sound itself, and writing nothing where the input
was silent, keeps the reconstruction to what was there.
"""
from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

FRAME_SECONDS = 0.025  # the analysis frame: 25 ms at any rate (as the filter's trimming)


@dataclass(frozen=True)
class Segmenter:
    """``silence_db`` below the recording's peak is silence; gaps shorter than ``min_gap_seconds``
    (a stop consonant's closure) join their neighbours; each region keeps ``margin_seconds`` of
    context on either side."""
    sample_rate: int
    silence_db: float
    min_gap_seconds: float
    margin_seconds: float

    def regions(self, wave: np.ndarray) -> list[tuple[int, int]]:
        """Sample ranges ``[start, stop)`` holding sound, in order; the whole recording if it is
        all sound, or if ``silence_db`` is 0 (segmentation off)."""
        n = len(wave)
        if n == 0:
            return []
        if self.silence_db <= 0 or not np.any(wave):
            return [(0, n)]
        frame = max(16, int(FRAME_SECONDS * self.sample_rate))
        found = librosa.effects.split(np.asarray(wave, dtype=np.float32), top_db=float(self.silence_db),
                                      frame_length=frame, hop_length=max(1, frame // 4))
        gap, margin = int(self.min_gap_seconds * self.sample_rate), int(self.margin_seconds * self.sample_rate)
        merged: list[list[int]] = []
        for start, stop in found:
            if merged and start - merged[-1][1] < gap:
                merged[-1][1] = int(stop)
            else:
                merged.append([int(start), int(stop)])
        out: list[tuple[int, int]] = []
        for start, stop in merged:
            start, stop = max(0, start - margin), min(n, stop + margin)
            if out and start <= out[-1][1]:  # margins met: one region
                out[-1] = (out[-1][0], stop)
            else:
                out.append((start, stop))
        return out or [(0, n)]

    def span(self, wave: np.ndarray) -> tuple[int, int]:
        """From the first region's start to the last one's stop: the recording, trimmed."""
        regions = self.regions(wave)
        return (regions[0][0], regions[-1][1]) if regions else (0, 0)


def edge_fade(length: int, fade: int) -> np.ndarray:
    """Ones with raised-cosine ramps of ``fade`` samples at both ends (no click where a region is
    pasted into silence)."""
    out = np.ones(length, dtype=np.float32)
    fade = min(fade, length // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade + 2)[1:-1])
        out[:fade], out[length - fade:] = ramp, ramp[::-1]
    return out
