"""manage.py import_tiles SOURCE --dataset NAME: see generation.tiles.importer."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from generation.management.base import StepCommand
from generation.tiles.download import PCAM_FILES, DownloadError, download_pcam
from generation.tiles.importer import ImportSummary, TileImportError, import_tiles
from generation.tiles.sources import FORMATS


class Command(StepCommand):
    help = (
        "Import real tiles from an image folder <split>/<label>/*, a CSV manifest "
        "path,label[,split], or a PCam HDF5 pair (*_x.h5[.gz] + *_y.h5[.gz]). Each unique tile is "
        "stored once; a re-run adds nothing; bad input aborts with nothing kept."
    )

    errors = (TileImportError,)
    torch_work = False

    def add_options(self, parser: CommandParser) -> None:
        parser.add_argument("source", nargs="?", help="folder, .csv manifest or *_x.h5[.gz] file")
        parser.add_argument("--dataset", required=True, help="dataset name (created if new)")
        parser.add_argument("--format", choices=FORMATS, help="source format (default: detect)")
        parser.add_argument("--split", help="split for sources that do not name one")
        parser.add_argument("--tile-size", type=int, default=96, help="expected tile side (px)")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="import the valid tiles and list each skipped one instead of aborting",
        )
        parser.add_argument("--workers", type=int, help="decoding processes (default: all cores)")
        parser.add_argument(
            "--download",
            choices=sorted(PCAM_FILES),
            help="fetch the official PCam HDF5 files of this split into the cache, then import",
        )

    def run(self, options: dict, progress: bool) -> ImportSummary:
        source = self.resolve_source(options)
        return import_tiles(
            source,
            str(options["dataset"]),
            fmt=options["format"],  # type: ignore[arg-type]
            split=options["split"],  # type: ignore[arg-type]
            tile_size=int(options["tile_size"]),  # type: ignore[arg-type]
            skip_invalid=bool(options["skip_invalid"]),
            workers=options["workers"],  # type: ignore[arg-type]
            progress=progress,
        )

    def explain(self, exc: Exception) -> str:
        return f"{exc}\nNothing was imported."

    def resolve_source(self, options: dict) -> Path:
        if options["download"]:
            if options["source"]:
                raise CommandError("give either SOURCE or --download, not both")
            try:
                return download_pcam(
                    options["download"],
                    Path(settings.HISTOSTUDY_CACHE_DIR),
                    settings.HISTOSTUDY_PCAM_URL,
                )
            except DownloadError as exc:
                raise CommandError(str(exc)) from exc
        if not options["source"]:
            raise CommandError("SOURCE is required (a folder, a .csv manifest or an *_x.h5 file)")
        if int(options["tile_size"]) < 1:
            raise CommandError("--tile-size must be a positive number of pixels")
        return Path(options["source"])
