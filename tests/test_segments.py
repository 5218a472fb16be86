"""Where the sound is in a recording: regions, merged gaps, margins, and the fades that paste them."""
from __future__ import annotations

import numpy as np
from conftest import sine

from audiovae.data.segments import Segmenter, edge_fade

SR = 8000


def recording(parts: list[tuple[float, float]], total: float, seed: int = 0) -> np.ndarray:
    """``total`` seconds of -70 dB noise with a full-scale tone over each (start, stop) in seconds."""
    rng = np.random.default_rng(seed)
    wave = 3e-4 * rng.standard_normal(int(total * SR)).astype(np.float32)
    for start, stop in parts:
        a, b = int(start * SR), int(stop * SR)
        wave[a:b] += 2 * sine((b - a) / SR, SR, 500.0)
    return wave


def test_regions_are_the_sounds_with_their_margins():
    seg = Segmenter(SR, silence_db=40, min_gap_seconds=0.1, margin_seconds=0.02)
    wave = recording([(1.0, 1.5), (2.2, 2.4)], 3.0)
    regions = seg.regions(wave)
    assert len(regions) == 2
    for (start, stop), (a, b) in zip(regions, [(1.0, 1.5), (2.2, 2.4)]):
        # within one analysis frame (25 ms) of the sound's edges, plus the margin
        assert abs(start - (a - 0.02) * SR) <= 0.025 * SR and abs(stop - (b + 0.02) * SR) <= 0.025 * SR
    assert seg.span(wave) == (regions[0][0], regions[1][1])


def test_a_short_gap_does_not_split_a_sound_and_a_long_one_does():
    wave = recording([(0.5, 0.8), (0.85, 1.1)], 1.5)  # a 50 ms closure, as in "six"
    assert len(Segmenter(SR, 40, 0.1, 0.0).regions(wave)) == 1
    assert len(Segmenter(SR, 40, 0.02, 0.0).regions(wave)) == 2


def test_off_and_degenerate_inputs_keep_the_whole_recording():
    wave = recording([(0.2, 0.4)], 1.0)
    assert Segmenter(SR, 0, 0.1, 0.02).regions(wave) == [(0, len(wave))]  # silence_db 0: segmentation off
    assert Segmenter(SR, 40, 0.1, 0.02).regions(np.zeros(800, np.float32)) == [(0, 800)]
    assert Segmenter(SR, 40, 0.1, 0.02).regions(np.zeros(0, np.float32)) == []
    loud = 0.5 * np.ones(4000, np.float32)
    assert Segmenter(SR, 40, 0.1, 0.02).regions(loud) == [(0, 4000)]


def test_edge_fade_ramps_from_zero_to_one():
    fade = edge_fade(100, 10)
    assert fade[0] < 0.05 and fade[-1] < 0.05 and np.all(fade[10:90] == 1.0)
    assert np.all(np.diff(fade[:11]) > 0) and np.all(np.diff(fade[-11:]) < 0)
    assert np.array_equal(edge_fade(5, 0), np.ones(5, np.float32))
