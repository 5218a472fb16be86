"""How new generations are, and how much of the real data they cover: the measures that tell a
generator from a replay of its training set.

All take embeddings (rows are sounds): the model's latents, or an audio embedding such as the clean
classifier's. ``novelty_ratio``: the median distance from a generation to its nearest training
example of the same label, over the same for real test examples (near 0: copies of training
takes; about 1: as new as an unheard recording; far above 1: off the data). ``coverage``: the share
of real test examples that have a generation inside their k-nearest-neighbour ball (Naeem et al.,
2020, "Reliable fidelity and diversity metrics"). ``ndb``: the number of statistically different
bins (Richardson & Weiss, 2018), over k-means bins of the training set. ``kid``: the kernel
inception distance (Bińkowski et al., 2018), the unbiased squared MMD under the cubic polynomial
kernel, with a standard error from disjoint blocks.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.cluster import KMeans

CHUNK = 512  # rows of queries per distance block: a block of 512 x 3000 float64 is 12 MB


def nearest_distances(queries: np.ndarray, references: np.ndarray, skip_self: bool = False, k: int = 1) -> np.ndarray:
    """Euclidean distance from each query to its ``k``-th nearest reference (``skip_self``: the
    queries are the references, and a row is not its own neighbour)."""
    queries, references = np.asarray(queries, np.float64), np.asarray(references, np.float64)
    if len(references) < k + int(skip_self):
        raise ValueError(f"{len(references)} references cannot give a {k}-th nearest neighbour")
    ref_sq = (references ** 2).sum(1)
    out = np.empty(len(queries))
    for start in range(0, len(queries), CHUNK):
        q = queries[start:start + CHUNK]
        d2 = (q ** 2).sum(1)[:, None] + ref_sq[None] - 2 * q @ references.T
        if skip_self:
            d2[np.arange(len(q)), np.arange(start, start + len(q))] = np.inf
        out[start:start + CHUNK] = np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0.0))
    return out


def novelty_ratio(generated: np.ndarray, generated_labels, train: np.ndarray, train_labels,
                  test: np.ndarray, test_labels) -> float:
    """Median distance of each generation to its nearest training example of its label, over the
    median of the same for real test examples (labels with no training example are left out)."""
    generated_labels, train_labels, test_labels = (np.asarray(a).astype(str) for a in
                                                   (generated_labels, train_labels, test_labels))
    gen_d, test_d = [], []
    for label in np.unique(train_labels):
        ref = train[train_labels == label]
        if (generated_labels == label).any():
            gen_d.append(nearest_distances(generated[generated_labels == label], ref))
        if (test_labels == label).any():
            test_d.append(nearest_distances(test[test_labels == label], ref))
    if not gen_d or not test_d:
        raise ValueError("novelty needs generations and test examples of a label that has training examples")
    return float(np.median(np.concatenate(gen_d)) / max(np.median(np.concatenate(test_d)), 1e-12))


def coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> float:
    """Share of ``real`` rows whose ball to their k-th nearest real neighbour holds a ``fake`` row."""
    radii = nearest_distances(real, real, skip_self=True, k=k)
    return float(np.mean(nearest_distances(real, fake) <= radii))


def ndb(train: np.ndarray, real: np.ndarray, fake: np.ndarray, bins: int, seed: int = 0,
        alpha: float = 0.05) -> tuple[int, float]:
    """Number of statistically different bins between ``real`` and ``fake`` (and it over ``bins``):
    k-means bins fitted on ``train``, a two-proportion z-test per bin at ``alpha``."""
    bins = min(bins, len(train))
    km = KMeans(bins, n_init=4, random_state=seed).fit(np.asarray(train, np.float64))
    p = np.bincount(km.predict(np.asarray(real, np.float64)), minlength=bins) / len(real)
    q = np.bincount(km.predict(np.asarray(fake, np.float64)), minlength=bins) / len(fake)
    pooled = (p * len(real) + q * len(fake)) / (len(real) + len(fake))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(real) + 1 / len(fake)))
    z = np.divide(p - q, se, out=np.zeros(bins), where=se > 0)
    different = int(np.sum(2 * stats.norm.sf(np.abs(z)) < alpha))
    return different, different / bins


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(real: np.ndarray, fake: np.ndarray, blocks: int = 10, seed: int = 0) -> tuple[float, float]:
    """Unbiased KID of ``fake`` against ``real`` and its standard error: both sets are shuffled into
    ``blocks`` disjoint blocks (fewer when a set is small: at least 4 rows a block), the squared MMD
    of each block pair is unbiased and independent of the others, so their mean is the estimate and
    their spread over sqrt(blocks) its standard error."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    blocks = max(1, min(blocks, len(real) // 4, len(fake) // 4))
    if blocks < 1 or min(len(real), len(fake)) < 2:
        raise ValueError("KID needs at least two rows on each side")
    rng = np.random.default_rng(seed)
    parts = [_mmd2_unbiased(a, b) for a, b in zip(np.array_split(real[rng.permutation(len(real))], blocks),
                                                   np.array_split(fake[rng.permutation(len(fake))], blocks))]
    se = float(np.std(parts, ddof=1) / np.sqrt(blocks)) if blocks > 1 else float("nan")
    return float(np.mean(parts)), se
