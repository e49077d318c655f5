"""Equivalence: two one-sided tests (TOST) that a figure of merit lies within a margin of a
value fixed before the study, e.g. an AUC within 0.10 of 0.5."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from histostudy.mrmc.analysis import Estimate
from histostudy.mrmc.data import MrmcError

# --- equivalence ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) that a figure of merit lies within `margin` of `null`."""

    null: float
    margin: float
    alpha: float
    p: float  # the larger one-sided p-value
    equivalent: bool  # p < alpha: the (1 - 2 alpha) interval lies inside null +- margin
    ci_low: float  # that (1 - 2 alpha) interval
    ci_high: float


def equivalence(estimate: Estimate, null: float = 0.5, margin: float = 0.10,
                alpha: float = 0.05) -> Equivalence:  # fmt: skip
    """TOST of |theta - null| < margin for an estimate with its standard error and df."""
    if margin <= 0 or not 0 < alpha < 0.5:
        raise MrmcError("the equivalence margin must be positive and alpha in (0, 0.5)")
    if not estimate.se > 0:  # nan or 0: no variance to test against
        raise MrmcError(
            f"{estimate.name}: no variance across readers and cases (e.g. every reader scored "
            "every tile alike), so nothing can be said about new readers or cases"
        )
    dist = stats.t(estimate.df) if math.isfinite(estimate.df) else stats.norm()
    p_low = float(dist.sf((estimate.estimate - (null - margin)) / estimate.se))
    p_high = float(dist.cdf((estimate.estimate - (null + margin)) / estimate.se))
    q = float(dist.ppf(1 - alpha)) * estimate.se
    p = max(p_low, p_high)
    return Equivalence(null, margin, alpha, p, p < alpha, estimate.estimate - q,
                       estimate.estimate + q)  # fmt: skip
