"""The evaluate stage's measures, computed on the test split and returned as tables: ``make_outputs``
runs the model (outer, full path, generations, audio of each), and ``outer_metrics``,
``inner_metrics``, ``audio_metrics``, ``quality_metrics``, ``classifier_metrics`` and
``robustness_metrics`` each score one group of ``reports/metrics.json``.

Every model number sits next to its references: ``real`` (the test audio in the model's input
form) and ``ceiling`` (Griffin-Lim of the true magnitude, the best any spectrogram model here can
sound), then ``outer`` (outer autoencoder only), ``full`` (outer + inner VAE) and ``generated``.
The ``quality`` group holds the field's standard measures (PESQ, STOI, DNSMOS for speech; a
multi-resolution STFT distance for other sounds); the primary classifier is trained on clean
real training audio with no augmentation, so it does not forgive blur.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiovae.config.schema import (
    Evaluate,
    NoveltyCfg,
    Params,
    PitchCfg,
    QualityCfg,
    UncertaintyCfg,
)
from audiovae.data.artifacts import (
    note_array,
    split_rows,
    standardised,
)
from audiovae.data.spectrogram import log_spectral_distance, spectral_convergence
from audiovae.evaluation import novelty, pitch, quality, uncertainty
from audiovae.evaluation.classifier import (
    AudioClassifier,
    CheckClassifier,
    CleanClassifier,
    frechet_distance,
)
from audiovae.inference.model import AudioVAE
from audiovae.models.build import build_vae
from audiovae.models.inner import ACTIVE_KL_THRESHOLD, vae_loss
from audiovae.training.loop import batches_of

log = logging.getLogger("audiovae.evaluate")
SPEECH_DATASETS = {"fsdd", "audiomnist"}  # PESQ, STOI and DNSMOS are defined for speech


def rmse_db(model: AudioVAE, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((model.codec.to_db(a) - model.codec.to_db(b)) ** 2)))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, dtype=np.float64) - b) ** 2))


def perturb(model: AudioVAE, specs: np.ndarray, max_db: float, seed: int) -> np.ndarray:
    """Add uniform noise of up to ±``max_db`` dB to every bin, in the dB domain, then rescale."""
    codec = model.codec
    rng = np.random.default_rng(seed)
    db = codec.to_db(specs) + rng.uniform(-max_db, max_db, specs.shape)
    return ((np.clip(db, codec.db_floor, codec.db_ceiling) - codec.db_floor)
            / (codec.db_ceiling - codec.db_floor)).astype(np.float32)


def encode_once_speedup(params: Params, model: AudioVAE, specs: np.ndarray,
                        encodings: tuple[np.ndarray, dict, pd.DataFrame, dict]) -> dict:
    """Time one inner-VAE training epoch on the cached codes (``encodings``: the encode stage's
    codes, statistics, index and manifest), then the same epoch with the frozen outer encoder run
    on every batch (what training end to end on frozen features would cost)."""
    cfg = params.inner
    codes, stats, enc_index, manifest = encodings
    train = split_rows(enc_index, "train")
    labels = {label: i for i, label in enumerate(model.labels)}
    y_all = torch.tensor(enc_index["label"].astype(str).map(labels).to_numpy())
    batch_size = cfg.batch_size
    vae = build_vae(cfg, codes.shape[1], len(model.labels), manifest["code_shape"]).to(model.device)
    reconstruction = cfg.reconstruction
    weight, reduction = cfg.reconstruction_weight, cfg.reconstruction_reduction

    chunks = list(batches_of(len(train), batch_size, True, np.random.default_rng(0)))
    limit = params.evaluate.speed_max_batches or len(chunks)

    def epoch(get_x, n_batches: int = limit) -> float:
        """Seconds per epoch, timed over the first ``n_batches`` batches and scaled to the epoch."""
        net = copy.deepcopy(vae).train()
        opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr)
        started = time.perf_counter()
        for chunk in chunks[:n_batches]:
            rows = np.sort(train[chunk])
            x = get_x(rows)
            loss, _, _ = vae_loss(net, x, y_all[rows].to(model.device), cfg.beta,
                                  reconstruction, weight, reduction)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.perf_counter() - started) * len(chunks) / min(n_batches, len(chunks))

    cached = torch.from_numpy(standardised(codes, stats, np.arange(len(codes))))
    mean, std = torch.from_numpy(stats["mean"]), torch.from_numpy(stats["std"])

    def through_outer(rows):
        with torch.no_grad():
            spec = torch.from_numpy(np.array(specs[rows])).to(model.device)
            code = model.outer.encode(spec).float().flatten(1).cpu()
        return ((code - mean) / std).to(model.device)

    epoch(lambda rows: cached[rows].to(model.device), n_batches=2)  # warm-up, not counted
    t_cached = epoch(lambda rows: cached[rows].to(model.device))
    t_outer = epoch(through_outer)
    return {"inner_epoch_cached_seconds": t_cached, "inner_epoch_through_outer_seconds": t_outer,
            "encode_once_speedup": t_outer / max(t_cached, 1e-9)}


@dataclass
class TestOutputs:
    """What the model made of the test split, once, for every metric group and the media."""
    stems: list[str]
    y_test: np.ndarray
    x_test: np.ndarray          # spectrograms, scaled
    outer: np.ndarray           # outer-only reconstructions
    full: np.ndarray            # outer + inner VAE reconstructions
    wav_test: np.ndarray        # real audio, the model's input form
    audio_ceiling: np.ndarray   # Griffin-Lim of the true magnitude
    audio_outer: np.ndarray
    audio_full: np.ndarray
    gen_specs: np.ndarray
    gen_labels: np.ndarray
    audio_gen: np.ndarray
    latent: np.ndarray          # posterior means of the test clips
    kl_dims: np.ndarray
    gen_latents: np.ndarray     # the latents the generations were decoded from
    spread: float               # and the spread they were sampled at
    test_notes: np.ndarray | None = None  # a note-conditioned model: the test clips' (pitch, velocity)
    gen_notes: np.ndarray | None = None   # and the notes the generations were asked for
    f0: dict[str, np.ndarray] = field(default_factory=dict)  # pYIN tracks of each row, once (it is slow)

    def f0_of(self, row: str, sample_rate: int, cfg: PitchCfg) -> np.ndarray:
        """pYIN's f0 tracks of one row's audio (real, ceiling, outer, full, generated), computed once
        for the pitch and notes groups both."""
        if row not in self.f0:
            audio = {"real": self.wav_test, "ceiling": self.audio_ceiling, "outer": self.audio_outer,
                     "full": self.audio_full, "generated": self.audio_gen}[row]
            self.f0[row] = pitch.f0_tracks(audio, sample_rate, cfg)
        return self.f0[row]


def make_outputs(model: AudioVAE, cfg: Evaluate, specs, index: pd.DataFrame, waves, seed: int,
                 spread: float) -> TestOutputs:
    test = split_rows(index, "test")
    x_test = np.asarray(specs[test])
    y_test = index["label"].astype(str).to_numpy()[test]
    labels = list(y_test) if model.inner.conditional else None
    notes = note_array(index) if model.pitch_range is not None else None
    test_notes = notes[test] if notes is not None else None
    outer = model.reconstruct_outer(x_test)
    full = model.reconstruct(x_test, labels, notes=test_notes)
    latent, logvar = model.posterior(x_test, labels, notes=test_notes)
    test_ids = model.label_ids(list(y_test))
    assert test_ids is not None
    with torch.no_grad():
        kl_dims = model.inner.kl_dims(torch.from_numpy(latent), torch.from_numpy(logvar),
                                      test_ids.cpu()).mean(0).numpy()
    per_class = cfg.generated_per_class
    gen_latents = np.concatenate([model.sample(label, per_class, seed=seed + i, spread=spread)
                                  for i, label in enumerate(model.labels)])
    gen_labels = np.repeat(np.array(model.labels), per_class)
    gen_notes = None
    if notes is not None:
        gen_notes = np.tile(requested_notes(model, notes[split_rows(index, "train"), 1], per_class),
                            (len(model.labels), 1))
    gen_specs = model.from_latents(gen_latents, list(gen_labels) if model.inner.conditional else None, notes=gen_notes)
    return TestOutputs(
        stems=[Path(p).stem for p in index["path"].to_numpy()[test]], y_test=y_test, x_test=x_test,
        outer=outer, full=full, wav_test=np.asarray(waves[index["row"].to_numpy()[test]]),
        audio_ceiling=model.to_audio(x_test), audio_outer=model.to_audio(outer), audio_full=model.to_audio(full),
        gen_specs=gen_specs, gen_labels=gen_labels, audio_gen=model.to_audio(gen_specs), latent=latent,
        kl_dims=kl_dims, gen_latents=gen_latents, spread=spread, test_notes=test_notes, gen_notes=gen_notes)


def requested_notes(model: AudioVAE, train_velocities: np.ndarray, count: int) -> np.ndarray:
    """The notes a label's ``count`` generations are asked for: pitches spread evenly over the trained
    range (ends included), velocities taking the trained ones in turn; the same for every label."""
    low, high = model.pitch_range or (0, 0)
    pitches = np.rint(np.linspace(low, high, count)).astype(np.int64)
    velocities = np.sort(np.unique(train_velocities))
    return np.stack([pitches, velocities[np.arange(count) % len(velocities)]], axis=1)


def outer_metrics(model: AudioVAE, out: TestOutputs, x_train: np.ndarray, info: dict) -> dict:
    outer_train_mse = mse(model.reconstruct_outer(x_train), x_train)
    test_mse = mse(out.outer, out.x_test)
    return {"test_rmse_db": rmse_db(model, out.outer, out.x_test), "test_stdev_pct": 100 * np.sqrt(test_mse),
            # identity outer: no error on either side, so no over-fitting either
            "overfit_ratio": 1.0 if test_mse == outer_train_mse == 0 else test_mse / max(outer_train_mse, 1e-12),
            "compression": info["compression"], "params": info["params"], "train_seconds": info["train_seconds"]}


def inner_metrics(model: AudioVAE, out: TestOutputs, info: dict) -> dict:
    """The rate (``kl``: nats per clip on the test split) next to the distortion; active latent
    dimensions and, for a sequence latent, active channels (a channel's KL summed over frames)."""
    unit_kl = model.inner.channel_kl(torch.from_numpy(out.kl_dims[None])).numpy()[0]
    return {"test_rmse_db": rmse_db(model, out.full, out.x_test),
            "test_stdev_pct": 100 * np.sqrt(mse(out.full, out.x_test)), "kl": float(out.kl_dims.sum()),
            "active_dims": int(np.sum(out.kl_dims > ACTIVE_KL_THRESHOLD)),
            "latent_dims": int(model.inner.latent_dim),
            "active_channels": int(np.sum(unit_kl > ACTIVE_KL_THRESHOLD)), "latent_channels": len(unit_kl),
            "params": info["params"], "train_seconds": info["train_seconds"]}


def audio_metrics(model: AudioVAE, out: TestOutputs) -> dict:
    """Log-spectral distance and spectral convergence to the real waveform."""
    n_fft, hop = model.codec.n_fft, model.codec.hop_length
    lsd = lambda audio: float(log_spectral_distance(out.wav_test, audio, n_fft, hop).mean())  # noqa: E731
    peak = lambda a: a / np.maximum(np.abs(a).max(-1, keepdims=True), 1e-9)  # noqa: E731
    return {"test_lsd_db": lsd(out.audio_full), "outer_lsd_db": lsd(out.audio_outer),
            "oracle_lsd_db": lsd(out.audio_ceiling),
            "test_spectral_convergence": float(spectral_convergence(peak(out.wav_test), peak(out.audio_full),
                                                                    n_fft, hop).mean())}


def is_speech(params: Params, index: pd.DataFrame) -> bool:
    setting = params.evaluate.quality.speech
    if setting == "auto":
        return set(index["dataset"].astype(str)) <= SPEECH_DATASETS
    return bool(setting)


def measures_pitch(cfg: PitchCfg, speech: bool) -> bool:
    """``pitch.enabled``: auto measures pitch for music, not speech."""
    return not speech if cfg.enabled == "auto" else bool(cfg.enabled)


def quality_metrics(out: TestOutputs, sample_rate: int, cfg: QualityCfg, speech: bool, seed: int) -> dict:
    """The standard measures, each row next to its references (real audio and the Griffin-Lim ceiling)."""
    rows = {"ceiling": out.audio_ceiling, "outer": out.audio_outer, "full": out.audio_full}
    metrics: dict[str, float] = {}
    if speech:
        modes = ["nb"] + (["wb"] if cfg.pesq_wideband and sample_rate >= quality.WB_RATE else [])
        for name, audio in rows.items():
            for mode in modes:
                metrics[f"{name}_pesq_{mode}"] = quality.pesq_mean(out.wav_test, audio, sample_rate, mode)
            metrics[f"{name}_stoi"] = quality.stoi_score(out.wav_test, audio, sample_rate)
        # DNSMOS needs no reference: the real audio is a row of its own, and so are the generations
        pick = quality.subsample(len(out.wav_test), cfg.dnsmos_clips, seed)
        gen_pick = quality.subsample(len(out.audio_gen), cfg.dnsmos_clips, seed)
        for name, audio in {"real": out.wav_test[pick], **{k: v[pick] for k, v in rows.items()},
                            "generated": out.audio_gen[gen_pick]}.items():
            for key, value in quality.dnsmos(audio, sample_rate).items():
                metrics[f"{name}_dnsmos_{key}"] = value
    else:
        for name, audio in rows.items():
            metrics[f"{name}_mrstft"] = quality.mrstft_distance(out.wav_test, audio, sample_rate)
    return metrics


def clean_judge(wav_train: np.ndarray, y_train: np.ndarray, sample_rate: int, cfg: Evaluate, seed: int) -> CleanClassifier:
    """The primary judge, fitted on clean real training audio."""
    return CleanClassifier(sample_rate, cfg.clean_classifier, seed).fit(wav_train, y_train)


def classifier_metrics(out: TestOutputs, wav_train: np.ndarray, y_train: np.ndarray, sample_rate: int,
                       cfg: Evaluate, seed: int, clean: CleanClassifier | None = None,
                       train_embedding: np.ndarray | None = None) -> dict:
    """The primary, clean-trained classifier on every row (``clean``: one already fitted by
    ``clean_judge``); today's two as secondary opinions; Fréchet distances with their scale (real
    train vs real test in the same embedding; ``train_embedding``: the judge's embedding of
    ``wav_train``, when already made)."""
    rows = {"real": out.wav_test, "ceiling": out.audio_ceiling, "outer": out.audio_outer, "full": out.audio_full}
    clean = clean or clean_judge(wav_train, y_train, sample_rate, cfg, seed)
    metrics = {f"clean_{name}_accuracy": clean.accuracy(audio, out.y_test) for name, audio in rows.items()}
    metrics["clean_generated_accuracy"] = clean.accuracy(out.audio_gen, out.gen_labels)
    metrics.update(balanced_metrics(clean, {**{name: (audio, out.y_test) for name, audio in rows.items()},
                                            "generated": (out.audio_gen, out.gen_labels)}, cfg.uncertainty, seed))
    embed_test = clean.embed(out.wav_test)
    metrics.update({"clean_generated_frechet": frechet_distance(clean.embed(out.audio_gen), embed_test),
                    "clean_full_frechet": frechet_distance(clean.embed(out.audio_full), embed_test),
                    "clean_real_train_test_frechet": frechet_distance(
                        clean.embed(wav_train) if train_embedding is None else train_embedding, embed_test)})
    classifier = AudioClassifier(sample_rate, cfg.classifier, seed).fit(wav_train, y_train)
    embed_test = classifier.embed(out.wav_test)
    metrics.update({
        "real_test_accuracy": classifier.accuracy(out.wav_test, out.y_test),
        "recon_accuracy": classifier.accuracy(out.audio_full, out.y_test),
        "outer_recon_accuracy": classifier.accuracy(out.audio_outer, out.y_test),
        "oracle_accuracy": classifier.accuracy(out.audio_ceiling, out.y_test),
        "generated_accuracy": classifier.accuracy(out.audio_gen, out.gen_labels),
        "generated_frechet": frechet_distance(classifier.embed(out.audio_gen), embed_test),
        "recon_frechet": frechet_distance(classifier.embed(out.audio_full), embed_test),
        "real_train_test_frechet": frechet_distance(classifier.embed(wav_train), embed_test)})
    # a second opinion of another family: a gap to the first means the sounds fool one classifier only
    check = CheckClassifier(sample_rate, cfg.check_classifier, seed).fit(wav_train, y_train)
    metrics.update({"check_real_test_accuracy": check.accuracy(out.wav_test, out.y_test),
                    "check_recon_accuracy": check.accuracy(out.audio_full, out.y_test),
                    "check_generated_accuracy": check.accuracy(out.audio_gen, out.gen_labels)})
    return metrics


def balanced_metrics(clean: CleanClassifier, rows: dict[str, tuple[np.ndarray, np.ndarray]], cfg: UncertaintyCfg,
                     seed: int) -> dict:
    """The clean judge's balanced accuracy on every row, with its bootstrap interval over the clips
    (``clean_<row>_balanced_accuracy``, ``_low``, ``_high``): on a test set of a few dozen one-shots
    one clip moves the point by several points, so the interval is the figure to compare."""
    metrics = {}
    for name, (audio, labels) in rows.items():
        predicted = clean.predict(audio)
        low, high = uncertainty.bootstrap_interval(labels, predicted, cfg.resamples, cfg.level, seed)
        metrics.update({f"clean_{name}_balanced_accuracy": uncertainty.balanced_accuracy(labels, predicted),
                        f"clean_{name}_balanced_accuracy_low": low, f"clean_{name}_balanced_accuracy_high": high})
    return metrics


def pitch_metrics(out: TestOutputs, sample_rate: int, cfg: PitchCfg) -> dict:
    """Per row (ceiling, outer, full), over the pitched test clips: the share whose output pYIN still
    tracks (a voiced frame in common with the real clip; a blurred note may have none), the median
    error in cents over those, and the share within 50 cents (a quarter tone: the same note; a clip
    not tracked counts as a miss)."""
    reference = out.f0_of("real", sample_rate, cfg)
    pitched = pitch.pitched(reference, cfg.min_voiced)
    metrics: dict[str, float] = {"pitched_clips": int(pitched.sum()), "clips": len(pitched)}
    if not pitched.any():
        return metrics
    for name in ("ceiling", "outer", "full"):
        cents = pitch.cents_error(reference[pitched], out.f0_of(name, sample_rate, cfg)[pitched])
        metrics[f"{name}_tracked"] = float(np.isfinite(cents).mean())
        metrics[f"{name}_cents_median"] = float(np.nanmedian(cents)) if np.isfinite(cents).any() else float("nan")
        metrics[f"{name}_within_50_cents"] = float(np.mean(cents < 50))  # no voiced frame in common counts as a miss
    return metrics


def generation_metrics(out: TestOutputs, train_latents: np.ndarray, train_latent_labels: np.ndarray,
                       clean: CleanClassifier, train_audio: np.ndarray, y_train: np.ndarray, cfg: NoveltyCfg,
                       seed: int) -> dict:
    """How new the generations are and how much of the real test set they cover, each next to the
    value for real clips that the model never made (``novelty``): in the model's latent space
    (the generations' latents against the training clips' posterior means) and in the clean
    judge's audio embedding (what a listener's features see; ``train_audio``: its embedding of the
    real training clips)."""
    gen_audio = clean.embed(out.audio_gen)
    test_audio = clean.embed(out.wav_test)
    # a reference set of real clips the size of the generations: training clips, drawn once
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train_audio), size=min(len(gen_audio), len(train_audio)), replace=False)
    kid, kid_se = novelty.kid(test_audio, gen_audio, cfg.kid_blocks, seed)
    kid_real, kid_real_se = novelty.kid(test_audio, train_audio[pick], cfg.kid_blocks, seed)
    # the one-shot generators' convention: generated against the training audio, real test beside it
    kid_train, kid_train_se = novelty.kid(train_audio, gen_audio, cfg.kid_blocks, seed)
    kid_test_train, kid_test_train_se = novelty.kid(train_audio, test_audio, cfg.kid_blocks, seed)
    ndb, ndb_k = novelty.ndb(train_audio, train_audio, gen_audio, cfg.ndb_bins, seed)
    _, ndb_k_real = novelty.ndb(train_audio, train_audio, test_audio, cfg.ndb_bins, seed)
    k = min(cfg.coverage_k, len(test_audio) - 1)
    return {
        "spread": out.spread,
        "latent_novelty": novelty.novelty_ratio(out.gen_latents, out.gen_labels, train_latents, train_latent_labels,
                                                out.latent, out.y_test),
        "audio_novelty": novelty.novelty_ratio(gen_audio, out.gen_labels, train_audio, y_train, test_audio, out.y_test),
        "latent_coverage": novelty.coverage(out.latent, out.gen_latents, k),
        "audio_coverage": novelty.coverage(test_audio, gen_audio, k),
        "audio_coverage_real_train": novelty.coverage(test_audio, train_audio[pick], k),
        "kid": kid, "kid_se": kid_se, "kid_real_train": kid_real, "kid_real_train_se": kid_real_se,
        "kid_vs_train": kid_train, "kid_vs_train_se": kid_train_se,
        "kid_real_test_vs_train": kid_test_train, "kid_real_test_vs_train_se": kid_test_train_se,
        "ndb": ndb, "ndb_k": ndb_k, "ndb_k_real_test": ndb_k_real}


