"""manage.py train_generator: see generation.generators.training and generation.ldm."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from generation.annotation.prompts import SCHEMES
from generation.generators import GeneratorError, TrainSummary, train_generator
from generation.management.base import StepCommand
from generation.presets import PRESETS


class Command(StepCommand):
    help = (
        "Train a latent diffusion generator on a dataset's accepted tiles and their prompts "
        "(autoencoder, then denoiser; EMA; checkpoints; --resume after a kill). Under "
        "`accelerate launch manage.py train_generator ...` every GPU takes part."
    )

    errors = (GeneratorError,)

    def add_options(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--split", default="train")
        parser.add_argument("--scheme", choices=SCHEMES, required=True)
        parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
        parser.add_argument("--name", required=True, help="generator name (registry key)")
        parser.add_argument(
            "--base-model", help="sd-finetune: local diffusers Stable Diffusion folder"
        )
        parser.add_argument("--max-steps", type=int, help="denoiser steps (overrides the preset)")
        parser.add_argument("--max-minutes", type=float, help="stop both phases after this long")
        parser.add_argument(
            "--max-tiles", type=int, help="train on N accepted tiles (a seeded draw)"
        )
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="FIELD=VALUE",
            help="override any config field, e.g. --set batch_size=64 --set balance=true",
        )
        parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")

    def run(self, options: dict, progress: bool) -> TrainSummary:
        overrides = {}
        for item in options["set"]:  # type: ignore[union-attr]
            field, sep, value = str(item).partition("=")
            if not sep:
                raise CommandError(f"--set {item!r}: expected FIELD=VALUE")
            overrides[field.strip()] = value.strip()
        return train_generator(
            dataset=str(options["dataset"]),
            scheme=str(options["scheme"]),
            preset=str(options["preset"]),
            name=str(options["name"]),
            split=str(options["split"]),
            overrides=overrides,
            base_model=options["base_model"],  # type: ignore[arg-type]
            max_steps=options["max_steps"],  # type: ignore[arg-type]
            max_minutes=options["max_minutes"],  # type: ignore[arg-type]
            max_tiles=options["max_tiles"],  # type: ignore[arg-type]
            resume=bool(options["resume"]),
            progress=progress,
        )
