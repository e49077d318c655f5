"""The paper's experiment in one command (manage.py run_experiment).

Steps, each recorded on the Experiment row when it ends and each safe to run again, so a killed
run resumes where it stopped:

1. annotate the dataset (annotate_tiles resumes by itself);
2. train one generator per prompt scheme on the train split. The first gets its share of the
   budget in minutes; the others train for the same number of steps, so every scheme gets the
   same budget whatever else the machine was doing;
3. generate an equal-size cohort per scheme from the same held-out strata (same real tiles,
   same seeds; only the prompts and the generator differ);
4. FID/KID of each cohort against the same real reference, with the real-vs-real floor;
5. every other fidelity measure of each cohort (evaluate_generator: the autoencoder's ceiling,
   label and morphology fidelity, machine readers; the utility arms below cover the rest);
6. the utility arms: a classifier trained on all real training tiles, on as many real tiles as
   a cohort has synthetic ones, on each scheme's synthetic tiles, and on real + synthetic at
   50/50; the first arm's steps fix every other arm's;
7. a report: Markdown tables and PNG plots in MEDIA_ROOT/experiments/NAME/, optionally copied
   (e.g. to docs/RESULTS.md), and a staff dashboard page.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from generation.annotation.annotate import AnnotationError, annotate_dataset
from generation.cohorts import CohortRequest, generate_cohort
from generation.evaluation import EvaluationError, EvaluationRequest, evaluate_generator
from generation.evaluation.fid import FidError, FidRequest, compute_fid
from generation.evaluation.utility import UtilityError, UtilityRequest, evaluate_utility
from generation.experiment.options import (
    UTILITY_SHARE,
    ExperimentError,
    Options,
    experiment_dir,
)
from generation.experiment.report import measured_minutes, write_report
from generation.generators import GeneratorError, generators_root, train_generator
from generation.ldm.config import SamplingConfig
from generation.models import (
    Dataset,
    Experiment,
    FidelityEvaluation,
    FidResult,
    Generator,
    Tile,
    UtilityResult,
)


class Runner:
    """Runs the steps of one Experiment, skipping those already done."""

    def __init__(self, experiment: Experiment, options: Options, progress: bool, log) -> None:
        self.experiment = experiment
        self.options = options
        self.progress = progress
        self.log = log
        self.name = experiment.name

    # --- bookkeeping ---------------------------------------------------------------------

    def done(self, step: str) -> bool:
        return bool(self.experiment.steps.get(step, {}).get("done"))

    def record(self, step: str, seconds: float, **detail: object) -> None:
        with transaction.atomic():
            row = Experiment.objects.select_for_update().get(pk=self.experiment.pk)
            row.steps[step] = {"done": True, "seconds": round(seconds, 1), **detail}
            row.save(update_fields=["steps"])
        self.experiment.steps = row.steps

    def run_step(self, step: str, work) -> None:
        if self.done(step):
            self.log(f"[{step}] done in an earlier run; skipped")
            return
        self.log(f"[{step}] ...")
        started = time.perf_counter()
        detail = work() or {}
        seconds = time.perf_counter() - started
        self.record(step, seconds, **detail)
        self.log(f"[{step}] done in {seconds:.0f} s")

    def generator_name(self, scheme: str) -> str:
        return f"{self.name}-{scheme}"

    # --- steps -----------------------------------------------------------------------------

    def annotate(self) -> dict:

        try:
            summary = annotate_dataset(
                self.options.dataset, clusters=self.options.clusters, progress=self.progress
            )
        except AnnotationError as exc:
            raise ExperimentError(str(exc)) from exc
        return {"annotated_now": summary.annotated}

    def train(self, scheme: str) -> dict:

        name = self.generator_name(scheme)
        existing = Generator.objects.filter(name=name).first()
        if existing is None:
            first = self._first_generator()
            overrides: dict[str, str] = {"seed": str(self.options.seed)}
            minutes = self.options.train_minutes
            if first is not None:  # equal budget: the first generator's steps
                overrides |= {
                    "vae_steps": str(first.vae_steps),
                    "unet_steps": str(first.unet_steps),
                }
                minutes *= 2  # a safety net only; steps are the budget
            work = generators_root() / name
            try:
                train_generator(
                    dataset=self.options.dataset,
                    scheme=scheme,
                    preset=self.options.preset,
                    name=name,
                    split=self.options.train_split,
                    overrides=overrides,
                    max_minutes=minutes,
                    resume=work.exists() and any(work.iterdir()),
                    progress=self.progress,
                    preview_steps=self.options.sampling_steps,  # as its cohort is sampled
                )
            except GeneratorError as exc:
                raise ExperimentError(f"training the {scheme} generator: {exc}") from exc
            existing = Generator.objects.get(name=name)
        return {
            "generator": name,
            "vae_steps": existing.vae_steps,
            "unet_steps": existing.unet_steps,
            "train_seconds": existing.wall_seconds,
        }

    def _first_generator(self) -> Generator | None:
        for scheme in self.options.schemes:
            found = Generator.objects.filter(name=self.generator_name(scheme)).first()
            if found is not None:
                return found
        return None

    def generate(self, scheme: str) -> dict:

        try:
            summary = generate_cohort(
                CohortRequest(
                    generator=self.generator_name(scheme),
                    real_dataset=self.options.dataset,
                    split=self.options.test_split,
                    size=self.options.cohort_size,
                    name=self.generator_name(scheme),
                    seed=self.options.seed,
                    sampling=SamplingConfig(
                        steps=self.options.sampling_steps, guidance=self.options.guidance
                    ),
                ),
                progress=self.progress,
            )
        except GeneratorError as exc:
            raise ExperimentError(f"generating the {scheme} cohort: {exc}") from exc
        return {
            "cohort": summary.cohort,
            "synthetic": summary.synthetic,
            "tiles_per_second": round(summary.tiles_per_second, 2),
        }

    def fid(self, scheme: str) -> dict:

        cohort = self.generator_name(scheme)
        # done: rows overall and per label, each with its floor (compute_fid stores them in
        # one transaction; a row measured by hand without --per-label or --floor does not count)
        measured = FidResult.objects.filter(
            cohort__name=cohort, floor=False, floors__isnull=False
        ).values_list("label", flat=True)
        if {None, 0, 1} - set(measured):
            try:
                request = FidRequest(
                    cohort=cohort,
                    per_label=True,
                    floor=True,
                    with_precision_recall=True,
                    max_tiles=self.options.reference_size,
                    kid_subset_size=min(1000, self.options.cohort_size // 2),
                    seed=self.options.seed,
                )
                compute_fid(request, progress=self.progress)
            except FidError as exc:
                raise ExperimentError(f"FID of the {scheme} cohort: {exc}") from exc
        overall = FidResult.objects.filter(cohort__name=cohort, floor=False, label=None).first()
        return {"fid": overall.fid, "kid": overall.kid_mean} if overall else {}

    def fidelity(self, scheme: str) -> dict:

        cohort = self.generator_name(scheme)
        found = FidelityEvaluation.objects.filter(cohort__name=cohort).first()
        if found is None:  # one row, written at the end: a killed step leaves nothing half done
            request = EvaluationRequest(
                generator=cohort,
                cohort=cohort,
                seed=self.options.seed,
                classifier_preset=self.options.classifier_preset,
                measures=("label", "morphology", "readers"),
                progress=self.progress,
            )
            try:
                found = evaluate_generator(request, log=self.log)
            except EvaluationError as exc:
                raise ExperimentError(f"fidelity of the {scheme} cohort: {exc}") from exc
        return {"evaluation": found.pk, "rfid": found.rfid, "label_auc": found.label_auc}

    def utility(self, step: str, arm: str, scheme: str | None) -> dict:

        found = UtilityResult.objects.filter(experiment=self.experiment, step=step).first()
        if found is None:
            arms = self.options.arms()
            first = UtilityResult.objects.filter(
                experiment=self.experiment, step=arms[0][0]
            ).first()
            minutes = self.options.budget_minutes * UTILITY_SHARE / len(arms)
            steps = None
            if first is not None and step != arms[0][0]:
                steps, minutes = first.steps, minutes * 2  # equal steps; time is a safety net
            cohort = self.generator_name(scheme) if scheme else None
            try:
                request = UtilityRequest(
                    train_on=arm,
                    dataset=self.options.dataset if arm != "synthetic" else None,
                    split=self.options.train_split,
                    cohort=cohort,
                    max_tiles=self.options.cohort_size if step == "utility:real-n" else None,
                    test_dataset=self.options.dataset,
                    test_split=self.options.test_split,
                    preset=self.options.classifier_preset,
                    seed=self.options.seed,
                    steps=steps,
                    max_minutes=minutes,
                )
                # the step is stored with the result: one insert, so a kill leaves all or none
                found = evaluate_utility(
                    request, experiment=self.experiment, step=step, progress=self.progress
                )
            except UtilityError as exc:
                raise ExperimentError(f"{step}: {exc}") from exc
        return {"auc": found.auc, "steps": found.steps}

    def run(self, report_to: Path | None, notes: Path | None = None) -> Path:
        self.run_step("annotate", self.annotate)
        for scheme in self.options.schemes:
            self.run_step(f"train:{scheme}", lambda s=scheme: self.train(s))
        for scheme in self.options.schemes:
            self.run_step(f"generate:{scheme}", lambda s=scheme: self.generate(s))
        for scheme in self.options.schemes:
            self.run_step(f"fid:{scheme}", lambda s=scheme: self.fid(s))
        for scheme in self.options.schemes:
            self.run_step(f"fidelity:{scheme}", lambda s=scheme: self.fidelity(s))
        for step, arm, scheme in self.options.arms():
            self.run_step(step, lambda st=step, a=arm, s=scheme: self.utility(st, a, s))

        started = time.perf_counter()
        folder = experiment_dir(self.name)
        report = write_report(self.experiment, self.options, folder, notes)
        self.record("report", time.perf_counter() - started, path=str(report))
        if report_to is not None:
            copy_report(report, report_to)
        Experiment.objects.filter(pk=self.experiment.pk).update(
            report=report.read_text(), finished_at=timezone.now()
        )
        return report


def copy_report(report: Path, target: Path) -> None:
    """The report and its images beside `target` (images in a folder named after its stem)."""
    images = target.parent / target.stem.lower()
    images.mkdir(parents=True, exist_ok=True)
    for png in report.parent.glob("*.png"):
        shutil.copy(png, images / png.name)
    text = report.read_text().replace("](./", f"]({images.name}/")
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(target)


def run_experiment(
    name: str,
    options: Options,
    report_to: Path | None = None,
    notes: Path | None = None,
    progress: bool = True,
    log=print,
) -> Experiment:
    """Start or resume the experiment `name`; see the module docstring."""
    dataset = Dataset.objects.filter(name=options.dataset).first()
    if dataset is None:
        raise ExperimentError(
            f"no dataset named {options.dataset!r}; import tiles first "
            f"(manage.py import_tiles DIR --dataset {options.dataset})"
        )
    if notes is not None and not notes.is_file():
        raise ExperimentError(f"--notes {notes}: no such file")
    for split in (options.train_split, options.test_split):
        if not Tile.objects.filter(dataset=dataset, split=split).exists():
            raise ExperimentError(f"dataset {options.dataset!r} has no tiles in split {split!r}")
    experiment, created = Experiment.objects.get_or_create(
        name=name, defaults={"dataset": dataset, "options": options.as_json()}
    )
    if not created and experiment.options != options.as_json():
        differs = sorted(k for k, v in options.as_json().items() if experiment.options.get(k) != v)
        raise ExperimentError(
            f"experiment {name!r} exists with other {', '.join(differs)}; resume it with the "
            "same options or pick another name"
        )
    log(
        f"Experiment {name!r}: {'started' if created else 'resumed'}; budget "
        f"{options.budget_minutes:g} min: {options.train_minutes:.1f} min per generator "
        f"({len(options.schemes)} schemes), {options.cohort_size} + {options.cohort_size} tiles "
        f"per cohort, {len(options.arms())} classifier arms"
    )
    started = time.perf_counter()
    Runner(experiment, options, progress, log).run(report_to, notes)
    experiment.refresh_from_db()
    total = measured_minutes(experiment.steps)
    log(
        f"Finished in {(time.perf_counter() - started) / 60:.1f} min this run, "
        f"{total:.1f} min over all runs (budget {options.budget_minutes:g} min)"
    )
    return experiment
