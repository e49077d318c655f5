"""Reader-study statistics: pure functions over arrays (no Django).

Conventions (DESIGN.md): positive = synthetic. Sensitivity = synthetic tiles called
synthetic; specificity = real tiles called real. Every proportion carries a 95% interval
(Wilson by default, Clopper-Pearson on request) and its n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

POSITIVE = "synthetic"
NEGATIVE = "real"


@dataclass(frozen=True)
class Proportion:
    k: int
    n: int
    value: float  # nan when n == 0
    low: float
    high: float
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval; (0, 1) when there is no data."""
    if n == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval from beta quantiles."""
    if n == 0:
        return 0.0, 1.0
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


INTERVALS = {"wilson": wilson_interval, "clopper-pearson": clopper_pearson_interval}


def proportion(k: int, n: int, method: str = "wilson", confidence: float = 0.95) -> Proportion:
    if method not in INTERVALS:
        raise ValueError(f"interval method must be one of {', '.join(INTERVALS)}, got {method!r}")
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    low, high = INTERVALS[method](k, n, confidence)
    return Proportion(int(k), int(n), k / n if n else float("nan"), float(low), float(high), method)


def binomial_test(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test: the probability of outcomes no likelier than k."""
    if n == 0:
        return 1.0
    pmf = stats.binom.pmf(np.arange(n + 1), n, p)
    observed = pmf[k]
    return float(min(1.0, pmf[pmf <= observed * (1 + 1e-7)].sum()))


@dataclass(frozen=True)
class Confusion:
    tp: int  # synthetic called synthetic
    fp: int  # real called synthetic
    tn: int  # real called real
    fn: int  # synthetic called real

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


def confusion(truth: Sequence[str], calls: Sequence[str]) -> Confusion:
    t = np.asarray(truth) == POSITIVE
    c = np.asarray(calls) == POSITIVE
    return Confusion(
        int(np.sum(t & c)), int(np.sum(~t & c)), int(np.sum(~t & ~c)), int(np.sum(t & ~c))
    )


def ordinal_score(call: str, confidence: int | None) -> int:
    """One score per answer, higher = more sure it is synthetic: 1..10 (call + confidence).

    real 5 -> 1, real 1 -> 5, synthetic 1 -> 6, synthetic 5 -> 10. Without a confidence
    (call-only studies) the two calls are 1 and 10.
    """
    if confidence is None:
        return 10 if call == POSITIVE else 1
    return 5 + confidence if call == POSITIVE else 6 - confidence


@dataclass(frozen=True)
class Auc:
    value: float
    se: float
    low: float
    high: float
    n_positive: int
    n_negative: int

    def as_dict(self) -> dict:
        return asdict(self)


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: V10 per positive, V01 per negative (ties count 1/2),
    from midranks (Sun and Xu 2014) in O((m + n) log(m + n)) time and linear memory: a
    positive's midrank in both samples less its midrank among positives counts the negatives
    below it (ties one half)."""
    m, n = len(pos), len(neg)
    both = stats.rankdata(np.concatenate([pos, neg]))
    v10 = (both[:m] - stats.rankdata(pos)) / n
    v01 = 1.0 - (both[m:] - stats.rankdata(neg)) / m
    return v10, v01


def auc_delong(positive: Sequence[float], negative: Sequence[float], confidence: float = 0.95
               ) -> Auc:  # fmt: skip
    """Empirical ROC AUC (Mann-Whitney) with DeLong's standard error and a normal interval
    clipped to [0, 1]. The AUC is nan when a class is empty; the standard error and interval
    are nan with one case in a class (DeLong's variance needs two of each).

    At an AUC of exactly 0 or 1 DeLong's variance is 0, and a zero-width interval would claim
    certainty. There the interval is instead the exact (Clopper-Pearson) interval of
    min(m, n) successes (AUC 1) or failures (AUC 0) in min(m, n) trials: the smaller class,
    every one of whose cases is ranked right (or wrong) against the whole other class."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    m, n = len(pos), len(neg)
    nan = float("nan")
    if m == 0 or n == 0:
        return Auc(nan, nan, nan, nan, m, n)
    v10, v01 = _placements(pos, neg)
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return Auc(auc, nan, nan, nan, m, n)
    se = float(np.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n))
    if auc in (0.0, 1.0):
        k = min(m, n)
        low, high = clopper_pearson_interval(int(auc) * k, k, confidence)
        return Auc(auc, se, low, high, m, n)
    z = stats.norm.ppf(0.5 + confidence / 2)
    return Auc(auc, se, float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se)), m, n)


