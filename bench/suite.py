"""The default test suite's wall time, side by side: commits and pytest-xdist schedulers.

    .venv/bin/python bench/suite.py --database-url postgres://postgres@127.0.0.1:5432/test \
        --commits HEAD 3a87a23 --dist load worksteal

Each commit other than the working tree runs from a throw-away `git worktree` with this
checkout's virtual environment; each run is alone on the machine, one after another. Per run it
prints the tests passed, the wall time and, per xdist worker, the seconds spent in tests and
the second its last test ended: a worker that ends long before the other is a scheduler that
left a core idle. A worktree sits outside this checkout, so its tests that need ../shared/pcam
skip (one at 3a87a23). Results go to docs/BENCHMARKS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a pytest plugin that writes, per worker, each test's start and end (loaded with -p)
TIMELINE = """
import os, time
_start = {}
def pytest_runtest_logstart(nodeid, location):
    _start[nodeid] = time.time()
def pytest_runtest_logfinish(nodeid, location):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:  # the controller, which hears of every test the workers ran
        return
    with open(os.path.join(os.environ["SUITE_TIMELINE"], worker), "a") as out:
        out.write(f"{_start[nodeid]:.3f} {time.time():.3f}\\n")
"""


def run_suite(tree: Path, dist: str, database_url: str | None, scratch: Path) -> dict:
    """One run of the default suite in `tree`: tests passed, wall seconds, per-worker busy
    seconds and the second (from the start) its last test ended."""
    timeline = Path(tempfile.mkdtemp(dir=scratch))
    env = {**os.environ, "PYTHONPATH": str(scratch), "SUITE_TIMELINE": str(timeline)}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", "suite_timeline", "-n", "auto", "--dist", dist]  # fmt: skip
    began = time.time()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.time() - began
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    passed = re.search(r"(\d+) passed", summary)
    workers = {}
    for log in sorted(timeline.iterdir()):
        spans = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
        workers[log.name] = (sum(e - s for s, e in spans), max(e for _, e in spans) - began)
    return {
        "ok": done.returncode == 0,
        "passed": int(passed.group(1)) if passed else 0,
        "wall": wall,
        "workers": workers,
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", nargs="+", default=["working tree"],
                        help="commits to run ('working tree': this checkout as it is)")  # fmt: skip
    parser.add_argument("--dist", nargs="+", default=["worksteal"], choices=["load", "worksteal"])
    parser.add_argument("--database-url", default=None, help="else the embedded SQLite")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        (scratch / "suite_timeline.py").write_text(TIMELINE)
        for commit in args.commits:
            tree = ROOT
            if commit != "working tree":
                tree = scratch / f"tree-{len(rows)}"
                subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), commit],
                               cwd=ROOT, check=True)  # fmt: skip
            try:
                for dist in args.dist:
                    for _ in range(args.runs):
                        result = run_suite(tree, dist, args.database_url, scratch)
                        rows.append((commit, dist, result))
                        print(f"{commit} --dist {dist}: {result['summary']}", flush=True)
            finally:
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)

    print()
    header = f"{'commit':<14}{'dist':<11}{'passed':>7}{'wall':>8}"
    print(f"{header}   workers: seconds in tests / last test ended at")
    for commit, dist, result in rows:
        workers = "  ".join(
            f"{name} {busy:.0f}/{ended:.0f}" for name, (busy, ended) in result["workers"].items()
        )
        wall = f"{int(result['wall'] // 60)}:{result['wall'] % 60:04.1f}"
        flag = "" if result["ok"] else "   FAILED"
        print(f"{commit:<14}{dist:<11}{result['passed']:>7}{wall:>8}   {workers}{flag}")


if __name__ == "__main__":
    main()
