"""Cohorts in the database: plan one from the real tiles held out of a generator's training,
generate its synthetic half (resumable, sharded under `accelerate launch`) and store each tile
with its provenance.

The choice of tiles is generation.cohorts.planner (pure); this module queries its candidates,
records the plan and moves each generated batch into the tile store in one transaction.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from generation.cohorts.planner import Candidate, PlanError, plan
from generation.generators.registry import GeneratorError, Shard, load_pipeline, training_tiles
from generation.ldm.config import SamplingConfig
from generation.models import Cohort, CohortMember, Dataset, Generator, Tile, TileAnnotation
from generation.tiles.importer import remove_unreferenced
from generation.tiles.store import encode_png, pixel_sha256, read_tile, tile_relpath, write_atomic


def plan_cohort(
    generator: Generator, real: Dataset, split: str, size: int, seed: int
) -> list[dict]:
    """The plan of a cohort of `size` from `real`'s split: accepted, annotated tiles that the
    generator did not train on, drawn by generation.cohorts.planner."""
    trained = training_tiles(generator)
    rows = (
        TileAnnotation.objects.filter(tile__dataset=real, tile__split=split, quality_ok=True)
        .exclude(cluster=None)
        .order_by("tile_id")
        .values_list("tile_id", "tile__sha256", "tile__label", "cluster", "prompts")
    )
    candidates = [
        Candidate(tile_id, label, cluster, prompts[generator.scheme])
        for tile_id, sha, label, cluster, prompts in rows
        if sha not in trained
    ]
    try:
        return plan(candidates, size, seed)
    except PlanError as exc:
        raise GeneratorError(
            f"{real.name!r} split {split!r} (accepted, annotated tiles outside the generator's "
            f"training set): {exc}"
        ) from exc


@dataclass
class CohortSummary:
    cohort: str
    real: int
    synthetic: int
    generated_now: int
    seconds: float
    tiles_per_second: float
    device: str

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        return [
            f"Cohort {self.cohort!r}: {self.real} real + {self.synthetic} synthetic tiles",
            f"  generated now    {self.generated_now} in {self.seconds:.1f} s on {self.device} "
            f"({self.tiles_per_second:.1f} tiles/s)",
        ]


@dataclass(frozen=True)
class CohortRequest:
    """A cohort to make: `size` held-out real tiles of `real_dataset`'s `split`, each with a
    synthetic twin drawn from `generator` with `sampling`, stored as cohort `name`."""

    generator: str
    real_dataset: str
    split: str
    size: int
    name: str
    seed: int = 0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass(frozen=True)
class Runtime:
    """Where and how the networks run. None of it is meant to change a tile; what can change
    its last bits (precision, compilation, device) goes into each tile's provenance."""

    batch_size: int = 64
    device: str = "auto"
    precision: str = "fp32"
    compiled: bool = False


