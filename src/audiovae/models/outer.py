"""Outer (deterministic) autoencoders over scaled spectrograms ``(batch, bins, frames)``.

- ``conv1d``: 1-D convolutions over time with frequency bins as channels (cheap on CPU);
- ``conv2d``: the sample-generator seed's layout, a stride-1 first layer then strided layers;
- ``mlp``: the seed's time-step MLP_AE, one small MLP applied to every frame.
All map to a code of fixed shape that ``encode`` caches, and back to [0, 1] by a sigmoid.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _act(name: str) -> nn.Module:
    return {"gelu": nn.GELU(), "relu": nn.ReLU(), "elu": nn.ELU(), "tanh": nn.Tanh()}[name]


class OuterAE(nn.Module):
    """Common interface: ``encode(x) -> code``, ``decode(code) -> x_hat``, ``code_shape``."""

    kind = "base"

    def __init__(self, n_bins: int, n_frames: int):
        super().__init__()
        self.n_bins, self.n_frames = n_bins, n_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def code_shape(self) -> tuple[int, ...]:
        probe = torch.zeros(1, self.n_bins, self.n_frames, device=next(self.parameters()).device)
        return tuple(self.encode(probe).shape[1:])

    @property
    def compression(self) -> float:
        return self.n_bins * self.n_frames / math.prod(self.code_shape())


class Conv1dAE(OuterAE):
    kind = "conv1d"

    def __init__(self, n_bins: int, n_frames: int, hidden: int = 256, code_channels: int = 32,
                 downsamples: int = 2, kernel_size: int = 5, activation: str = "gelu", **_):
        super().__init__(n_bins, n_frames)
        if n_frames % (2 ** downsamples):
            raise ValueError(f"conv1d: frames ({n_frames}) must be divisible by 2**downsamples ({2 ** downsamples})")
        pad = kernel_size // 2
        enc = [nn.Conv1d(n_bins, hidden, kernel_size, padding=pad), _act(activation)]
        for _ in range(downsamples):
            enc += [nn.Conv1d(hidden, hidden, 4, stride=2, padding=1), _act(activation),
                    nn.Conv1d(hidden, hidden, kernel_size, padding=pad), _act(activation)]
        enc += [nn.Conv1d(hidden, code_channels, 3, padding=1)]
        dec = [nn.Conv1d(code_channels, hidden, 3, padding=1), _act(activation)]
        for _ in range(downsamples):
            dec += [nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1), _act(activation),
                    nn.Conv1d(hidden, hidden, kernel_size, padding=pad), _act(activation)]
        dec += [nn.Conv1d(hidden, n_bins, kernel_size, padding=pad)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, code):
        return torch.sigmoid(self.decoder(code))


class Conv2dAE(OuterAE):
    """The seed's Conv2D_AE: first layer stride 1, then ``layers - 1`` layers of stride 2."""

    kind = "conv2d"

    def __init__(self, n_bins: int, n_frames: int, layers: int = 5, kernels: int = 20,
                 first_kernel: int = 3, activation: str = "relu", **_):
        super().__init__(n_bins, n_frames)
        factor = 2 ** (layers - 1)
        if n_bins % factor or n_frames % factor:
            raise ValueError(f"conv2d: bins and frames ({n_bins}x{n_frames}) must be divisible by {factor}")
        pad = first_kernel // 2
        enc = [nn.Conv2d(1, kernels, first_kernel, stride=1, padding=pad), _act(activation)]
        dec = []
        for _ in range(layers - 1):
            enc += [nn.Conv2d(kernels, kernels, 2, stride=2), _act(activation)]
            dec += [nn.ConvTranspose2d(kernels, kernels, 2, stride=2), _act(activation)]
        dec += [nn.Conv2d(kernels, 1, first_kernel, stride=1, padding=pad)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x):
        return self.encoder(x.unsqueeze(1))

    def decode(self, code):
        return torch.sigmoid(self.decoder(code)).squeeze(1)


class MlpAE(OuterAE):
    """The seed's MLP_AE: every time step's spectrum through the same MLP."""

    kind = "mlp"

    def __init__(self, n_bins: int, n_frames: int, hidden: tuple[int, ...] = (256, 128), code_size: int = 16,
                 activation: str = "relu", **_):
        super().__init__(n_bins, n_frames)
        sizes = [n_bins, *hidden]
        enc, dec = [], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [nn.Linear(a, b), _act(activation)]
        enc += [nn.Linear(sizes[-1], code_size)]
        back = [code_size, *reversed(hidden)]
        for a, b in zip(back[:-1], back[1:]):
            dec += [nn.Linear(a, b), _act(activation)]
        dec += [nn.Linear(back[-1], n_bins)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x):
        return self.encoder(x.transpose(1, 2))          # (batch, frames, code)

    def decode(self, code):
        return torch.sigmoid(self.decoder(code)).transpose(1, 2)


class IdentityAE(OuterAE):
    """No outer model: the 'code' is the spectrogram itself, so the inner VAE works end to end
    (how the FSDD and AudioMNIST reports trained). Nothing to train."""

    kind = "identity"

    def __init__(self, n_bins: int, n_frames: int, **_):
        super().__init__(n_bins, n_frames)
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # carries the device

    def encode(self, x):
        return x

    def decode(self, code):
        return code.clamp(0.0, 1.0)


OUTER_MODELS = {cls.kind: cls for cls in (Conv1dAE, Conv2dAE, MlpAE, IdentityAE)}


def build_outer(kind: str, n_bins: int, n_frames: int, **hyper) -> OuterAE:
    if kind not in OUTER_MODELS:
        raise ValueError(f"outer.model must be one of {sorted(OUTER_MODELS)}, not {kind!r}")
    if "hidden" in hyper and isinstance(hyper["hidden"], list):
        hyper["hidden"] = tuple(hyper["hidden"])
    return OUTER_MODELS[kind](n_bins, n_frames, **hyper)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
