"""Coverage of the MRMC intervals against the pooled Wilson interval, on simulated reader studies.

    .venv/bin/python bench/mrmc_coverage.py [--studies 1000] [--readers 6] [--cases 50]

Each study draws readers and cases from a Roe-Metz style model with reader and case effects:
the rating of reader j on case k is D_k (mu + R_j) + C_k + RC_jk, with D_k = 1 for positive
cases, R_j ~ N(0, var_R) (readers differ in how well they separate the classes), C_k ~ N(0,
var_C) (cases shared by all readers) and RC_jk ~ N(0, var_RC). Reader j's AUC over the case
population is Phi((mu + R_j) / s) with s^2 = 2 (var_C + var_RC), so the reader-averaged AUC,
the quantity a study estimates, is Phi(mu / sqrt(s^2 + var_R)); a call "positive" when the
rating exceeds `threshold` has reader-averaged sensitivity Phi((mu - threshold) / sqrt(var_C +
var_RC + var_R)). The table gives how often each nominal 95% interval covers that truth, and
its mean width: the MRMC intervals (histostudy.mrmc, OR with Hillis df) and the pooled Wilson
interval, which treats every reading as independent.
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
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from histostudy.mrmc import Design, analyse
from histostudy.statistics import wilson_interval


def simulate(rng: np.random.Generator, readers: int, cases: int, mu: float, var_r: float,
             var_c: float, var_rc: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    truth = np.arange(cases) % 2
    reader = rng.normal(0, math.sqrt(var_r), (readers, 1))
    case = rng.normal(0, math.sqrt(var_c), (1, cases))
    both = rng.normal(0, math.sqrt(var_rc), (readers, cases))
    return truth[None, :] * (mu + reader) + case + both, truth


def model_parser(description: str, var_r: float) -> argparse.ArgumentParser:
    """The options every simulation bench shares: studies, the model's variances, the seed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--var-r", type=float, default=var_r)
    parser.add_argument("--var-c", type=float, default=0.5)
    parser.add_argument("--var-rc", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main() -> None:
    parser = model_parser(__doc__.split("\n")[0], var_r=0.1)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--mu", type=float, default=0.6)
    parser.add_argument("--threshold", type=float, default=0.3)
    args = parser.parse_args()

    s2 = 2 * (args.var_c + args.var_rc)
    true_auc = stats.norm.cdf(args.mu / math.sqrt(s2 + args.var_r))
    true_sens = stats.norm.cdf(
        (args.mu - args.threshold) / math.sqrt(args.var_c + args.var_rc + args.var_r)
    )
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list[tuple[bool, float]]] = {
        "AUC, MRMC (jackknife)": [],
        "AUC, MRMC (delong)": [],
        "AUC, MRMC (unbiased)": [],
        "sensitivity, MRMC (jackknife)": [],
        "sensitivity, pooled Wilson": [],
    }
    started = time.perf_counter()
    readers = tuple(f"r{j}" for j in range(args.readers))
    cases = tuple(f"c{k}" for k in range(args.cases))
    for _ in range(args.studies):
        ratings, truth = simulate(rng, args.readers, args.cases, args.mu, args.var_r,
                                  args.var_c, args.var_rc)  # fmt: skip
        design = Design(ratings[None], truth, ("synthetic",), readers, cases)
        for method in ("jackknife", "delong", "unbiased"):
            m = analyse(design, "auc", method).modalities[0]
            rows[f"AUC, MRMC ({method})"].append(
                (m.ci_low <= true_auc <= m.ci_high, m.ci_high - m.ci_low)
            )
        calls = (ratings > args.threshold).astype(float)
        binary = Design(calls[None], truth, ("synthetic",), readers, cases)
        m = analyse(binary, "sensitivity").modalities[0]
        rows["sensitivity, MRMC (jackknife)"].append(
            (m.ci_low <= true_sens <= m.ci_high, m.ci_high - m.ci_low)
        )
        positive = calls[:, truth == 1]
        low, high = wilson_interval(int(positive.sum()), positive.size)
        rows["sensitivity, pooled Wilson"].append((low <= true_sens <= high, high - low))
    seconds = time.perf_counter() - started

    print(
        f"\n{args.studies} simulated studies, {args.readers} readers x {args.cases} cases (half "
        f"positive); mu {args.mu}, var_R {args.var_r}, var_C {args.var_c}, var_RC "
        f"{args.var_rc}; true reader-averaged AUC {true_auc:.4f}, sensitivity {true_sens:.4f}"
    )
    print(f"{platform.node()}, {datetime.now(UTC):%Y-%m-%d}, {seconds:.1f} s\n")
    print(f"{'nominal 95% interval':<32} {'coverage':>9} {'(95% MC range)':>16} {'mean width':>11}")
    for name, results in rows.items():
        covered = np.mean([c for c, _ in results])
        width = np.mean([w for _, w in results])
        lo, hi = wilson_interval(int(covered * len(results) + 0.5), len(results))
        print(f"{name:<32} {covered:9.1%} {f'{lo:.1%}-{hi:.1%}':>16} {width:11.4f}")


if __name__ == "__main__":
    main()
