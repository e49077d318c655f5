"""manage.py backup DIR: see studies.backup."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studies.backup import BackupError, backup


class Command(BaseCommand):
    help = (
        "Write the database (as Django fixtures, any backend) and MEDIA_ROOT into a new folder "
        "with a checksummed manifest; `manage.py restore DIR` brings it back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help="a new folder for this backup")

    def handle(self, *args: object, **options: object) -> None:
        try:
            summary = backup(options["folder"])  # type: ignore[arg-type]
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Backup in {summary.path}: {summary.rows} rows, {summary.media_files} media files, "
            f"{summary.seconds:.1f} s"
        )
