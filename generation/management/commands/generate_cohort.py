"""manage.py generate_cohort: see generation.cohorts.storage.generate_cohort."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from generation.cohorts import CohortRequest, CohortSummary, Runtime, generate_cohort
from generation.generators import GeneratorError
from generation.ldm.config import SAMPLING, SCHEDULERS
from generation.management.base import StepCommand, add_device_argument


class Command(StepCommand):
    help = (
        "Pick N real tiles of a split stratified by label and morphology cluster (never the "
        "generator's training tiles), generate N synthetic tiles for the same strata, and store "
        "both as one cohort. A killed run, run again with the same arguments, completes it."
    )

    errors = (GeneratorError,)

    def add_options(self, parser: CommandParser) -> None:
        parser.add_argument("--generator", required=True)
        parser.add_argument("--real-dataset", required=True)
        parser.add_argument("--split", required=True)
        parser.add_argument("--size", type=int, required=True, help="tiles per half")
        parser.add_argument("--name", required=True, help="cohort name")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--sampling",
            choices=sorted(SAMPLING),
            default="default",
            help="named steps, guidance and scheduler: default "
            f"({SAMPLING['default'].steps} steps, guidance {SAMPLING['default'].guidance:g}) or "
            f"the paper's ({SAMPLING['paper'].steps}, {SAMPLING['paper'].guidance:g})",
        )
        parser.add_argument("--steps", type=int, help="solver steps (overrides --sampling)")
        parser.add_argument("--guidance", type=float, help="guidance scale (overrides --sampling)")
        parser.add_argument("--scheduler", choices=SCHEDULERS, help="solver (overrides --sampling)")
        parser.add_argument("--batch-size", type=int, default=64)
        add_device_argument(parser)
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

    def run(self, options: dict, progress: bool) -> CohortSummary:
        try:
            sampling = SAMPLING[options["sampling"]].replace(
                steps=options["steps"], guidance=options["guidance"], scheduler=options["scheduler"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        request = CohortRequest(
            generator=str(options["generator"]),
            real_dataset=str(options["real_dataset"]),
            split=str(options["split"]),
            size=int(options["size"]),
            name=str(options["name"]),
            seed=int(options["seed"]),
            sampling=sampling,
        )
        runtime = Runtime(
            batch_size=int(options["batch_size"]),
            device=str(options["device"]),
            precision=str(options["precision"]),
            compiled=bool(options["compile"]),
        )
        return generate_cohort(request, runtime, progress=progress)
