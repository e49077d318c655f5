"""Run one `manage.py` command and SIGKILL it just before its k-th durable operation.

    FAULTS_KILL_AT=k FAULTS_EVENTS=events.txt python -m tests.faults.killpoint import_tiles ...
    FAULTS_KILL_AFTER='INTO "generation_fidresult"' ... (after the first such operation)

A durable operation is one a kill can fall between: an SQL statement, a commit, a file or
folder rename, a folder removal, and finally the return from the command (a kill there is
one that lands after the work, before the process has exited). Each is written to
FAULTS_EVENTS before it runs, one line each (number, seconds since start, what), so a run
with FAULTS_KILL_AT=0 counts them and a killed run's last line says where it stopped.

The kill is a real SIGKILL of this process: no `finally`, no atexit, no rollback in Python;
only what the database and the file system already hold survives, exactly as when an
operator or the OOM killer ends the command.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class KillPoint:
    """Kills before operation number `kill_at`, or (with `after_match`) before the operation
    that follows the first one whose description contains that text: "after the first row
    of this table is written"."""

    def __init__(self, kill_at: int, log_path: str, after_match: str = "") -> None:
        self.kill_at = kill_at
        self.after_match = after_match
        self.matched = False
        self.count = 0
        self.started = time.monotonic()
        self.log = Path(log_path).open("a", buffering=1)  # noqa: SIM115 (open until killed)

    def event(self, what: str) -> None:
        self.count += 1
        self.log.write(f"{self.count}\t{time.monotonic() - self.started:.4f}\t{what}\n")
        if self.count == self.kill_at or self.matched:
            os.kill(os.getpid(), signal.SIGKILL)
        self.matched = bool(self.after_match) and self.after_match in what

    def around(self, func: Callable[..., Any], describe: Callable[..., str]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.event(describe(*args, **kwargs))
            return func(*args, **kwargs)

        return wrapper

    def install(self) -> None:
        from django.db.backends.base.base import BaseDatabaseWrapper
        from django.db.backends.utils import CursorWrapper

        os.replace = self.around(os.replace, lambda src, dst, **_: f"rename {src} -> {dst}")
        os.rename = self.around(os.rename, lambda src, dst, **_: f"rename {src} -> {dst}")
        shutil.rmtree = self.around(shutil.rmtree, lambda path, *_, **__: f"rmtree {path}")
        CursorWrapper.execute = self.around(CursorWrapper.execute, _sql)
        CursorWrapper.executemany = self.around(CursorWrapper.executemany, _sql)
        BaseDatabaseWrapper.commit = self.around(BaseDatabaseWrapper.commit, lambda _: "commit")


def _sql(*args: object, **kwargs: object) -> str:
    sql = args[1] if len(args) > 1 else kwargs.get("sql", "")
    return "sql " + " ".join(str(sql).split()[:4])


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "histostudy.settings")
    point = KillPoint(
        int(os.environ.get("FAULTS_KILL_AT", "0")),
        os.environ["FAULTS_EVENTS"],
        os.environ.get("FAULTS_KILL_AFTER", ""),
    )
    point.install()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])
    point.event("exit")


if __name__ == "__main__":
    main()