def generate_cohort(
    request: CohortRequest, runtime: Runtime = Runtime(), progress: bool = True
) -> CohortSummary:
    """Make (or finish) the cohort: plan it once, then generate the synthetic tiles not stored
    yet, batch by batch; under `accelerate launch` every process takes its share."""
    generator, real_dataset, name = request.generator, request.real_dataset, request.name
    sampling, batch_size = request.sampling, runtime.batch_size
    if request.size < 2:
        raise GeneratorError("--size must be at least 2 (one tile of each label)")
    try:
        gen = Generator.objects.get(name=generator)
        real = Dataset.objects.get(name=real_dataset)
    except (Generator.DoesNotExist, Dataset.DoesNotExist) as exc:
        raise GeneratorError(
            f"no generator {generator!r} or dataset {real_dataset!r} ({exc})"
        ) from exc
    shard = Shard.current()
    pipeline = load_pipeline(gen, runtime.device, shard, runtime.precision, runtime.compiled)
    if shard.main:  # creates the cohort and its plan; the other processes then read them
        cohort = _cohort(gen, real, request)
        staged = Path(settings.MEDIA_ROOT) / ".staging"
        for stale in [staged / f"cohort-{cohort.pk}", *staged.glob(f"cohort-{cohort.pk}-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # what a killed run left unregistered
    shard.wait()
    if not shard.main:
        cohort = _cohort(gen, real, request)
    done = set(cohort.members.filter(kind="synthetic").values_list("position", flat=True))
    shard.wait()  # every process has the same `done` before any of them stores a tile
    # a position belongs to one process whatever was done before: no tile made twice
    todo = [
        p
        for p in cohort.plan
        if p["position"] not in done and p["position"] % shard.world == shard.rank
    ]
    several = shard.world > 1
    staging = (
        Path(settings.MEDIA_ROOT)
        / ".staging"
        / (f"cohort-{cohort.pk}-{shard.rank}" if several else f"cohort-{cohort.pk}")
    )
    # what can change a tile's last bits; on CUDA the networks also run channels-last
    ran = {
        "precision": runtime.precision,
        "compiled": runtime.compiled,
        "device": pipeline.device.type,
    }
    started = time.perf_counter()
    bar = tqdm(
        total=len(todo) if several else len(cohort.plan),
        initial=0 if several else len(done),
        unit="tile",
        desc=f"generate {name}" + (f" (process 1 of {shard.world})" if several else ""),
        disable=not (progress and shard.main),
    )
    try:
        with bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                tiles = pipeline.generate(
                    [p["prompt"] for p in batch],
                    [p["seed"] for p in batch],
                    steps=sampling.steps,
                    guidance=sampling.guidance,
                    scheduler=sampling.scheduler,
                    batch_size=batch_size,
                )
                _store_batch(cohort, gen, batch, tiles, staging, ran)
                bar.update(len(batch))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shard.wait()
    seconds = time.perf_counter() - started
    synthetic = cohort.members.filter(kind="synthetic").count()
    if shard.main and synthetic == len(cohort.plan):
        Cohort.objects.filter(pk=cohort.pk, completed_at=None).update(completed_at=timezone.now())
    made = synthetic - len(done)  # by every process together
    return CohortSummary(
        name,
        cohort.members.filter(kind="real").count(),
        synthetic,
        made,
        seconds,
        made / seconds if seconds and made else 0.0,
        str(pipeline.device) + (f" x {shard.world} processes" if several else ""),
    )


def _cohort(gen: Generator, real: Dataset, request: CohortRequest) -> Cohort:
    """The cohort to fill: created with its real half and plan, or the same one resumed."""
    name, seed = request.name, request.seed
    params = {
        "generator": gen,
        "real_dataset": real,
        "split": request.split,
        "size": request.size,
        "seed": seed,
        "steps": request.sampling.steps,
        "guidance": request.sampling.guidance,
        "scheduler": request.sampling.scheduler,
    }
    existing = Cohort.objects.filter(name=name).first()
    if existing is not None:
        differs = [k for k, v in params.items() if getattr(existing, k) != v]
        if differs:
            raise GeneratorError(
                f"cohort {name!r} exists with other {', '.join(differs)}; pick another --name"
            )
        return existing
    planned = plan_cohort(gen, real, request.split, request.size, seed)
    with transaction.atomic():
        cohort = Cohort.objects.create(name=name, plan=planned, **params)
        CohortMember.objects.bulk_create(
            CohortMember(
                cohort=cohort,
                tile_id=p["tile_id"],
                kind="real",
                position=p["position"],
                label=p["label"],
                cluster=p["cluster"],
            )
            for p in planned
        )
    return cohort


def _store_batch(
    cohort: Cohort,
    gen: Generator,
    batch: list[dict],
    tiles: np.ndarray,
    staging: Path,
    runtime: dict,
) -> None:
    """Stage the PNGs, then in one transaction move them into the store and add the rows."""
    store = Path(settings.MEDIA_ROOT)
    shas = []
    for tile in tiles:
        sha = pixel_sha256(tile)
        shas.append(sha)
        if not (store / tile_relpath(sha)).exists():
            write_atomic(staging / f"{sha}.png", encode_png(tile))
    moved: list[Path] = []
    try:
        with transaction.atomic():
            _register_batch(cohort, gen, batch, shas, tiles, staging, store, moved, runtime)
    except BaseException:
        remove_unreferenced(moved)
        raise


def _register_batch(
    cohort: Cohort,
    gen: Generator,
    batch: list[dict],
    shas: list[str],
    tiles: np.ndarray,
    staging: Path,
    store: Path,
    moved: list[Path],
    runtime: dict,
) -> None:
    for entry, sha in zip(batch, shas, strict=True):
        final = store / tile_relpath(sha)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            (staging / f"{sha}.png").replace(final)
            moved.append(final)
        tile, _ = Tile.objects.get_or_create(
            cohort=cohort,
            sha256=sha,
            defaults={
                "kind": Tile.Kind.SYNTHETIC,
                "label": entry["label"],
                "split": cohort.split,
                "width": tiles.shape[2],
                "height": tiles.shape[1],
                "provenance": {
                    "generator": gen.name,
                    "generator_sha256": gen.weights_sha256,
                    "scheme": gen.scheme,
                    # the prompt is the cohort plan's at this position (Cohort.prompts)
                    "seed": entry["seed"],
                    "steps": cohort.steps,
                    "guidance": cohort.guidance,
                    "scheduler": cohort.scheduler,
                    **runtime,  # precision, compiled, device
                    "position": entry["position"],
                },
            },
        )
        CohortMember.objects.create(
            cohort=cohort,
            tile=tile,
            kind="synthetic",
            position=entry["position"],
            label=entry["label"],
            cluster=entry["cluster"],
        )


def sample_tiles(cohort: Cohort, n: int = 16) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """n positions spread over a cohort's plan (both labels, many clusters): the synthetic
    tiles, their real counterparts and the prompts."""
    wanted = sorted({int(p) for p in np.linspace(0, cohort.size - 1, min(n, cohort.size))})
    members = list(
        CohortMember.objects.filter(cohort=cohort, position__in=wanted)
        .select_related("tile")
        .order_by("position", "kind")
    )
    real = {m.position: m for m in members if m.kind == "real"}
    synthetic = {m.position: m for m in members if m.kind == "synthetic"}
    positions = sorted(set(real) & set(synthetic))
    return (
        np.stack([read_tile(synthetic[p].tile.path) for p in positions]),
        np.stack([read_tile(real[p].tile.path) for p in positions]),
        [cohort.prompts[p] for p in positions],
    )
