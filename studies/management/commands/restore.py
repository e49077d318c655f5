"""manage.py restore DIR: see studies.backup."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studies.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore a folder written by `manage.py backup` into a freshly migrated, empty database "
        "and MEDIA_ROOT; checksums are verified first and nothing is written if any check fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path)

    def handle(self, *args: object, **options: object) -> None:
        try:
            summary = restore(options["folder"])  # type: ignore[arg-type]
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Restored {summary.rows} rows and {summary.media_files} media files from "
            f"{summary.path} in {summary.seconds:.1f} s"
        )
