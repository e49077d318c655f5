"""Does the timed design recover a known threshold exposure? Simulated readers on the staircase.

    .venv/bin/python bench/timed_threshold.py [--studies 200] [--readers 8] [--trials 60]
        [--threshold 400] [--width 0.4] [--spread 0.1] [--replicates 200]

Each simulated study has --readers readers, each with the psychometric curve of
studies.timed.curve: threshold exp(ln(--threshold) + N(0, spread)) ms (readers differ) and
width --width, answering --trials staircase trials (1-up-2-down from 1,000 ms). The pooled fit
and its two-stage bootstrap interval (readers, then their trials) are computed as the timed
design computes them; the table gives how often the 95% interval covers the true threshold.
The issue's check: at least 90% of 200 studies.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from histostudy.statistics import wilson_interval
from studies.timed import pooled_threshold, simulate_reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--threshold", type=float, default=400.0)
    parser.add_argument("--width", type=float, default=0.4)
    parser.add_argument("--spread", type=float, default=0.1, help="sd of ln threshold")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    covered, estimates, widths = 0, [], []
    started = time.perf_counter()
    for _ in range(args.studies):
        readers = {}
        for j in range(args.readers):
            own = args.threshold * math.exp(rng.normal(0, args.spread))
            readers[f"r{j}"] = simulate_reader(rng, own, args.width, args.trials)
        found = pooled_threshold(readers, args.replicates, seed=int(rng.integers(1 << 30)))
        covered += found.low <= args.threshold <= found.high
        estimates.append(found.estimate)
        widths.append(found.high / found.low)
    seconds = time.perf_counter() - started
    low, high = wilson_interval(covered, args.studies)
    print(
        f"\n{args.studies} simulated studies: {args.readers} readers x {args.trials} staircase "
        f"trials, threshold {args.threshold:g} ms (reader spread {args.spread} on ln), width "
        f"{args.width}, {args.replicates} bootstrap replicates"
    )
    print(f"{platform.node()}, {datetime.now(UTC):%Y-%m-%d}, {seconds:.1f} s\n")
    print(f"95% interval covers the threshold: {covered / args.studies:.1%} "
          f"(95% MC range {low:.1%}-{high:.1%})")  # fmt: skip
    print(f"pooled estimate: median {np.median(estimates):.0f} ms (middle 90% "
          f"{np.percentile(estimates, 5):.0f}-{np.percentile(estimates, 95):.0f}); interval "
          f"high/low median {np.median(widths):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
