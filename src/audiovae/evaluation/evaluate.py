"""Stage ``evaluate``: the numbers a user can trust, on the test split, plus plots and audio.

Writes ``reports/metrics.json`` (DVC metrics; key groups outer, inner, audio, quality, classifier,
robustness, speed), figures under ``reports/plots/`` and WAV files under ``reports/audio/``.

Every model number sits next to its references: ``real`` (the test audio in the model's input
form) and ``ceiling`` (Griffin-Lim of the true magnitude, the best any spectrogram model here can
sound), then ``outer`` (outer autoencoder only), ``full`` (outer + inner VAE) and ``generated``.
The ``quality`` group holds the field's standard measures (PESQ, STOI, DNSMOS for speech; a
multi-resolution STFT distance for other sounds); the primary classifier is trained on clean
real training audio with no augmentation, so it does not forgive blur.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiovae import layout
from audiovae.atomic import write_json
from audiovae.config.params import project_root
from audiovae.config.schema import Evaluate, Params, QualityCfg
from audiovae.data.artifacts import (
    load_encodings,
    open_features,
    real_rows,
    split_rows,
    standardised,
)
from audiovae.data.audio import write_wav
from audiovae.data.spectrogram import log_spectral_distance, spectral_convergence
from audiovae.evaluation import plots, quality, report
from audiovae.evaluation.classifier import (
    AudioClassifier,
    CheckClassifier,
    CleanClassifier,
    frechet_distance,
)
from audiovae.inference.model import AudioVAE
from audiovae.models.build import build_vae
from audiovae.models.inner import ACTIVE_KL_THRESHOLD, vae_loss
from audiovae.tracking import runs
from audiovae.training.loop import batches_of, pick_device, seed_everything

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


def encode_once_speedup(root: Path, params: Params, model: AudioVAE, specs: np.ndarray, index: pd.DataFrame) -> dict:
    """Time one inner-VAE training epoch on the cached codes, then the same epoch with the frozen
    outer encoder run on every batch (what training end to end on frozen features would cost)."""
    cfg = params.inner
    codes, stats, enc_index, manifest = load_encodings(root)
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
    latent: np.ndarray
    kl_dims: np.ndarray


def make_outputs(model: AudioVAE, cfg: Evaluate, specs, index: pd.DataFrame, waves, seed: int) -> TestOutputs:
    test = split_rows(index, "test")
    x_test = np.asarray(specs[test])
    y_test = index["label"].astype(str).to_numpy()[test]
    labels = list(y_test) if model.inner.conditional else None
    outer = model.reconstruct_outer(x_test)
    full = model.reconstruct(x_test, labels)
    latent, logvar = model.posterior(x_test, labels)
    test_ids = model.label_ids(list(y_test))
    assert test_ids is not None
    with torch.no_grad():
        kl_dims = model.inner.kl_dims(torch.from_numpy(latent), torch.from_numpy(logvar),
                                      test_ids.cpu()).mean(0).numpy()
    per_class, spread = cfg.generated_per_class, cfg.generate_spread
    gen_specs = np.concatenate([model.generate(label, per_class, seed=seed + i, spread=spread)
                                for i, label in enumerate(model.labels)])
    gen_labels = np.repeat(np.array(model.labels), per_class)
    return TestOutputs(
        stems=[Path(p).stem for p in index["path"].to_numpy()[test]], y_test=y_test, x_test=x_test,
        outer=outer, full=full, wav_test=np.asarray(waves[index["row"].to_numpy()[test]]),
        audio_ceiling=model.to_audio(x_test), audio_outer=model.to_audio(outer), audio_full=model.to_audio(full),
        gen_specs=gen_specs, gen_labels=gen_labels, audio_gen=model.to_audio(gen_specs), latent=latent,
        kl_dims=kl_dims)


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


def classifier_metrics(out: TestOutputs, wav_train: np.ndarray, y_train: np.ndarray, sample_rate: int,
                       cfg: Evaluate, seed: int) -> dict:
    """The primary, clean-trained classifier on every row; today's two as secondary opinions;
    Fréchet distances with their scale (real train vs real test in the same embedding)."""
    rows = {"real": out.wav_test, "ceiling": out.audio_ceiling, "outer": out.audio_outer, "full": out.audio_full}
    clean = CleanClassifier(sample_rate, cfg.clean_classifier, seed).fit(wav_train, y_train)
    metrics = {f"clean_{name}_accuracy": clean.accuracy(audio, out.y_test) for name, audio in rows.items()}
    metrics["clean_generated_accuracy"] = clean.accuracy(out.audio_gen, out.gen_labels)
    embed_test = clean.embed(out.wav_test)
    metrics.update({"clean_generated_frechet": frechet_distance(clean.embed(out.audio_gen), embed_test),
                    "clean_full_frechet": frechet_distance(clean.embed(out.audio_full), embed_test),
                    "clean_real_train_test_frechet": frechet_distance(clean.embed(wav_train), embed_test)})
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


def robustness_metrics(model: AudioVAE, out: TestOutputs, cfg: Evaluate, seed: int) -> dict:
    """How far the output moves when the input moves by up to ±N dB."""
    labels = list(out.y_test) if model.inner.conditional else None
    noisy = perturb(model, out.x_test, cfg.perturb_db, seed)
    return {"perturb_10db_rmse_db": rmse_db(model, model.reconstruct(noisy, labels), out.full)}


def run(params: Params, root: Path | None = None) -> dict:
    root = root or project_root()
    cfg = params.evaluate
    seed = params.seed
    seed_everything(seed)
    device = pick_device(params.outer.device)
    model = AudioVAE.from_project(root, device)
    specs, index, codec = open_features(root / layout.FEATURES)
    waves = np.load(root / layout.FILTERED_AUDIO, mmap_mode="r")
    train = real_rows(index, "train")  # real recordings only: mixes have no audio row and are not real
    x_train = np.asarray(specs[train])
    y_train = index["label"].astype(str).to_numpy()[train]
    wav_train = np.asarray(waves[index["row"].to_numpy()[train]])
    outer_info = json.loads((root / layout.OUTER_SUMMARY).read_text())
    inner_info = json.loads((root / layout.INNER_SUMMARY).read_text())
    t0 = time.monotonic()
    out = make_outputs(model, cfg, specs, index, waves, seed)
    speech = is_speech(params, index)
    metrics: dict[str, dict] = {
        "outer": outer_metrics(model, out, x_train, outer_info),
        "inner": inner_metrics(model, out, inner_info),
        "audio": audio_metrics(model, out),
        "quality": quality_metrics(out, codec.sample_rate, cfg.quality, speech, seed),
        "classifier": classifier_metrics(out, wav_train, y_train, codec.sample_rate, cfg, seed),
        "robustness": robustness_metrics(model, out, cfg, seed),
        # measured, not a goal: on small data the outer encoder is cheap and the ratio says little
        "speed": encode_once_speedup(root, params, model, specs, index)}
    metrics["speed"]["evaluate_seconds"] = time.monotonic() - t0
    write_json(root / layout.METRICS, metrics)
    log.info("metrics: %s", json.dumps(metrics, indent=1, default=float))

    write_media(root, cfg, model, out, index, seed)
    page = report.build(root, params)
    with runs.stage_run("evaluate", params, root, section_keys=("evaluate",)) as tracker:
        flat = {f"{group}.{key}": float(value) for group, values in metrics.items() for key, value in values.items()}
        tracker.log_metrics(flat)
        tracker.log_pipeline_metrics(flat)
        tracker.log_artifact(root / layout.METRICS)
        # the page and its assets keep their relative layout, so it opens in the MLflow UI
        tracker.log_artifact(page, artifact_path="report")
        tracker.log_artifacts(root / layout.PLOTS, artifact_path="report/plots")
        tracker.log_artifacts(root / layout.AUDIO, artifact_path="report/audio")
    return metrics


def write_media(root: Path, cfg: Evaluate, model: AudioVAE, out: TestOutputs, index: pd.DataFrame, seed: int) -> None:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    plot_dir, audio_dir = root / layout.PLOTS, root / layout.AUDIO
    sr = model.codec.sample_rate
    histories = {}
    for name in ("outer", "inner"):
        path = root / {"outer": layout.OUTER_HISTORY, "inner": layout.INNER_HISTORY}[name]
        histories[name] = pd.read_csv(path) if path.exists() else pd.DataFrame()
    plots.loss_curves(histories, plot_dir / "loss_curves.png")

    # a few test files per class: spectrograms and WAVs of original, ceiling, outer and full reconstruction
    picks = []
    for label in model.labels:
        picks += list(np.flatnonzero(out.y_test == label)[: cfg.examples_per_class])
    stems = [out.stems[i] for i in picks]
    plots.spectrogram_grid({"original": out.x_test[picks], "outer": out.outer[picks], "full model": out.full[picks]},
                           stems, plot_dir / "reconstructions.png")
    for i, stem in zip(picks, stems):
        write_wav(audio_dir / f"{stem}_original.wav", out.wav_test[i], sr, peak=0.9)
        write_wav(audio_dir / f"{stem}_oracle.wav", out.audio_ceiling[i], sr)
        write_wav(audio_dir / f"{stem}_outer.wav", out.audio_outer[i], sr)
        write_wav(audio_dir / f"{stem}_reconstruction.wav", out.audio_full[i], sr)
        plots.spectrogram_grid({stem: np.stack([out.x_test[i], out.outer[i], out.full[i]])},
                               ["original", "outer", "full model"], plot_dir / "examples" / f"{stem}.png")
    first = [int(np.flatnonzero(out.gen_labels == label)[0]) for label in model.labels]
    plots.spectrogram_grid({"generated": out.gen_specs[first]}, list(model.labels), plot_dir / "generated.png")
    for label in model.labels:
        for k, j in enumerate(np.flatnonzero(out.gen_labels == label)[: cfg.wav_generated_per_class]):
            write_wav(audio_dir / f"generated_{label}_{k:02d}.wav", out.audio_gen[j], sr)

    # an interpolation strip between the first two labels, and probes of the two most active dimensions
    in_test = [label for label in model.labels if (out.y_test == label).any()]  # a rare label may have no test file
    if len(in_test) >= 2:
        a, b = (int(np.flatnonzero(out.y_test == label)[0]) for label in in_test[:2])
        steps = cfg.interpolation_steps
        labels_ab = in_test[:2] if model.inner.conditional else None
        strip = model.interpolate(out.x_test[a], out.x_test[b], steps, labels_ab)
        plots.spectrogram_grid({"interpolation": strip}, [f"{t:.2f}" for t in np.linspace(0, 1, steps)],
                               plot_dir / "interpolation.png")
        for k, wave in enumerate(model.to_audio(strip)):
            write_wav(audio_dir / f"interpolation_{k:02d}.wav", wave, sr)
    probe_label = model.labels[0] if model.inner.conditional else None
    unit_kl = model.inner.channel_kl(torch.from_numpy(out.kl_dims[None])).numpy()[0]  # per channel of a sequence
    for dim in np.argsort(unit_kl)[::-1][: cfg.probe_dims]:
        sweep = model.probe(int(dim), cfg.probe_steps, 2.0, probe_label)
        plots.spectrogram_grid({f"dim {dim}": sweep}, [f"{v:+.1f}" for v in np.linspace(-2, 2, len(sweep))],
                               plot_dir / f"probe_dim{int(dim):02d}.png")
        for k, wave in enumerate(model.to_audio(sweep)):
            write_wav(audio_dir / f"probe_dim{int(dim):02d}_{k:02d}.wav", wave, sr)

    pca = PCA(2, random_state=seed).fit_transform(out.latent)
    plots.scatter(pca, out.y_test, "latent space (PCA), test split", plot_dir / "latent_pca.png")
    perplexity = min(cfg.tsne_perplexity, (len(out.latent) - 1) / 3)
    tsne = TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(out.latent)
    plots.scatter(tsne, out.y_test, "latent space (t-SNE), test split", plot_dir / "latent_tsne.png")
    if "speaker" in index and index["dataset"].iloc[0] in ("fsdd", "audiomnist"):
        test = split_rows(index, "test")
        speakers = index["speaker"].astype(str).to_numpy()[test]
        plots.scatter(tsne, speakers, "latent space (t-SNE) by speaker", plot_dir / "latent_tsne_speaker.png")
    plots.latent_stats(out.kl_dims, out.latent.mean(0), out.latent.std(0), ACTIVE_KL_THRESHOLD,
                       plot_dir / "latent_stats.png")
