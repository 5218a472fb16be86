"""The inner VAE over the standardised outer code: an MLP, 1-D or 2-D convolutions.

Its latent is either one vector per clip (``global``, the seeds' choice) or a short sequence of
vectors (``sequence``: ``latent_channels`` per latent frame, the time axis kept, as RAVE, DDSP and
Stable Audio's VAE keep it): a 0.76 s clip holds several syllables, and one vector of 64 numbers
cannot carry their timing. Either way the model hands out latents as flat vectors
(``latent_dim`` = channels x frames for a sequence), so sampling, priors and bundles need no
second code path; ``latent_shape`` says how to fold them back.

Options: a mixture-of-Gaussians prior (the GM-VAE the FSDD report compared; its KL is a
one-sample Monte-Carlo estimate), a label-conditioned mode (encoder and decoder see a
one-hot label) and a note-conditioned mode (``note_pitches``: encoder and decoder see the MIDI
pitch, one-hot over the trained range as GANSynth's, and the velocity; the latent is left the
timbre, and a generation can be asked for a key). The per-dimension KL under the standard prior is reported so posterior
collapse is visible.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .outer import Residual

ACTIVE_KL_THRESHOLD = 0.01  # nats; a dimension whose mean KL is below this carries no information
MAX_VELOCITY = 127          # MIDI's: a velocity enters the model as velocity / 127


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.GELU()]
    return nn.Sequential(*layers)


class ConvTrunk(nn.Module):
    """Strided 2-D convolutions over a code laid out as (channels, height, width), for the FSDD
    report's convolutional VAE (filters 512 ... 32); ``ConvTrunk.decoder`` mirrors it."""

    def __init__(self, shape: tuple[int, int, int], filters: tuple[int, ...], extra: int = 0):
        super().__init__()
        c, h, w = shape
        layers, channels = [], c
        for f in filters:
            layers += [nn.Conv2d(channels, f, 3, stride=2, padding=1), nn.BatchNorm2d(f), nn.LeakyReLU(0.2)]
            channels = f
        self.net = nn.Sequential(*layers)
        self.shape, self.filters = shape, filters
        with torch.no_grad():
            self.inner_shape = tuple(self.net(torch.zeros(1, *shape)).shape[1:])
        self.out_dim = math.prod(self.inner_shape)

    def forward(self, x):
        return self.net(x.reshape(x.shape[0], *self.shape)).flatten(1)


