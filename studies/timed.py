"""The time-limited design, pure: the exposure staircase, the psychometric curve and the
threshold exposure with its bootstrap interval. No Django here.

HYPE (Zhou et al., NeurIPS 2019) shows each tile for a fixed time, then a mask, and asks real
or synthetic; HYPE_time finds per reader the exposure at which they become reliable. Here:
- a 1-up-2-down staircase over a ladder of exposures (Levitt 1971): two right answers in a row
  at one exposure make the next one shorter, a wrong one makes it longer, so a reader's
  exposures settle where they are right about 71% of the time. The next exposure is a pure
  function of the answers so far, so a resumed or audited session gives the same one;
- the psychometric curve p(x) = 0.5 + (0.5 - lapse) / (1 + exp(-(ln x - ln T) / w)): chance
  (0.5) at very short exposures, 1 - lapse at long ones (a reader who sometimes errs however
  long they look; Wichmann and Hill 2001), midway at the threshold T. Fitted by maximum
  likelihood (bounded, so that no answers make it fail numerically) per reader or pooled; the
  lapse rate is fixed at 0 unless `max_lapse` lets it vary (a free lapse is not validated
  yet); a threshold outside the exposures shown is flagged as not measured;
- the threshold's interval by a two-stage bootstrap: readers with replacement, then each
  drawn reader's trials. bench/timed_threshold.py measures its coverage; drawing readers
  alone, each staircase kept whole (the trials of a staircase depend on each other), covered
  only 80% of 20 simulated studies of 8 readers, so the two-stage draw stays.

- HYPE's own summary beside the fit: HYPE_time averages the evaluators' staircase thresholds;
  here each reader's is the geometric mean of the exposures at the staircase's reversals after
  the first two (the textbook transformed up-down estimate, Levitt 1971), and the score their
  mean. A study at one fixed exposure reports HYPE's error rate at that exposure instead.

studies.models.timing serves the exposures; studies.timed_results reads a study's answers
into these functions for the dashboard and the exports.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

LADDER = (100, 150, 250, 400, 600, 1000, 1500, 2500, 4000)  # milliseconds


class FitError(ValueError):
    """The answers cannot pin a psychometric curve down; the message says why."""


def next_exposure(answers: Sequence[tuple[int, bool]], ladder: Sequence[int] = LADDER,
                  start: int = 1000, strict: bool = True) -> int:  # fmt: skip
    """The exposure (ms, on the ladder) for the next trial, from the (exposure, right)
    answers so far in order: 1-up-2-down, starting at `start`. An answer at another exposure
    than the staircase asked is an error; with strict=False the staircase continues from the
    exposure recorded instead (its nearest step on the ladder, the streak restarted)."""
    if start not in ladder:
        raise ValueError(f"start {start} ms is not on the ladder {tuple(ladder)}")
    level, streak = list(ladder).index(start), 0
    for exposure, right in answers:
        if exposure != ladder[level]:
            if strict:
                raise ValueError(
                    f"answer at {exposure} ms where the staircase asked {ladder[level]}"
                )
            # the nearest step on a log scale (the exposure itself where it is on the ladder)
            level = int(np.argmin(np.abs(np.log(ladder) - math.log(max(exposure, 1)))))
            streak = 0
        if not right:
            level, streak = min(level + 1, len(ladder) - 1), 0
        elif streak == 1:
            level, streak = max(level - 1, 0), 0
        else:
            streak = 1
    return ladder[level]


def curve(
    exposure: np.ndarray | float, threshold: float, width: float, lapse: float = 0.0
) -> np.ndarray:
    """P(right) at an exposure (ms): 0.5 + (0.5 - lapse) * logistic((ln x - ln T) / w)."""
    z = (np.log(exposure) - math.log(threshold)) / width
    return 0.5 + (0.5 - lapse) * special.expit(z)


@dataclass(frozen=True)
class Fit:
    threshold: float  # ms midway between chance and the top of the curve (75% without lapses)
    width: float  # on the ln-exposure scale: larger is a shallower curve
    lapse: float  # the curve's top is 1 - lapse
    trials: int
    measured: bool  # the threshold lies within the exposures shown (else extrapolated)


def fit(exposures: Sequence[float], right: Sequence[bool], max_lapse: float = 0.0) -> Fit:
    """Maximum likelihood psychometric curve; FitError without answers both right and wrong
    or at fewer than two exposures."""
    x = np.asarray(exposures, float)
    y = np.asarray(right, float)
    if len(x) == 0 or len(np.unique(x)) < 2:
        raise FitError("a psychometric curve needs answers at two exposures at least")
    if y.all() or not y.any():
        raise FitError("a psychometric curve needs right and wrong answers")
    lx = np.log(x)
    bounds = [(lx.min() - 3, lx.max() + 3), (-5.0, 3.0), (0.0, max_lapse)]
    # the likelihood is binomial at each exposure shown: counts, not trials (a bootstrap fits
    # hundreds of times), with its gradient
    levels, where = np.unique(lx, return_inverse=True)
    n = np.bincount(where).astype(float)
    k = np.bincount(where, weights=y)

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        width = math.exp(theta[1])
        z = (levels - theta[0]) / width
        s = special.expit(z)
        p = np.clip(0.5 + (0.5 - theta[2]) * s, 1e-9, 1 - 1e-9)
        value = -(k * np.log(p) + (n - k) * np.log1p(-p)).sum()
        d_p = -(k / p - (n - k) / (1 - p))
        d_z = d_p * (0.5 - theta[2]) * s * (1 - s)
        grad = np.array([(d_z * -1 / width).sum(), (d_z * -z).sum(), (d_p * -s).sum()])
        return float(value), grad

    best = None
    for log_w in (math.log(0.3), math.log(1.0)):  # two starts: a steep and a shallow curve
        start = np.array([float(np.median(lx)), log_w, max_lapse / 2])
        try:
            found = optimize.minimize(nll, start, jac=True, method="L-BFGS-B", bounds=bounds)
        except (ArithmeticError, ValueError) as exc:
            raise FitError(f"the fit failed: {exc}") from exc
        if np.isfinite(found.fun) and (best is None or found.fun < best.fun):
            best = found
    if best is None:
        raise FitError("the fit failed: no finite likelihood")
    log_t, log_w, lapse = (float(v) for v in best.x)
    measured = bool(lx.min() <= log_t <= lx.max())
    return Fit(math.exp(log_t), math.exp(log_w), lapse, len(x), measured)


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


@dataclass(frozen=True)
class ExposureAccuracy:
    exposure: int
    right: int
    n: int


def by_exposure(answers: Sequence[tuple[int, bool]]) -> list[ExposureAccuracy]:
    """Right answers of all trials at each exposure, shortest first."""
    counts: dict[int, list[int]] = {}
    for exposure, right in answers:
        tally = counts.setdefault(int(exposure), [0, 0])
        tally[0] += bool(right)
        tally[1] += 1
    return [ExposureAccuracy(e, k, n) for e, (k, n) in sorted(counts.items())]


def reversals(exposures: Sequence[int]) -> list[int]:
    """The exposures at which a staircase turned (went down after going up, or up after
    down), in order; steps that stay at one exposure do not count as a direction."""
    turned, direction = [], 0
    for before, after in itertools.pairwise(exposures):
        if after == before:
            continue
        step = 1 if after > before else -1
        if direction and step != direction:
            turned.append(before)
        direction = step
    return turned


def staircase_threshold(exposures: Sequence[int], skip: int = 2) -> float | None:
    """The reader's threshold as a transformed up-down staircase estimates it: the geometric
    mean exposure at its reversals after the first `skip` (the descent from the start is not
    part of the estimate). None with no reversal left."""
    kept = reversals(exposures)[skip:]
    if not kept:
        return None
    return math.exp(float(np.mean(np.log(kept))))


def simulate_reader(rng: np.random.Generator, threshold: float, width: float, trials: int,
                    start: int = 1000) -> list[tuple[int, bool]]:  # fmt: skip
    """A simulated reader with a known curve answering `trials` staircase trials: the
    (exposure, right) answers, for the coverage checks (bench/timed_threshold.py, tests)."""
    answers: list[tuple[int, bool]] = []
    for _ in range(trials):
        exposure = next_exposure(answers, start=start)
        answers.append((exposure, bool(rng.random() < curve(exposure, threshold, width))))
    return answers
