"""`import_tiles`: read a source, store each unique tile once, all or nothing.

Files are decoded, hashed and encoded to PNG in worker processes, staged under
MEDIA_ROOT/.staging/import-<host>-<pid>-<run>, and moved into the content-addressed store only
when every tile has passed; rows go in within one transaction. A failure removes what this run
staged or moved and rolls the rows back, so the database and MEDIA_ROOT are as they were. A kill can
leave at most complete, correctly named tile files without rows, which a re-run adopts, and
its staging folder, which the next import on the same host removes once that process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from tqdm import tqdm

from generation.models import Dataset, ImportRun, Tile
from generation.tiles.parallel import ordered_map, worker_count
from generation.tiles.sources import PreparedTile, SourceError, open_source, prepare_tile
from generation.tiles.store import tile_relpath

BATCH = 1000
DATASET_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
STAGING_NAME = re.compile(r"^import-(?P<host>.+)-(?P<pid>\d+)-(?P<run>[0-9a-f]{32})$")


class TileImportError(ValueError):
    """The import was refused; nothing was kept. The message names the file and the problem."""


@dataclass
class ImportSummary:
    dataset: str
    source: str
    format: str
    files_read: int = 0
    tiles_stored: int = 0
    already_present: int = 0
    duplicates: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def tiles_per_second(self) -> float:
        return self.files_read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["skipped_count"] = len(self.skipped)
        data["tiles_per_second"] = round(self.tiles_per_second, 1)
        data["seconds"] = round(self.seconds, 2)
        return data

    def lines(self) -> list[str]:
        out = [
            f"Imported {self.source} ({self.format}) into dataset {self.dataset!r} "
            f"in {self.seconds:.1f} s ({self.tiles_per_second:.0f} files/s)",
            f"  files read       {self.files_read}",
            f"  tiles stored     {self.tiles_stored}",
            f"  already present  {self.already_present}",
            f"  duplicates       {self.duplicates} (same pixels as another file; stored once)",
            f"  skipped          {len(self.skipped)}",
        ]
        out += [f"    {s['source']}: {s['reason']}" for s in self.skipped]
        out.append("  dataset now holds (split: healthy / tumour):")
        out += [f"    {split}: {c['healthy']} / {c['tumour']}" for split, c in self.counts.items()]
        return out


@dataclass
class _Run:
    """Book-keeping of one import while it runs."""

    dataset: Dataset
    summary: ImportSummary
    skip_invalid: bool
    existing: dict[str, tuple[int, str]]  # sha -> (label, split) already in the dataset
    seen: dict[str, tuple[int, str, str]] = field(
        default_factory=dict
    )  # sha -> label, split, where
    new_rows: list[Tile] = field(default_factory=list)
    new_shas: list[str] = field(default_factory=list)
    duplicate_sources: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def invalid(self, where: str, reason: str) -> None:
        if not self.skip_invalid:
            raise TileImportError(f"{where}: {reason}")
        self.summary.skipped.append({"source": where, "reason": reason})

    def accept(self, tile: PreparedTile, size: int, run_id: str) -> None:
        assert tile.sha256 is not None
        sha, here = tile.sha256, (tile.label, tile.split)
        if sha in self.seen:
            label, split, first = self.seen[sha]
            if (label, split) != here:
                return self.invalid(tile.where, _conflict(first, label, split, here))
            self.summary.duplicates += 1
            if sha not in self.existing:
                self.duplicate_sources[sha].append(tile.where)
            return None
        self.seen[sha] = (*here, tile.where)
        if sha in self.existing:
            if self.existing[sha] != here:
                return self.invalid(
                    tile.where, _conflict("a stored tile", *self.existing[sha], here)
                )
            self.summary.already_present += 1
            return None
        self.new_shas.append(sha)
        self.new_rows.append(
            Tile(
                dataset=self.dataset,
                sha256=sha,
                kind=Tile.Kind.REAL,
                label=tile.label,
                split=tile.split,
                width=size,
                height=size,
                source=tile.source,
                source_index=tile.index,
                provenance={"import_run": run_id},
            )
        )
        return None

    def flush(self) -> None:
        Tile.objects.bulk_create(self.new_rows, batch_size=BATCH)
        self.summary.tiles_stored += len(self.new_rows)
        self.new_rows = []


def _conflict(first: str, label: int, split: str, here: tuple[int, str]) -> str:
    return (
        f"same pixels as {first} (label {label}, split {split}) but label {here[0]}, "
        f"split {here[1]}; a tile cannot have two labels or sit in two splits"
    )


def import_tiles(
    source: Path,
    dataset: str,
    *,
    fmt: str | None = None,
    split: str | None = None,
    tile_size: int = 96,
    skip_invalid: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImportSummary:
    """Import every tile under `source` into `dataset`; see the module docstring."""
    if not DATASET_NAME.fullmatch(dataset) or set(dataset) == {"."}:
        raise TileImportError(
            f"--dataset {dataset[:80]!r}{'...' if len(dataset) > 80 else ''}: expected 1 to 64 "
            "letters, digits, '-', '_' or '.' (and not only dots)"
        )
    started = time.perf_counter()
    try:
        tiles = open_source(Path(source), fmt, split, tile_size, settings.HISTOSTUDY_CACHE_DIR)
    except SourceError as exc:
        raise TileImportError(str(exc)) from exc
    store = Path(settings.MEDIA_ROOT)
    run_id = uuid.uuid4().hex
    staging = _staging_folder(store, run_id)
    summary = ImportSummary(dataset=dataset, source=str(source), format=tiles.format)
    moved: list[Path] = []
    try:
        with transaction.atomic():
            ds, _ = Dataset.objects.get_or_create(name=dataset, defaults={"tile_size": tile_size})
            if ds.tile_size != tile_size:
                raise TileImportError(
                    f"dataset {dataset!r} holds {ds.tile_size}px tiles; got --tile-size {tile_size}"
                )
            existing = {
                sha: (lab, sp) for sha, lab, sp in ds.tiles.values_list("sha256", "label", "split")
            }
            run = _Run(ds, summary, skip_invalid, existing)
            prepare = partial(prepare_tile, tile_size=tile_size, store=store, staging=staging)
            bar = tqdm(
                total=tiles.count, unit="tile", desc=f"import {dataset}", disable=not progress
            )
            results = ordered_map(prepare, tiles.items, worker_count(workers, tiles.count))
            with bar, contextlib.closing(results):
                for tile in results:
                    summary.files_read += 1
                    bar.update()
                    if tile.error is not None:
                        run.invalid(tile.where, tile.error)
                    else:
                        run.accept(tile, tile_size, run_id)
                    if len(run.new_rows) >= BATCH:
                        run.flush()
            run.flush()
            _record_duplicates(ds, run.duplicate_sources)
            summary.seconds = time.perf_counter() - started
            summary.counts = ds.counts()
            ImportRun.objects.create(
                dataset=ds,
                source=str(Path(source).resolve()),
                format=tiles.format,
                options={"split": split, "tile_size": tile_size, "skip_invalid": skip_invalid},
                summary=summary.as_dict(),
            )
            _move_into_store(run.new_shas, staging, store, moved)
    except SourceError as exc:  # found while reading, e.g. a corrupt HDF5 chunk
        remove_unreferenced(moved)
        raise TileImportError(str(exc)) from exc
    except IntegrityError as exc:
        remove_unreferenced(moved)
        raise TileImportError(
            f"another import into dataset {dataset!r} stored some of these tiles meanwhile; "
            f"nothing from this run was kept, run it again ({exc})"
        ) from exc
    except BaseException:
        remove_unreferenced(moved)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # still in use by a concurrent import
            staging.parent.rmdir()
    return summary


def _staging_folder(store: Path, run_id: str) -> Path:
    """This run's staging folder, created after removing those that killed imports left.

    The name carries the host and the process id, so that an import can tell the folder of
    one still running (here or on another node sharing MEDIA_ROOT) from one whose process is
    gone; those it removes."""
    root = store / ".staging"
    host = socket.gethostname()
    for folder in root.glob("import-*") if root.is_dir() else ():
        found = STAGING_NAME.match(folder.name)
        if found and found["host"] == host and not _running(int(found["pid"])):
            shutil.rmtree(folder, ignore_errors=True)
    staging = root / f"import-{host}-{os.getpid()}-{run_id}"
    staging.mkdir(parents=True)
    return staging


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _record_duplicates(dataset: Dataset, duplicate_sources: dict[str, list[str]]) -> None:
    if not duplicate_sources:
        return
    tiles = list(dataset.tiles.filter(sha256__in=list(duplicate_sources)))
    for tile in tiles:
        tile.provenance["duplicate_sources"] = duplicate_sources[tile.sha256]
    Tile.objects.bulk_update(tiles, ["provenance"], batch_size=BATCH)


def _move_into_store(shas: list[str], staging: Path, store: Path, moved: list[Path]) -> None:
    for sha in shas:
        final = store / tile_relpath(sha)
        if final.exists():
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        (staging / f"{sha}.png").replace(final)
        moved.append(final)


def remove_unreferenced(moved: list[Path]) -> None:
    """After a failure: delete the files this run moved in, unless a committed row uses them."""
    if not moved:
        return
    by_sha = {path.stem: path for path in moved}
    names = list(by_sha)
    kept: set[str] = set()
    for start in range(0, len(names), BATCH):
        chunk = names[start : start + BATCH]
        kept.update(Tile.objects.filter(sha256__in=chunk).values_list("sha256", flat=True))
    for sha, path in by_sha.items():
        if sha not in kept:
            path.unlink(missing_ok=True)
            for folder in (path.parent, path.parent.parent):  # tiles/ab/cd, tiles/ab if now empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
