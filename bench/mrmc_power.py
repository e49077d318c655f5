"""The equivalence power formula of histostudy.mrmc.planning against simulated studies.

    .venv/bin/python bench/mrmc_power.py [--studies 1000]

For each readers x cases design, simulated studies from the Roe-Metz style model of
bench/mrmc_coverage.py with a reader-averaged AUC of `--auc` are analysed as the dashboard
does (OR, Hillis df, jackknife) and tested for equivalence within --margin of 0.5. The
empirical power (share declared equivalent) stands beside the formula's, fed with the model's
variance components as the MRMC analysis estimates them on average over the same studies.
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

from bench.mrmc_coverage import model_parser, simulate
from histostudy.mrmc import Design, analyse, equivalence
from histostudy.mrmc.planning import Planning, equivalence_power
from histostudy.statistics import wilson_interval


def main() -> None:
    parser = model_parser(__doc__.split("\n")[0], var_r=0.02)
    parser.add_argument("--auc", type=float, default=0.52)
    parser.add_argument("--margin", type=float, default=0.10)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()

    s = math.sqrt(2 * (args.var_c + args.var_rc) + args.var_r)
    mu = float(stats.norm.ppf(args.auc)) * s  # reader-averaged AUC = Phi(mu / s)
    rng = np.random.default_rng(args.seed)
    designs = [(4, 60), (6, 100), (6, 200), (10, 200), (15, 300)]
    print(f"\n{args.studies} studies per design; reader-averaged AUC {args.auc}, margin "
          f"{args.margin}, alpha {args.alpha}; var_R {args.var_r}, var_C {args.var_c}, var_RC "
          f"{args.var_rc}")  # fmt: skip
    print(f"{platform.node()}, {datetime.now(UTC):%Y-%m-%d}\n")
    print(f"{'readers x cases':<16} {'simulated':>9} {'(95% MC range)':>16} {'formula':>8} "
          f"{'mean SE':>8} {'formula SE':>10}")  # fmt: skip
    started = time.perf_counter()
    for readers, cases in designs:
        names = tuple(f"r{j}" for j in range(readers)), tuple(f"c{k}" for k in range(cases))
        hits, ses, var_r, var_e, cov2 = 0, [], [], [], []
        for _ in range(args.studies):
            ratings, truth = simulate(rng, readers, cases, mu, args.var_r, args.var_c,
                                      args.var_rc)  # fmt: skip
            result = analyse(Design(ratings[None], truth, ("synthetic",), *names))
            estimate = result.modalities[0]
            hits += equivalence(estimate, 0.5, args.margin, args.alpha).equivalent
            ses.append(estimate.se)
            var_r.append(result.components.var_r)
            var_e.append(result.components.var_e)
            cov2.append(result.components.cov2)
        planning = Planning(float(np.mean(var_r)), float(np.mean(var_e)), float(np.mean(cov2)),
                            cases, "the simulation's mean MRMC components")  # fmt: skip
        formula = equivalence_power(planning, readers, cases, args.margin, args.alpha, args.auc)
        low, high = wilson_interval(hits, args.studies)
        print(f"{f'{readers} x {cases}':<16} {hits / args.studies:9.1%} "
              f"{f'{low:.1%}-{high:.1%}':>16} {formula.power:8.1%} {np.mean(ses):8.4f} "
              f"{formula.se:10.4f}")  # fmt: skip
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