def roc_points(positive: Sequence[float], negative: Sequence[float]) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at every threshold, from (0, 0) to (1, 1)."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    points = [(0.0, 0.0)]
    for threshold in np.unique(np.concatenate([pos, neg]))[::-1]:
        fpr = float(np.mean(neg >= threshold)) if len(neg) else 0.0
        tpr = float(np.mean(pos >= threshold)) if len(pos) else 0.0
        points.append((fpr, tpr))
    return points


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two readers over the same cases."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError("two readers need the same, non-empty list of cases")
    categories = np.union1d(a, b)
    observed = float(np.mean(a == b))
    expected = float(sum(np.mean(a == c) * np.mean(b == c) for c in categories))
    # every answer in one category: agreement by chance is certain and kappa is 0/0
    return float("nan") if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from a (cases, categories) table of how many readers chose each category.

    Every case must have the same number of ratings (readers).
    """
    counts = np.asarray(counts, float)
    raters = counts.sum(axis=1)
    if len(counts) == 0 or not np.all(raters == raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of readers for every case")
    r = raters[0]
    p_case = ((counts * counts).sum(axis=1) - r) / (r * (r - 1))
    p_bar = p_case.mean()
    p_category = counts.sum(axis=0) / counts.sum()
    p_expected = float((p_category**2).sum())
    if p_expected == 1:
        return float("nan")  # one category only: undefined, not perfect agreement
    return float((p_bar - p_expected) / (1 - p_expected))


IDLE_FLOOR = 30.0  # seconds; no answer faster than this is treated as idle


@dataclass(frozen=True)
class ReadingTime:
    n: int
    median: float
    q1: float
    q3: float
    trimmed: int  # answers above the idle fence, left out


def reading_time(seconds: Sequence[float]) -> ReadingTime:
    """Median and IQR of reading times, after leaving out idle outliers.

    Idle = above Tukey's far-out fence (Q3 + 3 IQR) of the reader's own times, and above
    IDLE_FLOOR seconds: a coffee break between serving and answering is not reading, but a
    slow look at a hard tile is.
    """
    values = np.asarray(seconds, float)
    if len(values) == 0:
        return ReadingTime(0, float("nan"), float("nan"), float("nan"), 0)
    q1, q3 = np.percentile(values, [25, 75])
    kept = values[values <= max(q3 + 3 * (q3 - q1), IDLE_FLOOR)]
    q1, median, q3 = np.percentile(kept, [25, 50, 75])
    return ReadingTime(len(kept), float(median), float(q1), float(q3), len(values) - len(kept))


@dataclass(frozen=True)
class Headline:
    n: int
    median: float
    low: float
    high: float


def headline(values: Sequence[float]) -> Headline:
    """The paper's study-level summary: median across readers, with the range."""
    finite = np.asarray([v for v in values if np.isfinite(v)], float)
    if len(finite) == 0:
        return Headline(0, float("nan"), float("nan"), float("nan"))
    return Headline(len(finite), float(np.median(finite)), float(finite.min()), float(finite.max()))


@dataclass(frozen=True)
class ReaderSummary:
    """Everything the per-reader table shows."""

    confusion: Confusion
    sensitivity: Proportion
    specificity: Proportion
    accuracy: Proportion
    p_value: float  # exact binomial test of accuracy against 0.5
    auc: Auc
    time: ReadingTime

    def as_dict(self) -> dict:
        return asdict(self)


def summarise_reader(
    truth: Sequence[str],
    calls: Sequence[str],
    confidences: Sequence[int | None],
    seconds: Sequence[float],
    method: str = "wilson",
) -> ReaderSummary:
    c = confusion(truth, calls)
    scores = np.array([ordinal_score(k, x) for k, x in zip(calls, confidences, strict=True)])
    is_positive = np.asarray(truth) == POSITIVE
    return ReaderSummary(
        confusion=c,
        sensitivity=proportion(c.tp, c.tp + c.fn, method),
        specificity=proportion(c.tn, c.tn + c.fp, method),
        accuracy=proportion(c.tp + c.tn, c.n, method),
        p_value=binomial_test(c.tp + c.tn, c.n),
        auc=auc_delong(scores[is_positive], scores[~is_positive]),
        time=reading_time(seconds),
    )


def fool_rates(case_ids: Sequence[int], truth: Sequence[str], calls: Sequence[str]
               ) -> dict[int, float]:  # fmt: skip
    """Per synthetic case: the share of its readers who called it real."""
    fooled: dict[int, list[bool]] = {}
    for case, t, c in zip(case_ids, truth, calls, strict=True):
        if t == POSITIVE:
            fooled.setdefault(int(case), []).append(c == NEGATIVE)
    return {case: float(np.mean(v)) for case, v in fooled.items()}


@dataclass(frozen=True)
class Trend:
    """Change in accuracy from the first to the last trial of a session, averaged over readers:
    each reader's least-squares slope of correct (0/1) on position (0 = first trial, 1 = last),
    then a t test and interval across readers, so readers are a random sample."""

    slope: float  # mean over readers; +0.10 = ten points more accurate at the end than the start
    low: float
    high: float
    p: float
    readers: int


def learning_trend(sessions: Sequence[tuple[Sequence[float], Sequence[bool]]],
                   confidence: float = 0.95) -> Trend | None:  # fmt: skip
    """sessions: per reader (position in [0, 1], answer correct). None with fewer than two
    readers who answered at two positions or more."""
    slopes = []
    for positions, correct in sessions:
        x, y = np.asarray(positions, float), np.asarray(correct, float)
        if len(x) >= 2 and np.ptp(x) > 0:
            slopes.append(float(np.polyfit(x, y, 1)[0]))
    if len(slopes) < 2:
        return None
    mean = float(np.mean(slopes))
    se = float(np.std(slopes, ddof=1) / np.sqrt(len(slopes)))
    df = len(slopes) - 1
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    p = float(2 * stats.t.sf(abs(mean) / se, df)) if se > 0 else float(mean == 0)
    return Trend(mean, mean - q * se, mean + q * se, p, len(slopes))
