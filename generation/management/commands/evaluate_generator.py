"""manage.py evaluate_generator: see generation.evaluation."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from generation.evaluation import (
    MEASURES,
    EvaluationError,
    EvaluationRequest,
    evaluate_generator,
    summary_dict,
    summary_lines,
)
from generation.ldm.config import GUIDANCE, SAMPLING_STEPS, SamplingConfig
from generation.management.base import StepCommand, add_device_argument
from generation.models import FidelityEvaluation
from generation.presets import PRESETS


class Command(StepCommand):
    help = (
        "Every fidelity measure of a generator against held-out real tiles: FID, KID and "
        "precision/recall beside the real-vs-real floor at the same sizes, the autoencoder's "
        "reconstruction ceiling (rFID, PSNR, SSIM), label and morphology fidelity, machine "
        "readers after the presentation pipeline, and the utility of its tiles for training a "
        "classifier. Generates an evaluation cohort first unless --cohort names one."
    )

    errors = (EvaluationError,)

    def add_options(self, parser: CommandParser) -> None:
        parser.add_argument("generator", help="a registered generator's name")
        parser.add_argument("--cohort", help="evaluate this existing cohort of the generator")
        parser.add_argument("--split", default="valid", help="held-out real tiles (default valid)")
        parser.add_argument("--size", type=int, default=1000, help="synthetic tiles to make")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--steps", type=int, default=SAMPLING_STEPS, help="sampling steps")
        parser.add_argument("--guidance", type=float, default=GUIDANCE)
        parser.add_argument("--classifier-preset", choices=sorted(PRESETS), default="cpu")
        parser.add_argument("--reader-folds", type=int, default=4)
        parser.add_argument(
            "--skip",
            default="",
            metavar="MEASURE,...",
            help=f"leave out some of {', '.join(MEASURES)} (FID and the autoencoder's "
            "ceiling are always measured)",
        )
        add_device_argument(parser)

    def run(self, options: dict, progress: bool) -> FidelityEvaluation:
        skipped = {m.strip() for m in str(options["skip"]).split(",") if m.strip()}
        if skipped - set(MEASURES):
            raise CommandError(f"--skip {options['skip']}: expected some of {', '.join(MEASURES)}")
        try:
            sampling = SamplingConfig(
                steps=int(options["steps"]), guidance=float(options["guidance"])
            )
        except ValueError as exc:
            raise CommandError(f"--steps/--guidance: {exc}") from exc
        request = EvaluationRequest(
            generator=str(options["generator"]),
            cohort=options["cohort"],  # type: ignore[arg-type]
            split=str(options["split"]),
            size=int(options["size"]),  # type: ignore[arg-type]
            seed=int(options["seed"]),  # type: ignore[arg-type]
            sampling=sampling,
            classifier_preset=str(options["classifier_preset"]),
            reader_folds=int(options["reader_folds"]),  # type: ignore[arg-type]
            measures=tuple(m for m in MEASURES if m not in skipped),
            device=str(options["device"]),
            progress=progress,
        )
        return evaluate_generator(request, log=print if progress else (lambda _: None))

    def as_json(self, result: FidelityEvaluation) -> dict:
        return summary_dict(result)

    def lines(self, result: FidelityEvaluation) -> list[str]:
        return summary_lines(result)
