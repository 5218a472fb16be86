"""DVC stage ``evaluate``: the numbers a user can trust, on the test split, plus plots and audio.

Writes ``reports/metrics.json`` (DVC metrics; key groups outer, inner, audio, quality, classifier,
generation, pitch (music), robustness, speed), figures under ``reports/plots/`` and WAV files under
``reports/audio/`` (each generation beside its nearest training take). What each group measures,
next to which references, is said in ``audiovae.evaluation.evaluate``.

This module reads the inputs, writes the outputs atomically and logs; the measures are
audiovae.evaluation.evaluate's, the page audiovae.evaluation.report's.
"""
from __future__ import annotations

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
from audiovae.config.schema import Evaluate, Params, generation_spread
from audiovae.data.artifacts import load_encodings, open_features, real_rows, split_rows
from audiovae.data.audio import write_wav
from audiovae.evaluation import plots, report
from audiovae.evaluation.evaluate import (
    TestOutputs,
    audio_metrics,
    classifier_metrics,
    clean_judge,
    encode_once_speedup,
    generation_metrics,
    inner_metrics,
    is_speech,
    make_outputs,
    measures_pitch,
    note_metrics,
    octave_metrics,
    outer_metrics,
    pitch_metrics,
    quality_metrics,
    robustness_metrics,
)
from audiovae.inference.model import AudioVAE
from audiovae.models.inner import ACTIVE_KL_THRESHOLD
from audiovae.stages import run_stage
from audiovae.tracking import runs
from audiovae.training.loop import pick_device, seed_everything

log = logging.getLogger("audiovae.evaluate")
CATEGORY_GRID_COLUMNS = ("real", "Griffin-Lim ceiling", "outer", "full", "generated")


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
    spread = generation_spread(cfg.generate_spread, params.prior, learned=model.prior is not None)
    out = make_outputs(model, cfg, specs, index, waves, seed, spread)
    speech = is_speech(params, index)
    clean = clean_judge(wav_train, y_train, codec.sample_rate, cfg, seed)
    train_embedding = clean.embed(wav_train)  # once: the classifier and generation groups both use it
    # the training clips' latents, as the prior stage cached them
    latent_index = pd.read_csv(root / layout.LATENTS_INDEX, dtype={"label": str, "speaker": str})
    in_train = (latent_index["split"] == "train").to_numpy()
    train_latents = np.load(root / layout.LATENTS_MEANS, mmap_mode="r")[in_train]
    metrics: dict[str, dict] = {
        "outer": outer_metrics(model, out, x_train, outer_info),
        "inner": inner_metrics(model, out, inner_info),
        "audio": audio_metrics(model, out),
        "quality": quality_metrics(out, codec.sample_rate, cfg.quality, speech, seed),
        "classifier": classifier_metrics(out, wav_train, y_train, codec.sample_rate, cfg, seed, clean, train_embedding),
        "generation": generation_metrics(out, train_latents, latent_index["label"].to_numpy()[in_train], clean,
                                         train_embedding, y_train, cfg.novelty, seed),
        **({"pitch": pitch_metrics(out, codec.sample_rate, cfg.pitch)} if measures_pitch(cfg.pitch, speech) else {}),
        # a model that takes pitch: each note against the pitch it was rendered at or asked for
        **({"notes": {**note_metrics(out, codec.sample_rate, cfg.pitch), **octave_metrics(model, out, clean)}}
           if out.gen_notes is not None else {}),
        "robustness": robustness_metrics(model, out, cfg, seed),
        # measured, not a goal: on small data the outer encoder is cheap and the ratio says little
        "speed": encode_once_speedup(params, model, specs, load_encodings(root))}
    metrics["speed"]["evaluate_seconds"] = time.monotonic() - t0
    write_json(root / layout.METRICS, metrics)
    log.info("metrics: %s", json.dumps(metrics, indent=1, default=float))

    nearest = Nearest(train_latents, latent_index["label"].to_numpy()[in_train],
                      latent_index["row"].to_numpy()[in_train], waves)
    write_media(root, cfg, model, out, index, seed, nearest)
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


@dataclass
class Nearest:
    """The training recordings, by latent: a generation's nearest one of its label is played beside it."""
    latents: np.ndarray
    labels: np.ndarray
    audio_rows: np.ndarray
    waves: np.ndarray

    def audio(self, latent: np.ndarray, label: str) -> np.ndarray:
        own = np.flatnonzero(self.labels == label)
        best = own[int(np.argmin(((np.asarray(self.latents[own]) - latent) ** 2).sum(1)))]
        return np.asarray(self.waves[self.audio_rows[best]])


def write_media(root: Path, cfg: Evaluate, model: AudioVAE, out: TestOutputs, index: pd.DataFrame, seed: int,
                nearest: Nearest | None = None) -> None:
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
    # per category, one test clip through every row and a generation of its label: what a producer compares
    tested = [label for label in model.labels if (out.y_test == label).any()]
    if tested:
        rows = {}
        for label in tested:
            i, g = int(np.flatnonzero(out.y_test == label)[0]), int(np.flatnonzero(out.gen_labels == label)[0])
            rows[label] = np.stack([out.x_test[i], model.spectrogram(out.audio_ceiling[i:i + 1])[0], out.outer[i],
                                    out.full[i], out.gen_specs[g]])
        plots.spectrogram_grid(rows, list(CATEGORY_GRID_COLUMNS), plot_dir / layout.CATEGORY_GRID)
    for label in model.labels:
        for k, j in enumerate(np.flatnonzero(out.gen_labels == label)[: cfg.wav_generated_per_class]):
            write_wav(audio_dir / f"generated_{label}_{k:02d}.wav", out.audio_gen[j], sr)
            if nearest is not None and (nearest.labels == label).any():
                write_wav(audio_dir / f"nearest_{label}_{k:02d}.wav", nearest.audio(out.gen_latents[j], label), sr,
                          peak=0.9)

    # an interpolation strip between the first two labels, and probes of the two most active dimensions
    in_test = [label for label in model.labels if (out.y_test == label).any()]  # a rare label may have no test file
    if len(in_test) >= 2:
        a, b = (int(np.flatnonzero(out.y_test == label)[0]) for label in in_test[:2])
        steps = cfg.interpolation_steps
        labels_ab = in_test[:2] if model.inner.conditional else None
        notes_ab = out.test_notes[[a, b]] if out.test_notes is not None else None
        strip = model.interpolate(out.x_test[a], out.x_test[b], steps, labels_ab, notes_ab)
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


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
