"""manage.py demo: see studies.demo (what `make demo` runs before it starts the server)."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.annotation import SCHEMES
from generation.ldm.config import SAMPLING_STEPS, SamplingConfig
from generation.presets import PRESETS
from studies.demo import DEMO_STEPS, DemoError, DemoOptions, run_demo


class Command(BaseCommand):
    help = (
        "Set up the demo: import PCam tiles, annotate them, train a generator for a bounded "
        "time, generate a small cohort, open a study with a staff and two reader accounts, and "
        "print the URLs and logins. A second run reuses everything and takes seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--pcam", type=Path, default=Path("data/pcam"), help="PCam image folder"
        )
        parser.add_argument(
            "--no-download",
            action="store_true",
            help="without tiles, stop instead of downloading the PCam validation split",
        )
        parser.add_argument("--dataset", default="pcam-sample")
        parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
        parser.add_argument("--scheme", choices=SCHEMES, default="morphology")
        parser.add_argument(
            "--train-steps",
            default=",".join(map(str, DEMO_STEPS)),
            metavar="AUTOENCODER,DENOISER",
            help="the generator's training steps (default: about 10 minutes on a 2-core VM)",
        )
        parser.add_argument(
            "--minutes",
            type=float,
            default=20.0,
            help="the whole demo's time, from --started to the open study: the generator "
            "trains for what the steps before and after it leave",
        )
        parser.add_argument(
            "--started",
            type=float,
            default=None,
            metavar="UNIX_TIME",
            help="when the demo's minutes began (make demo passes its own start, so that the "
            "install counts); default: now",
        )
        parser.add_argument(
            "--train-minutes", type=float, default=None, help="a cap on the training time alone"
        )
        parser.add_argument(
            "--evaluate-size", type=int, default=200, help="synthetic tiles scored for FID"
        )
        parser.add_argument("--clusters", type=int, default=33, help="morphology clusters")
        parser.add_argument("--cohort-size", type=int, default=24, help="tiles per half")
        parser.add_argument("--cases", type=int, default=20, help="scored tiles per reader")
        parser.add_argument("--practice", type=int, default=2, help="practice tiles per reader")
        parser.add_argument("--steps", type=int, default=SAMPLING_STEPS, help="sampling steps")
        parser.add_argument(
            "--accounts-file",
            type=Path,
            default=Path(settings.BASE_DIR) / "data" / "demo-accounts.json",
            help="where the demo accounts' passwords are kept (mode 0600)",
        )
        parser.add_argument("--host", default="127.0.0.1:8000", help="host:port in the URLs")

    def handle(self, *args: object, **options: object) -> None:
        started = options["started"]
        if started is not None and float(started) > time.time() + 60:  # type: ignore[arg-type]
            raise CommandError(f"--started {started}: a Unix time in seconds, not in the future")
        for name in ("minutes", "train_minutes"):
            if options[name] is not None and float(options[name]) <= 0:  # type: ignore[arg-type]
                raise CommandError(f"--{name.replace('_', '-')} must be positive")
        try:
            vae_steps, unet_steps = (int(x) for x in str(options["train_steps"]).split(","))
        except ValueError as exc:
            raise CommandError(
                f"--train-steps {options['train_steps']!r}: expected two positive integers, "
                "AUTOENCODER,DENOISER"
            ) from exc
        if min(vae_steps, unet_steps) < 1:
            raise CommandError("--train-steps: both step counts must be positive")
        try:  # the check every sampling setting passes
            SamplingConfig(steps=int(options["steps"]))  # type: ignore[arg-type]
        except ValueError as exc:
            raise CommandError(f"--steps (sampling steps): {exc}") from exc
        demo = DemoOptions(
            pcam=options["pcam"],  # type: ignore[arg-type]
            accounts_file=options["accounts_file"],  # type: ignore[arg-type]
            dataset=str(options["dataset"]),
            download=not options["no_download"],
            preset=str(options["preset"]),
            scheme=str(options["scheme"]),
            train_steps=(vae_steps, unet_steps),
            minutes=float(options["minutes"]),  # type: ignore[arg-type]
            started=options["started"],  # type: ignore[arg-type]
            train_minutes=options["train_minutes"],  # type: ignore[arg-type]
            evaluate_size=int(options["evaluate_size"]),  # type: ignore[arg-type]
            clusters=int(options["clusters"]),  # type: ignore[arg-type]
            cohort_size=int(options["cohort_size"]),  # type: ignore[arg-type]
            cases=int(options["cases"]),  # type: ignore[arg-type]
            practice=int(options["practice"]),  # type: ignore[arg-type]
            steps=int(options["steps"]),  # type: ignore[arg-type]
            host=str(options["host"]),
        )
        try:
            summary = run_demo(demo, say=self.stdout.write)
        except DemoError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("\n".join(summary.lines()))
