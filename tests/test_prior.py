"""The learned prior: fitted per label on latents, sampled as fitted, as new as unheard examples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import base_params, typed

from audiovae.evaluation import novelty
from audiovae.models import prior


def two_moons_per_label(n: int, seed: int, labels: int = 3, dims: int = 12):
    """Per label, points on a curved, low-dimensional band (not a Gaussian: a mixture must bend)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(labels, 2, dims))
    y = np.repeat(np.arange(labels), n)
    t = rng.uniform(0, np.pi, len(y))
    plane = np.stack([np.cos(t), np.sin(t)], 1) * 4 + rng.normal(0, 0.3, (len(y), 2))
    x = np.einsum("nk,nkd->nd", plane, basis[y]) + 6 * np.eye(labels, dims)[y] + rng.normal(0, 0.05, (len(y), dims))
    return x.astype(np.float32), y


def cfg(**changes):
    return typed(base_params()).prior.model_copy(update={"family": "gmm", **changes})


def test_a_fitted_prior_has_components_per_label_whose_weights_sum_to_one():
    x, y = two_moons_per_label(200, seed=0)
    fitted = prior.fit(cfg(components=6, min_per_component=20, pca_dims=4), x, y, 3, seed=0)
    mix = fitted.mixture
    assert sorted(set(mix.labels)) == [0, 1, 2] and len(mix.centres) == 18
    for label in range(3):
        assert mix.weights[mix.labels == label].sum() == pytest.approx(1.0, abs=1e-5)
    assert mix.scales.shape == (18, 4, 4) and mix.bases.shape == (3, 12, 4) and 0.9 < fitted.subspace_variance <= 1.0
    # a basis has orthonormal columns, so a component's factor keeps its scale's size
    assert np.allclose(mix.bases[1].T @ mix.bases[1], np.eye(4), atol=1e-5)
    assert np.linalg.norm(mix.factor(5)) == pytest.approx(np.linalg.norm(mix.scales[5]), rel=1e-4)
    # few latents: fewer components (min_per_component), never more than the label has
    few = prior.fit(cfg(components=6, min_per_component=20, pca_dims=4), x[:50], y[:50], 3, seed=0)
    assert list(few.mixture.labels) == [0, 0]


def test_sampling_is_seeded_follows_the_temperature_and_stays_with_its_label():
    x, y = two_moons_per_label(200, seed=1)
    mix = prior.fit(cfg(components=4, pca_dims=4), x, y, 3, seed=0).mixture
    a = mix.sample(1, 50, np.random.default_rng(7))
    assert np.array_equal(a, mix.sample(1, 50, np.random.default_rng(7)))
    at_zero = mix.sample(1, 50, np.random.default_rng(7), temperature=0.0)
    assert all(any(np.allclose(z, c) for c in mix.centres[mix.labels == 1]) for z in at_zero)
    centre_of = x[y == 1].mean(0)
    assert np.linalg.norm(a - centre_of, axis=1).mean() < np.linalg.norm(a - x[y == 0].mean(0), axis=1).mean()
    # the same seed picks the same components and draws: the temperature scales the offsets only
    wide = mix.sample(1, 50, np.random.default_rng(7), temperature=2.0)
    narrow = mix.sample(1, 50, np.random.default_rng(7), temperature=0.5)
    assert np.allclose(wide - at_zero, 4 * (narrow - at_zero), atol=1e-4)
    assert np.abs(wide - at_zero).sum() > 0
    with pytest.raises(ValueError, match="no component"):
        mix.sample(5, 1, np.random.default_rng(0))


def test_prior_samples_are_as_new_as_unheard_examples_where_replayed_takes_are_not():
    """On data whose answer is known: draws of the fitted prior sit about as far from the training
    set as fresh test draws do (novelty ~1), while the training points themselves score 0."""
    train, y_train = two_moons_per_label(150, seed=2)
    test, y_test = two_moons_per_label(60, seed=3)
    fitted = prior.fit(cfg(components=8, min_per_component=10, pca_dims=4), train, y_train, 3, seed=0,
                       val_latents=test, val_labels=y_test)
    rng = np.random.default_rng(4)
    gen = np.concatenate([fitted.mixture.sample(c, 60, rng) for c in range(3)])
    y_gen = np.repeat(np.arange(3), 60)
    ratio = novelty.novelty_ratio(gen, y_gen, train, y_train, test, y_test)
    assert 0.7 < ratio < 1.5, ratio
    assert novelty.novelty_ratio(train[::3], y_train[::3], train, y_train, test, y_test) == 0.0
    assert np.isfinite(fitted.val_loglik) and fitted.val_loglik < fitted.train_loglik + 5


def test_validation_likelihood_scores_subspaces_of_any_size_on_one_scale():
    """The full-space likelihood (the subspace's mixture plus isotropic residual noise) prefers a
    subspace that holds the data's plane to one that cuts it, and does not reward extra dimensions
    of noise the way a likelihood in the subspace alone would."""
    train, y_train = two_moons_per_label(200, seed=5)
    val, y_val = two_moons_per_label(80, seed=6)
    score = {r: prior.fit(cfg(components=4, min_per_component=10, pca_dims=r), train, y_train, 3, seed=0,
                          val_latents=val, val_labels=y_val).val_loglik for r in (1, 2, 8)}
    assert score[2] > score[1] + 0.5
    assert score[8] < score[2] + 0.1


def test_generation_spread_auto_is_the_samplers_own_and_a_number_overrides_it():
    from audiovae.config.schema import generation_spread

    p = typed(base_params()).prior.model_copy(update={"temperature": 1.3, "kde_spread": 0.2})
    assert generation_spread("auto", p, learned=True) == 1.3
    assert generation_spread("auto", p, learned=False) == 0.2
    assert generation_spread(0.5, p, learned=True) == 0.5
    with pytest.raises(ValueError, match="no prior section"):
        generation_spread("auto", None, learned=True)


def test_the_kde_family_fits_nothing_and_generation_samples_as_the_inner_vae_does(trained, tmp_path):
    """``prior.family: kde``: the stage still caches every real recording's latent, writes a prior
    with no component, and the model generates around training latents as before the prior."""
    from dataclasses import replace

    from conftest import linked_project

    from audiovae.config.params import deep_merge
    from audiovae.inference.model import AudioVAE
    from audiovae.stages import train_prior

    root, params, *_ = trained
    learned = AudioVAE.from_project(root)
    assert learned.prior is not None  # the fixture's default family
    p = deep_merge(params, {"prior": {"family": "kde"}})
    inputs = ["data/features", "data/filtered", "data/encodings", "data/models/outer", "data/models/inner"]
    with linked_project(root, tmp_path, inputs) as project:
        result = train_prior.run(typed(p), project)
        assert len(result["mixture"].centres) == 0 and result["summary"]["family"] == "kde"
        index = pd.read_csv(project / "data" / "latents" / "index.csv")
        assert len(index) == len(result["latents"]) and set(index["split"]) == {"train", "val", "test"}
        model = AudioVAE.from_project(project)
        assert model.prior is None
        assert np.array_equal(model.sample("3", 4, seed=1, spread=0.1),
                              replace(learned, prior=None).sample("3", 4, seed=1, spread=0.1))
