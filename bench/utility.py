"""The real-only tumour classifier of evaluate_utility on the PCam sample: AUC and time.

    .venv/bin/python bench/utility.py [--pcam ../shared/pcam] [--preset cpu] [--seeds 1]
                                      [--workdir DIR]

Imports the PCam sample as `pcam-sample` into a throw-away SQLite database and MEDIA_ROOT (or
reuses --workdir from an earlier run), annotates it (quality filter), then times
`evaluate_utility --train real --dataset pcam-sample --test-dataset pcam-sample --split valid`
per seed, from process start to stored result, and prints a table against the target
(ROC AUC >= 0.85 within 15 minutes on the development VM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_AUC, TARGET_MINUTES = 0.85, 15.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="reuse (or create) this database + media")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="histostudy-utility-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="histostudy.settings",
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        MEDIA_ROOT=str(work / "media"),
    )
    import django

    django.setup()
    from django.core.management import call_command

    from generation.models import Dataset

    call_command("migrate", verbosity=0)
    if not Dataset.objects.filter(name="pcam-sample").exists():
        started = time.perf_counter()
        call_command("import_tiles", str(args.pcam), dataset="pcam-sample", stdout=StringIO())
        call_command("annotate_tiles", dataset="pcam-sample", stdout=StringIO())
        print(f"imported and annotated the sample in {time.perf_counter() - started:.0f} s")
    rows = []
    for seed in range(args.seeds):
        out = StringIO()
        started = time.perf_counter()
        call_command("evaluate_utility", train="real", dataset="pcam-sample",
                     test_dataset="pcam-sample", split="valid", preset=args.preset, seed=seed,
                     json=True, stdout=out)  # fmt: skip
        wall = time.perf_counter() - started
        rows.append((seed, wall, json.loads(out.getvalue())[0]))
    print(f"\nreal-only classifier, preset {args.preset}, pcam-sample train -> valid")
    print(f"{'seed':>4} {'train n':>7} {'test n':>6} {'steps':>5} {'train s':>7} {'total s':>7} "
          f"{'ROC AUC':>7} {'95% CI (DeLong)':>15} {'acc':>5} {'sens':>5} {'spec':>5}")  # fmt: skip
    for seed, wall, r in rows:
        ci = f"{r['auc_low']:.3f}-{r['auc_high']:.3f}"
        cells = [f"{seed:>4}", f"{r['n_real']:>7}", f"{r['n_test']:>6}", f"{r['steps']:>5}",
                 f"{r['seconds']:>7.0f}", f"{wall:>7.0f}", f"{r['auc']:>7.3f}", f"{ci:>15}",
                 f"{r['accuracy']:>5.3f}", f"{r['sensitivity']:>5.3f}",
                 f"{r['specificity']:>5.3f}"]  # fmt: skip
        print(" ".join(cells))
    worst = min(r["auc"] for _, _, r in rows)
    slowest = max(wall for _, wall, _ in rows) / 60
    verdict = "PASS" if worst >= TARGET_AUC and slowest <= TARGET_MINUTES else "FAIL"
    print(
        f"target: ROC AUC >= {TARGET_AUC} within {TARGET_MINUTES:g} min -> worst AUC "
        f"{worst:.3f}, slowest {slowest:.1f} min: {verdict}"
    )
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
