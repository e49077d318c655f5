"""Simulated readers against gunicorn + PostgreSQL on loopback: latency and lost answers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/readers.py \
        --readers 50 --cases 100 --think 0.5

Builds a throw-away database (histostudy_bench, dropped first) with a study of --cases cases
per reader, starts gunicorn, then runs --readers simulated pathologists in --procs client
processes. Each one signs in and, per case: GET the trial page, GET its image, waits --think
seconds (a reader looking; 0 = saturation), POSTs the answer to the API. At the end every
acknowledged answer must be in the database exactly once. Prints one table per run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--think", type=float, default=0.5, help="seconds between page and answer")
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--database", default="histostudy_bench")
    return parser.parse_args()


def admin_url(database: str) -> tuple[str, str]:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base.startswith("postgres"):
        raise SystemExit("bench/readers.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    server = base.rsplit("/", 1)[0]
    return f"{server}/postgres", f"{server}/{database}"


def recreate_database(maintenance: str, name: str) -> None:
    import psycopg2

    connection = psycopg2.connect(maintenance)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def build_study(readers: int, cases: int) -> None:
    """Migrate, then a cohort of fixture tiles and an open study with `readers` readers."""
    import django

    django.setup()
    from django.core.management import call_command

    from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study

    call_command("migrate", verbosity=0)
    cohort = cohort_from_fixture_tiles("bench-cohort", per_stratum=(cases + 3) // 4 + 2)
    users = [UserFactory(username=f"bench{i:03d}") for i in range(readers)]
    open_study(cohort, users, name="bench-study", cases=cases)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict, port: int, workers: int, threads: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "gunicorn", "histostudy.wsgi", "-b", f"127.0.0.1:{port}",
        "-k", "gthread", "-w", str(workers), "--threads", str(threads), "--log-level", "warning",
        "--keep-alive", "30",  # the default 2 s drops a reader's connection while they look
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("gunicorn did not start")


CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TRIAL = re.compile(r'data-trial="([^"]+)"')
IMAGE = re.compile(r'<img id="tile" src="([^"]+)"')


def read_study(args: tuple) -> dict:
    """One simulated reader: sign in, then answer every case. Returns timings and acks."""
    import requests

    base, username, password, think, seed = args
    rng = np.random.default_rng(seed)
    session = requests.Session()
    login = session.get(f"{base}/accounts/login/")
    session.post(
        f"{base}/accounts/login/",
        {
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": CSRF.search(login.text)[1],
        },
        headers={"Referer": f"{base}/accounts/login/"},
    )
    studies = session.get(f"{base}/read/")
    assignment = re.search(r'href="/read/([^/"]+)/"', studies.text)[1]
    times: dict[str, list[float]] = {"trial page": [], "image": [], "submit": []}
    acked, errors, retries = [], 0, 0

    def call(method: str, url: str, **kwargs) -> requests.Response:
        """Like a browser (and the trial page's script): a dropped connection is retried."""
        nonlocal retries
        for attempt in range(5):
            try:
                return session.request(method, url, **kwargs)
            except requests.ConnectionError:
                retries += 1
                time.sleep(0.1 * 2**attempt)
        return session.request(method, url, **kwargs)

    while True:
        start = time.perf_counter()
        page = call("GET", f"{base}/read/{assignment}/trial/")
        times["trial page"].append(time.perf_counter() - start)
        found = TRIAL.search(page.text)
        if found is None:
            break  # redirected to the completion page
        start = time.perf_counter()
        image = call("GET", base + IMAGE.search(page.text)[1])
        times["image"].append(time.perf_counter() - start)
        errors += image.status_code != 200
        if think:
            time.sleep(rng.uniform(0.5 * think, 1.5 * think))
        body = {
            "trial": found[1],
            "call": ("real", "synthetic")[rng.integers(2)],
            "confidence": int(rng.integers(1, 6)),
        }
        start = time.perf_counter()
        reply = call(
            "POST",
            f"{base}/api/v1/assignments/{assignment}/responses/",
            json=body,
            headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": base},
        )
        times["submit"].append(time.perf_counter() - start)
        if reply.status_code in (200, 201):  # 200: a retry whose first attempt was stored
            acked.append(found[1])
        else:
            errors += 1
    return {"times": times, "acked": acked, "errors": errors, "retries": retries}


def check_database(acked: list[str]) -> tuple[int, int]:
    """(responses stored, acknowledged answers missing from the database)."""
    from studies.models import Response

    stored = set(Response.objects.values_list("trial__token", flat=True))
    return len(stored), len(set(acked) - stored)


def table(results: list[dict], seconds: float, args: argparse.Namespace, stored: int,
          missing: int) -> str:  # fmt: skip
    lines = [
        f"{args.readers} readers x {args.cases} cases, think {args.think:g} s, gunicorn "
        f"{args.workers} workers x {args.threads} threads, {args.procs} client processes, "
        f"{seconds:.1f} s wall",
        f"{'request':<12} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for name in ("trial page", "image", "submit"):
        values = np.array([t for r in results for t in r["times"][name]]) * 1000
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        lines.append(
            f"{name:<12} {len(values):>6} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {values.max():>8.1f}"
        )
    requests_total = sum(len(r["times"][n]) for r in results for n in r["times"])
    acked = sum(len(r["acked"]) for r in results)
    errors = sum(r["errors"] for r in results)
    retries = sum(r["retries"] for r in results)
    lines.append(
        f"{requests_total / seconds:.0f} requests/s; answers acknowledged {acked}, stored "
        f"{stored}, acknowledged but missing {missing}, errors {errors}, "
        f"reconnects {retries}"
    )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    maintenance, url = admin_url(args.database)
    recreate_database(maintenance, args.database)
    media = Path(tempfile.mkdtemp(prefix="histostudy-bench-"))
    env = os.environ | {
        "DATABASE_URL": url,
        "MEDIA_ROOT": str(media),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "histostudy.settings",
        # plain HTTP on localhost, as behind a TLS-terminating proxy (docs/operator.md)
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "STATIC_ROOT": str(media / "static"),
    }
    os.environ.update(env)
    build_study(args.readers, args.cases)
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)  # as a deployment does
    from tests.factories import PASSWORD

    port = free_port()
    server = start_gunicorn(env, port, args.workers, args.threads)
    base = f"http://127.0.0.1:{port}"
    jobs = [(base, f"bench{i:03d}", PASSWORD, args.think, i) for i in range(args.readers)]
    try:
        start = time.perf_counter()
        with mp.get_context("spawn").Pool(args.procs) as pool:
            # Each client process runs its readers in threads so that all of them read at once.
            results = pool.map(
                run_threads, np.array_split(np.array(jobs, dtype=object), args.procs)
            )
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    flat = [r for chunk in results for r in chunk]
    stored, missing = check_database([t for r in flat for t in r["acked"]])
    print(table(flat, seconds, args, stored, missing))
    errors = sum(r["errors"] for r in flat)
    if missing or errors or stored != args.readers * args.cases:
        raise SystemExit(
            f"FAILED: {stored} answers stored of {args.readers * args.cases}, "
            f"{missing} acknowledged but missing, {errors} errors"
        )


def run_threads(jobs) -> list[dict]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(read_study, [tuple(j) for j in jobs]))


if __name__ == "__main__":
    main()
