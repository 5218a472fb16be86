"""Figures for the evaluation report (PNG, written atomically; DVC tracks them as image plots)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from audiovae.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def loss_curves(histories: dict[str, pd.DataFrame], path: Path) -> None:
    fig, axes = plt.subplots(2, len(histories), figsize=(5 * len(histories), 6), squeeze=False)
    for col, (name, frame) in enumerate(histories.items()):
        ax = axes[0, col]
        if frame.empty:
            continue
        ax.plot(frame["epoch"], frame["train_loss"], label="train")
        ax.plot(frame["epoch"], frame["val_loss"], label="validation")
        ax.set_yscale("log")
        ax.set_title(f"{name}: loss")
        ax.legend()
        ax = axes[1, col]
        ax.plot(frame["epoch"], frame["overfit_ratio"], color="#c0392b")
        ax.axhline(1.0, color="grey", linestyle=":")
        ax.set_title(f"{name}: over-fitting ratio (val / train)")
        ax.set_xlabel("epoch")
    _save(fig, path)


def spectrogram_grid(rows: dict[str, np.ndarray], titles: list[str], path: Path) -> None:
    """Rows of spectrograms (name -> array (n, bins, frames)), one column per example."""
    names = list(rows)
    n = len(titles)
    fig, axes = plt.subplots(len(names), n, figsize=(1.9 * n, 1.9 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(rows[name][c], origin="lower", aspect="auto", vmin=0, vmax=1, cmap="magma")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    _save(fig, path)


def scatter(points: np.ndarray, labels: np.ndarray, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    for label in sorted(set(labels)):
        mask = labels == label
        ax.scatter(points[mask, 0], points[mask, 1], s=9, label=str(label))
    ax.set_title(title)
    ax.legend(markerscale=2, fontsize=8, ncol=2)
    _save(fig, path)


def latent_stats(kl: np.ndarray, mean: np.ndarray, std: np.ndarray, threshold: float, path: Path) -> None:
    dims = np.arange(len(kl))
    fig, axes = plt.subplots(2, 1, figsize=(max(6, len(kl) * 0.25), 5), sharex=True)
    colours = np.where(kl > threshold, "#2e86c1", "#bbbbbb")
    axes[0].bar(dims, kl, color=colours)
    axes[0].set_ylabel("KL (nats)")
    axes[0].set_title(f"per-dimension KL on test (grey: collapsed, KL <= {threshold})")
    axes[1].errorbar(dims, mean, yerr=std, fmt="o", ms=3)
    axes[1].axhline(0, color="grey", linestyle=":")
    axes[1].set_ylabel("posterior mean: mean ± std")
    axes[1].set_xlabel("latent dimension")
    _save(fig, path)
