"""Management commands as real subprocesses on the test database, killed with SIGKILL.

A test runs a command once uninterrupted (the reference), draws kill points from a seeded
RNG, and for each one runs the command again, kills it there, runs it once more to completion
and compares the end state with the reference. Kill points are of two sorts:

- `KillPlan(event=k)`: the process kills itself just before its k-th durable operation (see
  tests/faults/killpoint.py), drawn from the reference run's operations, one per sort of
  operation so that a few kills reach the rare ones (a commit, the exit) too;
- `KillPlan(after=s)`: the test kills the process group from outside `s` seconds after it
  started working (its first durable operation), `s` drawn over the reference's working time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from django.db import connection

from generation.tiles.store import pixel_sha256, read_tile

ROOT = Path(__file__).resolve().parents[2]
STAGING = ".staging"
TILE_NAME = re.compile(r"^tiles/([0-9a-f]{2})/([0-9a-f]{2})/(\1\2[0-9a-f]{60})\.png$")

# One line per command, printed after the run by tests/faults/conftest.py.
SUMMARY: list[str] = []


def database_url() -> str:
    """DATABASE_URL of the database this test runs on (pytest-django's test database)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    if connection.vendor != "postgresql":
        raise NotImplementedError(f"no DATABASE_URL for {connection.vendor}")
    auth = quote(settings["USER"] or "", safe="")
    if settings["PASSWORD"]:
        auth += ":" + quote(settings["PASSWORD"], safe="")
    host = settings["HOST"] or "localhost"
    return f"postgres://{auth}@{host}:{settings['PORT'] or 5432}/{settings['NAME']}"


def command_env(media: Path, generators: Path) -> dict[str, str]:
    """The environment of a command that works on the test database and these folders."""
    media.mkdir(parents=True, exist_ok=True)
    return os.environ | {  # DJANGO_SETTINGS_MODULE: the tests' own, which pytest-django set
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(media),
        "HISTOSTUDY_GENERATORS_DIR": str(generators),
        "HISTOSTUDY_CACHE_DIR": str(media.parent / "cache"),
        "PYTHONUNBUFFERED": "1",
    }


@dataclass(frozen=True)
class KillPlan:
    event: int = 0  # kill just before this durable operation (1-based); 0: not this way
    after: float | None = None  # or kill from outside this many seconds into the work
    after_match: str = ""  # or kill just after the first operation containing this text

    def __str__(self) -> str:
        if self.after is not None:
            return f"{self.after:.2f}s into the work"
        if self.after_match:
            return f"after the first {self.after_match}"
        return f"operation {self.event}"


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    events: list[tuple[float, str]]  # (seconds since start, operation)
    seconds: float

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def working_seconds(self) -> float:
        """From the first durable operation to the last: the part a timed kill aims at."""
        return self.events[-1][0] - self.events[0][0] if self.events else 0.0

    def where(self) -> str:
        """The operation a killed run stopped before, in words."""
        if not self.events:
            return "before any operation"
        return f"before #{len(self.events)} {operation_kind(self.events[-1][1])}"

    def check(self) -> Run:
        assert self.returncode == 0, (
            f"{' '.join(self.argv)} exited with {self.returncode}\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )
        return self


def operation_kind(event: str) -> str:
    """What sort of operation an event is, without its names: 'sql INSERT', 'rename ->
    tiles/*', 'commit'. Kill points are drawn one per sort."""
    verb, _, rest = event.partition(" ")
    if verb == "sql":
        return f"sql {rest.split(maxsplit=1)[0]}"
    if verb == "rename":
        target = Path(rest.rsplit(" -> ", 1)[-1])
        return f"rename -> {_shape(target.parent.name)}/{_shape(target.name)}"
    if verb == "rmtree":
        return f"rmtree {_shape(Path(rest).name)}"
    return verb


def _shape(name: str) -> str:
    name = re.sub(r"\.[a-z0-9_]{8}\.tmp$", ".tmp", name)  # tempfile's random part
    return re.sub(r"[0-9a-f]{6,}|^[0-9a-f]{2}$|\d+", "*", name)


def kill_plans(
    reference: Run, rng: np.random.Generator, by_event: int, timed: int
) -> list[KillPlan]:
    """`by_event` operations of distinct sorts (drawn at random) and `timed` delays."""
    first: dict[str, list[int]] = {}
    for index, (_, event) in enumerate(reference.events, start=1):
        first.setdefault(operation_kind(event), []).append(index)
    kinds = sorted(first)
    chosen = rng.choice(len(kinds), size=min(by_event, len(kinds)), replace=False)
    plans = [KillPlan(event=int(rng.choice(first[kinds[i]]))) for i in sorted(chosen)]
    delays = rng.uniform(0.05, 0.95, size=timed) * reference.working_seconds
    return plans + [KillPlan(after=round(float(d), 2)) for d in delays]


def run_command(
    argv: Sequence[str],
    env: dict[str, str],
    events: Path,
    kill: KillPlan | None = None,
    timeout: float = 300.0,
) -> Run:
    """`manage.py *argv` in a fresh process (through tests.faults.killpoint), killed per `kill`."""
    kill = kill or KillPlan()
    events.unlink(missing_ok=True)
    out, err = events.with_suffix(".out"), events.with_suffix(".err")
    env = env | {
        "FAULTS_KILL_AT": str(kill.event),
        "FAULTS_KILL_AFTER": kill.after_match,
        "FAULTS_EVENTS": str(events),
    }
    command = [sys.executable, "-m", "tests.faults.killpoint", *argv]
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
        try:
            if kill.after is not None:
                _kill_when_working(process, events, kill.after, started + timeout)
            process.wait(timeout=max(1.0, started + timeout - time.monotonic()))
        except BaseException:
            _kill_group(process)
            raise
        finally:
            _kill_group(process)  # the command's own children (worker pools), if any are left
    seconds = time.monotonic() - started
    return Run(list(argv), process.returncode, out.read_text(), err.read_text(), _read(events),
               seconds)  # fmt: skip


def _kill_when_working(
    process: subprocess.Popen, events: Path, delay: float, deadline: float
) -> None:
    """SIGKILL the process group `delay` seconds after the first durable operation."""
    while not (events.exists() and events.stat().st_size) and process.poll() is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.args} did not start working")
        time.sleep(0.01)
    if process.poll() is None:
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _read(events: Path) -> list[tuple[float, str]]:
    if not events.exists():
        return []
    rows = []
    for line in events.read_text().splitlines():
        _, seconds, what = line.split("\t", 2)
        rows.append((float(seconds), what))
    return rows


# --- end-state checks ---------------------------------------------------------------------


def stored_tiles(media: Path) -> set[str]:
    """sha256 of every tile file under media/tiles; each must decode to the pixels it is
    named after (a half-written or misnamed file fails here)."""
    shas = set()
    for path in (media / "tiles").rglob("*.png"):
        rel = path.relative_to(media).as_posix()
        found = TILE_NAME.match(rel)
        assert found, f"not a tile name: {rel}"
        assert pixel_sha256(read_tile(path)) == found[3], f"{rel} does not hold its pixels"
        shas.add(found[3])
    return shas


def strays(media: Path) -> list[str]:
    """Anything under media that is neither a tile file nor a folder of them: staging
    leftovers, temporary files, partial writes. An empty .staging folder is allowed."""
    found = []
    for path in sorted(media.rglob("*")):
        rel = path.relative_to(media).as_posix()
        if path.is_dir():
            if rel.startswith(f"{STAGING}/"):
                found.append(rel + "/")
        elif not TILE_NAME.match(rel):
            found.append(rel)
    return found


def record(command: str, kills: list[tuple[KillPlan, Run]], outcome: str) -> None:
    """One summary line for the command, shown at the end of the pytest run."""
    points = ", ".join(
        f"{plan} ({killed.where()})" if killed.killed else f"{plan} (finished first)"
        for plan, killed in kills
    )
    landed = sum(killed.killed for _, killed in kills)
    line = f"{command}: {landed} kills of {len(kills)} tried at {points}; {outcome}"
    SUMMARY.append(line)
    print(line)
