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

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count

from generation.annotation import AnnotationError, annotate_dataset
from generation.annotation.embeddings import (
    EmbeddingError,
    InceptionEmbedder,
    inception_weights,
    pick_device,
)
from generation.cohorts import CohortRequest, generate_cohort
from generation.evaluation import EvaluationError, EvaluationRequest, evaluate_generator
from generation.generators import (
    GeneratorError,
    TrainingTimeError,
    flush_denormals,
    train_generator,
)
from generation.ldm.config import SAMPLING_STEPS, AfterTraining, SamplingConfig
from generation.models import Cohort, Dataset, FidelityEvaluation, Generator, TileAnnotation
from generation.presets import PRESETS
from generation.tiles import (
    DownloadError,
    TileImportError,
    download_pcam,
    import_tiles,
)
from studies.accounts import ensure_accounts
from studies.models import Study

GENERATOR = "demo-{preset}"
COHORT = "demo-cohort"
# Autoencoder and denoiser steps of the demo's generator: about 10 minutes of the cpu preset on
# a 2-core development VM with AMX (docs/BENCHMARKS.md); the demo's --minutes cap the time, and a
# machine too slow to reach the preset's minimum steps within them gets an error, not noise.
DEMO_STEPS = (700, 1300)
STUDY = "demo"
STAFF = "researcher"
READERS = ("pathologist1", "pathologist2")
PCAM_HOME = "https://github.com/basveeling/pcam"
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
    started = time.time() if options.started is None else options.started
    deadline = time.monotonic() + 60 * options.minutes - (time.time() - started)
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
        source = options.pcam if options.pcam.is_dir() else _download(options, say)
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


def _download(options: DemoOptions, say: Callable[[str], None]) -> Path:
    """The PCam validation split from the official mirror, or an error saying how to get PCam."""

    cache = Path(settings.HISTOSTUDY_CACHE_DIR) / "pcam"
    where = (
        f"No PCam tiles at {options.pcam}. HistoStudy needs real PCam tiles (96x96 H&E, "
        "healthy / tumour). Either:\n"
        f"  - put an image folder there, laid out as {options.pcam}/<split>/<label>/*.jpg "
        "(split train or valid, label 0 healthy or 1 tumour; the PCam sample has this layout), "
        "or name another folder with `make demo PCAM=/path/to/pcam`; or\n"
        f"  - download the official PCam files camelyonpatch_level_2_split_valid_x.h5.gz and "
        f"camelyonpatch_level_2_split_valid_y.h5.gz ({PCAM_HOME}, Zenodo record 2546921) "
        f"into {cache}/ and run `make demo` again."
    )
    if not options.download:
        raise DemoError(where)
    say(f"   no tiles at {options.pcam}; downloading the PCam validation split")
    try:
        return download_pcam(
            "valid", Path(settings.HISTOSTUDY_CACHE_DIR), settings.HISTOSTUDY_PCAM_URL
        )
    except DownloadError as exc:
        raise DemoError(f"{where}\nThe download failed: {exc}") from exc


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
        after = AfterTraining(
            tiles=options.evaluate_size + options.cohort_size,
            steps=options.steps,
            seconds=_feature_seconds(options),
        )
        deadline = summary.deadline
        if options.train_minutes is not None:
            deadline = min(deadline, time.monotonic() + 60 * options.train_minutes)
        spent = options.minutes - (summary.deadline - time.monotonic()) / 60
        if deadline <= time.monotonic():
            raise DemoError(
                f"the demo's {options.minutes:g} minutes were spent ({spent:.1f}) before "
                f"training began; give it more minutes ({MINUTES_HINT})"
            )
        say(
            f"   training {name!r} ({options.preset} preset, {options.scheme} prompts): "
            f"{vae_steps} autoencoder + {unet_steps} denoiser steps, at most "
            f"{(deadline - time.monotonic()) / 60:.1f} minutes less the steps after it (the "
            f"demo's {options.minutes:g}, {spent:.1f} spent)"
        )
        try:
            train_generator(
                dataset=options.dataset,
                scheme=options.scheme,
                preset=options.preset,
                name=name,
                split=train_split,
                overrides={"vae_steps": str(vae_steps), "unet_steps": str(unet_steps)},
                deadline=deadline,
                max_tiles=cap,
                resume=True,  # continues a demo stopped during training
                preview_steps=options.steps,  # as its cohort is sampled
                after=after,
            )
        except GeneratorError as exc:
            hint = (  # the minutes the user sets, by either way of running the demo
                f" (the demo's {options.minutes:g} minutes, {spent:.1f} of them spent before "
                f"training; {MINUTES_HINT})"
                if isinstance(exc, TrainingTimeError)
                else ""
            )
            raise DemoError(f"{exc}{hint}") from exc
    generator = Generator.objects.get(name=name)
    check_trained(generator, options.preset)
    return (
        f"generator: {name!r} on {generator.tiles_trained:,} tiles, {generator.vae_steps} "
        f"autoencoder + {generator.unet_steps} denoiser steps in "
        f"{generator.wall_seconds / 60:.1f} min",
        made,
    )


def _feature_seconds(options: DemoOptions) -> float:
    """Seconds the fidelity step's Inception features take here: four sets of evaluate_size
    tiles (synthetic, reference, floor, reconstructions), timed on two batches of up to 32
    random tiles after a warm-up one (one batch of 16 read 1.4 minutes where the step took 2).
    Missing or corrupt Inception weights stop the demo here, before any training, where the
    fidelity step would stop after it."""
    try:
        embedder = InceptionEmbedder(
            inception_weights(getattr(settings, "HISTOSTUDY_INCEPTION_WEIGHTS", None)),
            pick_device("auto"),
        )
    except EmbeddingError as exc:
        raise DemoError(f"the fidelity step cannot run: {exc}") from exc
    n = max(1, min(32, 4 * options.evaluate_size))
    tiles = np.random.default_rng(0).integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
    embedder.embed(tiles)
    began = time.monotonic()
    embedder.embed(tiles)
    embedder.embed(tiles)
    return (time.monotonic() - began) / (2 * n) * 4 * options.evaluate_size


def check_trained(generator: Generator, preset: str) -> None:
    """A generator with fewer steps than the preset's minimum makes noise, not tiles: no study
    is opened on it, whether it was trained now or by an earlier run."""
    least = PRESETS[preset].generator
    if generator.vae_steps < least.min_vae_steps or generator.unet_steps < least.min_unet_steps:
        raise DemoError(
            f"generator {generator.name!r} was trained for {generator.vae_steps} autoencoder + "
            f"{generator.unet_steps} denoiser steps, fewer than the {least.min_vae_steps} + "
            f"{least.min_unet_steps} the {preset} preset needs for tiles worth reading; no "
            f"study is opened on it. Delete it in admin (Generators) and run the demo again, "
            "with more minutes on a slow machine (make demo DEMO_MINUTES=..., or manage.py demo "
            "--minutes ...)"
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
