"""Django side of the generator: training data from the database, the registry, cohorts.

The model code lives in generation.ldm (pure torch + diffusers); this module picks tiles and
prompts, registers what was trained, and stores generated tiles with their provenance.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from generation.importer import remove_unreferenced
from generation.ldm.config import GUIDANCE, PRESETS, SAMPLING_STEPS, GeneratorConfig
from generation.models import Cohort, CohortMember, Dataset, Generator, Tile, TileAnnotation
from generation.prompts import SCHEMES
from generation.tilestore import encode_png, pixel_sha256, read_tile, tile_relpath, write_atomic

if TYPE_CHECKING:  # torch and the trainer load only when a command needs them
    import torch

    from generation.ldm.train import Trainer, TrainResult

TRAINING_TILES = "training_tiles.txt"
SD_FINETUNE_LR = 1e-5  # Osorio et al. fine-tune Stable Diffusion 1.5 at this rate


class GeneratorError(ValueError):
    """The command cannot run as asked; the message says what to change."""


# --- training ---------------------------------------------------------------------------------


def generators_root() -> Path:
    return Path(
        getattr(settings, "HISTOSTUDY_GENERATORS_DIR", Path(settings.MEDIA_ROOT) / "generators")
    )


def training_set(
    dataset: str, split: str, scheme: str, limit: int | None = None
) -> tuple[np.ndarray, list[str], list[str]]:
    """Accepted tiles of a split with their prompts under `scheme`: (tiles, prompts, sha256s)."""
    if scheme not in SCHEMES:
        raise GeneratorError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    rows = list(
        TileAnnotation.objects.filter(
            tile__dataset__name=dataset, tile__split=split, quality_ok=True
        )
        .exclude(prompts={})
        .order_by("tile_id")
        .values_list("tile__sha256", "prompts")
    )
    if limit and limit < len(rows):
        # a seeded draw spread over the split, not the first N in import order (a folder import
        # comes sorted by label, so the first N could all be healthy)
        keep = np.random.default_rng(0).choice(len(rows), limit, replace=False)
        rows = [rows[i] for i in sorted(keep)]
    if not rows:
        raise GeneratorError(
            f"no annotated, accepted tiles in {dataset!r} split {split!r}; run import_tiles and "
            "annotate_tiles first"
        )
    store = Path(settings.MEDIA_ROOT)
    tiles = np.stack([read_tile(store / tile_relpath(sha)) for sha, _ in rows])
    return tiles, [p[scheme] for _, p in rows], [sha for sha, _ in rows]


@dataclass
class TrainSummary:
    generator: str
    path: str
    tiles: int
    vae_steps: int
    unet_steps: int
    seconds: float
    final_loss: float
    stopped_early: bool
    weights_sha256: str

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        state = "stopped by --max-minutes" if self.stopped_early else "finished"
        return [
            f"Trained generator {self.generator!r} on {self.tiles} tiles "
            f"in {self.seconds:.0f} s ({state})",
            f"  autoencoder steps {self.vae_steps}, denoiser steps {self.unet_steps}, "
            f"last loss {self.final_loss:.4f}",
            f"  pipeline folder  {self.path}",
            f"  weights sha256   {self.weights_sha256}",
        ]


def config_for(preset: str, overrides: dict[str, str], base_model: str | None) -> GeneratorConfig:
    if preset not in PRESETS:
        raise GeneratorError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    from generation.ldm import sd

    try:
        config = PRESETS[preset].replace(**overrides)
        if base_model:
            sd.check_base(Path(base_model))
            # the paper's learning rate for fine-tuning, unless --set unet_lr=... says otherwise
            lr = {} if "unet_lr" in overrides else {"unet_lr": SD_FINETUNE_LR}
            # Stable Diffusion keeps its own DDPM schedule and has no pooled-prompt input
            config = config.replace(
                backbone="sd-finetune",
                base_model=str(Path(base_model).resolve()),
                objective="ddpm",
                pooled_text=False,
                **lr,
            )
    except (ValueError, TypeError) as exc:  # BaseModelError included
        raise GeneratorError(str(exc)) from exc
    return config


def train_generator(
    *,
    dataset: str,
    scheme: str,
    preset: str,
    name: str,
    split: str = "train",
    overrides: dict[str, str] | None = None,
    base_model: str | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    max_tiles: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainSummary:
    from generation.ldm.train import BudgetError, Trainer, TrainingData

    overrides = dict(overrides or {})
    if max_steps is not None:
        overrides["unet_steps"] = str(max_steps)
    config = config_for(preset, overrides, base_model)
    registered = Generator.objects.filter(name=name).select_related("dataset").first()
    if registered is not None:
        if resume and _registered_by_this_run(registered, config, dataset, scheme, split):
            return _summary_of(registered, config)  # killed after registering: nothing to do
        raise GeneratorError(
            f"a generator named {name!r} is registered already; pick another --name"
        )
    work = generators_root() / name
    if work.exists() and not resume and any(work.iterdir()):
        raise GeneratorError(f"{work} exists from an earlier run; pass --resume to continue it")
    tiles, prompts, shas = training_set(dataset, split, scheme, max_tiles)
    fresh = not (work.exists() and any(work.iterdir()))
    work.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, TrainingData(tiles, prompts), work, progress=progress)
    try:
        result = trainer.run(max_minutes=max_minutes, resume=resume)
    except BudgetError as exc:  # nothing made is kept: a larger budget starts clean
        if fresh and trainer.accelerator.is_main_process:
            shutil.rmtree(work, ignore_errors=True)
        raise GeneratorError(f"generator {name!r} not trained: {exc}") from exc
    except ValueError as exc:  # a corrupt or mismatched checkpoint
        raise GeneratorError(str(exc)) from exc
    if trainer.accelerator.is_main_process:
        meta = {"scheme": scheme, "dataset": dataset, "split": split, "preset": preset}
        summary = _register(trainer, result, name, meta, shas)
    trainer.accelerator.wait_for_everyone()  # under accelerate launch: the others wait for it
    if not trainer.accelerator.is_main_process:
        return _summary_of(Generator.objects.get(name=name), config)
    return summary


def _register(
    trainer: Trainer, result: TrainResult, name: str, meta: dict[str, str], shas: list[str]
) -> TrainSummary:
    """Export the pipeline folder (renamed into place when complete) and register it; `meta`
    holds the scheme, dataset, split and preset."""
    from generation.ldm.pipeline import weights_checksum

    config = trainer.config
    work = generators_root() / name
    pipeline_dir = work / "pipeline"
    tmp = work / ".pipeline.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.export(tmp, meta)
    (tmp / TRAINING_TILES).write_text("\n".join(shas) + "\n")
    shutil.rmtree(pipeline_dir, ignore_errors=True)
    tmp.rename(pipeline_dir)
    checksum = weights_checksum(pipeline_dir)
    write_previews(pipeline_dir, trainer.data.prompts)
    Generator.objects.create(
        name=name,
        backbone=config.backbone,
        scheme=meta["scheme"],
        preset=meta["preset"],
        config=asdict(config),
        dataset=Dataset.objects.get(name=meta["dataset"]),
        split=meta["split"],
        tiles_trained=len(shas),
        vae_steps=result.vae_steps,
        unet_steps=result.unet_steps,
        wall_seconds=result.seconds,
        final_loss=result.final_loss,
        path=str(pipeline_dir),
        weights_sha256=checksum,
    )
    return TrainSummary(
        name,
        str(pipeline_dir),
        len(shas),
        result.vae_steps,
        result.unet_steps,
        result.seconds,
        result.final_loss,
        result.stopped_early,
        checksum,
    )


def _registered_by_this_run(
    generator: Generator, config: GeneratorConfig, dataset: str, scheme: str, split: str
) -> bool:
    """Whether `generator` is what this very command (same name, data and config) registered."""
    return (
        generator.path == str(generators_root() / generator.name / "pipeline")
        and (generator.dataset.name, generator.scheme, generator.split) == (dataset, scheme, split)
        and json.dumps(generator.config, sort_keys=True) == config.to_json()
    )


def _summary_of(generator: Generator, config: GeneratorConfig) -> TrainSummary:
    return TrainSummary(
        generator.name,
        generator.path,
        generator.tiles_trained,
        generator.vae_steps,
        generator.unet_steps,
        generator.wall_seconds,
        math.nan if generator.final_loss is None else generator.final_loss,
        generator.unet_steps < config.unet_steps,
        generator.weights_sha256,
    )


def write_previews(
    pipeline_dir: Path, prompts: list[str], n: int = 16, steps: int = SAMPLING_STEPS
) -> None:
    """samples.png (n tiles of the most common prompts, seeds 0..n-1) and loss.png beside the
    weights, for the admin page and for people to look at."""
    import torch

    from generation.ldm.pipeline import TilePipeline
    from generation.plots import loss_curve, sample_grid, short_caption

    common = [p for p, _ in Counter(prompts).most_common()]
    chosen = [common[i % len(common)] for i in range(n)]
    meta = json.loads((pipeline_dir / "histostudy.json").read_text())
    # a Stable Diffusion UNet at 512 px is slow on a CPU: previews on the GPU where there is one
    big = meta["config"]["backbone"] == "sd-finetune" and torch.cuda.is_available()
    pipeline = TilePipeline(pipeline_dir, torch.device("cuda" if big else "cpu"))
    tiles = pipeline.generate(chosen, list(range(n)), steps=steps)
    sample_grid(tiles, [short_caption(p) for p in chosen], pipeline_dir / "samples.png")
    loss_curve(pipeline_dir / "loss.csv", pipeline_dir / "loss.png")


# --- cohorts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """This process's part of a job: rank of world under `accelerate launch`, else 0 of 1."""

    rank: int = 0
    world: int = 1
    state: object | None = None  # accelerate's PartialState, when there are several processes

    @classmethod
    def current(cls) -> Shard:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        import torch
        from accelerate import PartialState

        # without a GPU the processes still form one group (gloo), as the trainer's do
        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(state.process_index, state.num_processes, state)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def device(self, chosen: torch.device) -> torch.device:
        """Each process its own GPU (cuda:local_rank) when several share a node."""
        if self.state is not None and chosen.type == "cuda":
            return self.state.device
        return chosen


