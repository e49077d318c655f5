"""evaluate_generator: every fidelity measure of a generator's cohort, in one command.

The cohort's real half (held-out tiles drawn by label x morphology type) is the reference. A
second draw of held-out real tiles, of the same strata and size and disjoint from both the
reference and the generator's training tiles, answers "what would a perfect generator score
here" (the floor) and is what the autoencoder reconstructs (its ceiling). The maths lives in
generation.metrics and generation.evaluation.fidelity; this module picks tiles and stores one
FidelityEvaluation.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image

from generation.classifier import PRESETS as CLASSIFIER_PRESETS
from generation.classifier import ClassifierConfig
from generation.evaluation import fidelity
from generation.ldm.config import GUIDANCE, SAMPLING_STEPS
from generation.metrics import fid_from_features, kernel_inception_distance, precision_recall
from generation.models import (
    Cohort,
    CohortMember,
    Dataset,
    FidelityEvaluation,
    Generator,
    Tile,
    TileAnnotation,
)
from generation.tilestore import read_tile, tile_relpath, write_atomic

# steps of the real-vs-synthetic CNN per fold, per classifier preset: a reader, not the
# utility classifier, so fewer steps than a tumour classifier gets
READER_STEPS = {"tiny": 12, "cpu": 600, "gpu": 3000}
KID_SUBSETS = 100
# image quality and the autoencoder's ceiling are always measured; these can be left out
MEASURES = ("label", "morphology", "readers", "utility")


class EvaluationError(ValueError):
    """The evaluation cannot run as asked; the message names what is missing."""


@dataclass(frozen=True)
class EvaluationRequest:
    generator: str
    cohort: str | None = None  # an existing cohort of the generator; else one is made
    split: str = "valid"  # where held-out real tiles come from, for a made cohort
    size: int = 1000  # tiles per half of a made cohort
    seed: int = 0
    steps: int = SAMPLING_STEPS  # sampling, for a made cohort
    guidance: float = GUIDANCE
    classifier_preset: str = "cpu"
    reader_folds: int = 4
    measures: tuple[str, ...] = MEASURES
    device: str = "auto"
    progress: bool = True

    def cohort_name(self) -> str:
        return self.cohort or f"eval-{self.generator}-{self.split}-{self.size}-s{self.seed}"


@dataclass
class TileRows:
    shas: list[str]
    labels: np.ndarray
    clusters: np.ndarray

    def pixels(self) -> np.ndarray:
        store = Path(settings.MEDIA_ROOT)
        return np.stack([read_tile(store / tile_relpath(s)) for s in self.shas])


def evaluate_generator(
    request: EvaluationRequest, log: Callable[[str], None] = print
) -> FidelityEvaluation:
    from generation.generators import GeneratorError, load_pipeline, training_tiles

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
    quality = _image_quality(request, synthetic, reference, floor, reconstructed)
    recon = fidelity.reconstruction_quality(floor_px, reconstructed)
    t = lap("image quality", t)
    fields: dict = {}
    details: dict = {"per_label": quality["per_label"]}
    wanted = set(request.measures)
    if "label" in wanted:
        label = _label_fidelity(
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
        agreement = _morphology_fidelity(cohort, synthetic_px, synthetic)
        fields |= {
            "morphology_share": agreement.share,
            "morphology_low": agreement.low,
            "morphology_high": agreement.high,
            "morphology_chance": agreement.chance,
        }
        details["morphology"] = {"k": agreement.k, "n": agreement.n}
        t = lap("morphology fidelity", t)
    if "readers" in wanted:
        cnn, stats = _machine_readers(request, reference_px, synthetic_px)
        fields |= {
            "reader_auc": cnn.scores.auc,
            "reader_auc_low": cnn.scores.auc_low,
            "reader_auc_high": cnn.scores.auc_high,
            "statistics_reader_auc": stats.scores.auc,
        }
        details["readers"] = [cnn.as_dict(), stats.as_dict()]
        t = lap("machine readers", t)
    if "utility" in wanted:
        fields["utility"] = _utility(cohort, request)
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
    from generation.generators import GeneratorError, generate_cohort

    name = request.cohort_name()
    existing = Cohort.objects.filter(name=name).select_related("generator").first()
    if request.cohort:
        if existing is None:
            raise EvaluationError(f"--cohort: no cohort named {name!r}")
        if existing.generator_id != generator.pk:
            raise EvaluationError(
                f"cohort {name!r} was generated by {existing.generator.name!r}, not "
                f"{generator.name!r}"
            )
    if existing is None or existing.completed_at is None:
        log(f"generating cohort {name!r} ({request.size} synthetic tiles)")
        try:
            generate_cohort(
                generator=generator.name,
                real_dataset=generator.dataset.name,
                split=existing.split if existing else request.split,
                size=existing.size if existing else request.size,
                name=name,
                seed=existing.seed if existing else request.seed,
                steps=existing.steps if existing else request.steps,
                guidance=existing.guidance if existing else request.guidance,
                scheduler=existing.scheduler if existing else "dpm++",
                device=request.device,
                progress=request.progress,
            )
        except GeneratorError as exc:
            raise EvaluationError(str(exc)) from exc
    return Cohort.objects.select_related("generator", "real_dataset").get(name=name)


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
    if request.classifier_preset not in CLASSIFIER_PRESETS:
        raise EvaluationError(
            f"unknown classifier preset {request.classifier_preset!r}; expected one of "
            f"{', '.join(CLASSIFIER_PRESETS)}"
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


def _image_quality(
    request: EvaluationRequest,
    synthetic: TileRows,
    reference: TileRows,
    floor: TileRows,
    reconstructed: np.ndarray,
) -> dict:
    """FID, KID and precision/recall of synthetic vs reference and of floor vs reference, per
    label too, and the reconstruction FID of the floor draw's encode-decode."""
    from generation.embeddings import EmbeddingError, InceptionEmbedder, pick_device
    from generation.embeddings import inception_weights as weights_path
    from generation.fid import cached_features

    try:
        embedder = InceptionEmbedder(
            weights_path(getattr(settings, "HISTOSTUDY_INCEPTION_WEIGHTS", None)),
            pick_device(request.device),
        )
    except EmbeddingError as exc:
        raise EvaluationError(str(exc)) from exc
    shas = synthetic.shas + reference.shas + floor.shas
    features = cached_features(shas, embedder, request.progress)
    n_s, n_r = len(synthetic.shas), len(reference.shas)
    fs, fr, ff = features[:n_s], features[n_s : n_s + n_r], features[n_s + n_r :]
    fc = embedder.embed(reconstructed).astype(np.float64)

    def measure(a: np.ndarray, b: np.ndarray) -> dict:
        kid = kernel_inception_distance(a, b, KID_SUBSETS, 1000, request.seed)
        pr = precision_recall(b, a) if min(len(a), len(b)) > 3 else None
        return {
            "fid": max(0.0, fid_from_features(a, b)),
            "kid": kid.mean,
            "precision": pr.precision if pr else float("nan"),
            "recall": pr.recall if pr else float("nan"),
            "n_a": len(a),
            "n_b": len(b),
        }

    per_label = []
    for label in (0, 1):
        s, r, f = synthetic.labels == label, reference.labels == label, floor.labels == label
        if min(s.sum(), r.sum(), f.sum()) < 2:
            continue
        per_label.append({"label": label, "synthetic": measure(fs[s], fr[r]),
                          "floor": measure(ff[f], fr[r])})  # fmt: skip
    main, base = measure(fs, fr), measure(ff, fr)
    return {
        "headline": {
            "fid": main["fid"],
            "kid": main["kid"],
            "precision": main["precision"],
            "recall": main["recall"],
            "floor_fid": base["fid"],
            "floor_kid": base["kid"],
            "floor_precision": base["precision"],
            "floor_recall": base["recall"],
        },
        "rfid": max(0.0, fid_from_features(fc, fr)),
        "per_label": per_label,
    }


