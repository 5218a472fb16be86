"""The outer model's reconstruction losses: what each one rewards."""
from __future__ import annotations

import pytest
import torch

from audiovae.data.spectrogram import Codec
from audiovae.models.losses import linear_magnitude, spectrogram_loss

CODEC = Codec(sample_rate=8000)


def test_losses_are_zero_only_for_a_perfect_reconstruction():
    x = torch.rand(3, 16, 10)
    for kind in ("mse", "l1", "l1_sc"):
        loss = spectrogram_loss(kind, CODEC, 1.0)
        assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
        assert float(loss(x.flip(-1), x)) > 0.01


def test_spectral_convergence_weighs_loud_bins_more_than_quiet_ones():
    """The same error in the scaled image costs the same under L1, but far more under l1_sc when it
    sits on a loud (harmonic) bin than in the near-silent floor: the bins a listener hears."""
    x = torch.full((1, 16, 10), 0.2)
    x[0, 4, :] = 0.95                      # one loud harmonic
    loud, quiet = x.clone(), x.clone()
    loud[0, 4, :] -= 0.1
    quiet[0, 10, :] -= 0.1
    l1, l1_sc = spectrogram_loss("l1", CODEC, 1.0), spectrogram_loss("l1_sc", CODEC, 1.0)
    assert float(l1(loud, x)) == pytest.approx(float(l1(quiet, x)))
    assert float(l1_sc(loud, x)) > 3 * float(l1_sc(quiet, x))


def test_linear_magnitude_is_the_codec_s_amplitude_of_each_level():
    """The loss's magnitude is 10 ** (dB / 20) of the level the scaled value stands for: the
    codec's floor at 0, its ceiling at 1 (the form it is computed in is a speed choice)."""
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    db = CODEC.db_floor + x.double() * (CODEC.db_ceiling - CODEC.db_floor)
    expected = 10.0 ** (db / 20.0)
    assert torch.allclose(linear_magnitude(x, CODEC).double(), expected, rtol=1e-5)
    assert float(linear_magnitude(torch.tensor([1.5]), CODEC)) == pytest.approx(10.0 ** (CODEC.db_ceiling / 20.0), rel=1e-5)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="mse, l1, l1_sc"):
        spectrogram_loss("perceptual", CODEC, 1.0)
