"""Benchmark annotate_tiles and check that the morphometric features carry signal.

    .venv/bin/python bench/annotate.py [--dataset pcam-sample] [--pcam ../shared/pcam]

Uses the database in DATABASE_URL (default: the project's SQLite file). If the dataset is not
there it is imported first from --pcam. Existing annotations of the dataset are deleted, then
annotate_tiles runs from scratch and again (a resumed run that finds everything done). Prints
a table of phases and tiles/s, then the ROC AUC of a logistic regression on the features,
fitted on the train split and scored on the valid split. Writes a plot of cluster sizes and
label mix to docs/ with --plot.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="pcam-sample")
    parser.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam")
    parser.add_argument("--plot", action="store_true", help="write docs/clusters.png")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "histostudy.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from generation.annotation.annotate import annotate_dataset
    from generation.annotation.signal import feature_signal
    from generation.models import Dataset, MorphologyClustering, TileAnnotation
    from generation.tiles.importer import import_tiles

    call_command("migrate", verbosity=0)
    if not Dataset.objects.filter(name=args.dataset).exists():
        import_tiles(args.pcam, args.dataset, progress=False)
    TileAnnotation.objects.filter(tile__dataset__name=args.dataset).delete()
    MorphologyClustering.objects.filter(dataset__name=args.dataset).delete()

    rows = []
    for label in ("from scratch", "re-run (resumes, all done)"):
        started = time.perf_counter()
        summary = annotate_dataset(args.dataset, progress=False)
        seconds = time.perf_counter() - started
        rows.append((label, summary.tiles, summary.annotated, seconds))
    auc, n_train, n_valid = feature_signal(args.dataset)

    cores = os.cpu_count() or 1
    print(f"annotate_tiles --dataset {args.dataset} --embedding morphometrics")
    print(f"({platform.node()}, {cores} cores, {time.strftime('%Y-%m-%d')})")
    print(f"{'run':30} {'tiles':>7} {'new':>7} {'seconds':>8} {'tiles/s':>8}")
    for label, tiles, new, seconds in rows:
        print(f"{label:30} {tiles:7d} {new:7d} {seconds:8.1f} {tiles / seconds:8.0f}")
    rate = rows[0][1] / rows[0][3]
    print(f"target: >= 150 tiles/s from scratch -> {rate:.0f} {'PASS' if rate >= 150 else 'FAIL'}")
    print(f"accepted {summary.accepted}, rejected {summary.rejected}: {summary.rejection_reasons}")
    print(f"cluster sizes {sorted(summary.cluster_sizes)}")
    print(
        f"logistic regression on morphometric features: train n={n_train}, valid n={n_valid}, "
        f"ROC AUC {auc:.3f} -> {'PASS' if auc >= 0.80 else 'FAIL'} (target >= 0.80)"
    )
    if args.plot:
        from generation.plots import cluster_overview

        out = ROOT / "docs" / "clusters.png"
        cluster_overview(
            MorphologyClustering.objects.filter(dataset__name=args.dataset).first(), out
        )
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
