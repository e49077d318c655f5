"""evaluate_generator: every fidelity measure of a generator's cohort, in one command.

The cohort's real half (held-out tiles drawn by label x morphology type) is the reference. A
second draw of held-out real tiles, of the same strata and size and disjoint from both the
reference and the generator's training tiles, answers "what would a perfect generator score
here" (the floor) and is what the autoencoder reconstructs (its ceiling). The maths lives in
metrics.py and fidelity.py beside this module; this module picks tiles and stores one
FidelityEvaluation.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from generation.cohorts import CohortRequest, Runtime, generate_cohort
from generation.evaluation import fidelity, measures
from generation.evaluation.request import (
    MEASURES,
    EvaluationError,
    EvaluationRequest,
    TileRows,
)
from generation.generators import GeneratorError, load_pipeline, training_tiles
from generation.ldm.config import SamplingConfig
from generation.models import (
    Cohort,
    CohortMember,
    Dataset,
    FidelityEvaluation,
    Generator,
    Tile,
    TileAnnotation,
)
from generation.presets import PRESETS


def evaluate_generator(
    request: EvaluationRequest, log: Callable[[str], None] = print
) -> FidelityEvaluation:

    started = time.perf_counter()
    generator = Generator.objects.filter(name=request.generator).select_related("dataset").first()
    if generator is None:
        raise EvaluationError(f"no generator named {request.generator!r}")
    _validate(request)
    try:
        trained = training_tiles(generator)
        pipeline = load_pipeline(generator, request.device)
    except GeneratorError as exc:
        raise EvaluationError(str(exc)) from exc
    if not Cohort.objects.filter(name=request.cohort_name()).exists():
        _check_held_out(generator, request, trained)  # before any tile is generated
    cohort = _cohort(generator, request, log)
    reference, synthetic = _halves(cohort)
    floor = floor_draw(cohort, reference, trained, request.seed)
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 1)
        return now

    t = time.perf_counter()
    synthetic_px, reference_px, floor_px = synthetic.pixels(), reference.pixels(), floor.pixels()
    reconstructed = pipeline.reconstruct(floor_px)  # (n_floor, 96, 96, 3) uint8
    t = lap("reconstruct", t)
    quality = measures.image_quality(request, synthetic, reference, floor, reconstructed)
    recon = fidelity.reconstruction_quality(floor_px, reconstructed)
    t = lap("image quality", t)
    fields: dict = {}
    details: dict = {"per_label": quality["per_label"]}
    wanted = set(request.measures)
    if "label" in wanted:
        label = measures.label_fidelity(
            generator, request, synthetic_px, synthetic, reference_px, reference
        )
        fields |= {
            "label_auc": label["synthetic"].auc,
            "label_auc_low": label["synthetic"].auc_low,
            "label_auc_high": label["synthetic"].auc_high,
            "label_auc_real": label["real"].auc,
        }
        details["label_classifier"] = label["classifier"]
        t = lap("label fidelity", t)
    if "morphology" in wanted:
        agreement = measures.morphology_fidelity(cohort, synthetic_px, synthetic)
        fields |= {
            "morphology_share": agreement.share,
            "morphology_low": agreement.low,
            "morphology_high": agreement.high,
            "morphology_chance": agreement.chance,
        }
        details["morphology"] = {"k": agreement.k, "n": agreement.n}
        t = lap("morphology fidelity", t)
    if "readers" in wanted:
        cnn, stats = measures.machine_readers(request, reference_px, synthetic_px)
        fields |= {
            "reader_auc": cnn.scores.auc,
            "reader_auc_low": cnn.scores.auc_low,
            "reader_auc_high": cnn.scores.auc_high,
            "statistics_reader_auc": stats.scores.auc,
        }
        details["readers"] = [cnn.as_dict(), stats.as_dict()]
        t = lap("machine readers", t)
    if "utility" in wanted:
        fields["utility"] = measures.utility_arm(cohort, request)
        lap("utility", t)
    details |= {
        "sampling": {
            "steps": cohort.steps,
            "guidance": cohort.guidance,
            "scheduler": cohort.scheduler,
        },
        "timings": timings,
        "classifier_preset": request.classifier_preset,
        "floor_note": (
            f"the floor has {len(floor.shas)} held-out real tiles, fewer than the reference's "
            f"{len(reference.shas)}: the split has no more outside the cohort and training set"
            if len(floor.shas) < len(reference.shas)
            else ""
        ),
        "measures": sorted(wanted),
    }
    return FidelityEvaluation.objects.create(
        generator=generator,
        cohort=cohort,
        n_synthetic=len(synthetic.shas),
        n_real=len(reference.shas),
        n_floor=len(floor.shas),
        seed=request.seed,
        **finite(quality["headline"]),
        rfid=finite(quality["rfid"]),
        psnr=finite(recon.psnr),
        ssim=finite(recon.ssim),
        **finite(fields),
        details=finite(details),
        seconds=time.perf_counter() - started,
    )


def finite(value: Any) -> Any:
    """NaN and infinities as None, through dicts and lists: a measure undefined at this size
    (precision/recall with 3 tiles or fewer) is stored as missing, not as invalid JSON."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value


