"""The shape of generation's commands: run one step, print its summary."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

DEVICES = ("auto", "cpu", "cuda")


def add_device_argument(parser: CommandParser) -> None:
    """--device, defaulting to HISTOSTUDY_DEVICE (auto: a CUDA GPU when torch sees one)."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=settings.HISTOSTUDY_DEVICE,
        help="where networks run (default: HISTOSTUDY_DEVICE, else auto)",
    )


class StepCommand(BaseCommand):
    """Runs one step and prints its summary: lines for people, or one JSON document with
    --json, which also turns progress bars and logs off so that stdout parses. The step's
    own errors (`errors`) become a CommandError with their message: nothing half-done is
    reported as done.

    Subclasses implement add_options() and run(); summaries with as_dict() and lines() need
    nothing more.
    """

    errors: tuple[type[Exception], ...] = ()
    # the step runs networks on this process's CPU threads: subnormal floats flushed first
    # (ldm.precision.flush_denormals), before torch starts its threads
    torch_work = True

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_options(parser)
        parser.add_argument(
            "--json", action="store_true", help="print the summary as JSON (and no progress)"
        )

    def add_options(self, parser: CommandParser) -> None:
        """The command's own options."""

    def run(self, options: dict[str, Any], progress: bool) -> Any:
        raise NotImplementedError

    def handle(self, *args: object, **options: Any) -> None:
        quiet = bool(options["json"])
        if self.torch_work:
            from generation.ldm.precision import flush_denormals

            flush_denormals()
        try:
            result = self.run(options, progress=not quiet)
        except self.errors as exc:
            raise CommandError(self.explain(exc)) from exc
        text = json.dumps(self.as_json(result)) if quiet else "\n".join(self.lines(result))
        if text:  # a command with nothing to add after its own output prints no empty line
            self.stdout.write(text)

    def explain(self, exc: Exception) -> str:
        return str(exc)

    def as_json(self, result: Any) -> Any:
        return result.as_dict()

    def lines(self, result: Any) -> list[str]:
        return result.lines()
