"""The trained model as one object: audio <-> spectrogram <-> outer code <-> VAE latent.

Used by ``evaluate`` and by the CLI (``generate``, ``reconstruct``, ``interpolate``, ``probe``).
It loads what the last ``dvc repro`` produced in the project, or an exported bundle
(``audiovae export``) anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audiovae.config.schema import Inference, TrainedWith, generation_spread
from audiovae.data import audio as audio_io
from audiovae.data.segments import Segmenter, edge_fade
from audiovae.data.spectrogram import Codec
from audiovae.inference import bundle as model_bundle
from audiovae.inference.notes import DEFAULT_VELOCITY, MIDDLE_C
from audiovae.models.checkpoints import inner_from_info, outer_from_info
from audiovae.models.inner import MAX_VELOCITY, VAE
from audiovae.models.outer import OuterAE
from audiovae.models.prior import Mixture
from audiovae.progress import Progress


def _array(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


def segmenter_of(cfg: Inference | None, sample_rate: int) -> Segmenter | None:
    """The ``inference`` section of a model's params as a ``Segmenter`` (None for a model trained
    before the section existed: it windows whole recordings, as it always did)."""
    if cfg is None:
        return None
    return Segmenter(sample_rate, cfg.silence_db, cfg.min_gap_seconds, cfg.margin_seconds)


def prior_of(arrays: dict | None) -> Mixture | None:
    """A bundle's learned prior, or None (no prior stage, or its kde family: no components)."""
    if not arrays or len(arrays.get("centres", ())) == 0:
        return None
    return Mixture.from_arrays(arrays)


