"""``reports/index.html``: one self-contained page per run to listen and look.

Relative links only (plots under ``reports/plots``, audio under ``reports/audio``), so the
folder can be opened from disk, zipped, served, or logged to MLflow and viewed there.
Built at the end of ``evaluate`` and again by ``audiovae report`` without retraining.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import subprocess
from pathlib import Path

import pandas as pd

from audiovae import layout
from audiovae.atomic import write_text
from audiovae.config.params import flatten
from audiovae.config.schema import Inner, Params

GROUP_ORDER = ("quality", "classifier", "generation", "outer", "inner", "audio", "robustness", "speed")
QUALITY_ROWS = ("real", "ceiling", "outer", "full", "generated")
QUALITY_COLUMNS = (  # (column title, metrics key pattern with {row}, better direction)
    ("PESQ-NB", "quality.{row}_pesq_nb"), ("PESQ-WB", "quality.{row}_pesq_wb"), ("STOI", "quality.{row}_stoi"),
    ("DNSMOS sig", "quality.{row}_dnsmos_sig"), ("DNSMOS bak", "quality.{row}_dnsmos_bak"),
    ("DNSMOS overall", "quality.{row}_dnsmos_ovrl"), ("MR-STFT distance", "quality.{row}_mrstft"),
    ("clean classifier accuracy", "classifier.clean_{row}_accuracy"))
ROW_NAMES = {"real": "real test audio (model input form)", "ceiling": "Griffin-Lim of the true magnitude (ceiling)",
             "outer": "outer autoencoder only", "full": "full model (`reconstruct`)", "generated": "`generate`"}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1150px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f5f5f5} .num{text-align:right;font-variant-numeric:tabular-nums} .up{color:#1e7d32} .down{color:#b71c1c} /* better / worse than before */
img{max-width:100%} .muted{color:#777;font-size:.9rem} audio{width:210px;height:32px}
.grid{display:flex;flex-wrap:wrap;gap:1rem} .card{border:1px solid #e3e3e3;border-radius:6px;padding:.5rem}
"""


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def previous_metrics(root: Path) -> dict:
    """The metrics committed at HEAD (as ``dvc metrics diff`` compares), if any."""
    text = _git(root, "show", f"HEAD:{layout.METRICS.as_posix()}")
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


LOWER_IS_BETTER = ("rmse", "lsd", "stdev", "frechet", "overfit", "seconds", "perturb", "convergence", "mrstft",
                   "kid", "ndb")
HIGHER_IS_BETTER = ("accuracy", "active_dims", "speedup", "pesq", "stoi", "dnsmos", "coverage")


def _direction(key: str) -> int:
    """+1 when a larger value is better, -1 when smaller is, 0 when neither (sizes, counts)."""
    if any(word in key for word in HIGHER_IS_BETTER):
        return 1
    if any(word in key for word in LOWER_IS_BETTER):
        return -1
    return 0


def metrics_table(metrics: dict, previous: dict) -> str:
    rows = ["<table><tr><th>metric</th><th>this run</th><th>previous (HEAD)</th><th>change (green: better)</th></tr>"]
    for group in [g for g in GROUP_ORDER if g in metrics] + [g for g in metrics if g not in GROUP_ORDER]:
        for key, value in metrics[group].items():
            old = previous.get(group, {}).get(key)
            change = ""
            if isinstance(value, (int, float)) and isinstance(old, (int, float)) and value != old:
                delta = value - old
                better = _direction(key) * delta
                css = "up" if better > 0 else "down" if better < 0 else "muted"
                change = f'<span class="{css}">{delta:+.4g}</span>'
            rows.append(f'<tr><td>{group}.{key}</td><td class="num">{_fmt(value)}</td>'
                        f'<td class="num">{_fmt(old)}</td><td class="num">{change}</td></tr>')
    rows.append("</table>")
    return "\n".join(rows)


