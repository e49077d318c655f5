"""manage.py evaluate_utility: see generation.utility."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.classifier import PRESETS
from generation.utility import ARMS, UtilityError, evaluate_utility, result_lines


class Command(BaseCommand):
    help = (
        "Train a tumour classifier (compact CNN; same architecture, step budget and augmentation "
        "for every arm) on real tiles, a cohort's synthetic tiles, or both at a stated ratio, "
        "and score it on held-out real tiles: ROC AUC with a DeLong interval, accuracy, "
        "sensitivity and specificity at 0.5. Each seed is stored; the generation dashboard "
        "shows mean and range."
    )

    def add_arguments(self, parser: CommandParser) -> None:
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
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: object, **options: object) -> None:
        if int(options["seeds"]) < 1:  # type: ignore[arg-type]
            raise CommandError("--seeds must be at least 1")
        results = []
        for seed in range(int(options["seed"]), int(options["seed"]) + int(options["seeds"])):  # type: ignore[arg-type]
            try:
                result = evaluate_utility(
                    train_on=str(options["train"]),
                    dataset=options["dataset"],  # type: ignore[arg-type]
                    split=str(options["train_split"]),
                    cohort=options["cohort"],  # type: ignore[arg-type]
                    synthetic_share=options["synthetic_share"],  # type: ignore[arg-type]
                    test_dataset=str(options["test_dataset"]),
                    test_split=str(options["split"]),
                    preset=str(options["preset"]),
                    max_tiles=options["max_tiles"],  # type: ignore[arg-type]
                    steps=options["steps"],  # type: ignore[arg-type]
                    max_minutes=options["max_minutes"],  # type: ignore[arg-type]
                    seed=seed,
                    device=str(options["device"]),
                    progress=not options["json"],
                )
            except UtilityError as exc:
                raise CommandError(str(exc)) from exc
            results.append(result)
            if not options["json"]:
                self.stdout.write("\n".join(result_lines(result)))
        if options["json"]:
            fields = [
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
            ]
            self.stdout.write(json.dumps([{f: getattr(r, f) for f in fields} for r in results]))
        elif len(results) > 1:
            aucs = [r.auc for r in results]
            self.stdout.write(
                f"{len(aucs)} seeds: ROC AUC mean {sum(aucs) / len(aucs):.3f}, "
                f"range {min(aucs):.3f}-{max(aucs):.3f}"
            )
