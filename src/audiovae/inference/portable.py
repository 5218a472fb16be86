"""A model file a C++ host runs without Python: ``audiovae export --format torchscript``.

The synthesizer plug-in the instrument seed wanted needs the whole path from a latent (or a label
and a seed) to audio inside one file a host loads through libtorch (``torch::jit::load``): both
decoders, the code statistics, the codec's inverse scaling, the label statistics for sampling and
Griffin-Lim itself (``torch.stft`` / ``torch.istft``), started from the same seeded phases as
``librosa.griffinlim`` so the two agree.

Why TorchScript: it is the one format here that carries the whole path, Griffin-Lim and a seeded
random generator included, as several callable methods of one file. ONNX has no inverse STFT and
no runtime-seeded normal draws; a ``torch.export`` / AOTInductor package needs a C++ compiler at
export time and one graph per method. torch 2.13 marks ``torch.jit`` deprecated, but libtorch
loads these files and this is the format nn~ and RAVE's VST load today.

Methods (all batched over the first axis; labels are indices into ``labels``):

- ``generate(label, seed, spread) -> (length,)``: one new sound of a label.
- ``sample(label, seed, spread, count) -> (count, latent)``: the latents ``generate`` decodes.
- ``decode(latent, label) -> (batch, length)``: latents to audio.
- ``decode_spectrogram(latent, label) -> (batch, bins, frames)``: latents to the outer decoder's
  scaled spectrogram (the Python path's ``AudioVAE.from_latents``).
- ``griffin_lim(magnitude) -> (batch, length)``: linear magnitude (with the Nyquist bin) to audio.

Attributes a host reads: ``sample_rate``, ``length``, ``latent_dim``, ``labels``, ``conditional``.
``generate`` draws with torch's generator, so its sounds are the model's for that seed but not the
ones ``audiovae generate --seed`` draws with NumPy's.
"""
from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from audiovae.atomic import atomic_path
from audiovae.inference.model import AudioVAE