# --- tiles ------------------------------------------------------------------------------------


def _cohort(generator: Generator, request: EvaluationRequest, log: Callable[[str], None]) -> Cohort:

    name = request.cohort_name()
    existing = Cohort.objects.filter(name=name).select_related("generator").first()
    made = (
        SamplingConfig(existing.steps, existing.guidance, existing.scheduler)
        if existing
        else request.sampling
    )
    if request.cohort:
        if existing is None:
            raise EvaluationError(f"--cohort: no cohort named {name!r}")
        if existing.generator_id != generator.pk:
            raise EvaluationError(
                f"cohort {name!r} was generated by {existing.generator.name!r}, not "
                f"{generator.name!r}"
            )
    elif made != request.sampling:
        # a cohort of this name made at an earlier default: its tiles answer another question
        raise EvaluationError(
            f"cohort {name!r} was generated with {_sampling(made)}, not the "
            f"{_sampling(request.sampling)} asked; score it as made with --cohort {name}"
        )
    if existing is None or existing.completed_at is None:
        log(f"generating cohort {name!r} ({request.size} synthetic tiles)")
        try:
            generate_cohort(
                CohortRequest(
                    generator=generator.name,
                    real_dataset=generator.dataset.name,
                    split=existing.split if existing else request.split,
                    size=existing.size if existing else request.size,
                    name=name,
                    seed=existing.seed if existing else request.seed,
                    sampling=made,
                ),
                Runtime(device=request.device),
                progress=request.progress,
            )
        except GeneratorError as exc:
            raise EvaluationError(str(exc)) from exc
    return Cohort.objects.select_related("generator", "real_dataset").get(name=name)


def _sampling(sampling: SamplingConfig) -> str:
    return f"{sampling.scheduler}, {sampling.steps} steps, guidance {sampling.guidance:g}"


def _halves(cohort: Cohort) -> tuple[TileRows, TileRows]:
    """The cohort's real and synthetic halves, each in position order."""
    halves = []
    for kind in ("real", "synthetic"):
        rows = list(
            CohortMember.objects.filter(cohort=cohort, kind=kind)
            .order_by("position")
            .values_list("tile__sha256", "label", "cluster")
        )
        halves.append(
            TileRows(
                [r[0] for r in rows],
                np.array([r[1] for r in rows], int),
                np.array([-1 if r[2] is None else r[2] for r in rows], int),
            )
        )
    real, synthetic = halves
    if len(synthetic.shas) != len(cohort.plan):
        raise EvaluationError(
            f"cohort {cohort.name!r} has {len(synthetic.shas)} of {len(cohort.plan)} synthetic "
            "tiles; run generate_cohort again to finish it"
        )
    return real, synthetic


