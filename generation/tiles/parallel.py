"""Ordered map over worker processes, for the per-tile work of import and annotation."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def worker_count(requested: int | None, count: int, per_worker: int = 256) -> int:
    """Processes to use: as asked, else all cores but no pool for a handful of items."""
    if requested:
        return requested
    return max(1, min(os.cpu_count() or 1, count // per_worker))


def ordered_map(
    func: Callable[[In], Out], items: Iterable[In], workers: int, chunksize: int = 32
) -> Iterator[Out]:
    """`map(func, items)` in `workers` processes (1: in this one), results in input order.

    Workers start through a fork server, so they inherit no database connection or thread
    of the caller; `func` must be a module-level function of a module without Django imports.
    Close the iterator (contextlib.closing) to stop the workers early.
    """
    if workers <= 1:
        yield from map(func, items)
        return
    context = multiprocessing.get_context("forkserver" if os.name != "nt" else "spawn")
    with context.Pool(workers) as pool:
        yield from pool.imap(func, items, chunksize=chunksize)
