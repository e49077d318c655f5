"""What run_experiment is asked: the schemes, preset, budget and sizes (Options), checked
before anything runs (options_for)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from generation.annotation.prompts import SCHEMES
from generation.ldm.config import GUIDANCE, SAMPLING_STEPS, SamplingConfig
from generation.presets import PRESETS

TRAIN_SHARE = 0.45  # of the budget, for the generators together
UTILITY_SHARE = 0.2  # for the classifiers together


class ExperimentError(ValueError):
    """The experiment cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Options:
    dataset: str
    schemes: tuple[str, ...] = SCHEMES
    preset: str = "cpu"
    budget_minutes: float = 60.0
    train_split: str = "train"
    test_split: str = "valid"
    cohort_size: int = 300
    reference_size: int | None = 1000
    clusters: int = 33
    seed: int = 0
    sampling_steps: int = SAMPLING_STEPS
    guidance: float = GUIDANCE

    @property
    def classifier_preset(self) -> str:
        """The preset whose classifier and readers measure this experiment: its own."""
        return self.preset

    @property
    def train_minutes(self) -> float:
        """Minutes for each generator."""
        return self.budget_minutes * TRAIN_SHARE / len(self.schemes)

    def arms(self) -> list[tuple[str, str, str | None]]:
        """(step, arm, scheme) for every utility arm."""
        out = [("utility:real", "real", None), ("utility:real-n", "real", None)]
        out += [(f"utility:synthetic:{s}", "synthetic", s) for s in self.schemes]
        out += [(f"utility:mixed:{s}", "mixed", s) for s in self.schemes]
        return out

    def as_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["schemes"] = list(self.schemes)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Options:
        return cls(**{**data, "schemes": tuple(data["schemes"])})


def options_for(
    dataset: str,
    schemes: list[str] | None = None,
    preset: str = "cpu",
    budget_minutes: float | None = None,
    **overrides: object,
) -> Options:
    if preset not in PRESETS:
        presets = ", ".join(PRESETS)
        raise ExperimentError(f"unknown preset {preset!r}; expected one of {presets}")
    schemes = list(schemes or SCHEMES)
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown or not schemes or len(set(schemes)) != len(schemes):
        raise ExperimentError(
            f"--schemes {','.join(schemes)}: expected distinct names from {', '.join(SCHEMES)}"
        )
    sizes = PRESETS[preset]
    budget = budget_minutes if budget_minutes is not None else sizes.budget_minutes
    if budget <= 0:
        raise ExperimentError("--budget-minutes must be positive")
    try:  # before anything trains, by the check every sampling setting passes
        SamplingConfig().replace(
            steps=overrides.get("sampling_steps"), guidance=overrides.get("guidance")
        )
    except ValueError as exc:
        raise ExperimentError(f"--sampling-steps/--guidance: {exc}") from exc
    values = {
        "cohort_size": sizes.cohort_size,
        "reference_size": sizes.reference_size,
        "clusters": sizes.clusters,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if int(values["cohort_size"]) < 4:  # type: ignore[arg-type]
        raise ExperimentError("--cohort-size must be at least 4 (two tiles of each label)")
    return Options(dataset, tuple(schemes), preset, float(budget), **values)  # type: ignore[arg-type]


def experiment_dir(name: str) -> Path:
    """Where an experiment's report, plots and sample grids go."""
    return Path(settings.MEDIA_ROOT) / "experiments" / name
