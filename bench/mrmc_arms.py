"""A study with arms, simulated: the real tiles shared by every arm, each arm's synthetic tiles
read in that arm only (the design studies.arms analyses). Does the MRMC F test of equal arms
hold its size, and do the per-arm intervals cover each arm's true AUC?

    .venv/bin/python bench/mrmc_arms.py [--studies 1000] [--arms 3] [--readers 6]
        [--real 30] [--synthetic 15] [--effect 0]

The model is bench/mrmc_coverage.py's Roe-Metz model with an arm effect: reader j's rating of
real case k is C_k + RC_jk; of synthetic case k of arm a, mu + effect * a + R_j + TR_aj + C_k +
RC_jk, with R_j ~ N(0, var_R), TR_aj ~ N(0, var_TR) (readers differ per arm), C_k ~ N(0,
var_C) and RC_jk ~ N(0, var_RC). Arm a's reader-averaged AUC is then Phi((mu + effect * a) /
sqrt(2 (var_C + var_RC) + var_R + var_TR)). With --effect 0 the arms are equal, and the F test
should reject at its nominal rate (5%); with an effect, the rejection rate is its power.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mrmc_coverage import model_parser
from histostudy.mrmc import Design, analyse
from histostudy.statistics import wilson_interval


def simulate(rng: np.random.Generator, args) -> Design:
    """One study: (arms, readers, real + arms x synthetic cases), NaN where not read."""
    k, r, n0, n1 = args.arms, args.readers, args.real, args.synthetic
    cases = n0 + k * n1
    truth = np.r_[np.zeros(n0, int), np.ones(k * n1, int)]
    case = rng.normal(0, math.sqrt(args.var_c), cases)
    noise = rng.normal(0, math.sqrt(args.var_rc), (r, cases))
    reader = rng.normal(0, math.sqrt(args.var_r), r)
    arm_reader = rng.normal(0, math.sqrt(args.var_tr), (k, r))
    ratings = np.full((k, r, cases), np.nan)
    ratings[:, :, :n0] = case[:n0] + noise[:, :n0]  # every arm reads the real tiles
    for a in range(k):
        own = slice(n0 + a * n1, n0 + (a + 1) * n1)
        shift = args.mu + args.effect * a + reader + arm_reader[a]
        ratings[a, :, own] = shift[:, None] + case[own] + noise[:, own]
    names = tuple(f"arm{a}" for a in range(k)), tuple(f"r{j}" for j in range(r))
    return Design(ratings, truth, *names, tuple(f"c{c}" for c in range(cases)))


def main() -> None:
    parser = model_parser(__doc__.split("\n")[0], var_r=0.1)
    parser.add_argument("--arms", type=int, default=3)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--real", type=int, default=30)
    parser.add_argument("--synthetic", type=int, default=15, help="per arm")
    parser.add_argument("--mu", type=float, default=0.6)
    parser.add_argument("--effect", type=float, default=0.0, help="mu grows by this per arm")
    parser.add_argument("--var-tr", type=float, default=0.05)
    args = parser.parse_args()

    scale = math.sqrt(2 * (args.var_c + args.var_rc) + args.var_r + args.var_tr)
    truths = [stats.norm.cdf((args.mu + args.effect * a) / scale) for a in range(args.arms)]
    rng = np.random.default_rng(args.seed)
    rejected, covered, widths = 0, np.zeros(args.arms), np.zeros(args.arms)
    started = time.perf_counter()
    for _ in range(args.studies):
        result = analyse(simulate(rng, args), "auc")
        rejected += result.p < 0.05
        for a, m in enumerate(result.modalities):
            covered[a] += m.ci_low <= truths[a] <= m.ci_high
            widths[a] += m.ci_high - m.ci_low
    seconds = time.perf_counter() - started

    n = args.studies
    print(
        f"\n{n} simulated studies: {args.arms} arms, {args.readers} readers, {args.real} real "
        f"tiles shared + {args.synthetic} synthetic per arm; mu {args.mu}, effect {args.effect} "
        f"per arm, var_R {args.var_r}, var_TR {args.var_tr}, var_C {args.var_c}, var_RC "
        f"{args.var_rc}"
    )
    print(f"{platform.node()}, {datetime.now(UTC):%Y-%m-%d}, {seconds:.1f} s\n")
    lo, hi = wilson_interval(int(rejected), n)
    what = "size (equal arms)" if args.effect == 0 else "power"
    print(f"F test of equal arms at alpha 0.05: rejected {rejected / n:.1%} ({lo:.1%}-{hi:.1%}), "
          f"its {what}")  # fmt: skip
    print(f"\n{'arm':<6} {'true AUC':>9} {'95% CI coverage':>16} {'(95% MC range)':>16} "
          f"{'mean width':>11}")  # fmt: skip
    for a in range(args.arms):
        lo, hi = wilson_interval(int(covered[a]), n)
        print(f"arm{a:<3} {truths[a]:9.4f} {covered[a] / n:16.1%} {f'{lo:.1%}-{hi:.1%}':>16} "
              f"{widths[a] / n:11.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
