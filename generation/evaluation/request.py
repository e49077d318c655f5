"""What evaluate_generator is asked (EvaluationRequest), the measures it may leave out, and
the tile sets it passes between its steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from generation.ldm.config import SamplingConfig
from generation.tiles.store import read_tile, tile_relpath

KID_SUBSETS = 100
# image quality and the autoencoder's ceiling are always measured; these can be left out
MEASURES = ("label", "morphology", "readers", "utility")


class EvaluationError(ValueError):
    """The evaluation cannot run as asked; the message names what is missing."""


@dataclass(frozen=True)
class EvaluationRequest:
    generator: str
    cohort: str | None = None  # an existing cohort of the generator; else one is made
    split: str = "valid"  # where held-out real tiles come from, for a made cohort
    size: int = 1000  # tiles per half of a made cohort
    seed: int = 0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # for a made cohort
    classifier_preset: str = "cpu"
    reader_folds: int = 4
    measures: tuple[str, ...] = MEASURES
    device: str = "auto"
    progress: bool = True

    def cohort_name(self) -> str:
        """--cohort, else the name of the cohort made for this request. Sampling other than the
        default is part of it, so an evaluation at another guidance or step count makes its own
        cohort instead of scoring the tiles of an earlier one."""
        if self.cohort:
            return self.cohort
        name = f"eval-{self.generator}-{self.split}-{self.size}-s{self.seed}"
        if self.sampling != SamplingConfig():
            sampling = self.sampling
            name += f"-{sampling.scheduler}-{sampling.steps}-g{sampling.guidance:g}"
        return name


@dataclass
class TileRows:
    shas: list[str]
    labels: np.ndarray
    clusters: np.ndarray

    def pixels(self) -> np.ndarray:
        store = Path(settings.MEDIA_ROOT)
        return np.stack([read_tile(store / tile_relpath(s)) for s in self.shas])