class ConvHead(nn.Module):
    def __init__(self, trunk: ConvTrunk, latent: int):
        super().__init__()
        self.fc = nn.Linear(latent, trunk.out_dim)
        self.inner_shape, self.out_shape = trunk.inner_shape, trunk.shape
        # the report's decoder: transposed convolutions with the encoder's filters reversed, less the
        # first (widest) one; the last layer goes straight to the output channels at full resolution
        layers, channels = [], trunk.filters[-1]
        for f in reversed(trunk.filters[1:]):
            layers += [nn.ConvTranspose2d(channels, f, 3, stride=2, padding=1, output_padding=1),
                       nn.BatchNorm2d(f), nn.LeakyReLU(0.2)]
            channels = f
        layers += [nn.ConvTranspose2d(channels, trunk.shape[0], 3, stride=2, padding=1, output_padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        out = self.net(self.fc(z).reshape(z.shape[0], *self.inner_shape))
        return out[..., : self.out_shape[1], : self.out_shape[2]].flatten(1)


class Conv1dTrunk(nn.Module):
    """Strided 1-D convolutions along the code's time axis (its channels are the outer code's
    channels): shift-tolerant where an MLP over the flattened code must learn every position."""

    def __init__(self, shape: tuple[int, int], channels: tuple[int, ...], extra: int = 0, blocks: int = 0):
        super().__init__()
        c, t = shape
        layers, width = [], c + extra
        for f in channels:
            layers += [nn.Conv1d(width, f, 4, stride=2, padding=1), nn.GELU()]
            # residual blocks at each resolution: depth that starts as the identity
            layers += [Residual(f, 3, "gelu") for _ in range(blocks)]
            width = f
        self.net = nn.Sequential(*layers)
        self.shape, self.channels, self.extra, self.blocks = (c, t), tuple(channels), extra, blocks
        # each layer halves the time axis exactly when it is even: pad it to a multiple of
        # 2**layers (zeros: the standardised code's mean) and crop the decoder's output back
        multiple = 2 ** len(channels)
        self.padded_frames = -(-t // multiple) * multiple
        with torch.no_grad():
            self.inner_shape = tuple(self.net(torch.zeros(1, c + extra, self.padded_frames)).shape[1:])
        self.out_dim = math.prod(self.inner_shape)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1, self.shape[1])
        return self.net(F.pad(x, (0, self.padded_frames - self.shape[1]))).flatten(1)


class Conv1dHead(nn.Module):
    """The mirror of ``Conv1dTrunk``: a linear layer to the trunk's output, transposed convolutions back."""

    def __init__(self, trunk: Conv1dTrunk, latent: int, extra: int = 0):
        super().__init__()
        self.fc = nn.Linear(latent + extra, trunk.out_dim)
        self.inner_shape, self.out_shape = trunk.inner_shape, trunk.shape
        layers: list[nn.Module] = [nn.GELU()]
        width = trunk.channels[-1]
        for f in reversed(trunk.channels[:-1]):
            layers += [nn.ConvTranspose1d(width, f, 4, stride=2, padding=1), nn.GELU()]
            width = f
        layers += [nn.ConvTranspose1d(width, trunk.shape[0], 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z, condition: torch.Tensor | None = None):
        if condition is not None:
            z = torch.cat([z, condition], dim=-1)
        out = self.net(self.fc(z).reshape(z.shape[0], *self.inner_shape))
        return out[..., : self.out_shape[1]].flatten(1)


class SequenceTrunk(nn.Module):
    """``Conv1dTrunk`` then a kernel-3 convolution at the latent frame rate: features per latent
    frame, kept as ``(batch, channels, frames)`` for the 1x1 heads."""

    def __init__(self, trunk: Conv1dTrunk):
        super().__init__()
        width = trunk.channels[-1]
        self.trunk = trunk
        self.mix = nn.Sequential(nn.Conv1d(width, width, 3, padding=1), nn.GELU())

    def forward(self, x):
        x = x.reshape(x.shape[0], -1, self.trunk.shape[1])
        x = F.pad(x, (0, self.trunk.padded_frames - self.trunk.shape[1]))
        return self.mix(self.trunk.net(x))


class Pointwise(nn.Module):
    """A 1x1 convolution to ``channels`` per latent frame, flattened (channel-major) to one vector."""

    def __init__(self, width: int, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(width, channels, 1)

    def forward(self, h):
        return self.conv(h).flatten(1)


class SequenceHead(nn.Module):
    """The mirror of ``SequenceTrunk``: latent frames -> a kernel-3 convolution -> transposed
    convolutions back to the code's frames."""

    def __init__(self, trunk: Conv1dTrunk, latent_channels: int, extra: int = 0):
        super().__init__()
        width = trunk.channels[-1]
        self.latent_channels, self.frames, self.out_shape = latent_channels, trunk.inner_shape[1], trunk.shape
        self.extra = extra  # condition channels, the same at every latent frame
        layers: list[nn.Module] = [nn.Conv1d(latent_channels + extra, width, 3, padding=1), nn.GELU()]
        layers += [Residual(width, 3, "gelu") for _ in range(trunk.blocks)]
        for f in reversed(trunk.channels[:-1]):
            layers += [nn.ConvTranspose1d(width, f, 4, stride=2, padding=1), nn.GELU()]
            layers += [Residual(f, 3, "gelu") for _ in range(trunk.blocks)]
            width = f
        layers += [nn.ConvTranspose1d(width, trunk.shape[0], 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z, condition: torch.Tensor | None = None):
        z = z.reshape(z.shape[0], self.latent_channels, self.frames)
        if condition is not None:
            z = torch.cat([z, condition[:, :, None].expand(-1, -1, self.frames)], dim=1)
        out = self.net(z)
        return out[..., : self.out_shape[1]].flatten(1)


LATENTS = ("sequence", "global")


class VAE(nn.Module):
    hyper: dict  # the keyword arguments it was built with (models.build), saved with the checkpoint

    def __init__(self, input_dim: int, latent_dim: int = 32, hidden: tuple[int, ...] = (512, 256),
                 prior: str = "normal", mixture_components: int = 10, n_classes: int = 0,
                 conditional: bool = False, reconstruction: str = "mse", architecture: str = "mlp",
                 code_shape: tuple[int, ...] = (), conv_filters: tuple[int, ...] = (),
                 latent: str = "global", latent_channels: int = 0, blocks: int = 0,
                 note_pitches: tuple[int, int] | list[int] | None = None):
        super().__init__()
        self.reconstruction, self.architecture = reconstruction, architecture
        if latent not in LATENTS:
            raise ValueError(f"inner.latent must be 'sequence' or 'global', not {latent!r}")
        if latent == "sequence" and architecture != "conv1d":
            raise ValueError(f"inner.latent sequence needs inner.architecture conv1d (a time axis), not {architecture!r}")
        if latent == "sequence" and latent_channels < 1:
            raise ValueError("inner.latent sequence needs inner.latent_channels >= 1")
        if blocks and latent != "sequence":
            raise ValueError("inner.blocks (residual blocks) are built for inner.latent sequence only")
        self.latent = latent
        # (dims,) for a global latent, (channels, frames) for a sequence; set below for a sequence
        self.latent_shape: tuple[int, ...] = (latent_dim,)
        if prior not in ("normal", "mixture", "class_mixture"):
            raise ValueError(f"inner.prior must be 'normal', 'mixture' or 'class_mixture', not {prior!r}")
        if prior == "class_mixture" and n_classes < 2:
            raise ValueError("inner.prior class_mixture needs at least two labels in the training data")
        if conditional and n_classes < 2:
            raise ValueError("inner.conditional needs at least two labels in the training data")
        self.input_dim, self.prior = input_dim, prior
        self.n_classes, self.conditional = n_classes, conditional
        # the notes' pitch range [low, high], when pitch and velocity are inputs
        self.note_pitches = (int(note_pitches[0]), int(note_pitches[1])) if note_pitches else None
        if self.note_pitches and not 0 <= self.note_pitches[0] <= self.note_pitches[1] <= 127:
            raise ValueError(f"note_pitches must be MIDI 0-127, low <= high, not {list(self.note_pitches)}")
        if self.note_pitches and architecture == "conv2d":
            raise ValueError("inner.architecture conv2d has no note-conditioned mode; use conv1d or mlp")
        notes = self.note_features
        extra = (n_classes if conditional else 0) + notes
        # each architecture builds its own kinds of module for these four parts
        self.encoder: nn.Module
        self.fc_mu: nn.Module
        self.fc_logvar: nn.Module
        self.decoder: nn.Module
        self.out: nn.Module
        if architecture == "conv2d":
            if conditional:
                raise ValueError("inner.architecture conv2d has no label-conditioned mode; use mlp")
            c, h, w = tuple(code_shape) if len(code_shape) == 3 else (1, *code_shape)
            trunk2d = ConvTrunk((c, h, w), tuple(conv_filters))
            self.encoder = trunk2d
            self.fc_mu = nn.Linear(trunk2d.out_dim, latent_dim)
            self.fc_logvar = nn.Linear(trunk2d.out_dim, latent_dim)
            self.decoder = ConvHead(trunk2d, latent_dim)
            self.out = nn.Identity()
        elif architecture == "conv1d":
            if conditional:
                raise ValueError("inner.architecture conv1d has no label-conditioned mode; use mlp")
            if len(code_shape) == 3:  # a 2-D outer code (channels, bins, frames): bins join the channels
                code_shape = (code_shape[0] * code_shape[1], code_shape[2])
            if len(code_shape) != 2:
                raise ValueError(f"inner.architecture conv1d needs a (channels, frames) code, not {list(code_shape)}")
            channels, frames = code_shape
            # the condition enters the encoder as channels beside the code's, the same at every frame
            trunk = Conv1dTrunk((channels, frames), tuple(conv_filters), extra=notes, blocks=blocks)
            if latent == "sequence":
                frames = trunk.inner_shape[1]
                latent_dim, self.latent_shape = latent_channels * frames, (latent_channels, frames)
                self.encoder = SequenceTrunk(trunk)
                self.fc_mu = Pointwise(trunk.channels[-1], latent_channels)
                self.fc_logvar = Pointwise(trunk.channels[-1], latent_channels)
                self.decoder = SequenceHead(trunk, latent_channels, extra=notes)
            else:
                self.encoder = trunk
                self.fc_mu = nn.Linear(trunk.out_dim, latent_dim)
                self.fc_logvar = nn.Linear(trunk.out_dim, latent_dim)
                self.decoder = Conv1dHead(trunk, latent_dim, extra=notes)
            self.out = nn.Identity()
        elif architecture == "mlp":
            widths = list(hidden)
            self.encoder = _mlp([input_dim + extra, *widths])
            self.fc_mu = nn.Linear(widths[-1], latent_dim)
            self.fc_logvar = nn.Linear(widths[-1], latent_dim)
            self.decoder = _mlp([latent_dim + extra, *reversed(widths)])
            self.out = nn.Linear(widths[0], input_dim)
        else:
            raise ValueError(f"inner.architecture must be 'mlp', 'conv1d' or 'conv2d', not {architecture!r}")
        self.latent_dim = latent_dim
        if prior == "mixture":
            self.prior_means = nn.Parameter(torch.randn(mixture_components, latent_dim))
            self.prior_logvars = nn.Parameter(torch.zeros(mixture_components, latent_dim))
            self.prior_logits = nn.Parameter(torch.zeros(mixture_components))
        elif prior == "class_mixture":
            # one unit-variance Gaussian per label, its mean learnt: p(z | y) = N(m_y, I)
            self.prior_means = nn.Parameter(torch.randn(n_classes, latent_dim))

    @property
    def note_features(self) -> int:
        """Inputs a note adds: a one-hot pitch over the trained range and the velocity (0 without notes)."""
        return self.note_pitches[1] - self.note_pitches[0] + 2 if self.note_pitches else 0

    def note_vector(self, notes: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``notes`` (batch, 2) of MIDI pitch and velocity -> the note's inputs; a pitch outside the
        trained range is refused (one-hot has no place for it)."""
        if self.note_pitches is None:
            raise ValueError("this VAE does not take pitch and velocity")
        if notes is None:
            raise ValueError("this VAE takes pitch and velocity: pass notes")
        low, high = self.note_pitches
        pitch = notes[:, 0].long()
        if bool(((pitch < low) | (pitch > high)).any()):
            raise ValueError(f"pitch outside the trained range MIDI {low}-{high}")
        onehot = F.one_hot(pitch - low, high - low + 1).to(dtype)
        return torch.cat([onehot, (notes[:, 1:2].to(dtype) / MAX_VELOCITY)], dim=-1)

    def _cond(self, x: torch.Tensor, labels: torch.Tensor | None, notes: torch.Tensor | None = None) -> torch.Tensor:
        """An MLP's input with the label and note inputs appended (the convolutional paths add notes
        as channels: ``_encoder_input``, ``decode``)."""
        if self.conditional:
            if labels is None:
                raise ValueError("this VAE is label-conditioned: pass labels")
            x = torch.cat([x, F.one_hot(labels, self.n_classes).to(x.dtype)], dim=-1)
        if self.note_pitches is not None and self.architecture == "mlp":
            x = torch.cat([x, self.note_vector(notes, x.dtype)], dim=-1)
        return x

    def _encoder_input(self, x, labels, notes):
        if self.note_pitches is not None and self.architecture == "conv1d":
            frames = self.encoder_frames
            code = x.reshape(x.shape[0], -1, frames)
            vector = self.note_vector(notes, x.dtype)
            return torch.cat([code, vector[:, :, None].expand(-1, -1, frames)], dim=1)
        return self._cond(x, labels, notes)

    @property
    def encoder_frames(self) -> int:
        """Frames of the code the convolutional encoder takes (the condition is repeated over them)."""
        trunk = self.encoder.trunk if isinstance(self.encoder, SequenceTrunk) else self.encoder
        assert isinstance(trunk, Conv1dTrunk)
        return int(trunk.shape[1])

    def encode(self, x, labels=None, notes=None):
        h = self.encoder(self._encoder_input(x, labels, notes))
        return self.fc_mu(h), self.fc_logvar(h).clamp(-12, 8)

    def decode(self, z, labels=None, notes=None):
        if self.note_pitches is not None and self.architecture == "conv1d":
            return self.out(self.decoder(z, self.note_vector(notes, z.dtype)))
        return self.out(self.decoder(self._cond(z, labels, notes)))

    def generate(self, z, labels=None, notes=None):
        """Decoder output in the data's units (logits through a sigmoid for a BCE-trained model)."""
        out = self.decode(z, labels, notes)
        return torch.sigmoid(out) if self.reconstruction == "bce" else out

    def forward(self, x, labels=None, notes=None):
        mu, logvar = self.encode(x, labels, notes)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z, labels, notes), mu, logvar, z

    def kl_dims(self, mu, logvar, labels=None) -> torch.Tensor:
        """Per-dimension KL from the prior (the label's component for ``class_mixture``; N(0, I) otherwise,
        where the mixture has no per-dimension form): the measure of active dimensions."""
        if self.prior == "class_mixture":
            if labels is None:
                raise ValueError("the class_mixture prior needs labels")
            return kl_per_dim(mu - self.prior_means[labels], logvar)
        return kl_per_dim(mu, logvar)

    def channel_kl(self, kl_dims: torch.Tensor) -> torch.Tensor:
        """Per-dimension KL ``(batch, latent_dim)`` -> per latent channel ``(batch, channels)``: a
        sequence's channel sums its frames; a global latent's channels are its dimensions."""
        if self.latent == "sequence":
            return kl_dims.reshape(len(kl_dims), *self.latent_shape).sum(-1)
        return kl_dims

    def kl(self, mu, logvar, z, labels=None) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example (analytic for the normal and class priors, one-sample MC for
        the mixture)."""
        if self.prior in ("normal", "class_mixture"):
            return self.kl_dims(mu, logvar, labels).sum(-1)
        log_q = _log_normal(z, mu, logvar).sum(-1)
        comp = _log_normal(z.unsqueeze(1), self.prior_means, self.prior_logvars).sum(-1)
        log_p = torch.logsumexp(comp + F.log_softmax(self.prior_logits, 0), dim=1)
        return log_q - log_p

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        eps = torch.randn(n, self.latent_dim, generator=generator, device=device)
        if self.prior == "normal":
            return eps
        probs = F.softmax(self.prior_logits, 0)
        idx = torch.multinomial(probs, n, replacement=True, generator=generator)
        return self.prior_means[idx] + eps * torch.exp(0.5 * self.prior_logvars[idx])


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Analytic KL of N(mu, var) from N(0, 1), per dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def _log_normal(x, mu, logvar):
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mu).pow(2) / logvar.exp())


def vae_loss(model: VAE, x: torch.Tensor, labels, beta: float, reconstruction: str = "mse",
             weight: float = 1.0, reduction: str = "sum", free_bits: float = 0.0, notes=None):
    """Returns (loss, reconstruction term, kl term), each a mean over the batch.

    ``reduction`` sums or averages the reconstruction error over the code's dimensions; the
    FSDD report's ``reconstruction_weight`` of 1e6 applies to a mean. ``free_bits`` (nats per
    latent channel, batch-averaged; Kingma et al. 2016) is a KL floor: a channel below it costs
    no more than the floor, so the optimiser has no reason to switch it off. The KL returned is
    the true one, whatever the floor.
    """
    x_hat, mu, logvar, z = model(x, labels, notes)
    # fp32 from here on: under bf16 autocast the model's outputs are bf16 (see models.losses)
    mu, logvar, z = mu.float(), logvar.float(), z.float()
    if reconstruction == "mse":
        rec = (x_hat.float() - x).pow(2)
    elif reconstruction == "bce":  # AudioMNIST report: targets in [0, 1]
        rec = F.binary_cross_entropy_with_logits(x_hat.float(), x.clamp(0, 1), reduction="none")
    else:
        raise ValueError(f"inner.reconstruction must be 'mse' or 'bce', not {reconstruction!r}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"inner.reconstruction_reduction must be 'sum' or 'mean', not {reduction!r}")
    rec = weight * (rec.sum(-1) if reduction == "sum" else rec.mean(-1))
    kl = model.kl(mu, logvar, z, labels)
    if free_bits > 0:
        if model.prior == "mixture":  # a one-sample estimate has no per-channel form: floor the total
            penalty = kl.mean().clamp_min(free_bits * model.latent_shape[0])
        else:
            per_channel = model.channel_kl(model.kl_dims(mu, logvar, labels)).mean(0)
            penalty = per_channel.clamp_min(free_bits).sum()
        return rec.mean() + beta * penalty, rec.mean(), kl.mean()
    return (rec + beta * kl).mean(), rec.mean(), kl.mean()
