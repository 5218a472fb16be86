"""The inner VAE's convolutional form and the second-opinion classifier, on small synthetic data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from audiovae.classifier import CheckClassifier
from audiovae.inference import AudioVAE
from audiovae.models.inner import VAE, vae_loss
from audiovae.params import ParamsError
from audiovae.train_inner import check_class_sampling, class_scales
from conftest import base_params, tone_classes


def conv1d_vae(**extra) -> VAE:
    return VAE(8 * 32, latent_dim=4, architecture="conv1d", code_shape=(8, 32), conv_filters=(16, 16),
               prior="class_mixture", n_classes=3, **extra)


def test_conv1d_vae_maps_a_code_back_to_its_shape_and_learns():
    torch.manual_seed(0)
    vae = conv1d_vae()
    x = torch.randn(12, 8 * 32)
    y = torch.arange(12) % 3
    out, mu, logvar, _ = vae.eval()(x, y)
    assert out.shape == x.shape and mu.shape == logvar.shape == (12, 4)
    vae.train()
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss, _, _ = vae_loss(vae, x, y, beta=0.1)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.7 * first


def test_conv1d_vae_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="channels, frames"):
        VAE(256, latent_dim=4, architecture="conv1d", code_shape=(256,), conv_filters=(16,))
    with pytest.raises(ValueError, match="label-conditioned"):
        conv1d_vae(conditional=True)
    with pytest.raises(ValueError, match="'mlp', 'conv1d' or 'conv2d'"):
        VAE(256, latent_dim=4, architecture="transformer")


def test_check_classifier_tells_tones_apart_and_is_not_always_right():
    cfg = base_params()["evaluate"]["check_classifier"]
    rng = np.random.default_rng(0)
    train_x, train_y = tone_classes(10, rng)
    test_x, test_y = tone_classes(5, rng)
    check = CheckClassifier(8000, cfg).fit(train_x, train_y)
    assert check.accuracy(test_x, test_y) == 1.0
    assert check.accuracy(test_x, np.roll(test_y, 5)) == 0.0  # every label moved to another class


def test_full_covariance_class_sampling_follows_each_labels_latents():
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 0.04]])
    centres = np.array([[3.0, 0.0, 0.0], [-3.0, 1.0, 0.0]])
    y = np.repeat([0, 1], 4000)
    mu = np.concatenate([rng.multivariate_normal(c, cov, 4000) for c in centres])
    vae = VAE(8, latent_dim=3, hidden=(8,), prior="class_mixture", n_classes=2)
    means, scales = class_scales(mu, y, 2, "full", vae)
    assert np.allclose(means, centres, atol=0.06)
    assert np.allclose(scales[1] @ scales[1].T, cov, atol=0.06)  # the correlation is kept
    _, diag = class_scales(mu, y, 2, "diagonal", vae)
    assert abs((diag[1] @ diag[1].T)[0, 1]) < 1e-6 and np.allclose(np.diag(diag[1]) ** 2, np.diag(cov), atol=0.06)
    prior_means, unit = class_scales(mu, y, 2, "prior", vae)
    assert np.allclose(prior_means, vae.prior_means.detach().numpy()) and np.allclose(unit[0], np.eye(3))
    # AudioVAE.sample draws centre + spread * L eps: its samples have the class's covariance
    model = AudioVAE(outer=None, inner=vae, mean=None, std=None, codec=None, length=0, length_mode="center",
                     labels=["a", "b"], class_means=means, class_scales=scales, device=torch.device("cpu"))
    drawn = model.sample("b", 20000, seed=1, spread=1.0)
    assert np.allclose(drawn.mean(0), centres[1], atol=0.06)
    assert np.allclose(np.cov(drawn, rowvar=False), cov, atol=0.06)
    assert np.allclose(np.cov(model.sample("b", 20000, seed=1, spread=0.5), rowvar=False), cov / 4, atol=0.03)


def test_class_sampling_refuses_unknown_modes_before_training():
    normal = VAE(8, latent_dim=3, hidden=(8,), prior="normal")
    with pytest.raises(ParamsError, match="full, diagonal, prior"):
        check_class_sampling("uniform", normal)
    with pytest.raises(ParamsError, match="class_mixture"):
        check_class_sampling("prior", normal)


def test_kde_class_sampling_starts_from_the_labels_own_training_latents():
    """kde: each new latent is a training latent of the label plus spread * L eps; spread 0 gives
    the training latents themselves, and never another label's."""
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(5, 1, (50, 3)), rng.normal(-5, 1, (40, 3))]).astype(np.float32)
    point_labels = np.repeat([0, 1], [50, 40])
    vae = VAE(8, latent_dim=3, hidden=(8,), prior="class_mixture", n_classes=2)
    means, scales = class_scales(points.astype(np.float64), point_labels, 2, "kde", vae)
    model = AudioVAE(outer=None, inner=vae, mean=None, std=None, codec=None, length=0, length_mode="center",
                     labels=["a", "b"], class_means=means, class_scales=scales, device=torch.device("cpu"),
                     class_points=points, class_point_labels=point_labels)
    exact = model.sample("b", 200, seed=3, spread=0.0)
    own = {tuple(p) for p in points[point_labels == 1]}
    assert all(tuple(z) in own for z in exact)
    assert len({tuple(z) for z in exact}) > 20  # many different recordings, not one centre
    wide = model.sample("b", 4000, seed=3, spread=0.5)
    assert np.allclose(np.cov(wide, rowvar=False), np.cov(points[point_labels == 1], rowvar=False) * 1.25, atol=0.15)
    assert (model.sample("b", 5, seed=9, spread=0.5) == model.sample("b", 5, seed=9, spread=0.5)).all()
    # a label without training latents (a rare category that fell into val/test) keeps its centre
    model.class_point_labels = np.zeros_like(point_labels)
    assert np.allclose(model.sample("b", 3, seed=1, spread=0.0), means[1])
