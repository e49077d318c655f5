"""manage.py run_experiment: see generation.experiment.runner."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.experiment import ExperimentError, options_for, run_experiment
from generation.ldm.config import SAMPLING_STEPS
from generation.presets import PRESETS


class Command(BaseCommand):
    help = (
        "The paper's experiment end to end: annotate, train one generator per prompt scheme at "
        "equal budget, generate an equal-size cohort per scheme from the same held-out strata, "
        "FID/KID against the same real reference with the real-vs-real floor, the classifier "
        "utility arms, and a report (Markdown, plots, dashboard page). Run it again with the "
        "same arguments to resume after a kill."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="experiment name (prefix of its generators and cohorts)")
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--schemes", default="label,morphology,features")
        parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
        parser.add_argument(
            "--budget-minutes",
            type=float,
            help="the whole run's time budget (default: tiny 3, cpu 60, gpu 600)",
        )
        parser.add_argument("--train-split", default="train")
        parser.add_argument("--test-split", default="valid", help="cohorts and classifier tests")
        parser.add_argument("--cohort-size", type=int, help="tiles per half (tiny 8, cpu 300)")
        parser.add_argument("--reference-size", type=int, help="FID reference tiles (cpu 1000)")
        parser.add_argument("--clusters", type=int, help="morphology types (tiny 3, else 33)")
        parser.add_argument(
            "--sampling-steps", type=int, help=f"DPM++ steps (default {SAMPLING_STEPS})"
        )
        parser.add_argument("--seed", type=int)
        parser.add_argument("--report", type=Path, help="also write the report here")
        parser.add_argument("--notes", type=Path, help="Markdown appended to the report")

    def handle(self, *args: object, **options: object) -> None:
        from generation.ldm.precision import flush_denormals

        flush_denormals()  # before torch starts its threads (see StepCommand.torch_work)
        try:
            plan = options_for(
                str(options["dataset"]),
                [s.strip() for s in str(options["schemes"]).split(",") if s.strip()],
                str(options["preset"]),
                options["budget_minutes"],  # type: ignore[arg-type]
                train_split=options["train_split"],
                test_split=options["test_split"],
                cohort_size=options["cohort_size"],
                reference_size=options["reference_size"],
                clusters=options["clusters"],
                sampling_steps=options["sampling_steps"],
                seed=options["seed"],
            )
            experiment = run_experiment(
                str(options["name"]),
                plan,
                report_to=options["report"],  # type: ignore[arg-type]
                notes=options["notes"],  # type: ignore[arg-type]
                log=lambda line: self.stdout.write(line),
            )
        except ExperimentError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Report: {experiment.steps['report']['path']}")