def _validate(request: EvaluationRequest) -> None:
    unknown = set(request.measures) - set(MEASURES)
    if unknown:
        raise EvaluationError(
            f"unknown measures {', '.join(sorted(unknown))}; expected some of {', '.join(MEASURES)}"
        )
    if request.classifier_preset not in PRESETS:
        raise EvaluationError(
            f"unknown classifier preset {request.classifier_preset!r}; expected one of "
            f"{', '.join(PRESETS)}"
        )
    if request.reader_folds < 2 and "readers" in request.measures:
        raise EvaluationError(f"--reader-folds {request.reader_folds}: at least 2")
    least = max(4, 2 * request.reader_folds) if "readers" in request.measures else 4
    if request.size < least:
        raise EvaluationError(
            f"--size {request.size}: at least {least} (two tiles a label, and with machine "
            "readers two a fold)"
        )


def held_out_rows(dataset: Dataset, split: str, taken: set[str]) -> list[tuple[str, int, int]]:
    """(sha256, label, cluster) of the accepted real tiles of a split that have a morphology
    type, in tile order, leaving out `taken` (training tiles, a reference)."""
    rows = (
        TileAnnotation.objects.filter(
            tile__dataset=dataset, tile__split=split, tile__kind=Tile.Kind.REAL, quality_ok=True
        )
        .exclude(cluster=None)
        .order_by("tile_id")
        .values_list("tile__sha256", "tile__label", "cluster")
    )
    return [r for r in rows if r[0] not in taken]


def _check_held_out(generator: Generator, request: EvaluationRequest, trained: set[str]) -> None:
    """A new evaluation cohort takes half its size of each label from the held-out real tiles
    of the split, and the floor needs more of them: refuse before generating anything."""
    held_out = defaultdict(int)
    for _, label, _ in held_out_rows(generator.dataset, request.split, trained):
        held_out[label] += 1
    for label, count in ((0, request.size // 2), (1, request.size - request.size // 2)):
        if held_out[label] <= count:
            raise EvaluationError(
                f"{generator.dataset.name!r} split {request.split!r} has "
                f"{held_out[label]} held-out {Tile.Label(label).label} tiles with a morphology "
                f"type; the cohort takes {count} and the real-vs-real floor needs more: "
                "use a smaller --size or another --split"
            )


def floor_draw(cohort: Cohort, reference: TileRows, trained: set[str], seed: int) -> TileRows:
    """Held-out real tiles of the cohort's split and dataset, as many per label x morphology
    type as the reference has (a stratum short of tiles is filled from the same label), never
    a reference or training tile."""
    rows = held_out_rows(cohort.real_dataset, cohort.split, set(reference.shas) | trained)
    rng = np.random.default_rng(seed + 7)
    picked: list[tuple[str, int, int]] = []
    for label in (0, 1):
        wanted = reference.clusters[reference.labels == label]
        pool = [r for r in rows if r[1] == label]
        if len(wanted) and not pool:
            raise EvaluationError(
                f"no held-out {Tile.Label(label).label} tiles left in "
                f"{cohort.real_dataset.name!r} split {cohort.split!r} for the real-vs-real "
                "floor (every one is in the cohort or the training set)"
            )
        by_cluster: dict[int, list] = defaultdict(list)
        for r in pool:
            by_cluster[r[2]].append(r)
        chosen: list = []
        for cluster, count in zip(*np.unique(wanted, return_counts=True), strict=True):
            members = by_cluster.get(int(cluster), [])
            keep = rng.permutation(len(members))[: int(count)]
            chosen += [members[i] for i in keep]
        chosen_shas = {r[0] for r in chosen}
        rest = [r for r in pool if r[0] not in chosen_shas]
        extra = rng.permutation(len(rest))[: max(0, len(wanted) - len(chosen))]
        picked += chosen + [rest[i] for i in extra]
    return TileRows(
        [r[0] for r in picked], np.array([r[1] for r in picked]), np.array([r[2] for r in picked])
    )


# --- measures ---------------------------------------------------------------------------------
