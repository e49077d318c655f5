"""`make demo`: from PCam tiles to an open reader study in one command, safe to run again.

Each step looks at what exists first and reuses it, so a second run only checks and prints:
1. real tiles (an image folder, else the PCam validation split downloaded by import_tiles);
2. annotations and prompts (annotate_tiles resumes by itself);
3. a generator trained for a bounded time (the `cpu` preset by default): the demo's minutes
   (20 by default, counted from `make demo`'s start, the install included) less what the steps
   before took and what the steps after will take at the speed probed here;
4. a small cohort of real + synthetic tiles from held-out tiles;
5. a staff account and two reader accounts, with passwords kept in a file only this user reads;
6. an open study for the two readers.
The summary ends with the accounts and the URLs to open.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count

from generation.annotation import AnnotationError, annotate_dataset
from generation.cohorts import CohortRequest, generate_cohort
from generation.evaluation import (
    EvaluationError,
    EvaluationRequest,
    evaluate_generator,
    inception_seconds,
)
from generation.generators import (
    GeneratorError,
    TrainingTimeError,
    check_trained,
    flush_denormals,
    train_generator,
)
from generation.ldm.config import SAMPLING_STEPS, AfterTraining, SamplingConfig
from generation.models import Cohort, Dataset, FidelityEvaluation, Generator, TileAnnotation
from generation.tiles import (
    TileImportError,
    import_tiles,
)
from studies.accounts import ensure_accounts
from studies.models import Study
from studies.pcam import MissingPcam, pcam_folder

GENERATOR = "demo-{preset}"
COHORT = "demo-cohort"
# Autoencoder and denoiser steps of the demo's generator: about 10 minutes of the cpu preset on
# a 2-core development VM with AMX (docs/BENCHMARKS.md); the demo's --minutes cap the time, and a
# machine too slow to reach the preset's minimum steps within them gets an error, not noise.
DEMO_STEPS = (700, 1300)
STUDY = "demo"
STAFF = "researcher"
READERS = ("pathologist1", "pathologist2")
MINUTES_HINT = "make demo DEMO_MINUTES=..., or manage.py demo --minutes ..."


# A step: (options, summary, say) -> (one line of what is there now, whether it made anything)
Step = Callable[["DemoOptions", "DemoSummary", Callable[[str], None]], tuple[str, bool]]


class DemoError(Exception):
    """The demo cannot go on; the message says what to do."""


@dataclass(frozen=True)
class DemoOptions:
    pcam: Path  # an image folder <split>/<label>/*.jpg, as the PCam sample
    accounts_file: Path
    dataset: str = "pcam-sample"
    download: bool = True  # no tiles at `pcam`: import_tiles --download valid
    preset: str = "cpu"
    scheme: str = "morphology"
    train_steps: tuple[int, int] = DEMO_STEPS  # autoencoder, denoiser
    # the whole demo, from `started` (Unix time; None: when run_demo starts) to the open study:
    # training gets what the steps before it left, less what the steps after it take here
    minutes: float = 20.0
    started: float | None = None
    train_minutes: float | None = None  # a cap on training alone
    evaluate_size: int = 200  # synthetic tiles scored against held-out real ones
    clusters: int = 33
    cohort_size: int = 24  # tiles per half
    cases: int = 20  # per reader
    practice: int = 2
    steps: int = SAMPLING_STEPS  # sampling steps
    host: str = "127.0.0.1:8000"


@dataclass
class DemoSummary:
    host: str
    study_pk: int
    accounts: dict[str, str]
    facts: list[str] = field(default_factory=list)  # one line per step
    made: list[str] = field(default_factory=list)  # the steps that made something
    deadline: float = math.inf  # time.monotonic() at which the demo's minutes run out

    def lines(self) -> list[str]:
        base = f"http://{self.host}"
        readers = [u for u in self.accounts if u != STAFF]
        return [
            "",
            "HistoStudy demo is ready"
            + (f" (made now: {', '.join(self.made)})" if self.made else " (everything reused)"),
            *(f"  {fact}" for fact in self.facts),
            "",
            "Accounts (passwords also in the accounts file above):",
            *(f"  reader  {u} / {self.accounts[u]}" for u in readers),
            f"  staff   {STAFF} / {self.accounts[STAFF]}",
            "",
            f"Open this URL and sign in as a reader: {base}/accounts/login/?next=/read/",
            f"  admin (staff account):  {base}/admin/",
            f"  study dashboard:        {base}/dashboards/studies/{self.study_pk}/",
            f"  generation dashboard:   {base}/dashboards/generation/",
        ]


def run_demo(options: DemoOptions, say: Callable[[str], None] = print) -> DemoSummary:
    """Every step in order; see the module docstring."""
    flush_denormals()  # before torch starts its threads: training slows on subnormal floats
    steps: list[tuple[str, Step]] = [
        ("tiles", _tiles),
        ("annotations", _annotations),
        ("generator", _generator),
        ("fidelity", _fidelity),
        ("cohort", _cohort),
        ("accounts", _accounts),
        ("study", _study),
    ]
    origin = time.time() if options.started is None else options.started  # Unix time
    deadline = time.monotonic() + 60 * options.minutes - (time.time() - origin)
    summary = DemoSummary(options.host, 0, {}, deadline=deadline)
    for number, (name, step) in enumerate(steps, 1):
        started = time.perf_counter()
        say(f"== {number}/{len(steps)} {name}")
        fact, made = step(options, summary, say)
        summary.facts.append(fact)
        summary.made += [name] if made else []
        say(f"   {'done' if made else 'reused'}: {fact} ({time.perf_counter() - started:.1f} s)")
    return summary


# --- the steps ----------------------------------------------------------------------------


def _tiles(
    options: DemoOptions, summary: DemoSummary, say: Callable[[str], None]
) -> tuple[str, bool]:
    dataset = Dataset.objects.filter(name=options.dataset).first()
    made = dataset is None or not dataset.tiles.exists()
    if made:
        try:
            source = pcam_folder(options.pcam, options.download, say)
        except MissingPcam as exc:
            raise DemoError(str(exc)) from exc
        say(f"   importing {source} into {options.dataset!r}")
        try:
            import_tiles(source, options.dataset)
        except TileImportError as exc:
            raise DemoError(
                f"{exc}\nNothing was imported; fix the files or pick another folder with PCAM=DIR."
            ) from exc
        dataset = Dataset.objects.get(name=options.dataset)
    splits = dict(dataset.tiles.order_by("split").values_list("split").annotate(n=Count("pk")))
    per_split = ", ".join(f"{s} {n:,}" for s, n in splits.items())
    return f"tiles: {sum(splits.values()):,} in {options.dataset!r} ({per_split})", made


def _annotations(
    options: DemoOptions, summary: DemoSummary, say: Callable[[str], None]
) -> tuple[str, bool]:
    annotations = TileAnnotation.objects.filter(tile__dataset__name=options.dataset)
    tiles = Dataset.objects.get(name=options.dataset).tiles.count()
    finished = (
        annotations.exclude(prompts={}).count() + annotations.filter(quality_ok=False).count()
    )
    made = finished < tiles
    if made:
        try:
            annotate_dataset(options.dataset, clusters=options.clusters)
        except AnnotationError as exc:
            raise DemoError(str(exc)) from exc
    accepted = annotations.filter(quality_ok=True).count()
    return (
        f"annotations: {accepted:,} tiles accepted, {tiles - accepted:,} rejected by the quality "
        f"filter, {options.clusters} morphology clusters",
        made,
    )


def _splits(options: DemoOptions) -> tuple[str, str, int | None]:
    """(training split, cohort split, training tile cap): the sample's train and valid, or one
    split (the downloaded valid file) shared, half of it for training."""
    accepted = TileAnnotation.objects.filter(tile__dataset__name=options.dataset, quality_ok=True)
    counts = dict(
        accepted.order_by("tile__split").values_list("tile__split").annotate(n=Count("pk"))
    )
    if not counts:
        raise DemoError(f"no tile of {options.dataset!r} passed the quality filter")
    if "train" in counts and len(counts) > 1:
        return (
            "train",
            "valid" if "valid" in counts else next(s for s in counts if s != "train"),
            None,
        )
    only = max(counts, key=counts.__getitem__)
    return only, only, counts[only] // 2  # generate_cohort never picks a training tile


def _generator(
    options: DemoOptions, summary: DemoSummary, say: Callable[[str], None]
) -> tuple[str, bool]:

    name = GENERATOR.format(preset=options.preset)
    made = not Generator.objects.filter(name=name).exists()
    if made:
        train_split, _, cap = _splits(options)
        vae_steps, unet_steps = options.train_steps
        spent = options.minutes - (summary.deadline - time.monotonic()) / 60
        if summary.deadline <= time.monotonic():
            raise DemoError(
                f"the demo's {options.minutes:g} minutes were spent ({spent:.1f}) before "
                f"training began; give it more minutes ({MINUTES_HINT})"
            )
        say(
            f"   training {name!r} ({options.preset} preset, {options.scheme} prompts): "
            f"{vae_steps} autoencoder + {unet_steps} denoiser steps, within the demo's "
            f"{options.minutes:g} minutes ({spent:.1f} spent) less the steps after it"
            + (f", at most {options.train_minutes:g}" if options.train_minutes else "")
        )
        try:  # the fidelity step's Inception features (synthetic, reference, floor, recon.)
            features = inception_seconds(4 * options.evaluate_size)
        except EvaluationError as exc:
            raise DemoError(f"the fidelity step cannot run: {exc}") from exc
        after = AfterTraining(options.evaluate_size + options.cohort_size, options.steps, features)
        try:
            train_generator(
                dataset=options.dataset,
                scheme=options.scheme,
                preset=options.preset,
                name=name,
                split=train_split,
                overrides={"vae_steps": str(vae_steps), "unet_steps": str(unet_steps)},
                max_minutes=options.train_minutes,
                deadline=summary.deadline,
                max_tiles=cap,
                resume=True,  # continues a demo stopped during training
                preview_steps=options.steps,  # as its cohort is sampled
                after=after,
            )
        except GeneratorError as exc:
            hint = (  # the minutes the user sets, by either way of running the demo
                f" (the demo's {options.minutes:g} minutes count from its start: add the "
                f"{spent:.1f} spent before training; {MINUTES_HINT}"
                + (", and --train-minutes" if options.train_minutes else "")
                + ")"
                if isinstance(exc, TrainingTimeError)
                else ""
            )
            raise DemoError(f"{exc}{hint}") from exc
    generator = Generator.objects.get(name=name)
    try:
        check_trained(generator, options.preset)
    except GeneratorError as exc:
        raise DemoError(
            f"{exc}; no study is opened on it. Delete it in admin (Generators) and run the demo "
            f"again, with more minutes on a slow machine ({MINUTES_HINT})"
        ) from exc
    return (
        f"generator: {name!r} on {generator.tiles_trained:,} tiles, {generator.vae_steps} "
        f"autoencoder + {generator.unet_steps} denoiser steps in "
        f"{generator.wall_seconds / 60:.1f} min",
        made,
    )


def _fidelity(
    options: DemoOptions, summary: DemoSummary, say: Callable[[str], None]
) -> tuple[str, bool]:
    """FID against held-out real tiles beside the real-vs-real floor, and the autoencoder's
    ceiling: what the readers will be shown, in numbers, before anyone reads."""

    generator = Generator.objects.get(name=GENERATOR.format(preset=options.preset))
    evaluation = FidelityEvaluation.objects.filter(generator=generator).first()
    made = evaluation is None
    if made:
        _, split, _ = _splits(options)
        say(f"   scoring {options.evaluate_size} synthetic tiles against held-out real ones")
        request = EvaluationRequest(
            generator=generator.name,
            split=split,
            size=options.evaluate_size,
            sampling=SamplingConfig(steps=options.steps),
            measures=("morphology",),
        )
        try:
            evaluation = evaluate_generator(request, log=say)
        except EvaluationError as exc:
            raise DemoError(str(exc)) from exc
    return (
        f"fidelity: FID {evaluation.fid:.1f} (real-vs-real floor {evaluation.floor_fid:.1f}) at "
        f"{evaluation.n_synthetic} vs {evaluation.n_real}; autoencoder rFID {evaluation.rfid:.1f},"
        f" PSNR {evaluation.psnr:.1f} dB",
        made,
    )


def _cohort(
    options: DemoOptions, summary: DemoSummary, say: Callable[[str], None]
) -> tuple[str, bool]:

    cohort = Cohort.objects.filter(name=COHORT).first()
    name = GENERATOR.format(preset=options.preset)
    if cohort is not None and cohort.generator.name != name:  # the study would show its tiles
        raise DemoError(
            f"the demo's cohort {COHORT!r} was made by generator {cohort.generator.name!r}, not "
            f"{name!r}: run make demo with the preset that made it (DEMO_PRESET=...), or "
            "start from a new database (DATABASE_URL)"
        )
    made = cohort is None or cohort.completed_at is None
    if made:
        _, split, _ = _splits(options)
        try:
            generate_cohort(
                CohortRequest(
                    generator=name,
                    real_dataset=options.dataset,
                    split=split,
                    size=options.cohort_size,
                    name=COHORT,
                    sampling=SamplingConfig(steps=options.steps),
                )
            )
        except GeneratorError as exc:
            raise DemoError(str(exc)) from exc
        cohort = Cohort.objects.get(name=COHORT)
    return (
        f"cohort: {COHORT!r}, {cohort.size} real + {cohort.size} synthetic tiles of split "
        f"{cohort.split!r}",
        made,
    )


def _accounts(
    options: DemoOptions, summary: DemoSummary, say: Callable[[str], None]
) -> tuple[str, bool]:
    accounts, made = ensure_accounts(options.accounts_file, READERS, STAFF)
    summary.accounts = accounts
    return (
        f"accounts: {STAFF} (staff) and {', '.join(READERS)} (readers), in {options.accounts_file}",
        made,
    )


def _study(
    options: DemoOptions, summary: DemoSummary, say: Callable[[str], None]
) -> tuple[str, bool]:
    readers = list(get_user_model().objects.filter(username__in=READERS))
    with transaction.atomic():
        study = Study.objects.filter(name=STUDY).first()
        made = study is None
        if made:
            study = Study.objects.create(
                name=STUDY,
                title="Real or synthetic? (HistoStudy demo)",
                instructions=(
                    "Each tile is a 96 x 96 pixel H&E tile from a lymph-node section, shown at "
                    "4x. Some are real PCam tiles and some were generated by the demo's model. "
                    f"Say which you think each one is, and how sure you are. The first "
                    f"{options.practice} tiles are practice: you are told the truth after them."
                ),
                cohort=Cohort.objects.get(name=COHORT),
                cases_per_reader=options.cases,
                practice_trials=options.practice,
                seed=20261201,
            )
        missing = [r for r in readers if not study.readers.filter(pk=r.pk).exists()]
        if missing:
            study.readers.add(*missing)
        if study.status != Study.Status.OPEN or missing:
            study.open()
            made = True
    summary.study_pk = study.pk
    return (
        f"study: {STUDY!r} ({study.status}), {study.cases_per_reader} tiles per reader after "
        f"{study.practice_trials} practice tiles, {len(readers)} readers",
        made,
    )
