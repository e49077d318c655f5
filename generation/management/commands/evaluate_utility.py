"""manage.py evaluate_utility: see generation.evaluation.utility."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from generation.evaluation.utility import (
    ARMS,
    UtilityError,
    UtilityRequest,
    evaluate_utility,
    result_lines,
)
from generation.management.base import StepCommand, add_device_argument
from generation.models import UtilityResult
from generation.presets import PRESETS

JSON_FIELDS = (
    "arm",
    "seed",
    "n_real",
    "n_synthetic",
    "n_test",
    "auc",
    "auc_low",
    "auc_high",
    "accuracy",
    "sensitivity",
    "specificity",
    "steps",
    "seconds",
)


class Command(StepCommand):
    help = (
        "Train a tumour classifier (compact CNN; same architecture, step budget and augmentation "
        "for every arm) on real tiles, a cohort's synthetic tiles, or both at a stated ratio, "
        "and score it on held-out real tiles: ROC AUC with a DeLong interval, accuracy, "
        "sensitivity and specificity at 0.5. Each seed is stored; the generation dashboard "
        "shows mean and range."
    )

    errors = (UtilityError,)

    def add_options(self, parser: CommandParser) -> None:
        parser.add_argument("--train", choices=ARMS, required=True, help="the arm")
        parser.add_argument("--dataset", help="real training tiles (real and mixed arms)")
        parser.add_argument("--train-split", default="train", help="split of --dataset")
        parser.add_argument("--cohort", help="synthetic training tiles (synthetic, mixed)")
        parser.add_argument(
            "--synthetic-share",
            type=float,
            help="mixed: share of each batch drawn from synthetic tiles (default 0.5)",
        )
        parser.add_argument("--test-dataset", required=True, help="held-out real tiles")
        parser.add_argument("--split", required=True, help="split of --test-dataset")
        parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
        parser.add_argument("--max-tiles", type=int, help="seeded subsample of each training set")
        parser.add_argument("--steps", type=int, help="optimiser steps (overrides the preset)")
        parser.add_argument("--max-minutes", type=float, help="time limit per seed")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed")
        add_device_argument(parser)

    def run(self, options: dict, progress: bool) -> list[UtilityResult]:
        if int(options["seeds"]) < 1:
            raise CommandError("--seeds must be at least 1")
        first = int(options["seed"])
        results = []
        for seed in range(first, first + int(options["seeds"])):
            request = UtilityRequest(
                train_on=str(options["train"]),
                dataset=options["dataset"],
                split=str(options["train_split"]),
                cohort=options["cohort"],
                synthetic_share=options["synthetic_share"],
                test_dataset=str(options["test_dataset"]),
                test_split=str(options["split"]),
                preset=str(options["preset"]),
                max_tiles=options["max_tiles"],
                steps=options["steps"],
                max_minutes=options["max_minutes"],
                seed=seed,
            )
            result = evaluate_utility(request, device=str(options["device"]), progress=progress)
            results.append(result)
            if progress:  # each seed as it ends: a run of several takes a while
                self.stdout.write("\n".join(result_lines(result)))
        return results

    def as_json(self, result: list[UtilityResult]) -> list[dict]:
        return [{f: getattr(r, f) for f in JSON_FIELDS} for r in result]

    def lines(self, result: list[UtilityResult]) -> list[str]:
        if len(result) < 2:
            return []
        aucs = [r.auc for r in result]
        return [
            f"{len(aucs)} seeds: ROC AUC mean {sum(aucs) / len(aucs):.3f}, "
            f"range {min(aucs):.3f}-{max(aucs):.3f}"
        ]