OCTAVES_APART = 24  # semitones between the two keys one generated sound is played at


def octave_metrics(model: AudioVAE, out: TestOutputs, clean: CleanClassifier) -> dict:
    """Timbre kept across the keyboard: each generation's latent played again two octaves apart
    (``OCTAVES_APART`` semitones, centred in the trained range), both judged by the clean classifier;
    ``family_kept_two_octaves`` is the share classified as its label at both keys. A model trained
    on a narrower range has no such pair: empty."""
    if model.pitch_range is None or out.gen_notes is None:
        return {}
    low, high = model.pitch_range
    if high - low < OCTAVES_APART:
        return {}
    bottom = (low + high - OCTAVES_APART) // 2
    keys = {"low": bottom, "high": bottom + OCTAVES_APART}
    labels = list(out.gen_labels) if model.inner.conditional else None
    correct = {}
    for name, key in keys.items():
        notes = np.stack([np.full(len(out.gen_latents), key), out.gen_notes[:, 1]], axis=1)
        audio = model.to_audio(model.from_latents(out.gen_latents, labels, notes=notes))
        correct[name] = clean.predict(audio) == out.gen_labels.astype(str)
    return {"octave_low_pitch": keys["low"], "octave_high_pitch": keys["high"],
            "octave_low_accuracy": float(correct["low"].mean()), "octave_high_accuracy": float(correct["high"].mean()),
            "family_kept_two_octaves": float((correct["low"] & correct["high"]).mean())}


