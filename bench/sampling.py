"""Sampler settings against FID, on one trained generator: no training, only generation.

    .venv/bin/python bench/sampling.py --generator bench-cpu-60m \\
        [--try dpm++:25:3.0 --try dpm++-sde:25:3.0 --try dpm++:25:3.0:bf16 ...] [--n 300]

Each --try is SCHEDULER:STEPS:GUIDANCE[:PRECISION] (default: dpm++ and dpm++-sde at the default
steps and twice as many, default guidance); PRECISION is fp32 (the default) or bf16, the
networks under bf16 autocast as `generate_cohort --precision bf16` runs them. For each,
generates --n tiles on split valid of the workspace bench/fidelity.py made (same strata and
seed, so every setting draws the same real tiles and prompts) and measures FID/KID and
precision/recall against up to 1,000 held-out real tiles (compute_fid, the demo's criterion),
with the real-vs-real floor at the same sizes.
Prints one table row per setting, with the seconds its generation took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", required=True)
    parser.add_argument("--try", dest="tries", action="append",
                        metavar="SCHED:STEPS:GUIDANCE[:PRECISION]")  # fmt: skip
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "histostudy-fidelity")  # fmt: skip
    args = parser.parse_args()
    import fidelity  # bench/fidelity.py: the same workspace

    from generation.ldm.config import GUIDANCE, SAMPLING_STEPS, SamplingConfig

    tries = args.tries or [
        f"{sampler}:{steps}:{GUIDANCE}"
        for steps in (SAMPLING_STEPS, 2 * SAMPLING_STEPS)
        for sampler in ("dpm++", "dpm++-sde")
    ]

    specs = []  # all checked before the first cohort, which takes minutes
    for spec in tries:
        fields = spec.split(":")
        precision = fields[3] if len(fields) == 4 else "fp32"
        if len(fields) not in (3, 4) or precision not in ("fp32", "bf16"):
            parser.error(f"--try {spec}: expected SCHEDULER:STEPS:GUIDANCE[:fp32|bf16]")
        specs.append((spec, *fields[:3], precision))

    fidelity.setup(args.workdir, args.pcam)
    from django.core.management import call_command

    from generation.cohorts import CohortRequest, Runtime, generate_cohort
    from generation.models import Cohort

    rows = []
    for spec, scheduler, steps, guidance, precision in specs:
        name = f"{args.generator}-{scheduler}-{steps}-{guidance}-{args.n}"
        name += "-bf16" if precision == "bf16" else ""  # fp32 keeps earlier runs' names
        started = time.perf_counter()
        seconds: float | None = None  # None: a cohort made by an earlier run, reused
        if not Cohort.objects.filter(name=name).exists():
            generate_cohort(
                CohortRequest(
                    generator=args.generator,
                    real_dataset="pcam-sample",
                    split="valid",
                    size=args.n,
                    name=name,
                    seed=args.seed,
                    sampling=SamplingConfig(
                        steps=int(steps), guidance=float(guidance), scheduler=scheduler
                    ),
                ),
                Runtime(precision=precision),
            )
            seconds = time.perf_counter() - started
        out = StringIO()
        call_command("compute_fid", cohort=name, floor=True, precision_recall=True,
                     max_tiles=1000, json=True, stdout=out)  # fmt: skip
        result, floor = json.loads(out.getvalue())
        rows.append((spec, result, floor, seconds))
    print(f"generator {args.generator}, {args.n} synthetic vs up to 1,000 held-out real (valid)")
    print("| sampler:steps:guidance[:precision] | FID (floor) | KID x1000 | precision / recall "
          "| seconds |")  # fmt: skip
    print("|---|---|---|---|---|")
    for spec, r, f, seconds in rows:
        took = "reused" if seconds is None else f"{seconds:.0f}"
        print(f"| {spec} | {r['fid']:.1f} ({f['fid']:.1f}) | {r['kid_mean'] * 1000:.1f} | "
              f"{r['precision']:.2f} / {r['recall']:.2f} | {took} |")  # fmt: skip


if __name__ == "__main__":
    main()