@dataclass
class AudioVAE:
    outer: OuterAE
    inner: VAE
    mean: np.ndarray
    std: np.ndarray
    codec: Codec
    length: int
    length_mode: str
    labels: list[str]
    class_means: np.ndarray
    class_scales: np.ndarray  # (labels, latent, r): centre + spread * L @ eps; (labels, latent): diagonal
    device: torch.device
    trim_db: float = 0.0      # the filter stage's silence trimming, applied to user recordings too
    class_points: np.ndarray | None = None        # kde sampling: the training latents (kernel centres)
    class_point_labels: np.ndarray | None = None  # and their label ids

    # the settings of the run that trained it (bundles carry its effective params)
    trained: TrainedWith = field(default_factory=TrainedWith)
    segmenter: Segmenter | None = None  # where the sound is in a recording (``inference`` params)
    prior: Mixture | None = None  # a learned prior (stage train_prior): generation samples from it

    @classmethod
    def from_bundle(cls, bundle: dict, device: str | torch.device = "cpu") -> "AudioVAE":
        """Build from a bundle dict (``bundle.read`` of an exported file, or ``bundle.from_project``)."""
        device = torch.device(device)
        info, audio_meta = bundle["inner"], bundle["audio"]
        trained = TrainedWith.model_validate(bundle.get("params") or {})
        return cls(outer_from_info(bundle["outer"], device), inner_from_info(info, device),
                   np.asarray(bundle["stats"]["mean"]), np.asarray(bundle["stats"]["std"]),
                   Codec(**bundle["codec"]), int(audio_meta["length"]), audio_meta["length_mode"],
                   [str(label) for label in info["labels"]], np.asarray(info["class_means"]),
                   np.asarray(info["class_scales"]), device, float(audio_meta.get("trim_db", 0.0)),
                   _array(info.get("class_points")), _array(info.get("class_point_labels")),
                   trained, segmenter_of(trained.inference, int(bundle["codec"]["sample_rate"])),
                   prior_of(bundle.get("prior")))

    @classmethod
    def from_project(cls, root: Path, device: str | torch.device = "cpu") -> "AudioVAE":
        """The model the project's last ``dvc repro`` produced (its stage outputs under ``data/``)."""
        return cls.from_bundle(model_bundle.from_project(Path(root)), device)

    @classmethod
    def from_file(cls, path: Path, device: str | torch.device = "cpu") -> "AudioVAE":
        """An exported ``.avae`` bundle: needs no project files."""
        return cls.from_bundle(model_bundle.read(Path(path)), device)

    # ---------------------------------------------------------------- helpers
    def label_ids(self, labels) -> torch.Tensor | None:
        if labels is None:
            return None
        exact = {label: i for i, label in enumerate(self.labels)}
        # a label as typed: ``kick`` finds ``Kick`` where the case tells no two labels apart
        folded: dict[str, list[int]] = {}
        for label, i in exact.items():
            folded.setdefault(label.casefold(), []).append(i)

        def find(label) -> int | None:
            ids = folded.get(str(label).casefold(), [])
            return exact.get(str(label), ids[0] if len(ids) == 1 else None)

        found = [find(label) for label in labels]
        missing = [str(label) for label, i in zip(labels, found) if i is None]
        if missing:
            raise ValueError(f"unknown label(s) {sorted(set(missing))}; the model knows {self.labels}")
        return torch.tensor(found, device=self.device)

    def label_index(self, label) -> int:
        """The model's index of one label (a ValueError names the labels it knows)."""
        ids = self.label_ids([label])
        assert ids is not None
        return int(ids.item())

    def _need_labels(self, labels, n: int):
        if self.inner.conditional and labels is None:
            raise ValueError("this model is label-conditioned: give the label of each input (--label)")
        if labels is not None and len(labels) != n:
            raise ValueError(f"got {len(labels)} labels for {n} inputs")
        return self.label_ids(labels) if self.inner.conditional else None

    @property
    def pitch_range(self) -> tuple[int, int] | None:
        """The MIDI pitches a note-conditioned model was trained on (low, high), else None."""
        return self.inner.note_pitches

    def _need_notes(self, notes, n: int):
        """``notes`` (n rows of MIDI pitch and velocity) as the inner VAE takes them: refused for a
        model without pitch, required by one with it, every pitch inside the trained range."""
        if self.inner.note_pitches is None:
            if notes is not None:
                raise ValueError("this model does not take a pitch or velocity: it was trained on sounds that are "
                                 "not notes (train on rendered notes, e.g. `dvc exp run -S preset=keyboard`)")
            return None
        if notes is None:
            raise ValueError("this model takes the pitch and velocity of each input")
        notes = np.asarray(notes, dtype=np.int64).reshape(-1, 2)
        if len(notes) != n:
            raise ValueError(f"got {len(notes)} notes for {n} inputs")
        low, high = self.inner.note_pitches
        outside = sorted({int(p) for p in notes[:, 0] if not low <= p <= high})
        if outside:
            raise ValueError(f"pitch {', '.join(map(str, outside))} is outside the MIDI {low}-{high} this model was "
                             "trained on")
        if not ((notes[:, 1] >= 1) & (notes[:, 1] <= MAX_VELOCITY)).all():
            raise ValueError(f"a velocity is 1-{MAX_VELOCITY}")
        return torch.from_numpy(notes).to(self.device)

    def default_pitch(self) -> int:
        """What ``generate`` plays without a pitch: middle C when trained on, else the range's middle."""
        assert self.inner.note_pitches is not None
        low, high = self.inner.note_pitches
        return MIDDLE_C if low <= MIDDLE_C <= high else (low + high) // 2

    # ---------------------------------------------------------------- audio
    def load_audio(self, path: Path) -> np.ndarray:
        """Any file (rate, channels, length) -> mono at the model's rate, silence trimmed as in
        training, peak 1, any length (``windows`` cuts it to the model's length)."""
        return audio_io.load_mono(path, self.codec.sample_rate, 0.0, self.trim_db)

    # ---------------------------------------------------------------- long sounds
    def regions(self, wave: np.ndarray) -> list[tuple[int, int]]:
        """Where the sound is (``segments.Segmenter``); the whole recording for a model that
        records no segmentation settings (``inference`` in its params)."""
        if self.segmenter is None:
            return [(0, len(wave))] if len(wave) else []
        return self.segmenter.regions(wave)

    def windows(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A sound -> (model-length windows, each peak-normalised as training files are; their peaks).

        A sound no longer than the model's length is one window, padded with silence after it (as
        the filter pads short training files); a longer one is cut into windows that overlap by
        half, so ``stitch`` can cross-fade them and nothing is cut off."""
        length, hop = self.length, self.length // 2
        n = 1 if len(wave) <= length else 1 + -(-(len(wave) - length) // hop)
        padded = np.pad(wave, (0, (n - 1) * hop + length - len(wave)))
        chunks = np.stack([padded[i * hop: i * hop + length] for i in range(n)]).astype(np.float32)
        peaks = np.abs(chunks).max(axis=-1)
        return chunks / np.maximum(peaks, 1e-9)[:, None], peaks

    def stitch(self, chunks: np.ndarray, peaks: np.ndarray, total: int) -> np.ndarray:
        """Overlap-add model-length windows (each back at its input's peak) with a Hann cross-fade."""
        length, hop = self.length, self.length // 2
        if len(chunks) == 1:
            out = chunks[0] * peaks[0] / max(float(np.abs(chunks[0]).max()), 1e-9)
            return out[:total].astype(np.float32)
        fade = np.hanning(length + 2)[1:-1].astype(np.float32)
        out = np.zeros((len(chunks) - 1) * hop + length, dtype=np.float32)
        weight = np.zeros_like(out)
        for i, (chunk, peak) in enumerate(zip(chunks, peaks)):
            scaled = chunk * (peak / max(float(np.abs(chunk).max()), 1e-9))
            out[i * hop: i * hop + length] += fade * scaled
            weight[i * hop: i * hop + length] += fade
        return (out / np.maximum(weight, 1e-3))[:total]

    def plan(self, wave: np.ndarray) -> "WindowPlan":
        """The windows of a recording: ``windows`` of each sound region, all in one array."""
        regions = self.regions(wave)
        parts = [self.windows(wave[a:b]) for a, b in regions]
        if not parts:
            return WindowPlan([], np.zeros((0, self.length), np.float32), np.zeros(0, np.float32), [], len(wave))
        return WindowPlan(regions, np.concatenate([c for c, _ in parts]), np.concatenate([p for _, p in parts]),
                          [len(c) for c, _ in parts], len(wave))

    def assemble(self, plan: "WindowPlan", audio: np.ndarray) -> np.ndarray:
        """Window audio -> the recording's length: each region stitched back where it was, faded in
        and out over its margin, and silence (zeros) wherever the input was silent."""
        out = np.zeros(max(plan.total, 1), dtype=np.float32)
        fade = int(self.segmenter.margin_seconds * self.codec.sample_rate) if self.segmenter else 0
        first = 0
        for (a, b), count in zip(plan.regions, plan.counts):
            piece = self.stitch(audio[first:first + count], plan.peaks[first:first + count], b - a)
            out[a:b] = piece * edge_fade(b - a, fade)
            first += count
        return out

    def reconstruct_audio(self, wave: np.ndarray, label: str | None = None,
                          note: tuple[int, int] | None = None) -> np.ndarray:
        """A recording of any length through the whole model: windows on its sound, back to its
        length; a model trained on notes takes the recording's ``note`` (pitch, velocity)."""
        plan = self.plan(wave)
        if not plan.counts:
            return np.zeros(max(len(wave), 1), dtype=np.float32)
        labels = [label] * len(plan.chunks) if label is not None else None
        notes = [list(note)] * len(plan.chunks) if note is not None else None
        return self.assemble(plan, self.to_audio(self.reconstruct(self.spectrogram(plan.chunks), labels, notes)))

    def trimmed(self, wave: np.ndarray) -> np.ndarray:
        """The recording from its first sound to the end of its last (segmentation's span)."""
        if self.segmenter is None:
            return wave
        a, b = self.segmenter.span(wave)
        return wave[a:b] if b > a else wave

    def interpolate_audio(self, a: np.ndarray, b: np.ndarray, steps: int, labels=None) -> list[np.ndarray]:
        """Morph between two sounds of any length, each trimmed to its sound first: window k of A
        towards window k of B (the shorter sound is padded with silence), each step stitched back
        to the longer length."""
        (wa, pa), (wb, pb), total = self._paired_windows(a, b)
        paths = [self.to_audio(self.interpolate(sa, sb, steps, labels))
                 for sa, sb in zip(self.spectrogram(wa), self.spectrogram(wb))]
        t = np.linspace(0.0, 1.0, steps)
        return [self.stitch(np.stack([path[k] for path in paths]), (1 - t[k]) * pa + t[k] * pb, total)
                for k in range(steps)]

    def morph_audio(self, a: np.ndarray, b: np.ndarray, position: float) -> np.ndarray:
        """One point of ``interpolate_audio`` (the explorer's slider): window k of A towards window k
        of B at ``position`` (0: A, 1: B), stitched back to the longer sound's length."""
        (wa, pa), (wb, pb), total = self._paired_windows(a, b)
        za, zb = self.latents(self.spectrogram(wa)), self.latents(self.spectrogram(wb))
        z = ((1 - position) * za + position * zb).astype(np.float32)
        audio = self.to_audio(self.from_latents(z))
        return self.stitch(audio, (1 - position) * pa + position * pb, total)

    def _paired_windows(self, a: np.ndarray, b: np.ndarray):
        """Both sounds trimmed to their sound, the shorter padded with silence to the longer's
        length, and cut into the same windows: ((windows, peaks) of A, of B, that length)."""
        a, b = self.trimmed(a), self.trimmed(b)
        total = max(len(a), len(b))
        return self.windows(np.pad(a, (0, total - len(a)))), self.windows(np.pad(b, (0, total - len(b)))), total

    def spectrogram(self, waves: np.ndarray) -> np.ndarray:
        if self.codec.scaling == "per_file":
            raise ValueError("per-file scaling has no inverse for new inputs; use features.scaling: global")
        return self.codec.encode(waves)[0]

    def to_audio(self, specs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Griffin-Lim in batches, with progress (it is the slow part of evaluation)."""
        out = np.empty((len(specs), self.length), dtype=np.float32)
        with Progress(len(specs), "Griffin-Lim", unit="file") as bar:
            for start in range(0, len(specs), batch_size):
                chunk = specs[start:start + batch_size]
                out[start:start + len(chunk)] = self.codec.to_audio(chunk, length=self.length)
                bar.update(len(chunk))
        return out

    # ---------------------------------------------------------------- model
    @torch.no_grad()
    def codes(self, specs: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Standardised outer codes of spectrograms."""
        out = []
        for start in range(0, len(specs), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(specs[start:start + batch_size])).to(self.device)
            out.append(self.outer.encode(x).float().flatten(1).cpu().numpy())
        return ((np.concatenate(out) - self.mean) / self.std).astype(np.float32)

    @torch.no_grad()
    def latents(self, specs: np.ndarray, labels=None, batch_size: int = 256, notes=None) -> np.ndarray:
        return self.posterior(specs, labels, batch_size, notes)[0]

    @torch.no_grad()
    def posterior(self, specs: np.ndarray, labels=None, batch_size: int = 256,
                  notes=None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances, in batches."""
        y = self._need_labels(labels, len(specs))
        n = self._need_notes(notes, len(specs))
        codes = self.codes(specs)
        mus, logvars = [], []
        for start in range(0, len(codes), batch_size):
            mu, logvar = self.inner.encode(torch.from_numpy(codes[start:start + batch_size]).to(self.device),
                                           None if y is None else y[start:start + batch_size],
                                           None if n is None else n[start:start + batch_size])
            mus.append(mu.cpu().numpy())
            logvars.append(logvar.cpu().numpy())
        return np.concatenate(mus), np.concatenate(logvars)

    @torch.no_grad()
    def decode_codes(self, codes: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Standardised codes -> spectrograms through the outer decoder."""
        shape = self.outer.code_shape()
        raw = codes * self.std + self.mean
        out = []
        for start in range(0, len(raw), batch_size):
            c = torch.from_numpy(raw[start:start + batch_size].astype(np.float32)).to(self.device)
            out.append(self.outer.decode(c.reshape(len(c), *shape)).float().cpu().numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def from_latents(self, z: np.ndarray, labels=None, batch_size: int = 256, notes=None) -> np.ndarray:
        y = self._need_labels(labels, len(z))
        n = self._need_notes(notes, len(z))
        z = np.asarray(z, dtype=np.float32)
        codes = [self.inner.generate(torch.from_numpy(z[start:start + batch_size]).to(self.device),
                                     None if y is None else y[start:start + batch_size],
                                     None if n is None else n[start:start + batch_size]).float().cpu().numpy()
                 for start in range(0, len(z), batch_size)]
        return self.decode_codes(np.concatenate(codes))

    def reconstruct(self, specs: np.ndarray, labels=None, notes=None) -> np.ndarray:
        """Spectrogram -> outer -> inner (posterior mean) -> outer decoder."""
        return self.from_latents(self.latents(specs, labels, notes=notes), labels, notes=notes)

    @torch.no_grad()
    def reconstruct_outer(self, specs: np.ndarray) -> np.ndarray:
        return self.decode_codes(self.codes(specs))

    @property
    def default_spread(self) -> float:
        """The spread the evaluate stage scored this model's generations at (``--spread``'s default)."""
        if self.trained.evaluate is None:
            raise ValueError("this model records no evaluate.generate_spread: give --spread")
        return generation_spread(self.trained.evaluate.generate_spread, self.trained.prior, self.prior is not None)

    def sample(self, label: str, count: int, seed: int = 0, spread: float = 1.0) -> np.ndarray:
        """Latents for ``count`` new sounds of ``label``.

        With a learned prior (stage ``train_prior``): drawn from the label's mixture, ``spread``
        its temperature (1: the density as fitted). Otherwise, conditional model: N(0, I), decoded
        with the label; unconditional: around the label's latent centre or a training latent of it
        (``inner.class_sampling``), along its scale matrix, ``spread`` times as wide: 1 follows the
        label's own spread, less stays nearer its typical sound.
        """
        rng = np.random.default_rng(seed)
        if self.prior is not None:
            return self.prior.sample(self.label_index(label), count, rng, spread)
        if self.inner.conditional:
            return rng.standard_normal((count, self.inner.latent_dim)).astype(np.float32) * spread
        c = self.label_index(label)
        scale = self.class_scales[c]
        # a diagonal scale (labels, latent) multiplies; a factor (latent, r) maps r normal draws
        eps = rng.standard_normal((count, scale.shape[-1])).astype(np.float32)
        offsets = eps * scale if scale.ndim == 1 else eps @ scale.T
        points = self.class_points[self.class_point_labels == c] if self.class_points is not None else []
        if len(points):
            # kde: a kernel density over the label's training latents, so each new sound starts from
            # a real recording's latent and moves spread * (the label's std) away from it; a label
            # with no training file (a rare category that fell into val/test) keeps its centre
            centres = points[rng.integers(0, len(points), count)]
            return (centres + spread * offsets).astype(np.float32)
        return (self.class_means[c] + spread * offsets).astype(np.float32)

    def generate(self, label: str, count: int, seed: int = 0, spread: float = 1.0,
                 pitch: int | None = None, velocity: int | None = None) -> np.ndarray:
        """``count`` new sounds of ``label``; a note-conditioned model plays them at ``pitch`` (MIDI;
        default ``default_pitch``) and ``velocity`` (default 100), which others refuse."""
        z = self.sample(label, count, seed, spread)
        notes = None
        if self.inner.note_pitches is not None or pitch is not None or velocity is not None:
            if self.inner.note_pitches is None:
                self._need_notes([[pitch or 0, velocity or DEFAULT_VELOCITY]], 1)  # refuses, naming the cause
            key = self.default_pitch() if pitch is None else int(pitch)
            notes = [[key, DEFAULT_VELOCITY if velocity is None else int(velocity)]] * count
        return self.from_latents(z, [label] * count if self.inner.conditional else None, notes=notes)

    def interpolate(self, spec_a: np.ndarray, spec_b: np.ndarray, steps: int, labels=None,
                    notes=None) -> np.ndarray:
        """A path between two sounds' latents, decoded; a note-conditioned model takes each sound's
        (pitch, velocity) in ``notes`` and plays the whole path at A's note: the timbre moves, the key stays."""
        za, zb = self.latents(np.stack([spec_a, spec_b]), labels, notes=notes)
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        path = (1 - t) * za + t * zb
        path_labels = [labels[0] if ti < 0.5 else labels[1] for ti in t[:, 0]] if labels else None
        path_notes = [list(notes[0])] * steps if notes is not None else None
        return self.from_latents(path, path_labels, notes=path_notes)

    @property
    def probe_units(self) -> int:
        """What ``probe`` sweeps: a global latent's dimensions, a sequence latent's channels."""
        return int(self.inner.latent_shape[0])

    def probe(self, dim: int, steps: int, extent: float = 3.0, label: str | None = None) -> np.ndarray:
        """Sweep one latent unit from -extent to +extent, the others at zero (the seed's probes): a
        global latent's dimension, or a sequence latent's channel at every frame at once."""
        if not 0 <= dim < self.probe_units:
            raise ValueError(f"dimension {dim} out of range 0..{self.probe_units - 1}")
        z = np.zeros((steps, *self.inner.latent_shape), dtype=np.float32)
        z[:, dim] = np.linspace(-extent, extent, steps).reshape(-1, *([1] * (z.ndim - 2)))
        # a note-conditioned model plays the sweep at its default key
        notes = [[self.default_pitch(), DEFAULT_VELOCITY]] * steps if self.pitch_range is not None else None
        return self.from_latents(z.reshape(steps, -1), [label] * steps if self.inner.conditional else None,
                                 notes=notes)

    def vary_specs(self, wave: np.ndarray, count: int, noise: float, seed: int = 0,
                   label: str | None = None) -> tuple[list[np.ndarray], "WindowPlan"]:
        """Variations around one recording: its latent (posterior mean) plus ``noise`` times standard
        normal noise, decoded (the sample generator's "variations"); ``noise`` 0 is the plain
        reconstruction. Every window of a long sound gets the same draw, so a variation stays one
        sound; the same seed gives the same variations. Returns each variation's window
        spectrograms and the recording's window plan."""
        if noise < 0:
            raise ValueError(f"--noise must be >= 0, not {noise}")
        plan = self.plan(wave)
        labels = [label] * len(plan.chunks) if label is not None else None
        z = self.latents(self.spectrogram(plan.chunks), labels)
        eps = np.random.default_rng(seed).standard_normal((count, self.inner.latent_dim)).astype(np.float32)
        return [self.from_latents(z + noise * eps[k], labels) for k in range(count)], plan

    def vary(self, wave: np.ndarray, count: int, noise: float, seed: int = 0,
             label: str | None = None) -> list[np.ndarray]:
        """``vary_specs`` as audio, each variation assembled back to the recording's length."""
        specs, plan = self.vary_specs(wave, count, noise, seed, label)
        return [self.assemble(plan, self.to_audio(s)) for s in specs]


@dataclass
class WindowPlan:
    """How a recording was cut: its sound regions, their windows (peak-normalised) and peaks, how
    many windows each region has, and the recording's length."""
    regions: list[tuple[int, int]]
    chunks: np.ndarray
    peaks: np.ndarray
    counts: list[int]
    total: int
