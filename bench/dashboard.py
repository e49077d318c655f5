"""The study dashboard's time at a given size: readers x scored answers each.

    .venv/bin/python bench/dashboard.py [--readers 20] [--responses 200] [--repeat 5] [--arms 2]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/dashboard.py

Builds a throwaway database (SQLite in a temporary folder unless DATABASE_URL names one; a
PostgreSQL run uses a fresh test database), a cohort of fixture tiles with `responses` cases
of each kind, and a shared-case study every reader answers in full with a seeded mix of
calls and confidences (with --arms K, K cohorts sharing their real tiles, read as one study's
arms, so the page also runs the arms' MRMC comparison). Then it times, as a staff member's
browser would see it, GET of the dashboard page (the per-reader statistics, the MRMC analysis
of the study and of every breakdown, the plots) and of statistics.json; the table gives the
median and the slowest of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--responses", type=int, default=200, help="scored answers per reader")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--arms", type=int, default=1, help="cohorts read as one study's arms")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="histostudy-dashboard-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'db.sqlite3'}")
    os.environ.update(DJANGO_SETTINGS_MODULE="histostudy.settings", MEDIA_ROOT=str(work / "media"))
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    database = connection.creation.create_test_db(verbosity=0)
    try:
        run(args, database)
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)


def run(args: argparse.Namespace, database: str) -> None:
    import numpy as np
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse

    from studies.models import Study
    from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study, second_arm

    settings.ALLOWED_HOSTS = ["testserver"]
    started = time.perf_counter()
    cohort = cohort_from_fixture_tiles("bench-cohort", per_stratum=(args.responses + 3) // 4)
    readers = [UserFactory(username=f"reader{j:02d}") for j in range(args.readers)]
    arms = tuple(second_arm(cohort, f"bench-arm-{k}") for k in range(2, args.arms + 1))
    study = open_study(cohort, readers, name="bench-study", cases=args.responses, arms=arms)
    rng = np.random.default_rng(0)
    for reader in readers:
        assignment = study.assignments.get(reader=reader)
        while (trial := assignment.next_trial()) is not None:
            right = rng.random() < 0.6
            call = trial.case.kind if right else {"real": "synthetic"}.get(trial.case.kind, "real")
            assignment.submit(trial.token, call, int(rng.integers(1, 6)))
    built = time.perf_counter() - started
    staff = UserFactory(username="staff", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    answers = Study.objects.get(pk=study.pk).cases.filter(responses__isnull=False).count()
    urls = {
        "dashboard page": reverse("dashboards:study", args=[study.pk]),
        "statistics.json": reverse("dashboards:statistics-json", args=[study.pk]),
    }
    print(f"\n{args.readers} readers x {args.responses} scored answers, {args.arms} arm(s) "
          f"({answers} answers stored), "
          f"{connection_vendor()} ({database}); built in {built:.0f} s")  # fmt: skip
    print(f"{platform.node()}, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}\n")
    print(f"{'request':<18} {'median s':>9} {'max s':>7}  (of {args.repeat}, after one warm-up)")
    for name, url in urls.items():
        assert client.get(url).status_code == 200, url
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - t)
            assert response.status_code == 200
        print(f"{name:<18} {statistics.median(times):9.3f} {max(times):7.3f}")


def connection_vendor() -> str:
    from django.db import connection

    return connection.vendor


if __name__ == "__main__":
    main()
