"""PostgreSQL restarted while readers submit answers through the API.

gunicorn serves the test database; simulated readers sign in, then per trial GET `next/` and
POST their answer to `responses/`, retrying a refused connection, a 5xx or a 429 with the
same body (the same trial token) until it is acknowledged, as static/js/trial.js does (with
shorter waits and a deadline). The cluster that holds the test database is restarted twice:
at a third of the answers while every reader keeps sending (requests fail mid-flight), and
once every reader has answered two thirds and looks at a tile (gunicorn's threads then sit
idle through the restart, holding persistent connections to the old server). Every
acknowledged answer must be stored, once, and once PostgreSQL accepts connections again the
server must answer normally, without a 5xx.

Runs only on PostgreSQL, as root, with pg_ctlcluster (Debian's postgresql-common): .ci/run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests
from django.conf import settings
from django.db import connection, connections
from django.test import Client
from django.utils.crypto import get_random_string

from studies.models import Assignment, Response
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study
from tests.faults.harness import ROOT, SUMMARY, database_url

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

READERS = 6
THREADS = 4  # per gunicorn worker (two)
CASES = 12
DEADLINE = 240.0  # seconds for the whole reading session, restart included
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
NO_ANSWER = "no answer"  # the connection was refused or dropped


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    host: str
    port: int

    def ctl(self, action: str) -> None:
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def ready(self) -> bool:
        command = ["pg_isready", "-q", "-h", self.host or "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(command, check=False, timeout=30).returncode == 0

    def wait_ready(self, seconds: float) -> float:
        """Poll pg_isready until it accepts connections; the time it first did."""
        deadline = time.monotonic() + seconds
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL {self.version}/{self.name} did not come back")
            time.sleep(0.1)
        return time.monotonic()


def local_cluster() -> Cluster:
    """The local cluster that serves the test database, or a skip saying why there is none."""
    if connection.vendor != "postgresql":
        pytest.skip("restarts PostgreSQL: run with DATABASE_URL=postgres://...")
    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster") or not shutil.which("pg_isready"):
        pytest.skip("restarting PostgreSQL needs root, pg_ctlcluster and pg_isready")
    host, port = connection.settings_dict["HOST"], int(connection.settings_dict["PORT"] or 5432)
    if host not in LOCAL_HOSTS:
        pytest.skip(f"PostgreSQL at {host} is not on this machine")
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True
    )
    for line in listing.stdout.splitlines():
        version, name, cluster_port, status = line.split()[:4]
        if int(cluster_port) == port and status.startswith("online"):
            return Cluster(version, name, host, port)
    pytest.skip(f"no online local cluster on port {port} (pg_lsclusters)")


@pytest.fixture
def restartable_postgres() -> Iterator[Cluster]:
    """The cluster, running again after the test whatever happened in it."""
    cluster = local_cluster()
    connections.close_all()  # this process's connection must not outlive the restart
    try:
        yield cluster
    finally:
        if not cluster.ready():
            # fails if it is still starting from the test's restart: then it is coming back
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.ctl("start")
        cluster.wait_ready(120)
        connections.close_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """gunicorn (as operators run it, DEBUG off) on the test database; its base URL."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,  # the sessions the test signs readers in with
        "ALLOWED_HOSTS": "127.0.0.1",
        # plain HTTP on loopback: no TLS redirect, cookies without the Secure flag
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
    }
    command = [
        sys.executable, "-m", "gunicorn", "histostudy.wsgi", "-b", f"127.0.0.1:{port}",
        "-k", "gthread", "-w", "2", "--threads", str(THREADS), "--keep-alive", "30",
        "--log-level", "warning",
    ]  # fmt: skip
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:  # Django answers an anonymous API request with 403 once it is loaded
                if requests.get(f"{base}/api/v1/assignments/", timeout=30).status_code == 403:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Pause:
    """Readers look at a tile after `at` answers until `over`, sending nothing meanwhile."""

    at: int
    over: threading.Event = field(default_factory=threading.Event)


@dataclass
class Reader:
    """One pathologist's browser: a signed-in session, and what the server acknowledged."""

    base: str
    name: str
    seed: int
    session: requests.Session = field(default_factory=requests.Session)
    acknowledged: dict[str, tuple[str, int]] = field(default_factory=dict)  # trial -> answer
    refusals: list[str] = field(default_factory=list)  # 4xx other than 429: must stay empty
    outcomes: list[tuple[float, int | str]] = field(default_factory=list)  # (sent at, status)
    looking: threading.Event = field(default_factory=threading.Event)  # paused, sends nothing

    @classmethod
    def signed_in(cls, base: str, user: object, seed: int) -> Reader:
        """A browser with the user's session and CSRF cookies, as after the login page."""
        client = Client()
        client.force_login(user)
        reader = cls(base, str(user), seed)
        cookies = reader.session.cookies
        cookies.set(
            settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value
        )
        cookies.set(settings.CSRF_COOKIE_NAME, get_random_string(32))
        return reader

    def assignment(self) -> str:
        listed = self.session.get(f"{self.base}/api/v1/assignments/", timeout=60)
        assert listed.status_code == 200, listed.text
        return listed.json()[0]["token"]

    def send(self, method: str, url: str, deadline: float, **kwargs: object) -> requests.Response:
        """trial.js's loop: retry a dropped connection, a 5xx or a 429 with the same request
        until the server answers otherwise; back off 50 ms doubling to 1 s (the page: 0.5 to
        8 s)."""
        for attempt in range(10_000):
            sent = time.monotonic()
            try:
                response = self.session.request(method, url, timeout=30, **kwargs)
            except (requests.ConnectionError, requests.Timeout):
                self.outcomes.append((sent, NO_ANSWER))
            else:
                self.outcomes.append((sent, response.status_code))
                if response.status_code < 500 and response.status_code != 429:
                    return response
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {method} {url} not answered in time")
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    def read(self, assignment: str, pause: Pause, deadline: float) -> None:
        """Answer every trial of the assignment, in the order the server serves them."""
        rng = np.random.default_rng(self.seed)
        api = f"{self.base}/api/v1/assignments/{assignment}"
        headers = {"X-CSRFToken": self.session.cookies[settings.CSRF_COOKIE_NAME]}
        while True:
            if len(self.acknowledged) == pause.at and not pause.over.is_set():
                self.looking.set()
                assert pause.over.wait(deadline - time.monotonic()), "the pause never ended"
                self.looking.clear()
            served = self.send("GET", f"{api}/next/", deadline)
            if served.status_code != 200:
                self.refusals.append(f"GET next/: {served.status_code} {served.text[:200]}")
                return
            if served.json()["done"]:
                return
            body = {
                "trial": served.json()["trial"]["token"],
                "call": ("real", "synthetic")[int(rng.integers(2))],
                "confidence": int(rng.integers(1, 6)),
            }
            reply = self.send("POST", f"{api}/responses/", deadline, json=body, headers=headers)
            if reply.status_code in (200, 201):  # 200: a retry whose first attempt was stored
                self.acknowledged[body["trial"]] = (body["call"], body["confidence"])
            else:
                self.refusals.append(f"POST responses/: {reply.status_code} {reply.text[:200]}")
                return