def load_pipeline(
    generator: Generator,
    device: str,
    shard: Shard | None = None,
    precision: str = "fp32",
    compiled: bool = False,
):
    """The generator's pipeline on `device`, after checking its weights are the registered ones."""
    from generation.embeddings import EmbeddingError, pick_device
    from generation.ldm.pipeline import PipelineError, TilePipeline, weights_checksum

    try:
        chosen = (shard or Shard()).device(pick_device(device))
    except EmbeddingError as exc:  # --device cuda without a GPU
        raise GeneratorError(str(exc)) from exc
    path = Path(generator.path)
    try:
        checksum = weights_checksum(path)
    except (PipelineError, FileNotFoundError) as exc:
        raise GeneratorError(f"generator {generator.name!r}: {exc}") from exc
    if checksum != generator.weights_sha256:
        raise GeneratorError(
            f"generator {generator.name!r}: weights in {path} do not match the registered checksum "
            "(corrupt or replaced); retrain or restore them"
        )
    try:
        return TilePipeline(path, chosen, precision=precision, compiled=compiled)
    except PipelineError as exc:
        raise GeneratorError(str(exc)) from exc


def training_tiles(generator: Generator) -> set[str]:
    """SHA-256s of the tiles the generator trained on; a missing list is an error, never "no
    training tiles": cohorts and evaluations rely on it to hold those tiles out."""
    path = Path(generator.path) / TRAINING_TILES
    try:
        return set(path.read_text().split())
    except FileNotFoundError as exc:
        raise GeneratorError(
            f"generator {generator.name!r}: {path} is missing, so its training tiles cannot be "
            "held out; restore the generator folder or retrain"
        ) from exc


