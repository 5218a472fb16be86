"""Outer (deterministic) autoencoders over scaled spectrograms ``(batch, bins, frames)``.

- ``conv1d``: 1-D convolutions over time with frequency bins as channels (cheap on CPU);
- ``conv2d``: the sample-generator seed's layout, a stride-1 first layer then strided layers;
- ``mlp``: the seed's time-step MLP_AE, one small MLP applied to every frame;
- ``unet``: the VAE-vs-U-Net report's baseline, skip connections and no bottleneck.
All map to a code of fixed shape that ``encode`` caches, and back to [0, 1] by a sigmoid.

Any bin and frame count works: a model whose strides need a multiple pads the spectrogram
with zeros (the dB floor, i.e. silence) up to it before encoding and crops the decoder's
output back, so no dataset has to be cut to suit the architecture.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _act(name: str) -> nn.Module:
    return {"gelu": nn.GELU(), "relu": nn.ReLU(), "elu": nn.ELU(), "tanh": nn.Tanh()}[name]


def padded(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``."""
    return -(-size // multiple) * multiple


class OuterAE(nn.Module):
    """Common interface: ``encode(x) -> code``, ``decode(code) -> x_hat``, ``code_shape``.

    Subclasses implement ``_encode`` / ``_decode`` on spectrograms padded to
    ``(padded_bins, padded_frames)``; ``encode`` pads and ``decode`` crops, so callers always
    see ``(n_bins, n_frames)``."""

    kind = "base"

    def __init__(self, n_bins: int, n_frames: int, bin_multiple: int = 1, frame_multiple: int = 1):
        super().__init__()
        self.n_bins, self.n_frames = n_bins, n_frames
        self.padded_bins, self.padded_frames = padded(n_bins, bin_multiple), padded(n_frames, frame_multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.n_bins, self.n_frames):
            raise ValueError(f"{self.kind} outer model expects (batch, {self.n_bins}, {self.n_frames}) "
                             f"spectrograms, not {tuple(x.shape)}")
        pad = (0, self.padded_frames - self.n_frames, 0, self.padded_bins - self.n_bins)
        return self._encode(nn.functional.pad(x, pad) if any(pad) else x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self._decode(code)[..., : self.n_bins, : self.n_frames]

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} implements no _encode")

    def _decode(self, code: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} implements no _decode")

    @torch.no_grad()
    def code_shape(self) -> tuple[int, ...]:
        probe = torch.zeros(1, self.n_bins, self.n_frames, device=next(self.parameters()).device)
        return tuple(self.encode(probe).shape[1:])

    @property
    def compression(self) -> float:
        return self.n_bins * self.n_frames / math.prod(self.code_shape())


class Residual(nn.Module):
    """``x + conv(act(conv(x)))``: a block that can start as the identity, so depth does not hurt."""

    def __init__(self, channels: int, kernel_size: int, activation: str):
        super().__init__()
        pad = kernel_size // 2
        self.net = nn.Sequential(nn.Conv1d(channels, channels, kernel_size, padding=pad), _act(activation),
                                 nn.Conv1d(channels, channels, kernel_size, padding=pad))
        # the block's last layer starts at zero: the block is the identity until training moves it
        # (without this, stacked blocks blew training up at lr 1e-3: PESQ 1.5 after 5 epochs)
        last = self.net[-1]
        assert isinstance(last, nn.Conv1d) and last.bias is not None
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x):
        return x + self.net(x)


