"""The time-limited design, pure: the exposure staircase, the psychometric curve and the
threshold exposure with its bootstrap interval. No Django here.

HYPE (Zhou et al., NeurIPS 2019) shows each tile for a fixed time, then a mask, and asks real
or synthetic; HYPE_time finds per reader the exposure at which they become reliable. Here:
- a 1-up-2-down staircase over a ladder of exposures (Levitt 1971): two right answers in a row
  at one exposure make the next one shorter, a wrong one makes it longer, so a reader's
  exposures settle where they are right about 71% of the time. The next exposure is a pure
  function of the answers so far, so a resumed or audited session gives the same one;
- the psychometric curve p(x) = 0.5 + 0.5 / (1 + exp(-(ln x - ln T) / w)): chance (0.5) at
  very short exposures, 1 at long ones, 0.75 at the threshold T. Fitted by maximum likelihood
  per reader or pooled;
- the threshold's interval by a bootstrap over readers and their trials.

This is the second pure part of issue 20: no study offers the timed design yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

LADDER = (100, 150, 250, 400, 600, 1000, 1500, 2500, 4000)  # milliseconds


class FitError(ValueError):
    """The answers cannot pin a psychometric curve down; the message says why."""


def next_exposure(answers: Sequence[tuple[int, bool]], ladder: Sequence[int] = LADDER,
                  start: int = 1000) -> int:  # fmt: skip
    """The exposure (ms, on the ladder) for the next trial, from the (exposure, right)
    answers so far in order: 1-up-2-down, starting at `start`."""
    if start not in ladder:
        raise ValueError(f"start {start} ms is not on the ladder {tuple(ladder)}")
    level, streak = list(ladder).index(start), 0
    for exposure, right in answers:
        if exposure != ladder[level]:
            raise ValueError(f"answer at {exposure} ms where the staircase asked {ladder[level]}")
        if not right:
            level, streak = min(level + 1, len(ladder) - 1), 0
        elif streak == 1:
            level, streak = max(level - 1, 0), 0
        else:
            streak = 1
    return ladder[level]


def curve(exposure: np.ndarray | float, threshold: float, width: float) -> np.ndarray:
    """P(right) at an exposure (ms): 0.5 + 0.5 * logistic((ln x - ln T) / w)."""
    z = (np.log(exposure) - math.log(threshold)) / width
    return 0.5 + 0.5 / (1 + np.exp(-z))


@dataclass(frozen=True)
class Fit:
    threshold: float  # ms at which the reader is right 75% of the time
    width: float  # on the ln-exposure scale: larger is a shallower curve
    trials: int


def fit(exposures: Sequence[float], right: Sequence[bool]) -> Fit:
    """Maximum likelihood psychometric curve; FitError without answers both right and wrong
    or at fewer than two exposures."""
    x = np.asarray(exposures, float)
    y = np.asarray(right, float)
    if len(x) == 0 or len(np.unique(x)) < 2:
        raise FitError("a psychometric curve needs answers at two exposures at least")
    if y.all() or not y.any():
        raise FitError("a psychometric curve needs right and wrong answers")
    lx = np.log(x)

    def nll(theta: np.ndarray) -> float:
        p = curve(x, math.exp(theta[0]), math.exp(theta[1]))
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum())

    start = np.array([float(np.median(lx)), math.log(0.5)])
    found = optimize.minimize(nll, start, method="Nelder-Mead",
                              options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})  # fmt: skip
    log_t, log_w = found.x
    # a threshold far outside the exposures shown is not measured, only extrapolated
    log_t = float(np.clip(log_t, lx.min() - 3, lx.max() + 3))
    return Fit(math.exp(log_t), math.exp(float(np.clip(log_w, -5, 3))), len(x))


@dataclass(frozen=True)
class Threshold:
    estimate: float  # ms, the pooled fit
    low: float  # the bootstrap percentile interval
    high: float
    replicates: int


def pooled_threshold(
    answers: dict[str, Sequence[tuple[float, bool]]],
    replicates: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> Threshold:
    """The pooled threshold of the readers' (exposure, right) answers, with a percentile
    interval from a two-stage bootstrap: readers drawn with replacement, then each drawn
    reader's trials with replacement (readers and cases random)."""
    readers = sorted(answers)
    if not readers:
        raise FitError("no answers")
    every = [a for r in readers for a in answers[r]]
    estimate = fit([e for e, _ in every], [ok for _, ok in every]).threshold
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(replicates):
        sample = []
        for j in rng.integers(0, len(readers), len(readers)):
            mine = answers[readers[j]]
            sample += [mine[k] for k in rng.integers(0, len(mine), len(mine))]
        try:
            found.append(fit([e for e, _ in sample], [ok for _, ok in sample]).threshold)
        except FitError:
            continue  # a resample with every answer right (or wrong) pins nothing down
    if len(found) < replicates // 2:
        raise FitError("too few bootstrap resamples could be fitted")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.log(found), [tail, 100 - tail])
    return Threshold(estimate, math.exp(low), math.exp(high), len(found))