class Session:
    """The readers at work in threads, and the waits of the test around them."""

    def __init__(self, readers: list[Reader], assignments: list[str]) -> None:
        self.readers = readers
        self.pause = Pause(at=2 * CASES // 3)
        self.deadline = time.monotonic() + DEADLINE
        self.pool = ThreadPoolExecutor(len(readers))
        self.reading = [
            self.pool.submit(r.read, a, self.pause, self.deadline)
            for r, a in zip(readers, assignments, strict=True)
        ]

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        while not condition():
            for future in self.reading:
                if future.done():
                    future.result()  # a reader that failed says why
            assert time.monotonic() < self.deadline, f"timed out waiting until {what}"
            time.sleep(0.01)

    def all_looking(self) -> bool:
        """Every reader paused (or stopped, refused: the assertions say so)."""
        pairs = zip(self.readers, self.reading, strict=True)
        return all(reader.looking.is_set() or future.done() for reader, future in pairs)

    def answered(self) -> int:
        return sum(len(r.acknowledged) for r in self.readers)

    def finish(self) -> None:
        for future in self.reading:
            future.result(timeout=max(1.0, self.deadline - time.monotonic()))
        self.pool.shutdown()


def test_postgres_restarts_while_readers_submit_lose_and_duplicate_nothing(
    restartable_postgres: Cluster, server: str
) -> None:
    users = [UserFactory(username=f"restart{i}") for i in range(READERS)]
    study = open_study(cohort_from_fixture_tiles(per_stratum=4), users, cases=CASES)
    connections.close_all()
    readers = [Reader.signed_in(server, user, seed=i) for i, user in enumerate(users)]
    session = Session(readers, [reader.assignment() for reader in readers])
    total = READERS * CASES
    try:
        session.wait_until(lambda: session.answered() >= total // 3, "a third is answered")
        busy_restart = time.monotonic()
        restartable_postgres.ctl("restart")  # requests in flight fail; readers retry
        busy_back = restartable_postgres.wait_ready(120)
        session.wait_until(session.all_looking, "every reader looks at a tile")
        idle_restart = time.monotonic()
        restartable_postgres.ctl("restart")  # nothing in flight: only idle connections die
        idle_back = restartable_postgres.wait_ready(120)
        session.pause.over.set()
    finally:
        session.pause.over.set()
        session.finish()
    connections.close_all()

    acknowledged = {t: a for r in readers for t, a in r.acknowledged.items()}
    stored = Response.objects.filter(case__study=study)
    answers = {r.trial.token: (r.call, r.confidence) for r in stored.select_related("trial")}
    outcomes = [o for r in readers for o in r.outcomes]
    failed = [at for at, s in outcomes if s == NO_ANSWER or (isinstance(s, int) and s >= 500)]
    during = [at for at in failed if busy_restart <= at < busy_back]
    after = [round(at - idle_back, 2) if at >= idle_back else round(at - busy_back, 2)
             for at in failed if busy_back <= at < idle_restart or at >= idle_back]  # fmt: skip
    SUMMARY.append(
        f"postgres restart x2 ({restartable_postgres.version}/{restartable_postgres.name}, down "
        f"{busy_back - busy_restart:.1f}s under load, {idle_back - idle_restart:.1f}s idle): "
        f"{len(outcomes)} requests, {len(failed)} failed and were retried ({len(during)} while "
        f"down, {len(after)} after it was back); answers acknowledged {len(acknowledged)}, "
        f"stored {stored.count()}, duplicates {stored.count() - len(answers)}, acknowledged "
        f"but missing {len(set(acknowledged) - set(answers))}"
    )
    refusals = [r for reader in readers for r in reader.refusals]
    assert not refusals, f"a database restart is no reason to refuse a reader: {refusals}"
    assert during, "no request was in flight while PostgreSQL was down; nothing was tested"
    assert len(acknowledged) == total
    assert answers == acknowledged, "every acknowledged answer stored, as sent, and no other"
    assert stored.count() == stored.values("reader", "case").distinct().count() == total
    assert not Assignment.objects.filter(study=study, completed_at=None).exists()
    assert not after, (
        f"{len(after)} requests failed after PostgreSQL accepted connections again (seconds "
        f"after): {after[:10]}; persistent connections to the old server are reused unchecked"
    )