def quality_table(metrics: dict) -> str:
    """Real, ceiling, outer, full and generated side by side in the standard measures; the
    reference-based ones (PESQ, STOI, MR-STFT) are undefined for real audio and generations."""
    flat = {f"{g}.{k}": v for g, values in metrics.items() if isinstance(values, dict) for k, v in values.items()}
    columns = [(title, key) for title, key in QUALITY_COLUMNS
               if any(key.format(row=row) in flat for row in QUALITY_ROWS)]
    if not columns:
        return ""
    rows = ["<table><tr><th>what</th>" + "".join(f"<th>{html.escape(t)}</th>" for t, _ in columns) + "</tr>"]
    for row in QUALITY_ROWS:
        cells = "".join(f'<td class="num">{_fmt(flat.get(key.format(row=row)))}</td>' for _, key in columns)
        rows.append(f"<tr><td>{html.escape(ROW_NAMES[row])}</td>{cells}</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _img(rel: str, alt: str) -> str:
    return f'<img src="{html.escape(rel)}" alt="{html.escape(alt)}" loading="eager">'


def _audio(rel: str) -> str:
    return f'<audio controls preload="metadata" src="{html.escape(rel)}"></audio>'


def _latent_text(inner: Inner, inner_metrics: dict) -> str:
    """``sequence, 16 channels x 12 frames`` or ``global, 64 dims``."""
    dims = inner_metrics.get("latent_dims")
    if inner.latent == "sequence":
        channels = inner.latent_channels
        frames = f" x {dims // channels} frames" if dims else ""
        return f"sequence, {channels} channels{frames}"
    return f"global, {inner.latent_dim} dims"


def _number(value) -> str:
    return "–" if value is None else f"{float(value):.1f}"


def build(root: Path, params: Params) -> Path:
    metrics = json.loads((root / layout.METRICS).read_text())
    audio = sorted(p.name for p in (root / layout.AUDIO).glob("*.wav"))
    plots = root / layout.PLOTS
    commit = _git(root, "rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").strip())
    sources = [name for name, cfg in params.data.sources if cfg.enabled]
    summary = {"preset": params.preset, "dataset": ", ".join(sources),
               "split": params.data.split.method,
               "outer model": params.outer.model,
               "inner model": params.inner.architecture,
               "inner latent": _latent_text(params.inner, metrics.get("inner", {})),
               "inner beta": params.inner.beta,
               "inner rate (KL, nats per clip)": _number(metrics.get("inner", {}).get("kl")),
               "conditional": params.inner.conditional,
               "STFT": f"n_fft {params.features.n_fft}, hop {params.features.hop_length}",
               "seed": params.seed}
    features = root / layout.FEATURES_SUMMARY
    if features.exists() and json.loads(features.read_text()).get("mixed"):
        summary["mixed training examples"] = json.loads(features.read_text())["mixed"]
    encoded = root / layout.ENCODE_SUMMARY
    if encoded.exists() and json.loads(encoded.read_text()).get("augmented_copies"):
        summary["augmented training codes (encode)"] = json.loads(encoded.read_text())["augmented_copies"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'><title>audiovae report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>audiovae run report</h1>",
             f"<p class='muted'>commit <code>{commit}</code>{' (uncommitted changes)' if dirty else ''} · built "
             f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')} · "
             + " · ".join(f"{html.escape(k)}: <b>{html.escape(str(v))}</b>" for k, v in summary.items()) + "</p>",
             "<h2>Quality: the standard measures, next to their references (test split)</h2>", quality_table(metrics),
             "<p class='muted'>PESQ (ITU-T P.862) and STOI compare with the real test audio; DNSMOS P.835 needs "
             "no reference; the clean classifier was trained on real training audio with no augmentation.</p>",
             "<h2>All metrics (test split)</h2>", metrics_table(metrics, previous_metrics(root)),
             "<p class='muted'>audio.oracle_lsd_db is Griffin-Lim of the true magnitude: the ceiling of any model "
             "here. Classifier accuracies come from a classifier trained on real training audio only.</p>"]
    if (plots / "loss_curves.png").exists():
        parts += ["<h2>Training curves</h2>", _img("plots/loss_curves.png", "loss curves")]

    parts.append("<h2>Listen: original, Griffin-Lim ceiling, reconstruction</h2>")
    parts.append("<table><tr><th>file</th><th>original</th><th>Griffin-Lim of the true magnitude</th>"
                 "<th>model reconstruction</th><th>spectrograms (left: original, right: model)</th></tr>")
    for name in [a for a in audio if a.endswith("_original.wav")]:
        stem = name[: -len("_original.wav")]
        example = plots / "examples" / f"{stem}.png"
        parts.append(f"<tr><td>{html.escape(stem)}</td><td>{_audio('audio/' + name)}</td>"
                     f"<td>{_audio(f'audio/{stem}_oracle.wav')}</td>"
                     f"<td>{_audio(f'audio/{stem}_reconstruction.wav')}</td>"
                     f"<td>{_img(f'plots/examples/{stem}.png', stem) if example.exists() else ''}</td></tr>")
    parts.append("</table>")

    generated = [a for a in audio if a.startswith("generated_")]
    if generated:
        parts.append("<h2>Generated, per class, each next to its nearest training take</h2>"
                     "<p class='muted'>The nearest training recording of the label in the model's latent space: "
                     "a generation that sounds like it is a copy (generation.latent_novelty near 0), one as "
                     "new as an unheard recording scores about 1.</p><div class='grid'>")
        labels = sorted({a.split("_")[1] for a in generated})
        for label in labels:
            players = "".join(
                _audio("audio/" + a) + (" nearest: " + _audio("audio/" + a.replace("generated_", "nearest_", 1))
                                        if a.replace("generated_", "nearest_", 1) in audio else "") + "<br>"
                for a in generated if a.split("_")[1] == label)
            parts.append(f"<div class='card'><b>{html.escape(label)}</b><br>{players}</div>")
        parts.append("</div>")
        if (plots / "generated.png").exists():
            parts.append(_img("plots/generated.png", "generated spectrograms"))
    if (plots / layout.CATEGORY_GRID).exists():
        parts += ["<h2>Per category: real, ceiling, outer, full path, generated</h2>",
                  "<p class='muted'>One test clip of each category through every row, and a generation of the "
                  "category (spectrograms of the audio; the ceiling is Griffin-Lim of the true magnitude).</p>",
                  _img(f"plots/{layout.CATEGORY_GRID}", "per-category spectrograms")]
    interpolation = [a for a in audio if a.startswith("interpolation_")]
    if interpolation:
        parts += ["<h2>Interpolation between two classes</h2>", _img("plots/interpolation.png", "interpolation"),
                  "<div class='grid'>" + "".join(f"<div>{_audio('audio/' + a)}</div>" for a in interpolation) + "</div>"]
    probes = sorted(p.name for p in plots.glob("probe_dim*.png"))
    if probes:
        parts.append("<h2>Latent probes (one dimension swept, the rest at zero)</h2>")
        for probe in probes:
            dim = probe[len("probe_"):-len(".png")]
            players = "".join(_audio("audio/" + a) for a in audio if a.startswith(f"probe_{dim}_"))
            parts += [_img(f"plots/{probe}", probe), f"<div class='grid'>{players}</div>"]
    parts.append("<h2>Latent space</h2><div class='grid'>")
    for name in ("latent_pca", "latent_tsne", "latent_tsne_speaker", "latent_stats"):
        if (plots / f"{name}.png").exists():
            parts.append(f"<div>{_img(f'plots/{name}.png', name)}</div>")
    parts.append("</div>")
    bench = root / layout.PRESETS_BENCHMARK
    if bench.exists():
        table = pd.read_csv(bench)
        parts += ["<h2>Seed presets benchmark</h2>", table.to_html(index=False, float_format=lambda v: f"{v:.4g}")]
    flat = flatten(params.model_dump(exclude={"presets", "tune"}))
    parts += ["<h2>Parameters</h2><details><summary>params.yaml (resolved)</summary><table>",
              *(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in flat.items()),
              "</table></details>",
              "<p class='muted'>Regenerate with <code>audiovae report</code>; in MLflow this page is an artifact of "
              "the evaluate run (report/index.html).</p></body></html>"]
    out = root / layout.REPORT_PAGE
    write_text(out, "\n".join(parts))
    return out
