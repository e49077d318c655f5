"""FID and KID against closed forms and a direct implementation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from generation.evaluation.metrics import (
    Moments,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)


def gaussian_moments(mean, cov) -> Moments:
    return Moments(np.asarray(mean, float), np.asarray(cov, float), 10_000)


def test_identical_sets_have_zero_distance():
    rng = np.random.default_rng(0)
    m = Moments.of(rng.normal(size=(500, 16)))
    assert frechet_distance(m, m) == pytest.approx(0.0, abs=1e-9)


def test_translation_gives_the_squared_shift():
    cov = np.diag([1.0, 2.0, 3.0])
    shift = np.array([0.5, -1.0, 2.0])
    d = frechet_distance(gaussian_moments(np.zeros(3), cov), gaussian_moments(shift, cov))
    assert d == pytest.approx(float(shift @ shift), rel=1e-6)


def test_diagonal_covariances_match_the_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    d = frechet_distance(gaussian_moments(np.zeros(3), np.diag(a)),
                         gaussian_moments(np.zeros(3), np.diag(b)))  # fmt: skip
    assert d == pytest.approx(float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum()), rel=1e-6)


def test_rotated_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    s1 = q @ np.diag([1, 2, 3, 4, 5.0]) @ q.T
    s2 = np.diag([2, 1, 4, 3, 6.0])
    expected = np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    d = frechet_distance(gaussian_moments(np.zeros(5), s1), gaussian_moments(np.zeros(5), s2))
    assert d == pytest.approx(expected, rel=1e-6)


def test_singular_covariances_stay_real_and_non_negative():
    rng = np.random.default_rng(2)
    a, b = Moments.of(rng.normal(size=(20, 64))), Moments.of(rng.normal(size=(20, 64)) + 0.1)
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d > 0


def test_kid_is_unbiased_near_zero_for_one_distribution_and_seeded():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 32)), rng.normal(size=(400, 32))
    same = kernel_inception_distance(x, y, subsets=50, subset_size=200, seed=7)
    assert abs(same.mean) < 3 * same.std / np.sqrt(50) + 1e-3
    far = kernel_inception_distance(x, y + 1.0, subsets=50, subset_size=200, seed=7)
    assert far.mean > 10 * abs(same.mean)
    assert kernel_inception_distance(x, y, 5, 100, seed=1) == kernel_inception_distance(
        x, y, 5, 100, seed=1
    )


def test_kid_matches_a_direct_mmd_on_one_subset():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 8)), rng.normal(0.5, 1, size=(30, 8))
    k = lambda a, b: (a @ b.T / 8 + 1) ** 3  # noqa: E731
    m = 30
    within_x = (k(x, x).sum() - np.trace(k(x, x))) / (m * (m - 1))
    within_y = (k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
    direct = within_x + within_y - 2 * k(x, y).mean()
    ours = kernel_inception_distance(x, y, subsets=1, subset_size=30, seed=0)
    assert ours.mean == pytest.approx(direct, rel=1e-9)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="N >= 2"):
        Moments.of(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))


@pytest.mark.parametrize(("n_a", "n_b", "dim"), [(20, 30, 64), (40, 25, 64), (80, 90, 16)])
def test_the_low_rank_route_equals_the_covariance_route(n_a, n_b, dim):
    rng = np.random.default_rng(n_a)
    a = rng.normal(size=(n_a, dim))
    b = rng.normal(0.3, 1.2, size=(n_b, dim)) @ rng.normal(size=(dim, dim)) / np.sqrt(dim)
    expected = frechet_distance(Moments.of(a), Moments.of(b))
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)


def brute_precision_recall(real, fake, k):
    def radius(x, i):
        d = sorted(np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if j != i)
        return d[k - 1]

    def covered(p, x):
        return any(np.linalg.norm(p - x[j]) <= radius(x, j) for j in range(len(x)))

    return (np.mean([covered(f, real) for f in fake]), np.mean([covered(r, fake) for r in real]))


def test_precision_recall_matches_a_brute_force_count():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(40, 6)), rng.normal(0.7, 0.8, size=(35, 6))
    ours = precision_recall(real, fake, k=3)
    assert (ours.precision, ours.recall) == pytest.approx(brute_precision_recall(real, fake, 3))


def test_precision_recall_extremes_and_mode_collapse():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(200, 8))
    same = precision_recall(real, real.copy())
    assert (same.precision, same.recall) == (1.0, 1.0)
    far = precision_recall(real, rng.normal(50, 1, size=(200, 8)))
    assert (far.precision, far.recall) == (0.0, 0.0)
    collapsed = precision_recall(real, real[:1] + rng.normal(0, 0.01, size=(200, 8)))
    assert collapsed.precision > 0.9 and collapsed.recall < 0.1
    with pytest.raises(ValueError, match="needs more than 3"):
        precision_recall(real[:3], real)
