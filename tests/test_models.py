"""The inner VAE's convolutional form and the second-opinion classifier, on small synthetic data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import base_params, tone_classes, typed

from audiovae.config.params import ParamsError
from audiovae.evaluation.classifier import CheckClassifier
from audiovae.inference.model import AudioVAE
from audiovae.models.inner import VAE, vae_loss
from audiovae.training.inner import check_class_sampling, class_scales


def train_briefly(vae, x, y, steps: int) -> tuple[float, float]:
    """Adam on one batch for ``steps`` steps; the first and the last loss."""
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss, _, _ = vae_loss(vae, x, y, beta=0.1)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses[0], losses[-1]


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
    first, last = train_briefly(vae, x, y, steps=60)
    assert last < 0.7 * first


def test_conv1d_vae_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="channels, frames"):
        VAE(256, latent_dim=4, architecture="conv1d", code_shape=(256,), conv_filters=(16,))
    with pytest.raises(ValueError, match="label-conditioned"):
        conv1d_vae(conditional=True)
    with pytest.raises(ValueError, match="'mlp', 'conv1d' or 'conv2d'"):
        VAE(256, latent_dim=4, architecture="transformer")


def test_check_classifier_tells_tones_apart_and_is_not_always_right():
    cfg = typed(base_params()).evaluate.check_classifier
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
    assert diag.shape == (2, 3) and np.allclose(diag[1] ** 2, np.diag(cov), atol=0.06)  # no correlation
    prior_means, unit = class_scales(mu, y, 2, "prior", vae)
    assert np.allclose(prior_means, vae.prior_means.detach().numpy()) and np.allclose(unit[0], np.ones(3))
    # rank 1: the label's leading direction alone, scaled by its std (the correlated pair's sum)
    _, top = class_scales(mu, y, 2, "full", vae, rank=1)
    assert top.shape == (2, 3, 1)
    assert np.allclose(top[1] @ top[1].T, 1.9 * np.outer([1, 1, 0], [1, 1, 0]) / 2, atol=0.08)
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


def sequence_vae(prior: str = "normal", **extra) -> VAE:
    return VAE(8 * 32, architecture="conv1d", code_shape=(8, 32), conv_filters=(16, 16), latent="sequence",
               latent_channels=3, prior=prior, n_classes=3, **extra)


def test_sequence_latent_keeps_time_and_a_shift_of_the_input_moves_its_frames():
    torch.manual_seed(0)
    vae = sequence_vae().eval()
    assert vae.latent_shape == (3, 8) and vae.latent_dim == 24  # 32 frames / 2**2 layers
    x = torch.zeros(1, 8, 32)
    x[..., 4:8] = 3.0  # a burst early in the clip
    moved = torch.roll(x, 8, dims=-1)  # the same burst a quarter of the clip later
    mu, _ = vae.encode(x.flatten(1))
    mu_moved, _ = vae.encode(moved.flatten(1))
    frames, frames_moved = mu.reshape(3, 8), mu_moved.reshape(3, 8)
    # a convolutional encoder: the burst's latent frame moves by 8 / 4 = 2 latent frames
    # (frames 2 and 4 see no zero padding, so the shift is exact there)
    assert torch.allclose(frames[:, 2], frames_moved[:, 4], atol=1e-5)
    assert not torch.allclose(frames[:, 2], frames_moved[:, 2], atol=1e-3)
    out = vae.decode(mu)
    assert out.shape == (1, 8 * 32)


def test_sequence_latent_learns_and_reports_kl_per_channel():
    torch.manual_seed(0)
    vae = sequence_vae()
    x, y = torch.randn(12, 8 * 32), torch.arange(12) % 3
    first, last = train_briefly(vae, x, y, steps=200)
    assert last < 0.7 * first
    mu, logvar = vae.eval().encode(x)
    dims = vae.kl_dims(mu, logvar)
    channels = vae.channel_kl(dims)
    assert channels.shape == (12, 3)
    assert torch.allclose(channels.sum(-1), vae.kl(mu, logvar, mu).detach(), atol=1e-4)  # the same total, regrouped


def test_free_bits_floor_the_kl_of_each_channel_and_report_the_true_kl():
    torch.manual_seed(0)
    vae = sequence_vae()
    x, y = torch.randn(8, 8 * 32), torch.arange(8) % 3
    torch.manual_seed(1)
    plain, rec, kl = vae_loss(vae, x, y, beta=1.0)
    torch.manual_seed(1)
    floored, rec_f, kl_f = vae_loss(vae, x, y, beta=1.0, free_bits=1e6)
    assert torch.allclose(kl, kl_f) and torch.allclose(rec, rec_f)  # the reported terms are the true ones
    assert torch.isclose(floored, rec + 3 * 1e6)  # every channel below the floor costs the floor

    def grads(free_bits, beta):
        vae.zero_grad()
        torch.manual_seed(1)
        vae_loss(vae, x, y, beta=beta, free_bits=free_bits)[0].backward()
        return [p.grad.clone() for p in vae.fc_logvar.parameters()]
    # under the floor the KL pushes nothing: the gradients are the reconstruction's alone
    assert all(torch.allclose(a, b) for a, b in zip(grads(1e6, 1.0), grads(0.0, 0.0)))
    assert not all(torch.allclose(a, b) for a, b in zip(grads(0.0, 1.0), grads(0.0, 0.0)))


def test_sequence_latent_is_refused_where_there_is_no_time_axis():
    with pytest.raises(ValueError, match="sequence needs inner.architecture conv1d"):
        VAE(256, latent_dim=4, hidden=(8,), latent="sequence", latent_channels=2)
    with pytest.raises(ValueError, match="latent_channels"):
        VAE(8 * 32, architecture="conv1d", code_shape=(8, 32), conv_filters=(16,), latent="sequence")
    with pytest.raises(ValueError, match="'sequence' or 'global'"):
        VAE(8 * 32, architecture="conv1d", code_shape=(8, 32), conv_filters=(16,), latent="frames")


@pytest.mark.parametrize("how", ["kde", "full", "diagonal", "prior"])
def test_every_class_sampling_gives_latents_a_sequence_decoder_takes(how):
    torch.manual_seed(0)
    vae = sequence_vae(prior="class_mixture" if how == "prior" else "normal")
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((60, vae.latent_dim))
    y = np.repeat([0, 1, 2], 20)
    means, scales = class_scales(mu, y, 3, how, vae, rank=8)
    assert means.shape == (3, 24) and scales.shape == ((3, 24) if how in ("diagonal", "prior") else (3, 24, 8))
    model = AudioVAE(outer=None, inner=vae.eval(), mean=None, std=None, codec=None, length=0, length_mode="center",
                     labels=["a", "b", "c"], class_means=means, class_scales=scales, device=torch.device("cpu"),
                     class_points=mu.astype(np.float32) if how == "kde" else None,
                     class_point_labels=y if how == "kde" else None)
    z = model.sample("b", 5, seed=2, spread=0.4)
    assert z.shape == (5, 24) and np.isfinite(z).all()
    assert np.array_equal(z, model.sample("b", 5, seed=2, spread=0.4))
    assert vae.decode(torch.from_numpy(z)).shape == (5, 8 * 32)
