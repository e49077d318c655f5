"""Sample size and power for a one-modality equivalence study, from OR variance components.

With J readers each reading the same K cases, the reader-averaged figure of merit has
variance (var_R + Var - Cov2) / J + Cov2 (Obuchowski-Rockette), where Var and Cov2 are
case-sampling (co)variances and so scale as 1/K: components estimated on K0 cases become
Var * K0 / K at K cases. The analysis (histostudy.mrmc) estimates that variance by
(MS_R + J Cov2) / J with Hillis's degrees of freedom; planning uses their expected values.
Equivalence is two one-sided tests at `alpha` that the figure lies within `margin` of `null`;
its power, for a true value `true`, is (normal approximation, t quantile at the expected df)

    Phi((null + margin - true) / SE - t) - Phi((null - margin - true) / SE + t).

bench/mrmc_power.py checks this formula against simulated studies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from histostudy.mrmc.data import MrmcError


@dataclass(frozen=True)
class Planning:
    """One-modality OR components at `cases` cases: reader variance (treatment-by-reader
    included), error variance and Cov2 (two readers, same case sample)."""

    var_r: float
    var_e: float
    cov2: float
    cases: int
    source: str  # where they come from, for the panel

    def at(self, cases: int) -> tuple[float, float]:
        """Var and Cov2 at another number of cases."""
        scale = self.cases / cases
        return self.var_e * scale, self.cov2 * scale


def hanley_mcneil_variance(auc: float, positives: int, negatives: int) -> float:
    """The variance of an empirical AUC (Hanley & McNeil 1982, exponential approximation)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    return (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
            + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)  # fmt: skip


# Defaults for a visual Turing test before any pilot: an AUC near 0.5 with half the cases
# synthetic (Hanley & McNeil's variance at 100 cases), and the reader variance and Cov2/Var
# correlation of the Van Dyke study as OR-DBM MRMC reports them (0.00153500; 0.42886683).
DEFAULT = Planning(
    var_r=0.0015350,
    var_e=hanley_mcneil_variance(0.5, 50, 50),
    cov2=0.42886683 * hanley_mcneil_variance(0.5, 50, 50),
    cases=100,
    source="defaults: AUC 0.5 (Hanley & McNeil), reader variance and Cov2/Var of Van Dyke et al.",
)


@dataclass(frozen=True)
class Power:
    readers: int
    cases: int
    se: float
    df: float
    power: float


def equivalence_power(
    planning: Planning,
    readers: int,
    cases: int,
    margin: float = 0.10,
    alpha: float = 0.05,
    true: float = 0.5,
    null: float = 0.5,
) -> Power:
    """The power of the TOST equivalence test with `readers` x `cases` (all readers read all
    cases) when the reader-averaged figure is `true`."""
    if readers < 2 or cases < 2:
        raise MrmcError("planning needs at least two readers and two cases")
    if margin <= 0 or not 0 < alpha < 0.5:
        raise MrmcError("the margin must be positive and alpha in (0, 0.5)")
    var_e, cov2 = planning.at(cases)
    # estimates of variances can come out negative (a pilot whose readers agree more than
    # chance would have it); planning with a negative one would promise power that is not
    # there, so both count as 0
    var_r, cov2 = max(planning.var_r, 0.0), max(cov2, 0.0)
    ms_r = max(var_r + var_e - cov2, 1e-12)  # E[MS_R], one modality
    denominator = ms_r + readers * cov2
    se = math.sqrt(denominator / readers)
    df = denominator**2 / (ms_r**2 / (readers - 1))
    t = float(stats.t.ppf(1 - alpha, df))
    upper = stats.norm.cdf((null + margin - true) / se - t)
    lower = stats.norm.cdf((null - margin - true) / se + t)
    return Power(readers, cases, se, df, float(max(0.0, upper - lower)))


READER_COUNTS = (3, 4, 5, 6, 8, 10, 12, 15, 20)


def smallest_study(
    planning: Planning,
    power: float = 0.8,
    margin: float = 0.10,
    alpha: float = 0.05,
    true: float = 0.5,
    readers: tuple[int, ...] = READER_COUNTS,
    max_cases: int = 5000,
) -> list[Power]:
    """For each reader count, the fewest cases (a multiple of 10) that reach `power`; reader
    counts that cannot reach it with max_cases are left out (the reader variance alone keeps
    the standard error above what the margin allows). Power grows with the cases, so each is
    a bisection."""
    found = []
    for j in readers:

        def at(k: int, j: int = j) -> Power:
            return equivalence_power(planning, j, 10 * k, margin, alpha, true)

        low, high = 1, max_cases // 10
        if at(high).power < power:
            continue
        while low < high:  # the smallest k with enough power lies in [low, high]
            middle = (low + high) // 2
            if at(middle).power >= power:
                high = middle
            else:
                low = middle + 1
        found.append(at(low))
    return found
