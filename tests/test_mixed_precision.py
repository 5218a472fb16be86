"""bf16 autocast on a CPU that computes bf16 natively: where it is on, and what stays in fp32."""
from __future__ import annotations

import pytest
import torch

from audiovae.data.spectrogram import Codec
from audiovae.models.inner import VAE, vae_loss
from audiovae.models.losses import spectrogram_loss
from audiovae.training import loop

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_autocast_follows_the_processor_and_the_option(monkeypatch, native):
    monkeypatch.setattr(loop, "native_bf16_cpu", lambda: native)
    layer = torch.nn.Linear(4, 4)
    with loop.autocast(CPU, True):
        assert layer(torch.ones(1, 4)).dtype == (torch.bfloat16 if native else torch.float32)
    with loop.autocast(CPU, False):  # the option off: fp32 whatever the processor
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def test_losses_under_autocast_are_fp32_and_agree_with_fp32(monkeypatch):
    """A loss summed in bf16 keeps three significant digits: too coarse to pick a best epoch by."""
    monkeypatch.setattr(loop, "native_bf16_cpu", lambda: True)
    torch.manual_seed(0)
    x = torch.rand(4, 16, 12)
    decoder = torch.nn.Conv1d(16, 16, 3, padding=1)
    for kind in ("mse", "l1", "l1_sc"):
        loss_fn = spectrogram_loss(kind, Codec(sample_rate=8000), 1.0)
        with loop.autocast(CPU, True):
            x_hat = torch.sigmoid(decoder(x))
            assert x_hat.dtype == torch.bfloat16
            loss = loss_fn(x_hat, x)
        assert loss.dtype == torch.float32
        assert float(loss) == pytest.approx(float(loss_fn(x_hat.float(), x)), rel=1e-6)
    vae = VAE(input_dim=32, latent_dim=4, hidden=(16,), n_classes=2)
    codes = torch.randn(8, 32)
    with loop.autocast(CPU, True):
        total, rec, kl = vae_loss(vae, codes, torch.zeros(8, dtype=torch.long), 0.5)
    assert total.dtype == rec.dtype == kl.dtype == torch.float32


def test_native_bf16_answers_no_without_the_probes(monkeypatch):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert loop.native_bf16_cpu() is False