def _label_fidelity(
    generator: Generator,
    request: EvaluationRequest,
    synthetic_px: np.ndarray,
    synthetic: TileRows,
    reference_px: np.ndarray,
    reference: TileRows,
) -> dict:
    from generation.classifier import evaluate, predict

    model, info = real_classifier(generator.dataset.name, generator.split, request)
    device = _device(request.device)
    return {
        "synthetic": evaluate(synthetic.labels, predict(model, synthetic_px, device)),
        "real": evaluate(reference.labels, predict(model, reference_px, device)),
        "classifier": info,
    }


def real_classifier(dataset: str, split: str, request: EvaluationRequest):
    """The tumour CNN trained on every accepted real tile of a split, cached on disk by the
    tiles it saw, its config and seed: a second evaluation on the same data reuses it."""
    import dataclasses
    import json

    import torch

    from generation.classifier import TumourCNN, train
    from generation.utility import load_tiles, real_rows

    rows = real_rows(dataset, split)
    config = CLASSIFIER_PRESETS[request.classifier_preset]
    digest = hashlib.sha256()
    for sha, label in rows:
        digest.update(f"{sha}{label}".encode())
    digest.update(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    digest.update(str(request.seed).encode())
    key = digest.hexdigest()[:20]
    path = Path(settings.MEDIA_ROOT) / "evaluation" / f"tumour-classifier-{key}.pt"
    info = {"dataset": dataset, "split": split, "tiles": len(rows), "key": key}
    model = TumourCNN(config.channels, config.dropout)
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.to(_device(request.device)), {**info, "cached": True}
        except (RuntimeError, OSError, EOFError):
            path.unlink(missing_ok=True)  # a corrupt cache is retrained, not trusted
    tiles = load_tiles(rows)
    model, _ = train(tiles.tiles, tiles.labels, config, seed=request.seed,
                     device=_device(request.device), progress=request.progress)  # fmt: skip
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(path, buffer.getvalue())
    return model, {**info, "cached": False}


def _device(name: str):
    from generation.embeddings import pick_device

    return pick_device(name)


def _morphology_fidelity(
    cohort: Cohort, synthetic_px: np.ndarray, synthetic: TileRows
) -> fidelity.Agreement:
    """Assign each synthetic tile to the nearest morphology type of the clustering its
    stratum came from (same embedding, scaler and centres as annotate_tiles)."""
    from generation.annotation import fitted_from
    from generation.embeddings import EmbeddingError, pixel_embedder
    from generation.features import FEATURE_NAMES, morphometrics

    annotation = (
        TileAnnotation.objects.filter(tile__memberships__cohort=cohort, clustering__isnull=False)
        .select_related("clustering")
        .first()
    )
    if annotation is None:
        raise EvaluationError(f"cohort {cohort.name!r}: its real tiles have no morphology types")
    clustering = annotation.clustering
    if clustering.embedding == "morphometrics":
        vectors = np.array(
            [[morphometrics(t)[n] for n in FEATURE_NAMES] for t in synthetic_px], np.float64
        )
    else:
        try:
            embedder = pixel_embedder(
                clustering.embedding,
                clustering.embedding_path or None,
                getattr(settings, "HISTOSTUDY_INCEPTION_WEIGHTS", None),
            )
        except EmbeddingError as exc:
            raise EvaluationError(str(exc)) from exc
        vectors = embedder.embed(synthetic_px).astype(np.float64)
    assigned = fitted_from(clustering).assign(vectors)
    return fidelity.morphology_agreement(synthetic.clusters, assigned)


def presented(tiles: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Tiles as a reader's screen gets them (the study presentation pipeline, PCam's JPEG q75
    4:2:0 round-trip), and the size in bytes of each served PNG."""
    from studies.presentation import Presentation  # the one pipeline; moves with issue 17

    presentation = Presentation()
    out, sizes = [], []
    for tile in tiles:
        data = presentation.render(tile)
        sizes.append(len(data))
        with Image.open(io.BytesIO(data)) as image:
            out.append(np.asarray(image.convert("RGB")))
    return np.stack(out), sizes


def _machine_readers(
    request: EvaluationRequest, real_px: np.ndarray, synthetic_px: np.ndarray
) -> tuple[fidelity.ReaderResult, fidelity.ReaderResult]:
    real, real_bytes = presented(real_px)
    synthetic, synthetic_bytes = presented(synthetic_px)
    config = reader_config(request.classifier_preset)
    cnn = fidelity.cnn_reader(real, synthetic, config, request.reader_folds, request.seed,
                              _device(request.device), request.progress)  # fmt: skip
    reader = fidelity.statistics_reader(
        fidelity.image_statistics(real, real_bytes),
        fidelity.image_statistics(synthetic, synthetic_bytes),
        request.reader_folds,
        request.seed,
    )
    return cnn, reader


def reader_config(preset: str) -> ClassifierConfig:
    base = CLASSIFIER_PRESETS[preset]
    steps = READER_STEPS.get(preset, base.steps)
    return base.replace(steps=steps, warmup_steps=min(base.warmup_steps, steps // 4))


def _utility(cohort: Cohort, request: EvaluationRequest):
    from generation.utility import UtilityError, evaluate_utility

    try:
        return evaluate_utility(
            train_on="synthetic",
            test_dataset=cohort.real_dataset.name,
            test_split=cohort.split,
            cohort=cohort.name,
            preset=request.classifier_preset,
            seed=request.seed,
            device=request.device,
            progress=request.progress,
        )
    except UtilityError as exc:
        raise EvaluationError(f"utility of cohort {cohort.name!r}: {exc}") from exc
