"""The timed design's acceptance check, simulated: readers with a known psychometric curve
(threshold 400 ms) on the staircase; the pooled threshold's 95% interval must cover 400 ms in at
least 90% of 200 studies. Slow (a few minutes): CI runs it with -m slow; bench/timed_threshold.py
prints the same figures as a table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studies.timed import pooled_threshold, simulate_reader

pytestmark = pytest.mark.slow


def test_the_pooled_threshold_interval_covers_a_known_threshold_in_200_studies():
    rng = np.random.default_rng(20261203)
    covered = 0
    for _ in range(200):
        readers = {
            f"r{j}": simulate_reader(rng, 400 * math.exp(rng.normal(0, 0.1)), 0.4, 60)
            for j in range(8)
        }
        found = pooled_threshold(readers, 200, seed=int(rng.integers(1 << 30)))
        covered += found.low <= 400 <= found.high
    assert covered >= 180, f"covered in {covered} of 200 studies"
