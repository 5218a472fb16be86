"""The music presets' judges: balanced accuracy with a bootstrap interval, pitch error in cents."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import params_with, sine, typed

from audiovae.evaluation import pitch, uncertainty

SR = 22050


def test_balanced_accuracy_weighs_every_class_alike():
    y = np.array(["Kick"] * 18 + ["Clap"] * 2)
    all_kick = np.array(["Kick"] * 20)
    assert np.mean(all_kick == y) == pytest.approx(0.9)
    assert uncertainty.balanced_accuracy(y, all_kick) == pytest.approx(0.5)   # the claps were all missed


def test_the_bootstrap_interval_holds_the_point_and_narrows_with_more_clips():
    rng = np.random.default_rng(0)

    def interval(n):
        y = np.repeat(["a", "b", "c"], n)
        pred = np.where(rng.random(len(y)) < 0.7, y, "a")
        point = uncertainty.balanced_accuracy(y, pred)
        low, high = uncertainty.bootstrap_interval(y, pred, 500, 0.95, 0)
        assert low <= point <= high
        return high - low
    assert interval(10) > 2 * interval(200)
    perfect = np.repeat(["a", "b"], 5)
    assert uncertainty.bootstrap_interval(perfect, perfect, 200, 0.95, 0) == (1.0, 1.0)
    # seeded: the same interval twice
    y, pred = np.repeat(["a", "b"], 8), np.tile(["a", "b"], 8)
    assert uncertainty.bootstrap_interval(y, pred, 300, 0.9, 3) == uncertainty.bootstrap_interval(y, pred, 300, 0.9, 3)


def test_pitch_error_is_measured_in_cents_on_pitched_clips_only():
    cfg = typed(params_with({})).evaluate.pitch
    note = sine(1.0, SR, 110.0)            # A2, a bass note
    sharp = sine(1.0, SR, 110.0 * 2 ** (100 / 1200))   # a semitone up
    octave = sine(1.0, SR, 55.0)           # A1: an octave below
    noise = np.random.default_rng(0).normal(0, 0.3, SR).astype(np.float32)
    f0 = pitch.f0_tracks(np.stack([note, note, note, noise]), SR, cfg)
    assert pitch.pitched(f0, cfg.min_voiced).tolist() == [True, True, True, False]
    other = pitch.f0_tracks(np.stack([note, sharp, octave]), SR, cfg)
    cents = pitch.cents_error(f0[:3], other)
    assert cents[0] < 5
    assert cents[1] == pytest.approx(100, abs=15)
    assert cents[2] == pytest.approx(1200, abs=30)
