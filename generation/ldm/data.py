"""What a trainer learns from (tiles and prompts, with the paper's balanced sampling and
dihedral augmentation) and what a run reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class TrainingData:
    """Tiles (N, H, W, 3) uint8 and one prompt per tile."""

    tiles: np.ndarray
    prompts: list[str]

    def __post_init__(self) -> None:
        if len(self.tiles) != len(self.prompts) or not len(self.tiles):
            raise ValueError(f"{len(self.tiles)} tiles but {len(self.prompts)} prompts")


@dataclass
class TrainResult:
    vae_steps: int
    unet_steps: int
    seconds: float
    final_loss: float
    stopped_early: bool  # by --max-minutes
    losses: list[tuple[str, int, float]] = field(default_factory=list)


def dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random one of the 8 rotations/flips per batch: tissue has no up or left."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if torch.rand(1, generator=generator) < 0.5 else x


def sampling_weights(prompts: list[str], balance: bool) -> torch.Tensor:
    """Uniform, or inverse prompt frequency so every prompt (class x cluster) is seen equally."""
    if not balance:
        return torch.ones(len(prompts))
    counts: dict[str, int] = {}
    for p in prompts:
        counts[p] = counts.get(p, 0) + 1
    return torch.tensor([1.0 / counts[p] for p in prompts])