class Conv1dAE(OuterAE):
    kind = "conv1d"

    def __init__(self, n_bins: int, n_frames: int, hidden: int = 256, code_channels: int = 32,
                 downsamples: int = 2, kernel_size: int = 5, activation: str = "gelu", blocks: int = 0):
        super().__init__(n_bins, n_frames, frame_multiple=2 ** downsamples)
        pad = kernel_size // 2
        enc = [nn.Conv1d(n_bins, hidden, kernel_size, padding=pad), _act(activation)]
        # residual blocks at full time resolution: depth without losing the frames' detail
        enc += [Residual(hidden, kernel_size, activation) for _ in range(blocks)]
        for _ in range(downsamples):
            enc += [nn.Conv1d(hidden, hidden, 4, stride=2, padding=1), _act(activation),
                    nn.Conv1d(hidden, hidden, kernel_size, padding=pad), _act(activation)]
        enc += [nn.Conv1d(hidden, code_channels, 3, padding=1)]
        dec = [nn.Conv1d(code_channels, hidden, 3, padding=1), _act(activation)]
        for _ in range(downsamples):
            dec += [nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1), _act(activation),
                    nn.Conv1d(hidden, hidden, kernel_size, padding=pad), _act(activation)]
        dec += [Residual(hidden, kernel_size, activation) for _ in range(blocks)]
        dec += [nn.Conv1d(hidden, n_bins, kernel_size, padding=pad)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def _encode(self, x):
        return self.encoder(x)

    def _decode(self, code):
        return torch.sigmoid(self.decoder(code))


class Conv2dAE(OuterAE):
    """The seed's Conv2D_AE: first layer stride 1, then ``layers - 1`` layers of stride 2."""

    kind = "conv2d"

    def __init__(self, n_bins: int, n_frames: int, layers: int = 5, kernels: int = 20,
                 first_kernel: int = 3, activation: str = "relu"):
        factor = 2 ** (layers - 1)
        super().__init__(n_bins, n_frames, bin_multiple=factor, frame_multiple=factor)
        pad = first_kernel // 2
        enc = [nn.Conv2d(1, kernels, first_kernel, stride=1, padding=pad), _act(activation)]
        dec = []
        for _ in range(layers - 1):
            enc += [nn.Conv2d(kernels, kernels, 2, stride=2), _act(activation)]
            dec += [nn.ConvTranspose2d(kernels, kernels, 2, stride=2), _act(activation)]
        dec += [nn.Conv2d(kernels, 1, first_kernel, stride=1, padding=pad)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def _encode(self, x):
        return self.encoder(x.unsqueeze(1))

    def _decode(self, code):
        return torch.sigmoid(self.decoder(code)).squeeze(1)


class MlpAE(OuterAE):
    """The seed's MLP_AE: every time step's spectrum through the same MLP."""

    kind = "mlp"

    def __init__(self, n_bins: int, n_frames: int, hidden: tuple[int, ...] = (256, 128), code_size: int = 16,
                 activation: str = "relu"):
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

    def _encode(self, x):
        # (batch, code, frames): channels first like the conv codes, so time is always the last axis
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def _decode(self, code):
        return torch.sigmoid(self.decoder(code.transpose(1, 2))).transpose(1, 2)


class IdentityAE(OuterAE):
    """No outer model: the 'code' is the spectrogram itself, so the inner VAE works end to end
    (how the FSDD and AudioMNIST reports trained). Nothing to train."""

    kind = "identity"

    def __init__(self, n_bins: int, n_frames: int):
        super().__init__(n_bins, n_frames)
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # carries the device

    def _encode(self, x):
        return x

    def _decode(self, code):
        return code.clamp(0.0, 1.0)


def _double_conv(cin: int, cout: int, activation: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), _act(activation),
                         nn.Conv2d(cout, cout, 3, padding=1), _act(activation))


class UNetAE(OuterAE):
    """The VAE-vs-U-Net report's baseline (Ronneberger et al.'s layout on the spectrogram image):
    ``depth`` levels of double-conv + max-pool, up-convolutions, long skip connections.

    The skips carry the input past the bottleneck, so there is no code to compress or sample: the
    "code" is the spectrogram itself (compression 1) and ``decode`` is the whole network. It is a
    reconstruction baseline; under an inner VAE it acts as a learnt post-filter of its output."""

    kind = "unet"

    def __init__(self, n_bins: int, n_frames: int, channels: int = 16, depth: int = 3, activation: str = "relu"):
        factor = 2 ** depth
        super().__init__(n_bins, n_frames, bin_multiple=factor, frame_multiple=factor)
        widths = [channels * 2 ** level for level in range(depth + 1)]
        self.down = nn.ModuleList(_double_conv(1 if i == 0 else widths[i - 1], widths[i], activation)
                                  for i in range(depth))
        self.bottom = _double_conv(widths[depth - 1], widths[depth], activation)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(_double_conv(2 * widths[i], widths[i], activation) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def _encode(self, x):
        return x[..., : self.n_bins, : self.n_frames]  # no bottleneck: the code is the input

    def _decode(self, code):
        pad = (0, self.padded_frames - self.n_frames, 0, self.padded_bins - self.n_bins)
        h = nn.functional.pad(code, pad).unsqueeze(1)
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = nn.functional.max_pool2d(h, 2)
        h = self.bottom(h)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            h = merge(torch.cat([up(h), skip], dim=1))
        return torch.sigmoid(self.head(h)).squeeze(1)


OUTER_MODELS = {cls.kind: cls for cls in (Conv1dAE, Conv2dAE, MlpAE, IdentityAE, UNetAE)}


def build_outer(kind: str, n_bins: int, n_frames: int, **hyper) -> OuterAE:
    if kind not in OUTER_MODELS:
        raise ValueError(f"outer.model must be one of {sorted(OUTER_MODELS)}, not {kind!r}")
    if "hidden" in hyper and isinstance(hyper["hidden"], list):
        hyper["hidden"] = tuple(hyper["hidden"])
    try:
        return OUTER_MODELS[kind](n_bins, n_frames, **hyper)
    except TypeError as exc:  # a key the model does not take: say which section it came from
        raise ValueError(f"outer.{kind}: {exc}") from None


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
