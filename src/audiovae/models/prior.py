"""A learned, label-conditioned prior over the inner VAE's latents: what generation samples from.

The inner VAE's own prior N(0, I) is not where its latents live (the KL term only pulls them
towards it), and sampling around training latents (``kde``) replays training takes. So, as RAVE
trains a prior on its frozen encoder's latents, the ``train_prior`` stage fits one on the frozen
inner VAE's posterior means, the incremental way: per label, a principal subspace of its latents
(``pca_dims``) and a Gaussian mixture in it (``components``, scikit-learn's EM).

The fitted prior is a ``Mixture``: each component's centre, label, weight within its label and
covariance factor in the full latent space, so sampling is one matrix product
(``centre + temperature * L @ eps``): numpy here, TorchScript in the portable export. Temperature
1 draws from the density as fitted; less stays nearer each component's centre. Draws stay in the
label's subspace: the residual directions, which the likelihood models as isotropic noise so that
subspaces of any size score on one scale, are left at their mean.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from audiovae.config.schema import Prior

ARRAYS = ("centres", "labels", "weights", "bases", "scales")


@dataclass
class Mixture:
    """Components of every label: ``centres`` (M, latent), ``labels`` (M,) label ids, ``weights``
    (M,) summing to 1 within each label, and each component's covariance factor kept in two parts
    (a full factor per component would weigh tens of megabytes in the model file): its label's
    subspace ``bases`` (labels, latent, r), orthonormal columns, and ``scales`` (M, r, r), the
    factor within that subspace. A draw is ``centre + temperature * basis @ scale @ eps``."""

    centres: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    bases: np.ndarray
    scales: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}

    @classmethod
    def from_arrays(cls, arrays) -> Mixture:
        return cls(*(np.asarray(arrays[name]) for name in ARRAYS))

    @classmethod
    def empty(cls, latent_dim: int) -> Mixture:
        """No components: a model without a learned prior samples as its inner VAE does."""
        return cls(np.zeros((0, latent_dim), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32),
                   np.zeros((0, latent_dim, 1), np.float32), np.zeros((0, 1, 1), np.float32))

    def factor(self, component: int) -> np.ndarray:
        """One component's covariance factor in the full latent space, (latent, r)."""
        return self.bases[self.labels[component]] @ self.scales[component]

    def sample(self, label: int, count: int, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """``count`` latents of label id ``label``: a component by its weight, then its Gaussian."""
        own = np.flatnonzero(self.labels == label)
        if len(own) == 0:
            raise ValueError(f"the prior has no component for label id {label}")
        weights = self.weights[own] / self.weights[own].sum()
        picks = own[rng.choice(len(own), size=count, p=weights)]
        eps = rng.standard_normal((count, self.scales.shape[-1])).astype(np.float32)
        local = np.einsum("nrs,ns->nr", self.scales[picks], eps)
        return (self.centres[picks] + temperature * local @ self.bases[label].T).astype(np.float32)


@dataclass
class Fitted:
    """A fitted prior and how well it explains latents it did not see."""

    mixture: Mixture
    train_loglik: float    # mean log-likelihood per latent dimension of the training latents
    val_loglik: float      # the same on validation latents (higher is better; a tuning objective)
    subspace_variance: float  # share of the latents' variance the per-label subspaces keep


def _loglik(gmm: GaussianMixture, pca: PCA, residual_var: float, x: np.ndarray) -> np.ndarray:
    """Log-density in the full latent space: the mixture in the label's subspace plus an isotropic
    Gaussian of the residual variance in the directions it leaves out (probabilistic PCA's
    model), so that priors with subspaces of other sizes are scored on one scale."""
    y = pca.transform(x)
    residual = x - pca.inverse_transform(y)
    left_out = x.shape[1] - y.shape[1]
    ll = gmm.score_samples(y)
    if left_out > 0:
        ll = ll - 0.5 * ((residual ** 2).sum(1) / residual_var + left_out * np.log(2 * np.pi * residual_var))
    return ll


def fit(cfg: Prior, latents: np.ndarray, labels: np.ndarray, n_labels: int, seed: int,
        val_latents: np.ndarray | None = None, val_labels: np.ndarray | None = None) -> Fitted:
    """A ``Mixture`` per label from the training latents of that label (label ids 0..n_labels-1)."""
    centres, owners, weights, scales = [], [], [], []
    bases: dict[int, np.ndarray] = {}
    train_ll, val_ll, kept, total = [], [], 0.0, 0.0
    dim = latents.shape[1]
    for c in range(n_labels):
        x = np.asarray(latents[labels == c], np.float64)
        if len(x) == 0:
            continue  # a label with no training latent (a rare category) gets no component
        r = max(1, min(cfg.pca_dims, len(x) - 1, dim))
        pca = PCA(r, random_state=seed).fit(x) if len(x) > 1 else None
        y = pca.transform(x) if pca is not None else np.zeros((1, 1))
        k = max(1, min(cfg.components, len(x) // max(cfg.min_per_component, 1)))
        gmm = GaussianMixture(k, covariance_type=cfg.covariance, reg_covar=cfg.reg_covar, n_init=cfg.n_init,
                              random_state=seed).fit(y)
        basis = pca.components_ if pca is not None else np.zeros((1, dim))
        mean = pca.mean_ if pca is not None else x[0]
        bases[c] = basis.T  # (latent, r)
        for j in range(k):
            cov = gmm.covariances_[j] if cfg.covariance == "full" else np.diag(gmm.covariances_[j])
            centres.append(mean + gmm.means_[j] @ basis)
            scales.append(np.linalg.cholesky(cov))  # (r, r): a draw in the subspace is L @ eps
            owners.append(c)
            weights.append(gmm.weights_[j])
        if pca is None:
            continue
        label_total = float(x.var(0, ddof=1).sum())
        label_kept = float(pca.explained_variance_.sum())
        residual_var = max((label_total - label_kept) / max(dim - r, 1), cfg.reg_covar)
        train_ll.append(_loglik(gmm, pca, residual_var, x))
        if val_latents is not None and val_labels is not None and (val_labels == c).any():
            val_ll.append(_loglik(gmm, pca, residual_var, np.asarray(val_latents[val_labels == c], np.float64)))
        kept += label_kept * (len(x) - 1)
        total += label_total * (len(x) - 1)
    if not centres:
        raise ValueError("the prior needs training latents of at least one label")
    width = max(s.shape[1] for s in scales)  # labels with fewer examples than pca_dims have narrower subspaces
    padded = np.zeros((len(scales), width, width), np.float32)
    for i, s in enumerate(scales):
        padded[i, :s.shape[0], :s.shape[1]] = s
    label_bases = np.zeros((n_labels, dim, width), np.float32)
    for c, b in bases.items():
        label_bases[c, :, :b.shape[1]] = b
    mixture = Mixture(np.asarray(centres, np.float32), np.asarray(owners, np.int64),
                      np.asarray(weights, np.float32), label_bases, padded)
    per_dim = lambda parts: float(np.mean(np.concatenate(parts))) / dim if parts else float("nan")  # noqa: E731
    return Fitted(mixture, per_dim(train_ll), per_dim(val_ll), kept / total if total > 0 else 1.0)
