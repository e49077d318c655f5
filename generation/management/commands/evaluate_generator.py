"""manage.py evaluate_generator: see generation.evaluation."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.classifier import PRESETS as CLASSIFIER_PRESETS
from generation.evaluation import (
    MEASURES,
    EvaluationError,
    EvaluationRequest,
    evaluate_generator,
    summary_dict,
    summary_lines,
)
from generation.ldm.config import GUIDANCE, SAMPLING_STEPS


class Command(BaseCommand):
    help = (
        "Every fidelity measure of a generator against held-out real tiles: FID, KID and "
        "precision/recall beside the real-vs-real floor at the same sizes, the autoencoder's "
        "reconstruction ceiling (rFID, PSNR, SSIM), label and morphology fidelity, machine "
        "readers after the presentation pipeline, and the utility of its tiles for training a "
        "classifier. Generates an evaluation cohort first unless --cohort names one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("generator", help="a registered generator's name")
        parser.add_argument("--cohort", help="evaluate this existing cohort of the generator")
        parser.add_argument("--split", default="valid", help="held-out real tiles (default valid)")
        parser.add_argument("--size", type=int, default=1000, help="synthetic tiles to make")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--steps", type=int, default=SAMPLING_STEPS, help="sampling steps")
        parser.add_argument("--guidance", type=float, default=GUIDANCE)
        parser.add_argument(
            "--classifier-preset", choices=sorted(CLASSIFIER_PRESETS), default="cpu"
        )
        parser.add_argument("--reader-folds", type=int, default=4)
        parser.add_argument(
            "--skip",
            default="",
            metavar="MEASURE,...",
            help=f"leave out some of {', '.join(MEASURES)} (FID and the autoencoder's "
            "ceiling are always measured)",
        )
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: object, **options: object) -> None:
        skipped = {m.strip() for m in str(options["skip"]).split(",") if m.strip()}
        if skipped - set(MEASURES):
            raise CommandError(f"--skip {options['skip']}: expected some of {', '.join(MEASURES)}")
        request = EvaluationRequest(
            generator=str(options["generator"]),
            cohort=options["cohort"],  # type: ignore[arg-type]
            split=str(options["split"]),
            size=int(options["size"]),  # type: ignore[arg-type]
            seed=int(options["seed"]),  # type: ignore[arg-type]
            steps=int(options["steps"]),  # type: ignore[arg-type]
            guidance=float(options["guidance"]),  # type: ignore[arg-type]
            classifier_preset=str(options["classifier_preset"]),
            reader_folds=int(options["reader_folds"]),  # type: ignore[arg-type]
            measures=tuple(m for m in MEASURES if m not in skipped),
            device=str(options["device"]),
            progress=not options["json"],
        )
        quiet = options["json"]
        try:
            evaluation = evaluate_generator(request, log=(lambda _: None) if quiet else print)
        except EvaluationError as exc:
            raise CommandError(str(exc)) from exc
        if quiet:
            self.stdout.write(json.dumps(summary_dict(evaluation)))
        else:
            self.stdout.write("\n".join(summary_lines(evaluation)))
