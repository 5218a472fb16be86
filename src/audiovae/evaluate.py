"""Stage ``evaluate``: the numbers a user can trust, on the test split, plus plots and audio.

Writes ``reports/metrics.json`` (DVC metrics; key groups outer, inner, audio, classifier,
robustness, speed), figures under ``reports/plots/`` and WAV files under ``reports/audio/``.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import plots, report, tracking
from .stage import run_stage
from .atomic import write_json
from .audio import write_wav
from .classifier import AudioClassifier, CheckClassifier, frechet_distance
from .artifacts import load_encodings, open_features, split_rows, standardised
from .inference import AudioVAE
from .models.inner import ACTIVE_KL_THRESHOLD, vae_loss
from .params import project_root, section
from .spectrogram import log_spectral_distance, spectral_convergence
from .models.build import build_vae
from .training import batches_of, pick_device, seed_everything

log = logging.getLogger("audiovae.evaluate")


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


def encode_once_speedup(root: Path, params: dict, model: AudioVAE, specs: np.ndarray, index: pd.DataFrame) -> dict:
    """Time one inner-VAE training epoch on the cached codes, then the same epoch with the frozen
    outer encoder run on every batch (what training end to end on frozen features would cost)."""
    cfg = section(params, "inner")
    codes, stats, enc_index, manifest = load_encodings(root)
    train = split_rows(enc_index, "train")
    labels = {label: i for i, label in enumerate(model.labels)}
    y_all = torch.tensor(enc_index["label"].astype(str).map(labels).to_numpy())
    batch_size = int(cfg["batch_size"])
    vae = build_vae(cfg, codes.shape[1], len(model.labels), manifest["code_shape"]).to(model.device)
    reconstruction = cfg["reconstruction"]
    weight, reduction = float(cfg["reconstruction_weight"]), cfg["reconstruction_reduction"]

    chunks = list(batches_of(len(train), batch_size, True, np.random.default_rng(0)))
    limit = int(section(params, "evaluate.speed_max_batches")) or len(chunks)

    def epoch(get_x, n_batches: int = limit) -> float:
        """Seconds per epoch, timed over the first ``n_batches`` batches and scaled to the epoch."""
        net = copy.deepcopy(vae).train()
        opt = torch.optim.Adam(net.parameters(), lr=float(cfg["train"]["lr"]))
        started = time.perf_counter()
        for chunk in chunks[:n_batches]:
            rows = np.sort(train[chunk])
            x = get_x(rows)
            loss, _, _ = vae_loss(net, x, y_all[rows].to(model.device), float(cfg["beta"]),
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


def run(params: dict, root: Path | None = None) -> dict:
    root = root or project_root()
    cfg = section(params, "evaluate")
    seed = int(params["seed"])
    seed_everything(seed)
    device = pick_device(section(params, "outer.device"))
    model = AudioVAE.from_project(root, device)
    specs, index, codec = open_features(root / "data" / "features")
    waves = np.load(root / "data" / "filtered" / "audio.npy", mmap_mode="r")
    test, train = split_rows(index, "test"), split_rows(index, "train")
    x_test, x_train = np.asarray(specs[test]), np.asarray(specs[train])
    y_test = index["label"].astype(str).to_numpy()[test]
    y_train = index["label"].astype(str).to_numpy()[train]
    wav_test = np.asarray(waves[index["row"].to_numpy()[test]])
    wav_train = np.asarray(waves[index["row"].to_numpy()[train]])
    outer_info = json.loads((root / "data" / "models" / "outer" / "summary.json").read_text())
    inner_info = json.loads((root / "data" / "models" / "inner" / "summary.json").read_text())
    conditional_labels = list(y_test) if model.inner.conditional else None
    metrics: dict[str, dict] = {}
    t0 = time.monotonic()

    # -- outer autoencoder
    outer_test = model.reconstruct_outer(x_test)
    outer_train_mse = mse(model.reconstruct_outer(x_train), x_train)
    test_mse = mse(outer_test, x_test)
    metrics["outer"] = {"test_rmse_db": rmse_db(model, outer_test, x_test),
                        "test_stdev_pct": 100 * np.sqrt(test_mse),
                        # identity outer: no error on either side, so no over-fitting either
                        "overfit_ratio": 1.0 if test_mse == outer_train_mse == 0 else
                        test_mse / max(outer_train_mse, 1e-12),
                        "compression": outer_info["compression"], "params": outer_info["params"],
                        "train_seconds": outer_info["train_seconds"]}

    # -- inner VAE (full path)
    inner_test = model.reconstruct(x_test, conditional_labels)
    latent_test, logvar_test = model.posterior(x_test, conditional_labels)
    with torch.no_grad():
        kl_dims = model.inner.kl_dims(torch.from_numpy(latent_test), torch.from_numpy(logvar_test),
                                      model.label_ids(list(y_test)).cpu()).mean(0).numpy()
    metrics["inner"] = {"test_rmse_db": rmse_db(model, inner_test, x_test),
                        "test_stdev_pct": 100 * np.sqrt(mse(inner_test, x_test)), "kl": float(kl_dims.sum()),
                        "active_dims": int(np.sum(kl_dims > ACTIVE_KL_THRESHOLD)),
                        "latent_dims": int(model.inner.latent_dim), "params": inner_info["params"],
                        "train_seconds": inner_info["train_seconds"]}

    # -- audio: Griffin-Lim of reconstructions vs the original waveform
    n_fft, hop = codec.n_fft, codec.hop_length
    audio_recon = model.to_audio(inner_test)
    audio_outer = model.to_audio(outer_test)
    audio_oracle = model.to_audio(x_test)
    metrics["audio"] = {
        "test_lsd_db": float(log_spectral_distance(wav_test, audio_recon, n_fft, hop).mean()),
        "outer_lsd_db": float(log_spectral_distance(wav_test, audio_outer, n_fft, hop).mean()),
        "oracle_lsd_db": float(log_spectral_distance(wav_test, audio_oracle, n_fft, hop).mean()),
        "test_spectral_convergence": float(spectral_convergence(
            wav_test / np.abs(wav_test).max(-1, keepdims=True), audio_recon / np.abs(audio_recon).max(-1, keepdims=True),
            n_fft, hop).mean())}

    # -- classifier trained on real training audio only
    classifier = AudioClassifier(codec.sample_rate, cfg["classifier"], seed).fit(wav_train, y_train)
    per_class = int(cfg["generated_per_class"])
    spread = float(cfg["generate_spread"])
    gen_labels, gen_specs = [], []
    for i, label in enumerate(model.labels):
        gen_specs.append(model.generate(label, per_class, seed=seed + i, spread=spread))
        gen_labels += [label] * per_class
    gen_specs = np.concatenate(gen_specs)
    audio_gen = model.to_audio(gen_specs)
    gen_labels = np.array(gen_labels)
    metrics["classifier"] = {
        "real_test_accuracy": classifier.accuracy(wav_test, y_test),
        "recon_accuracy": classifier.accuracy(audio_recon, y_test),
        "outer_recon_accuracy": classifier.accuracy(audio_outer, y_test),
        "oracle_accuracy": classifier.accuracy(audio_oracle, y_test),
        "generated_accuracy": classifier.accuracy(audio_gen, gen_labels),
        "generated_frechet": frechet_distance(classifier.embed(audio_gen), classifier.embed(wav_test)),
        "recon_frechet": frechet_distance(classifier.embed(audio_recon), classifier.embed(wav_test))}
    # a second opinion of another family: a gap to the first means the sounds fool one classifier only
    check = CheckClassifier(codec.sample_rate, cfg["check_classifier"], seed).fit(wav_train, y_train)
    metrics["classifier"].update({"check_real_test_accuracy": check.accuracy(wav_test, y_test),
                                  "check_recon_accuracy": check.accuracy(audio_recon, y_test),
                                  "check_generated_accuracy": check.accuracy(audio_gen, gen_labels)})

    # -- robustness: how far the output moves when the input moves by up to ±N dB
    noisy = perturb(model, x_test, float(cfg["perturb_db"]), seed)
    metrics["robustness"] = {"perturb_10db_rmse_db": rmse_db(model, model.reconstruct(noisy, conditional_labels),
                                                             inner_test)}
    # -- speed of the incremental scheme, measured here in one run
    metrics["speed"] = encode_once_speedup(root, params, model, specs, index)
    metrics["speed"]["evaluate_seconds"] = time.monotonic() - t0
    write_json(root / "reports" / "metrics.json", metrics)
    log.info("metrics: %s", json.dumps(metrics, indent=1, default=float))

    write_media(root, cfg, model, index, test, x_test, outer_test, inner_test, wav_test, audio_oracle,
                audio_recon, gen_specs, audio_gen, gen_labels, latent_test, y_test, kl_dims, seed)
    page = report.build(root, params)
    with tracking.stage_run("evaluate", params, root, section_keys=("evaluate",)) as mlflow:
        if mlflow is not None:
            mlflow.log_metrics({f"{group}.{key}": float(value) for group, values in metrics.items()
                                for key, value in values.items()})
            mlflow.log_artifact(str(root / "reports" / "metrics.json"))
            # the page and its assets keep their relative layout, so it opens in the MLflow UI
            mlflow.log_artifact(str(page), artifact_path="report")
            mlflow.log_artifacts(str(root / "reports" / "plots"), artifact_path="report/plots")
            mlflow.log_artifacts(str(root / "reports" / "audio"), artifact_path="report/audio")
    return metrics


def write_media(root, cfg, model, index, test, x_test, outer_test, inner_test, wav_test, audio_oracle,
                audio_recon, gen_specs, audio_gen, gen_labels, latent_test, y_test, kl_dims, seed) -> None:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    plot_dir, audio_dir = root / "reports" / "plots", root / "reports" / "audio"
    sr = model.codec.sample_rate
    histories = {}
    for name in ("outer", "inner"):
        path = root / "reports" / name / "history.csv"
        histories[name] = pd.read_csv(path) if path.exists() else pd.DataFrame()
    plots.loss_curves(histories, plot_dir / "loss_curves.png")

    # a few test files per class: spectrograms and WAVs of original, oracle and reconstruction
    picks = []
    for label in model.labels:
        picks += list(np.flatnonzero(y_test == label)[: int(cfg["examples_per_class"])])
    stems = [Path(p).stem for p in index["path"].to_numpy()[test][picks]]
    plots.spectrogram_grid({"original": x_test[picks], "outer": outer_test[picks], "full model": inner_test[picks]},
                           stems, plot_dir / "reconstructions.png")
    for i, stem in zip(picks, stems):
        write_wav(audio_dir / f"{stem}_original.wav", wav_test[i], sr, peak=0.9)
        write_wav(audio_dir / f"{stem}_oracle.wav", audio_oracle[i], sr)
        write_wav(audio_dir / f"{stem}_reconstruction.wav", audio_recon[i], sr)
    first = [int(np.flatnonzero(gen_labels == label)[0]) for label in model.labels]
    plots.spectrogram_grid({"generated": gen_specs[first]}, list(model.labels), plot_dir / "generated.png")
    for label in model.labels:
        for k, j in enumerate(np.flatnonzero(gen_labels == label)[: int(cfg["wav_generated_per_class"])]):
            write_wav(audio_dir / f"generated_{label}_{k:02d}.wav", audio_gen[j], sr)

    # per-example spectrograms for the report: original, Griffin-Lim ceiling is audio-only, model output
    for i, stem in zip(picks, stems):
        plots.spectrogram_grid({stem: np.stack([x_test[i], inner_test[i]])}, ["original", "reconstruction"],
                               plot_dir / "examples" / f"{stem}.png")
    # an interpolation strip between the first two labels, and probes of the two most active dimensions
    if len(model.labels) >= 2:
        a, b = (int(np.flatnonzero(y_test == label)[0]) for label in model.labels[:2])
        steps = int(cfg["interpolation_steps"])
        labels_ab = [model.labels[0], model.labels[1]] if model.inner.conditional else None
        strip = model.interpolate(x_test[a], x_test[b], steps, labels_ab)
        plots.spectrogram_grid({"interpolation": strip}, [f"{t:.2f}" for t in np.linspace(0, 1, steps)],
                               plot_dir / "interpolation.png")
        for k, wave in enumerate(model.to_audio(strip)):
            write_wav(audio_dir / f"interpolation_{k:02d}.wav", wave, sr)
    probe_label = model.labels[0] if model.inner.conditional else None
    for dim in np.argsort(kl_dims)[::-1][: int(cfg["probe_dims"])]:
        sweep = model.probe(int(dim), int(cfg["probe_steps"]), 2.0, probe_label)
        plots.spectrogram_grid({f"dim {dim}": sweep}, [f"{v:+.1f}" for v in np.linspace(-2, 2, len(sweep))],
                               plot_dir / f"probe_dim{int(dim):02d}.png")
        for k, wave in enumerate(model.to_audio(sweep)):
            write_wav(audio_dir / f"probe_dim{int(dim):02d}_{k:02d}.wav", wave, sr)

    pca = PCA(2, random_state=seed).fit_transform(latent_test)
    plots.scatter(pca, y_test, "latent space (PCA), test split", plot_dir / "latent_pca.png")
    perplexity = min(float(cfg["tsne_perplexity"]), (len(latent_test) - 1) / 3)
    tsne = TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(latent_test)
    plots.scatter(tsne, y_test, "latent space (t-SNE), test split", plot_dir / "latent_tsne.png")
    if "speaker" in index and index["dataset"].iloc[0] in ("fsdd", "audiomnist"):
        speakers = index["speaker"].astype(str).to_numpy()[test]
        plots.scatter(tsne, speakers, "latent space (t-SNE) by speaker", plot_dir / "latent_tsne_speaker.png")
    plots.latent_stats(kl_dims, latent_test.mean(0), latent_test.std(0), ACTIVE_KL_THRESHOLD,
                       plot_dir / "latent_stats.png")


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
