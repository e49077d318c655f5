"""Every statistic against an independent implementation (statsmodels, scipy, scikit-learn)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss
from statsmodels.stats.proportion import proportion_confint

from histostudy.statistics import (
    auc_delong,
    binomial_test,
    cohen_kappa,
    confusion,
    fleiss_kappa,
    fool_rates,
    headline,
    ordinal_score,
    proportion,
    reading_time,
    roc_points,
    summarise_reader,
)

CASES = [(0, 0), (0, 10), (10, 10), (1, 10), (7, 10), (55, 100), (3, 7), (120, 200), (1, 1)]


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize(
    ("method", "sm_method"), [("wilson", "wilson"), ("clopper-pearson", "beta")]
)
def test_intervals_match_statsmodels(k, n, method, sm_method):
    ours = proportion(k, n, method)
    if n == 0:
        assert np.isnan(ours.value) and (ours.low, ours.high) == (0.0, 1.0)
        return
    low, high = proportion_confint(k, n, alpha=0.05, method=sm_method)
    assert ours.low == pytest.approx(low, abs=1e-10) and ours.high == pytest.approx(high, abs=1e-10)
    assert ours.value == k / n and (ours.k, ours.n) == (k, n)


def test_bad_proportions_are_refused():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        proportion(5, 3)
    with pytest.raises(ValueError, match="wilson, clopper-pearson"):
        proportion(1, 3, "wald")


@pytest.mark.parametrize(("k", "n"), [(0, 1), (5, 10), (9, 10), (60, 100), (33, 51), (2, 30)])
def test_binomial_test_matches_scipy(k, n):
    assert binomial_test(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-9)
    assert binomial_test(k, n, 0.3) == pytest.approx(stats.binomtest(k, n, 0.3).pvalue, rel=1e-9)


def test_confusion_positive_is_synthetic():
    truth = ["synthetic", "synthetic", "real", "real", "real"]
    calls = ["synthetic", "real", "real", "synthetic", "real"]
    c = confusion(truth, calls)
    assert (c.tp, c.fn, c.tn, c.fp, c.n) == (1, 1, 2, 1, 5)


def test_ordinal_score_orders_call_and_confidence():
    order = [("real", 5), ("real", 4), ("real", 3), ("real", 2), ("real", 1),
             ("synthetic", 1), ("synthetic", 2), ("synthetic", 3), ("synthetic", 4),
             ("synthetic", 5)]  # fmt: skip
    assert [ordinal_score(*a) for a in order] == list(range(1, 11))
    assert ordinal_score("real", None) == 1 and ordinal_score("synthetic", None) == 10


def test_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(1, 11, 40), rng.integers(1, 9, 55)
    ours = auc_delong(pos, neg)
    labels = np.r_[np.ones(40), np.zeros(55)]
    assert ours.value == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]), abs=1e-12)


def test_hanley_mcneil_1982_five_category_ratings():
    """Table I of Hanley & McNeil (1982): AUC 0.893, standard error 0.032."""
    normal = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    abnormal = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    result = auc_delong(abnormal, normal)
    assert result.value == pytest.approx(0.893, abs=5e-4)
    assert result.se == pytest.approx(0.032, abs=0.003)
    assert result.low < 0.893 < result.high


def test_delong_se_matches_a_bootstrap():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1, 1, 80), rng.normal(0, 1, 90)
    boot = [auc_delong(rng.choice(pos, 80), rng.choice(neg, 90)).value for _ in range(2000)]
    assert auc_delong(pos, neg).se == pytest.approx(np.std(boot), rel=0.1)


def test_auc_without_one_class_is_nan():
    assert np.isnan(auc_delong([1, 2], []).value)


def test_placements_from_ranks_equal_the_pairwise_kernel():
    from histostudy.statistics import _placements

    rng = np.random.default_rng(4)
    pos, neg = rng.integers(1, 6, 37).astype(float), rng.integers(1, 5, 23).astype(float)
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = _placements(pos, neg)
    np.testing.assert_allclose(v10, psi.mean(1), atol=1e-12)
    np.testing.assert_allclose(v01, psi.mean(0), atol=1e-12)


def test_delong_memory_grows_with_the_cases_not_their_pairs():
    import tracemalloc

    rng = np.random.default_rng(5)
    pos, neg = rng.normal(1, 1, 8192), rng.normal(0, 1, 8192)
    tracemalloc.start()
    result = auc_delong(pos, neg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20  # an (m, n) kernel of floats would take 512 MiB
    assert result.value == pytest.approx(roc_auc_score(np.r_[np.ones(8192), np.zeros(8192)],
                                                       np.r_[pos, neg]))  # fmt: skip


def test_one_case_in_a_class_has_no_delong_variance():
    one = auc_delong([3.0], [1.0, 2.0, 4.0])
    assert one.value == pytest.approx(2 / 3) and np.isnan(one.se) and np.isnan(one.low)
    assert np.isnan(auc_delong([3.0, 5.0], [1.0]).high)


def test_a_perfect_auc_gets_an_exact_interval_not_a_zero_width_one():
    perfect = auc_delong([5, 6, 7, 8], [1, 2, 3, 4, 4, 2])
    assert (perfect.value, perfect.se, perfect.high) == (1.0, 0.0, 1.0)
    assert perfect.low == pytest.approx(0.025 ** (1 / 4))  # Clopper-Pearson, 4 of 4
    inverted = auc_delong([1, 2, 3, 4, 4, 2], [5, 6, 7, 8])
    assert inverted.low == 0.0 and inverted.high == pytest.approx(1 - 0.025 ** (1 / 4))


def test_roc_points_run_from_origin_to_corner():
    points = roc_points([3, 4, 5], [1, 2, 3])
    assert points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0)
    assert all(a <= b for a, b in itertools.pairwise(points))


def test_cohen_kappa_matches_scikit_learn():
    rng = np.random.default_rng(2)
    a = rng.choice(["real", "synthetic"], 60)
    b = np.where(rng.random(60) < 0.7, a, rng.choice(["real", "synthetic"], 60))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    with pytest.raises(ValueError, match="same"):
        cohen_kappa(["real"], [])
    assert np.isnan(cohen_kappa(["real"] * 3, ["real"] * 3))  # 0/0, not perfect agreement
    assert np.isnan(fleiss_kappa(np.array([[3, 0], [3, 0]])))


def test_fleiss_kappa_matches_statsmodels():
    rng = np.random.default_rng(3)
    synthetic_votes = rng.integers(0, 6, 40)  # 5 readers per case
    table = np.stack([5 - synthetic_votes, synthetic_votes], axis=1)
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss(table), abs=1e-12)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[1, 1], [2, 1]]))


def test_reading_time_trims_idle_outliers():
    times = [4.0, 5.0, 6.0, 5.5, 4.5, 6.5, 5.0, 3600.0]
    result = reading_time(times)
    assert result.trimmed == 1 and result.n == 7 and result.median == pytest.approx(5.0)
    assert result.q1 <= result.median <= result.q3
    assert reading_time([0.0, 0.0, 0.0, 12.0]).trimmed == 0  # under the 30 s floor


def test_headline_is_the_median_across_readers_with_range():
    h = headline([0.5, 0.55, 0.6, float("nan")])
    assert (h.n, h.median, h.low, h.high) == (3, 0.55, 0.5, 0.6)


def test_reader_summary_and_fool_rate():
    truth = ["synthetic"] * 4 + ["real"] * 4
    calls = ["synthetic", "synthetic", "real", "real", "real", "real", "real", "synthetic"]
    summary = summarise_reader(truth, calls, [5, 4, 2, 1, 5, 4, 3, 2], [3.0] * 8)
    assert summary.sensitivity.value == 0.5 and summary.specificity.value == 0.75
    assert summary.accuracy.k == 5 and summary.p_value == pytest.approx(
        stats.binomtest(5, 8).pvalue
    )
    # on the 1..10 scale the synthetic tiles score 10, 9, 4, 5 and the real ones 1, 2, 3, 7:
    # 14 of the 16 (synthetic, real) pairs are ordered right
    assert summary.auc.value == pytest.approx(14 / 16)
    rates = fool_rates(
        [1, 1, 2, 3, 3],
        ["synthetic", "synthetic", "real", "synthetic", "synthetic"],
        ["real", "synthetic", "real", "real", "real"],
    )
    assert rates == {1: 0.5, 3: 1.0}


def test_learning_trend_averages_each_readers_slope_and_tests_across_readers():
    from scipy.stats import linregress, ttest_1samp

    from histostudy.statistics import learning_trend

    rng = np.random.default_rng(6)
    sessions, slopes = [], []
    for _ in range(8):
        x = np.linspace(0, 1, 200)
        correct = rng.random(200) < 0.5 + 0.4 * x  # 50% at the start, 90% at the end
        sessions.append((x, correct))
        slopes.append(linregress(x, correct.astype(float)).slope)
    trend = learning_trend(sessions)
    assert trend.readers == 8 and trend.slope == pytest.approx(np.mean(slopes))
    assert trend.p == pytest.approx(ttest_1samp(slopes, 0).pvalue)
    assert trend.low < 0.4 < trend.high and trend.p < 0.001
    flat = learning_trend([(np.linspace(0, 1, 200), rng.random(200) < 0.7) for _ in range(8)])
    assert flat.low < 0 < flat.high
    assert learning_trend(sessions[:1]) is None