def allocate(counts: dict[int, int], total: int) -> dict[int, int]:
    """Split `total` across strata in proportion to their sizes (largest remainder), capped."""
    available = sum(counts.values())
    if total > available:
        raise GeneratorError(f"asked for {total} tiles but only {available} are available")
    exact = {k: total * n / available for k, n in counts.items()}
    share = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (share[k] - exact[k], k))[: total - sum(share.values())]:
        share[k] += 1
    return share


def plan_cohort(
    generator: Generator, real: Dataset, split: str, size: int, seed: int
) -> tuple[list[int], list[dict]]:
    """Pick `size` real tiles stratified by label x cluster (half each label, never a training
    tile) and plan one synthetic tile per real one: same label, cluster and prompt, own seed."""
    trained = training_tiles(generator)
    rows = list(
        TileAnnotation.objects.filter(tile__dataset=real, tile__split=split, quality_ok=True)
        .exclude(cluster=None)
        .order_by("tile_id")
        .values_list("tile_id", "tile__sha256", "tile__label", "cluster", "prompts")
    )
    rows = [r for r in rows if r[1] not in trained]
    rng = np.random.default_rng(seed)
    picked: list[tuple] = []
    halves = {0: size // 2, 1: size - size // 2}
    for label, wanted in halves.items():
        pool = [r for r in rows if r[2] == label]
        if not pool:
            raise GeneratorError(
                f"empty stratum: no accepted, annotated {Tile.Label(label).label} tiles in "
                f"{real.name!r} split {split!r} outside the generator's training set"
            )
        by_cluster: dict[int, list[tuple]] = {}
        for r in pool:
            by_cluster.setdefault(r[3], []).append(r)
        try:
            share = allocate({k: len(v) for k, v in by_cluster.items()}, wanted)
        except GeneratorError as exc:
            raise GeneratorError(
                f"{Tile.Label(label).label} tiles of split {split!r}: {exc}"
            ) from exc
        for cluster in sorted(by_cluster):
            members = by_cluster[cluster]
            for i in rng.choice(len(members), share[cluster], replace=False):
                picked.append(members[int(i)])
    seeds = np.random.SeedSequence(seed).generate_state(len(picked), dtype=np.uint32).tolist()
    plan = [
        {
            "position": i,
            "label": r[2],
            "cluster": r[3],
            "prompt": r[4][generator.scheme],
            "seed": int(s),
        }
        for i, (r, s) in enumerate(zip(picked, seeds, strict=True))
    ]
    return [r[0] for r in picked], plan


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


def generate_cohort(
    *,
    generator: str,
    real_dataset: str,
    split: str,
    size: int,
    name: str,
    seed: int = 0,
    steps: int = SAMPLING_STEPS,
    guidance: float = GUIDANCE,
    scheduler: str = "dpm++",
    batch_size: int = 64,
    device: str = "auto",
    precision: str = "fp32",
    compiled: bool = False,
    progress: bool = True,
) -> CohortSummary:
    from generation.ldm.models import SCHEDULERS

    if size < 2:
        raise GeneratorError("--size must be at least 2 (one tile of each label)")
    if scheduler not in SCHEDULERS:
        raise GeneratorError(
            f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULERS)}"
        )
    try:
        gen = Generator.objects.get(name=generator)
        real = Dataset.objects.get(name=real_dataset)
    except (Generator.DoesNotExist, Dataset.DoesNotExist) as exc:
        raise GeneratorError(
            f"no generator {generator!r} or dataset {real_dataset!r} ({exc})"
        ) from exc
    shard = Shard.current()
    pipeline = load_pipeline(gen, device, shard, precision, compiled)
    args = (gen, real, split, size, name, seed, steps, guidance, scheduler)
    if shard.main:  # creates the cohort and its plan; the other processes then read them
        cohort = _cohort(*args)
        staged = Path(settings.MEDIA_ROOT) / ".staging"
        for stale in [staged / f"cohort-{cohort.pk}", *staged.glob(f"cohort-{cohort.pk}-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # what a killed run left unregistered
    shard.wait()
    if not shard.main:
        cohort = _cohort(*args)
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
    runtime = {"precision": precision, "compiled": compiled, "device": pipeline.device.type}
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
                    steps=steps,
                    guidance=guidance,
                    scheduler=scheduler,
                    batch_size=batch_size,
                )
                _store_batch(cohort, gen, batch, tiles, staging, runtime)
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


def _cohort(
    gen: Generator,
    real: Dataset,
    split: str,
    size: int,
    name: str,
    seed: int,
    steps: int,
    guidance: float,
    scheduler: str,
) -> Cohort:
    """The cohort to fill: created with its real half and plan, or the same one resumed."""
    params = {
        "generator": gen,
        "real_dataset": real,
        "split": split,
        "size": size,
        "seed": seed,
        "steps": steps,
        "guidance": guidance,
        "scheduler": scheduler,
    }
    existing = Cohort.objects.filter(name=name).first()
    if existing is not None:
        differs = [k for k, v in params.items() if getattr(existing, k) != v]
        if differs:
            raise GeneratorError(
                f"cohort {name!r} exists with other {', '.join(differs)}; pick another --name"
            )
        return existing
    real_ids, plan = plan_cohort(gen, real, split, size, seed)
    prompts = dict(
        TileAnnotation.objects.filter(tile_id__in=real_ids).values_list("tile_id", "prompts")
    )
    with transaction.atomic():
        cohort = Cohort.objects.create(name=name, plan=plan, **params)
        CohortMember.objects.bulk_create(
            CohortMember(
                cohort=cohort,
                tile_id=tile_id,
                kind="real",
                position=p["position"],
                label=p["label"],
                cluster=p["cluster"],
                prompt=prompts[tile_id][gen.scheme],
            )
            for tile_id, p in zip(real_ids, plan, strict=True)
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
    for plan, sha in zip(batch, shas, strict=True):
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
                "label": plan["label"],
                "split": cohort.split,
                "width": tiles.shape[2],
                "height": tiles.shape[1],
                "provenance": {
                    "generator": gen.name,
                    "generator_sha256": gen.weights_sha256,
                    "scheme": gen.scheme,
                    "prompt": plan["prompt"],
                    "seed": plan["seed"],
                    "steps": cohort.steps,
                    "guidance": cohort.guidance,
                    "scheduler": cohort.scheduler,
                    **runtime,  # precision, compiled, device
                    "position": plan["position"],
                },
            },
        )
        CohortMember.objects.create(
            cohort=cohort,
            tile=tile,
            kind="synthetic",
            position=plan["position"],
            label=plan["label"],
            cluster=plan["cluster"],
            prompt=plan["prompt"],
        )
