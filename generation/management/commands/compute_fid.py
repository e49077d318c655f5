"""manage.py compute_fid: see generation.evaluation.fid."""

from __future__ import annotations

from django.core.management.base import CommandParser

from generation.evaluation import FidError, FidRequest, FidSummary, compute_fid
from generation.management.base import StepCommand, add_device_argument


class Command(StepCommand):
    help = (
        "FID and KID (Inception-v3 pool features) of a cohort's synthetic tiles, or of a "
        "dataset split, against real reference tiles; each result is stored with n, weights "
        "checksum and preprocessing. --floor adds real vs real, the floor to beat."
    )

    errors = (FidError,)

    def add_options(self, parser: CommandParser) -> None:
        parser.add_argument("--cohort", help="measure this cohort's synthetic half")
        parser.add_argument("--dataset", help="or measure this dataset's --split")
        parser.add_argument("--split", help="split of --dataset, and of --reference")
        parser.add_argument("--reference", help="real dataset (default: the cohort's)")
        parser.add_argument("--reference-split", help="default: --split, else the cohort's")
        parser.add_argument("--per-label", action="store_true", help="also healthy and tumour")
        parser.add_argument("--floor", action="store_true", help="also real vs real")
        parser.add_argument(
            "--precision-recall", action="store_true", help="also improved precision/recall, k=3"
        )
        parser.add_argument("--max-tiles", type=int, help="seeded subsample per set")
        parser.add_argument("--kid-subsets", type=int, default=100)
        parser.add_argument("--kid-subset-size", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=0)
        add_device_argument(parser)

    def run(self, options: dict, progress: bool) -> FidSummary:
        request = FidRequest(
            cohort=options["cohort"],
            dataset=options["dataset"],
            split=options["split"],
            reference=options["reference"],
            reference_split=options["reference_split"] or options["split"],
            per_label=bool(options["per_label"]),
            floor=bool(options["floor"]),
            with_precision_recall=bool(options["precision_recall"]),
            max_tiles=options["max_tiles"],
            kid_subsets=int(options["kid_subsets"]),
            kid_subset_size=int(options["kid_subset_size"]),
            seed=int(options["seed"]),
        )
        return compute_fid(request, device=str(options["device"]), progress=progress)
