"""manage.py generate_cohort: see generation.generators.generate_cohort."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.generators import GeneratorError, generate_cohort
from generation.ldm.config import GUIDANCE, SAMPLING_STEPS
from generation.ldm.models import SCHEDULERS


class Command(BaseCommand):
    help = (
        "Pick N real tiles of a split stratified by label and morphology cluster (never the "
        "generator's training tiles), generate N synthetic tiles for the same strata, and store "
        "both as one cohort. A killed run, run again with the same arguments, completes it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--generator", required=True)
        parser.add_argument("--real-dataset", required=True)
        parser.add_argument("--split", required=True)
        parser.add_argument("--size", type=int, required=True, help="tiles per half")
        parser.add_argument("--name", required=True, help="cohort name")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--steps", type=int, default=SAMPLING_STEPS)
        parser.add_argument("--guidance", type=float, default=GUIDANCE)
        parser.add_argument("--scheduler", choices=SCHEDULERS, default="dpm++")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
        parser.add_argument(
            "--precision",
            choices=["fp32", "bf16"],
            default="fp32",
            help="bf16: the networks under bf16 autocast (GPU throughput; recorded per tile)",
        )
        parser.add_argument(
            "--compile",
            action="store_true",
            help="torch.compile the networks: a minute or two at start, then faster batches "
            "(for large cohorts on a GPU node)",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: object, **options: object) -> None:
        try:
            summary = generate_cohort(
                generator=str(options["generator"]),
                real_dataset=str(options["real_dataset"]),
                split=str(options["split"]),
                size=int(options["size"]),  # type: ignore[arg-type]
                name=str(options["name"]),
                seed=int(options["seed"]),  # type: ignore[arg-type]
                steps=int(options["steps"]),  # type: ignore[arg-type]
                guidance=float(options["guidance"]),  # type: ignore[arg-type]
                scheduler=str(options["scheduler"]),
                batch_size=int(options["batch_size"]),  # type: ignore[arg-type]
                device=str(options["device"]),
                precision=str(options["precision"]),
                compiled=bool(options["compile"]),
            )
        except GeneratorError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            json.dumps(summary.as_dict()) if options["json"] else "\n".join(summary.lines())
        )