class _Decoders(torch.nn.Module):
    """Latent (and label ids) -> the outer decoder's scaled spectrogram: the path to trace."""

    def __init__(self, model: AudioVAE):
        super().__init__()
        # copies without gradients: a host only runs them (and the caller's model stays as it was)
        self.inner = copy.deepcopy(model.inner).cpu().eval().requires_grad_(False)
        self.outer = copy.deepcopy(model.outer).cpu().eval().requires_grad_(False)
        self.conditional = bool(model.inner.conditional)
        self.code_shape = tuple(model.outer.code_shape())
        self.register_buffer("mean", torch.as_tensor(np.asarray(model.mean, np.float32)))
        self.register_buffer("std", torch.as_tensor(np.asarray(model.std, np.float32)))

    def forward(self, latent: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        codes = self.inner.generate(latent, label if self.conditional else None)
        raw = codes * self.std + self.mean
        return self.outer.decode(raw.reshape(-1, *self.code_shape))


class Synth(torch.nn.Module):
    """The whole synthesis path of one trained model, scriptable (see the module's docstring).

    Its buffers cannot be declared as class annotations, which a type checker would read: under
    ``from __future__ import annotations`` TorchScript takes them for unknown types (torch 2.13),
    so the lines that use them carry ``type: ignore``."""

    def __init__(self, model: AudioVAE, decoders: torch.nn.Module):
        super().__init__()
        codec = model.codec
        if codec.scaling != "global":
            raise ValueError("only globally scaled features (features.scaling: global) have an inverse to export")
        self.decoders = decoders
        self.sample_rate, self.length = int(codec.sample_rate), int(model.length)
        self.n_fft, self.hop_length = int(codec.n_fft), int(codec.hop_length)
        self.iterations, self.momentum = int(codec.gl_iterations), float(codec.gl_momentum)
        self.db_floor, self.db_ceiling = float(codec.db_floor), float(codec.db_ceiling)
        self.silence_db = float(codec.silence_db)
        self.mu_law, self.mu = codec.representation == "mu_law", float(codec.mu)
        self.ref, self.output_peak = float(codec.ref), float(codec.output_peak)
        self.drop_nyquist = bool(codec.drop_nyquist)
        self.latent_dim = int(model.inner.latent_dim)
        self.conditional = bool(model.inner.conditional)
        self.labels: list[str] = list(model.labels)
        window = torch.as_tensor(np.asarray(_window(codec.window, codec.n_fft), np.float32))
        self.register_buffer("window", window)
        frames = codec.n_frames(model.length)
        # librosa.griffinlim(init="random", random_state=seed) draws its first phases from NumPy's
        # RandomState; for one sound their shape is fixed, so they are stored, not re-drawn
        phases = np.random.RandomState(seed=codec.gl_seed).random(size=(codec.n_fft // 2 + 1, frames))
        self.register_buffer("init_phase", torch.as_tensor((2 * np.pi * phases).astype(np.float32)))
        scales = np.asarray(model.class_scales, np.float32)
        if scales.ndim == 2:  # a diagonal scale per label: as a (latent, latent) factor
            scales = np.stack([np.diag(s) for s in scales])
        self.register_buffer("class_means", torch.as_tensor(np.asarray(model.class_means, np.float32)))
        self.register_buffer("class_scales", torch.as_tensor(scales))
        points = model.class_points if model.class_points is not None else np.zeros((0, self.latent_dim))
        point_labels = model.class_point_labels if model.class_point_labels is not None else np.zeros(0)
        self.register_buffer("class_points", torch.as_tensor(np.asarray(points, np.float32)))
        self.register_buffer("point_labels", torch.as_tensor(np.asarray(point_labels, np.int64)))
        # a learned prior (stage train_prior): each label's mixture components; none, an empty table
        prior = model.prior
        self.register_buffer("prior_centres", torch.as_tensor(
            prior.centres if prior is not None else np.zeros((0, self.latent_dim), np.float32)))
        self.register_buffer("prior_labels", torch.as_tensor(
            prior.labels.astype(np.int64) if prior is not None else np.zeros(0, np.int64)))
        self.register_buffer("prior_weights", torch.as_tensor(
            prior.weights if prior is not None else np.zeros(0, np.float32)))
        self.register_buffer("prior_bases", torch.as_tensor(
            prior.bases if prior is not None else np.zeros((0, self.latent_dim, 1), np.float32)))
        self.register_buffer("prior_scales", torch.as_tensor(
            prior.scales if prior is not None else np.zeros((0, 1, 1), np.float32)))

    def forward(self, latent: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.decode(latent, label)

    @torch.jit.export
    def decode_spectrogram(self, latent: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.decoders(latent, label)

    @torch.jit.export
    def magnitude(self, features: torch.Tensor) -> torch.Tensor:
        """Scaled features -> linear magnitude (``Codec.to_magnitude``), Nyquist bin restored."""
        x = features.clamp(0.0, 1.0)
        if self.mu_law:
            linear = torch.expm1(x * math.log1p(self.mu)) / self.mu
            db = 20 * torch.log10(linear.clamp_min(math.pow(10.0, self.db_floor / 20)))
        else:
            db = self.db_floor + x * (self.db_ceiling - self.db_floor)
        mag = self.ref * torch.pow(10.0, db / 20)
        mag = torch.where(db <= self.silence_db, torch.zeros_like(mag), mag)
        if self.drop_nyquist:
            mag = torch.nn.functional.pad(mag, [0, 0, 0, 1])
        return mag

    def _istft(self, spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, self.window, center=True,  # type: ignore[arg-type]
                           length=self.length)

    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.stft(audio, self.n_fft, self.hop_length, self.n_fft, self.window, center=True,  # type: ignore[arg-type]
                          pad_mode="constant", return_complex=True)

    @torch.jit.export
    def griffin_lim(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``librosa.griffinlim`` (fast Griffin-Lim, momentum) from the same first phases, then
        peak-normalised to ``output_peak`` as ``Codec.griffin_lim`` does."""
        frames = magnitude.shape[-1]
        phase = self.init_phase[:, :frames].expand(magnitude.shape)  # type: ignore[index]
        angles = torch.polar(torch.ones_like(magnitude), phase) * magnitude
        tprev = torch.zeros_like(angles)
        first = True
        for _ in range(self.iterations):
            rebuilt = self._stft(self._istft(angles))
            angles = rebuilt if first else rebuilt - (self.momentum / (1 + self.momentum)) * tprev
            angles = angles / (angles.abs() + 1.1754944e-38) * magnitude
            tprev = rebuilt
            first = False
        audio = self._istft(angles)
        peak = audio.abs().amax(dim=-1, keepdim=True).clamp_min(1e-9)
        return audio * (self.output_peak / peak)

    @torch.jit.export
    def decode(self, latent: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.griffin_lim(self.magnitude(self.decode_spectrogram(latent, label)))

    @torch.jit.export
    def sample(self, label: int, seed: int, spread: float, count: int) -> torch.Tensor:
        """Latents of ``count`` new sounds of ``label``: from its learned prior's mixture when the
        model has one (``spread``: its temperature), else N(0, I) for a label-conditioned model, else
        around the label's training latents (kde) or its centre, along its scale factor."""
        if label < 0 or label >= len(self.labels):
            raise ValueError("label index out of range")
        generator = torch.Generator()
        generator.manual_seed(seed)
        own = torch.nonzero(self.prior_labels == label).flatten()  # type: ignore[arg-type]
        if own.shape[0] > 0:
            picks = own[torch.multinomial(self.prior_weights[own], count, True, generator=generator)]  # type: ignore[index]
            scales = self.prior_scales[picks]  # type: ignore[index]
            eps = torch.randn([count, scales.shape[-1]], generator=generator)
            local = torch.bmm(scales, eps.unsqueeze(-1)).squeeze(-1)
            return self.prior_centres[picks] + spread * (local @ self.prior_bases[label].t())  # type: ignore[index]
        if self.conditional:
            return torch.randn([count, self.latent_dim], generator=generator) * spread
        scale = self.class_scales[label]  # type: ignore[index]
        eps = torch.randn([count, scale.shape[-1]], generator=generator)
        offsets = eps @ scale.t()
        points = self.class_points[self.point_labels == label]  # type: ignore[index]
        if points.shape[0] > 0:
            pick = torch.randint(0, points.shape[0], [count], generator=generator)
            return points[pick] + spread * offsets
        return self.class_means[label].unsqueeze(0) + spread * offsets  # type: ignore[index]

    @torch.jit.export
    def generate(self, label: int, seed: int, spread: float) -> torch.Tensor:
        latent = self.sample(label, seed, spread, 1)
        return self.decode(latent, torch.full([1], label, dtype=torch.long))[0]


def _window(name: str, n_fft: int) -> np.ndarray:
    import librosa

    return librosa.filters.get_window(name, n_fft, fftbins=True)


def script(model: AudioVAE) -> torch.jit.ScriptModule:
    """The model as a TorchScript module: decoders traced (their Python stays behind), the rest
    scripted with them inside."""
    if model.pitch_range is not None:
        raise ValueError("this model takes pitch and velocity, which the TorchScript synthesizer does not carry yet: "
                         "export it with --format avae (`audiovae --model model.avae generate --pitch C4`)")
    decoders = _Decoders(model).eval()
    example = (torch.zeros(2, model.inner.latent_dim), torch.zeros(2, dtype=torch.long))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice: see the module docstring
        traced = torch.jit.trace(decoders, example, check_trace=False)
        return torch.jit.script(Synth(model, traced).cpu().eval())


def write(model: AudioVAE, path: Path) -> Path:
    """Save the scripted model atomically (``.ts``)."""
    module = script(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with atomic_path(Path(path)) as tmp:
            module.save(str(tmp))
    return Path(path)
