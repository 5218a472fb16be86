"""Every outer and inner architecture works for any bin and frame count, not only FSDD's 128 x 96."""
from __future__ import annotations

import pytest
import torch

from audiovae.data.spectrogram import Codec
from audiovae.models.inner import VAE, vae_loss
from audiovae.models.outer import build_outer

# (sample rate, seconds, n_fft, hop): FSDD's default, a music rate of 1 s (345 frames, the shape that
# broke the conv1d VAE), 44.1 kHz x 2 s, and odd sizes with an odd bin count (Nyquist kept)
SHAPES = [(8000, 0.76, 256, 64, True), (22050, 1.0, 512, 64, True), (44100, 2.0, 1024, 256, True),
          (16000, 0.5, 200, 50, False), (11025, 0.3, 128, 33, True)]
OUTERS = {"conv1d": {"hidden": 16, "code_channels": 4, "downsamples": 2, "kernel_size": 5, "activation": "gelu",
                     "blocks": 1},
          "conv1d_flat": {"hidden": 16, "code_channels": 4, "downsamples": 0, "kernel_size": 3, "activation": "gelu"},
          "conv2d": {"layers": 4, "kernels": 4, "first_kernel": 3, "activation": "relu"},
          "mlp": {"hidden": (16,), "code_size": 4, "activation": "relu"},
          "identity": {},
          "unet": {"channels": 4, "depth": 2, "activation": "relu"}}
INNERS = {"mlp": {"hidden": (16,)}, "conv1d": {"conv_filters": (8, 8, 8)}, "conv2d": {"conv_filters": (4, 4)}}


def shape_of(sr, seconds, n_fft, hop, drop_nyquist) -> tuple[int, int]:
    codec = Codec(sample_rate=sr, n_fft=n_fft, hop_length=hop, drop_nyquist=drop_nyquist)
    return codec.n_bins, codec.n_frames(int(round(seconds * sr)))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}Hz-{s[1]}s-{s[2]}-{s[3]}")
@pytest.mark.parametrize("outer_name", list(OUTERS))
def test_outer_models_round_trip_any_shape(shape, outer_name):
    n_bins, n_frames = shape_of(*shape)
    kind = outer_name.split("_")[0]
    model = build_outer(kind, n_bins, n_frames, **OUTERS[outer_name])
    x = torch.rand(2, n_bins, n_frames)
    code = model.encode(x)
    assert tuple(code.shape[1:]) == model.code_shape()
    out = model.decode(code)
    assert out.shape == x.shape
    if kind != "identity":  # a gradient reaches every parameter: the padding does not cut the graph
        torch.mean((model(x) - x) ** 2).backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: f"{s[0]}Hz-{s[1]}s")
@pytest.mark.parametrize("outer_name", ["conv1d", "conv2d", "mlp", "identity"])
@pytest.mark.parametrize("architecture", list(INNERS))
def test_inner_vae_takes_any_outer_code(shape, outer_name, architecture):
    n_bins, n_frames = shape_of(*shape)
    outer = build_outer(outer_name, n_bins, n_frames, **OUTERS[outer_name])
    code_shape = outer.code_shape()
    codes = outer.encode(torch.rand(3, n_bins, n_frames)).flatten(1).detach()
    vae = VAE(codes.shape[1], latent_dim=3, architecture=architecture, code_shape=code_shape,
              prior="class_mixture", n_classes=2, **INNERS[architecture])
    labels = torch.tensor([0, 1, 0])
    x_hat, mu, _, _ = vae(codes, labels)
    assert x_hat.shape == codes.shape and mu.shape == (3, 3)
    loss, _, _ = vae_loss(vae, codes, labels, beta=1.0)
    loss.backward()
    assert torch.isfinite(loss)


def test_outer_model_refuses_a_spectrogram_of_another_shape():
    model = build_outer("conv1d", 128, 96, **OUTERS["conv1d"])
    with pytest.raises(ValueError, match=r"expects \(batch, 128, 96\)"):
        model.encode(torch.rand(1, 128, 95))


def test_misspelt_model_key_is_refused_with_its_section():
    with pytest.raises(ValueError, match=r"outer\.conv1d: .*hiden"):
        build_outer("conv1d", 128, 96, hiden=32)
