"""The timed design's pure parts: the 1-up-2-down staircase, the psychometric fit and the
bootstrap interval of the threshold exposure."""

from __future__ import annotations

import numpy as np
import pytest

from studies.timed import (
    LADDER,
    FitError,
    by_exposure,
    curve,
    fit,
    next_exposure,
    pooled_threshold,
    reversals,
    staircase_threshold,
)


def test_the_staircase_steps_down_after_two_right_and_up_after_one_wrong():
    answers, asked = [], []
    for right in (True, True, True, False, True, True, True, True, False, False):
        exposure = next_exposure(answers)
        asked.append(exposure)
        answers.append((exposure, right))
    assert asked == [1000, 1000, 600, 600, 1000, 1000, 600, 600, 400, 600]
    assert next_exposure(answers) == 1000
    with pytest.raises(ValueError, match="asked 1000"):
        next_exposure([(400, True)])
    # it never leaves the ladder
    assert next_exposure([(4000, False)] * 3, start=4000) == 4000
    down, exposure = [], 100
    for _ in range(4):
        down.append((exposure, True))
    assert next_exposure(down, start=100) == 100


def simulated_reader(rng, threshold, width, trials, ladder=LADDER):
    answers = []
    for _ in range(trials):
        exposure = next_exposure(answers, ladder)
        answers.append((exposure, bool(rng.random() < curve(exposure, threshold, width))))
    return answers


def test_a_staircase_reader_settles_near_71_percent_right():
    rng = np.random.default_rng(0)
    answers = simulated_reader(rng, 400, 0.4, 400)
    late = [ok for _, ok in answers[100:]]
    assert 0.62 < np.mean(late) < 0.80  # 1-up-2-down converges on 70.7%


def test_the_fit_is_the_maximum_likelihood_and_recovers_a_known_curve():
    rng = np.random.default_rng(1)
    x = rng.choice(LADDER, 6000)
    y = rng.random(6000) < curve(x, 400, 0.5)
    found = fit(x, y)
    assert found.threshold == pytest.approx(400, rel=0.08)
    assert found.width == pytest.approx(0.5, rel=0.15)

    def nll(t, w):
        p = curve(x, t, w)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum()

    best = nll(found.threshold, found.width)
    grid = [nll(t, w) for t in np.linspace(300, 520, 23) for w in np.linspace(0.3, 0.8, 26)]
    assert best <= min(grid) + 1e-6  # no point of a grid around it does better


def test_a_reader_at_chance_fits_without_error_and_is_flagged_as_not_measured():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        answers = [(e, bool(rng.random() < 0.5)) for e in rng.choice(LADDER, 60)]
        found = fit([e for e, _ in answers], [ok for _, ok in answers])
        assert np.isfinite(found.threshold) and found.lapse == 0
        free = fit([e for e, _ in answers], [ok for _, ok in answers], max_lapse=0.06)
        assert np.isfinite(free.threshold) and 0 <= free.lapse <= 0.06
    readers = {f"r{j}": simulated_reader(np.random.default_rng(j), 400, 0.4, 40) for j in range(3)}
    readers["chance"] = [(e, bool(k % 2)) for k, e in enumerate(np.random.default_rng(9).choice(
        LADDER, 40))]  # fmt: skip
    assert pooled_threshold(readers, replicates=30).replicates >= 15  # no resample aborts it


def test_answers_that_pin_nothing_down_are_refused():
    with pytest.raises(FitError, match="two exposures"):
        fit([400, 400], [True, False])
    with pytest.raises(FitError, match="right and wrong"):
        fit([100, 400, 1000], [True, True, True])


def test_the_pooled_threshold_interval_covers_the_true_threshold():
    """A small run of the issue's check (bench/timed_threshold.py runs 200 studies): readers
    with a known curve (threshold 400 ms, reader spread) on a staircase; the interval covers
    the pooled curve's threshold in most studies."""
    rng = np.random.default_rng(7)
    covered = []
    for _ in range(5):
        readers = {
            f"r{j}": simulated_reader(rng, 400 * np.exp(rng.normal(0, 0.1)), 0.4, 60)
            for j in range(8)
        }
        found = pooled_threshold(readers, replicates=30, seed=int(rng.integers(1 << 30)))
        covered.append(found.low <= 400 <= found.high)
        assert found.low <= found.estimate <= found.high
    assert sum(covered) >= 4


def test_accuracy_by_exposure_counts_every_trial_at_its_exposure():
    answers = [(250, True), (100, False), (250, False), (1000, True), (250, True), (100, True)]
    assert [(r.exposure, r.right, r.n) for r in by_exposure(answers)] == [
        (100, 1, 2), (250, 2, 3), (1000, 1, 1),
    ]  # fmt: skip
    assert by_exposure([]) == []


def test_the_staircase_threshold_is_the_geometric_mean_at_reversals_after_the_first_two():
    # down, down, up (reversal at 400), stay, down (reversal at 600), up (reversal at 400),
    # down (reversal at 600), down
    exposures = [1000, 600, 400, 600, 600, 400, 600, 400, 250]
    assert reversals(exposures) == [400, 600, 400, 600]
    assert staircase_threshold(exposures) == pytest.approx(np.sqrt(400 * 600))
    assert staircase_threshold(exposures, skip=3) == pytest.approx(600)
    assert staircase_threshold([1000, 600, 400, 250]) is None  # never turned
    assert staircase_threshold([1000, 1000]) is None


def test_a_staircase_told_to_follow_the_record_continues_from_it():
    # a recorded exposure the staircase did not ask (an edit, a changed ladder): an error,
    # unless the server asks it to follow the record from that exposure's nearest step
    answers = [(1000, True), (250, True), (250, True)]
    with pytest.raises(ValueError, match="asked 1000"):
        next_exposure(answers)
    assert next_exposure(answers, strict=False) == 150  # restarted at 250: two right, down
    assert next_exposure([(1000, True), (260, False)], strict=False) == 400
