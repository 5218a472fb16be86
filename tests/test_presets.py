"""Every seed preset resolves to models that build, fit the caps, and map their input shape."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import base_params

from audiovae.config.params import resolve
from audiovae.data.spectrogram import Codec
from audiovae.models.build import build_checked, build_vae

PRESETS = sorted(base_params()["presets"])


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_builds(preset):
    params = resolve({**base_params(), "preset": preset})
    codec = Codec.from_params(params.features, params.filter.sample_rate)
    length = round(params.filter.seconds * params.filter.sample_rate)
    n_bins, n_frames = codec.n_bins, codec.n_frames(length)
    outer = build_checked(params.outer, n_bins, n_frames)
    x = torch.rand(2, n_bins, n_frames)
    with torch.no_grad():
        code = outer.encode(x)
        assert outer.decode(code).shape == x.shape
    vae = build_vae(params.inner, math.prod(code.shape[1:]), 10, list(code.shape[1:])).eval()
    with torch.no_grad():
        out, mu, logvar, _ = vae(code.flatten(1), torch.tensor([0, 1]))
    assert out.shape == code.flatten(1).shape and mu.shape == (2, vae.latent_dim)
    if params.inner.latent == "global":
        assert vae.latent_dim == params.inner.latent_dim


def test_seed_shapes_are_reproduced():
    fsdd = resolve({**base_params(), "preset": "fsdd_conv_vae"})
    codec = Codec.from_params(fsdd.features, 8000)
    assert (codec.n_bins, codec.n_frames(round(fsdd.filter.seconds * 8000))) == (256, 64)
    sample = resolve({**base_params(), "preset": "sample_generator"})
    outer = build_checked(sample.outer, 128, 96)
    assert sum(p.numel() for p in outer.parameters()) == 13341  # the seed's Conv2D_AE, 5 layers of 20
    assert sample.inner.hidden == [1850, 1008, 443] and sample.inner.latent_dim == 7
