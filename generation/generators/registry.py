"""The generator registry: where pipelines live, loading one checked against its weights, and
the tiles each trained on.

A generator's pipeline folder (generation.ldm) is registered as a Generator row with the
checksum of its weights; load_pipeline refuses a folder whose weights changed since.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from django.conf import settings

from generation.annotation.embeddings import EmbeddingError, pick_device
from generation.models import Generator
from generation.presets import PRESETS


class GeneratorError(ValueError):
    """The command cannot run as asked; the message says what to change."""


class TrainingTimeError(GeneratorError):
    """The time budget is too short for the minimum steps: more minutes would train it."""


def check_trained(generator: Generator, preset: str) -> None:
    """GeneratorError where `generator` has fewer steps than `preset`'s minimum: it makes
    noise, not tiles, whether it was trained now or by an earlier run."""
    least = PRESETS[preset].generator
    if generator.vae_steps < least.min_vae_steps or generator.unet_steps < least.min_unet_steps:
        raise GeneratorError(
            f"generator {generator.name!r} was trained for {generator.vae_steps} autoencoder + "
            f"{generator.unet_steps} denoiser steps, fewer than the {least.min_vae_steps} + "
            f"{least.min_unet_steps} the {preset} preset needs for tiles worth reading"
        )


def generators_root() -> Path:
    return Path(
        getattr(settings, "HISTOSTUDY_GENERATORS_DIR", Path(settings.MEDIA_ROOT) / "generators")
    )


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
    """SHA-256s of the tiles the generator trained on. Fewer recorded than it trained on is an
    error, never "no training tiles": cohorts and evaluations rely on them to hold those out."""
    shas = set(generator.training_tiles.values_list("sha256", flat=True))
    if len(shas) != generator.tiles_trained:
        raise GeneratorError(
            f"generator {generator.name!r}: {len(shas)} of the {generator.tiles_trained} tiles it "
            "trained on are recorded, so its training tiles cannot be held out; re-import the "
            "dataset it trained on or retrain"
        )
    return shas