def robustness_metrics(model: AudioVAE, out: TestOutputs, cfg: Evaluate, seed: int) -> dict:
    """How far the output moves when the input moves by up to ±N dB."""
    labels = list(out.y_test) if model.inner.conditional else None
    noisy = perturb(model, out.x_test, cfg.perturb_db, seed)
    return {"perturb_10db_rmse_db": rmse_db(model, model.reconstruct(noisy, labels, notes=out.test_notes), out.full)}


def note_metrics(out: TestOutputs, sample_rate: int, cfg: PitchCfg) -> dict:
    """For a model that takes pitch (rendered notes): is each note at the pitch it was rendered at,
    or asked for? Per row, the share within 50 cents of the note (GANSynth's pitch accuracy, with
    pYIN for its classifier: a quarter tone, the same note) and within 100 (a semitone), and the
    median error in cents; a clip pYIN hears no pitch in counts as a miss. Rows: the real test notes
    (the tracker's own ceiling: some timbres defeat it), Griffin-Lim of their true magnitude, the
    outer and full reconstructions (instruments never trained on), and the generations at the
    requested pitches. ``generated_pitch_entropy``: the entropy (bits) of the semitones heard in
    generations asked for one pitch, averaged over pitches (0: always the one asked)."""
    if out.test_notes is None or out.gen_notes is None:
        return {}
    metrics: dict[str, float] = {"notes": len(out.test_notes), "generated": len(out.gen_notes)}
    for name in ("real", "ceiling", "outer", "full", "generated"):
        notes = out.gen_notes if name == "generated" else out.test_notes
        f0 = out.f0_of(name, sample_rate, cfg)
        cents = pitch.cents_from_note(f0, notes[:, 0])
        metrics[f"{name}_within_50_cents"] = float(np.mean(cents < 50))
        metrics[f"{name}_within_100_cents"] = float(np.mean(cents < 100))
        metrics[f"{name}_cents_median"] = float(np.nanmedian(cents)) if np.isfinite(cents).any() else float("nan")
        if name == "generated":
            metrics["generated_pitch_entropy"] = pitch.heard_entropy(f0, notes[:, 0])
    return metrics
