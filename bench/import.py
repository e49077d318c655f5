"""Benchmark import_tiles on the PCam sample: tiles/s for a first import, a re-run, one worker.

    .venv/bin/python bench/import.py [--pcam ../shared/pcam] [--quick]

Runs against a throw-away SQLite database and MEDIA_ROOT (or DATABASE_URL if set) and prints a
table. Ratios within one run are what to compare; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam")
    parser.add_argument("--quick", action="store_true", help="valid split only (3,000 files)")
    args = parser.parse_args()
    source = args.pcam / "valid" if args.quick else args.pcam
    split = "valid" if args.quick else None

    work = Path(tempfile.mkdtemp(prefix="histostudy-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ["MEDIA_ROOT"] = str(work / "media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "histostudy.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from generation.tiles.importer import import_tiles

    call_command("migrate", verbosity=0)
    cores = os.cpu_count() or 1
    rows = []

    def run(label: str, dataset: str, workers: int | None) -> None:
        started = time.perf_counter()
        s = import_tiles(source, dataset, split=split, workers=workers, progress=False)
        seconds = time.perf_counter() - started
        rows.append((label, s.files_read, s.tiles_stored, s.duplicates, seconds))

    run(f"first import, {cores} workers", "bench", None)
    run("re-run (adds nothing)", "bench", None)
    settings.MEDIA_ROOT = work / "media-one"  # an empty store, so PNGs are written again
    run("first import, 1 worker", "bench-one", 1)

    print(
        f"import_tiles on {source} ({platform.node()}, {cores} cores, {time.strftime('%Y-%m-%d')})"
    )
    print(
        f"{'case':32} {'files':>7} {'stored':>7} {'dups':>6} {'seconds':>8} "
        f"{'files/s':>8} {'vs first':>9}"
    )
    base = rows[0][4]
    for label, files, stored, dups, seconds in rows:
        print(
            f"{label:32} {files:7d} {stored:7d} {dups:6d} {seconds:8.1f} "
            f"{files / seconds:8.0f} {base / seconds:8.2f}x"
        )
    verdict = "PASS" if base < 180 else "FAIL"
    print(f"target: first import of the sample under 180 s -> {base:.1f} s {verdict}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
