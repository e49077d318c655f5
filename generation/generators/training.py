"""Training a generator from the database: the tiles and prompts it learns, the trainer run
under a budget, the pipeline folder registered with its checksum and previews.

The model code lives in generation.ldm (pure torch + diffusers); this module picks tiles and
prompts and registers what was trained.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from django.conf import settings
from django.db import transaction

from generation import presets
from generation.annotation.prompts import SCHEMES
from generation.generators.registry import GeneratorError, TrainingTimeError, generators_root
from generation.ldm import precision, sd
from generation.ldm.config import SAMPLING_STEPS, AfterTraining, GeneratorConfig
from generation.models import Dataset, Generator, Tile, TileAnnotation
from generation.plots import loss_curve, sample_grid, short_caption
from generation.tiles.store import read_tile, tile_relpath

if TYPE_CHECKING:  # the trainer (diffusers) loads only when a command trains
    from generation.ldm.train import Trainer, TrainResult

PREVIEW_TILES = 16  # samples.png beside the weights
SD_FINETUNE_LR = 1e-5  # Osorio et al. fine-tune Stable Diffusion 1.5 at this rate


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
    try:
        config = presets.preset(preset).generator.replace(**overrides)
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


def flush_denormals() -> bool:
    """ldm.precision.flush_denormals, for a caller outside generation that trains in its own
    process (the demo): call it before the process's first torch operation."""
    return precision.flush_denormals()


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
    previews: bool = True,
    preview_steps: int = SAMPLING_STEPS,
    after: AfterTraining | None = None,
    deadline: float | None = None,
) -> TrainSummary:
    """Train a preset on the accepted tiles of `dataset`'s split under `scheme`'s prompts and
    register it as `name`; previews=False skips the PREVIEW_TILES sample tiles drawn for the
    admin, which are otherwise sampled in `preview_steps` steps. `after`: work that must fit
    the time too once training ends (Trainer.run), the previews added to its tiles.
    `deadline`: a time.monotonic() by which training and `after` must be done (loading the
    tiles counts); `max_minutes` caps training alone, from its first step. A deadline already
    passed is a budget the trainer refuses."""
    from generation.ldm.budget import BudgetError, TimeBudgetError
    from generation.ldm.train import Trainer, TrainingData

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
    log = print if progress else (lambda _: None)  # --json: stdout carries the summary alone
    trainer = Trainer(config, TrainingData(tiles, prompts), work, log=log, progress=progress)
    try:
        within = None if deadline is None else max(1e-6, (deadline - time.monotonic()) / 60)
        result = trainer.run(max_minutes, resume, _with_previews(after, previews), within)
    except BudgetError as exc:  # nothing made is kept: a larger budget starts clean
        if fresh and trainer.accelerator.is_main_process:
            shutil.rmtree(work, ignore_errors=True)
        kind = TrainingTimeError if isinstance(exc, TimeBudgetError) else GeneratorError
        raise kind(f"generator {name!r} not trained: {exc}") from exc
    except ValueError as exc:  # a corrupt or mismatched checkpoint
        raise GeneratorError(str(exc)) from exc
    if trainer.accelerator.is_main_process:
        meta = {"scheme": scheme, "dataset": dataset, "split": split, "preset": preset}
        summary = _register(trainer, result, name, meta, shas, preview_steps if previews else 0)
    trainer.accelerator.wait_for_everyone()  # under accelerate launch: the others wait for it
    if not trainer.accelerator.is_main_process:
        return _summary_of(Generator.objects.get(name=name), config)
    return summary


def _with_previews(after: AfterTraining | None, previews: bool) -> AfterTraining | None:
    """`after` with the previews' tiles added, which training draws once it ends."""
    if after is None or not previews:
        return after
    return dataclasses.replace(after, tiles=after.tiles + PREVIEW_TILES)


def _register(
    trainer: Trainer,
    result: TrainResult,
    name: str,
    meta: dict[str, str],
    shas: list[str],
    preview_steps: int = SAMPLING_STEPS,
) -> TrainSummary:
    """Export the pipeline folder (renamed into place when complete) and register it with the
    tiles it trained on, in one transaction; `meta` holds the scheme, dataset, split and
    preset."""
    from generation.ldm.pipeline import weights_checksum

    config = trainer.config
    work = generators_root() / name
    pipeline_dir = work / "pipeline"
    tmp = work / ".pipeline.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.export(tmp, meta)
    shutil.rmtree(pipeline_dir, ignore_errors=True)
    tmp.rename(pipeline_dir)
    checksum = weights_checksum(pipeline_dir)
    if preview_steps:  # 0: no previews
        write_previews(pipeline_dir, trainer.data.prompts, steps=preview_steps)
    dataset = Dataset.objects.get(name=meta["dataset"])
    with transaction.atomic():
        generator = Generator.objects.create(
            name=name,
            backbone=config.backbone,
            scheme=meta["scheme"],
            preset=meta["preset"],
            config=asdict(config),
            dataset=dataset,
            split=meta["split"],
            tiles_trained=len(shas),
            vae_steps=result.vae_steps,
            unet_steps=result.unet_steps,
            wall_seconds=result.seconds,
            final_loss=result.final_loss,
            path=str(pipeline_dir),
            weights_sha256=checksum,
        )
        link_training_tiles(generator, dataset, shas)
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
    pipeline_dir: Path, prompts: list[str], n: int = PREVIEW_TILES, steps: int = SAMPLING_STEPS
) -> None:
    """samples.png (n tiles of the most common prompts, seeds 0..n-1) and loss.png beside the
    weights, for the admin page and for people to look at."""
    from generation.ldm.pipeline import TilePipeline

    common = [p for p, _ in Counter(prompts).most_common()]
    chosen = [common[i % len(common)] for i in range(n)]
    meta = json.loads((pipeline_dir / "histostudy.json").read_text())
    # a Stable Diffusion UNet at 512 px is slow on a CPU: previews on the GPU where there is one
    big = meta["config"]["backbone"] == "sd-finetune" and torch.cuda.is_available()
    pipeline = TilePipeline(pipeline_dir, torch.device("cuda" if big else "cpu"))
    tiles = pipeline.generate(chosen, list(range(n)), steps=steps)
    sample_grid(tiles, [short_caption(p) for p in chosen], pipeline_dir / "samples.png")
    loss_curve(pipeline_dir / "loss.csv", pipeline_dir / "loss.png")


def link_training_tiles(generator: Generator, dataset: Dataset, shas: list[str]) -> None:
    """Record the tiles of `dataset` with these pixel hashes as the generator's training set."""
    through = Generator.training_tiles.through
    for start in range(0, len(shas), 900):  # SQLite allows 999 parameters a query
        ids = Tile.objects.filter(dataset=dataset, sha256__in=shas[start : start + 900])
        through.objects.bulk_create(
            through(generator_id=generator.pk, tile_id=tile_id)
            for tile_id in ids.values_list("id", flat=True)
        )
