"""The generation measures on sets whose answer is known: copies, the test set itself, noise."""
from __future__ import annotations

import numpy as np
import pytest

from audiovae.evaluation import novelty


def clusters(n_per: int, seed: int, shift: float = 0.0, dims: int = 8, labels: int = 3):
    """Points around one centre per label (centres fixed, draws seeded)."""
    centres = np.random.default_rng(123).normal(0, 5, (labels, dims))
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(labels), n_per)
    return centres[y] + rng.normal(0, 1, (len(y), dims)) + shift, y


def test_nearest_distances_match_a_brute_force_and_skip_self():
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(700, 5)), rng.normal(size=(90, 5))
    brute = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1))
    assert np.allclose(novelty.nearest_distances(q, r), brute.min(1))
    assert np.allclose(novelty.nearest_distances(q, r, k=3), np.sort(brute, 1)[:, 2])
    own = np.sqrt(((r[:, None] - r[None]) ** 2).sum(-1)) + np.diag(np.full(len(r), np.inf))
    assert np.allclose(novelty.nearest_distances(r, r, skip_self=True), own.min(1))
    with pytest.raises(ValueError, match="nearest"):
        novelty.nearest_distances(q, r[:1], skip_self=True)


def test_novelty_is_zero_for_copies_one_for_unheard_examples_and_large_off_the_data():
    train, y_train = clusters(100, seed=1)
    test, y_test = clusters(40, seed=2)
    copies = train[::5]
    assert novelty.novelty_ratio(copies, y_train[::5], train, y_train, test, y_test) == 0.0
    assert novelty.novelty_ratio(test, y_test, train, y_train, test, y_test) == pytest.approx(1.0)
    fresh, y_fresh = clusters(40, seed=3)  # new draws of the same distribution: about as new as the test set
    assert 0.8 < novelty.novelty_ratio(fresh, y_fresh, train, y_train, test, y_test) < 1.25
    noise = np.random.default_rng(4).normal(0, 20, test.shape)
    assert novelty.novelty_ratio(noise, y_test, train, y_train, test, y_test) > 3
    # the label matters: test examples scored against another label's training set are far
    assert novelty.novelty_ratio(test, (y_test + 1) % 3, train, y_train, test, y_test) > 3


def test_coverage_is_full_for_the_same_points_and_empty_far_away():
    real, _ = clusters(60, seed=5)
    assert novelty.coverage(real, real) == 1.0
    assert novelty.coverage(real, real + 100) == 0.0
    one_label = real[:60]  # generations of a single label cover about a third of three labels
    assert novelty.coverage(real, one_label) == pytest.approx(1 / 3, abs=0.05)


def test_ndb_finds_a_collapsed_generator_and_not_a_faithful_one():
    train, _ = clusters(300, seed=6)
    real, _ = clusters(200, seed=7)
    faithful, _ = clusters(200, seed=8)
    collapsed = faithful[:200 // 3]  # one label only: mode collapse
    n_faithful, _ = novelty.ndb(train, real, faithful, bins=10)
    n_collapsed, share = novelty.ndb(train, real, collapsed, bins=10)
    assert n_faithful <= 2 and n_collapsed >= 6 and share == n_collapsed / 10


def test_kid_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    real, _ = clusters(200, seed=9)
    same, _ = clusters(200, seed=10)
    value, se = novelty.kid(real, same)
    assert abs(value) < 3 * se
    shifted_value, shifted_se = novelty.kid(real, same + 1.0)
    assert shifted_value > 3 * shifted_se and shifted_value > value
    # one block: the plain unbiased estimate, checked against its definition
    x, y = real[:12], same[:12]
    k = lambda a, b: (a @ b / x.shape[1] + 1) ** 3  # noqa: E731
    m = len(x)
    expected = (sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
                + sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
                - 2 * np.mean([k(a, b) for a in x for b in y]))
    assert novelty.kid(x, y, blocks=1)[0] == pytest.approx(expected)
