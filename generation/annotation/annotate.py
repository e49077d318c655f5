"""`annotate_tiles`: quality verdicts, features, embeddings, morphology clusters and prompts.

Four resumable phases over one dataset:
1. per tile, in worker processes: the paper's quality statistics and morphometric features,
   committed in batches (a killed run resumes with the tiles still missing);
2. embeddings of the accepted tiles: the standardised features (`morphometrics`), or pixel
   embeddings cached per tile hash (`inception`, `dino`), committed in batches;
3. K-means over the accepted tiles, persisted (scaler, centres, feature bins) and reused;
4. each accepted tile's cluster and its three prompts.
Verdicts are re-derived from the stored statistics on every run, so changed thresholds apply
without re-reading pixels.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from tqdm import tqdm

from generation.annotation import prompts as P
from generation.annotation.cache import cached_features
from generation.annotation.clustering import FittedClusters, fit_clusters
from generation.annotation.embeddings import (
    EMBEDDINGS,
    EmbeddingError,
    PixelEmbedder,
    pixel_embedder,
)
from generation.annotation.features import FEATURE_NAMES, Quality, QualityThresholds, annotate_file
from generation.models import (
    Dataset,
    MorphologyCluster,
    MorphologyClustering,
    Tile,
    TileAnnotation,
)
from generation.tiles.parallel import ordered_map, worker_count

BATCH = 500


class AnnotationError(ValueError):
    """Annotation cannot run; the message says what to fix."""


@dataclass
class AnnotateSummary:
    dataset: str
    embedding: str
    tiles: int = 0
    annotated: int = 0  # new this run
    accepted: int = 0
    rejected: int = 0
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    embedded: int = 0  # pixel embeddings computed this run (cached ones are reused)
    clusters: int = 0
    clustering_reused: bool = False
    cluster_sizes: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def tiles_per_second(self) -> float:
        return self.tiles / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 2)
        data["tiles_per_second"] = round(self.tiles_per_second, 1)
        return data

    def lines(self) -> list[str]:
        fitted = "reused" if self.clustering_reused else "fitted"
        out = [
            f"Annotated dataset {self.dataset!r} in {self.seconds:.1f} s "
            f"({self.tiles_per_second:.0f} tiles/s)",
            f"  tiles            {self.tiles} ({self.annotated} new this run)",
            f"  accepted         {self.accepted}",
            f"  rejected         {self.rejected}",
        ]
        out += [f"    {reason}: {n}" for reason, n in sorted(self.rejection_reasons.items())]
        smallest, largest = min(self.cluster_sizes, default=0), max(self.cluster_sizes, default=0)
        out += [
            f"  embedding        {self.embedding} ({self.embedded} computed this run)",
            f"  clusters         {self.clusters} ({fitted}); sizes {smallest}-{largest}",
        ]
        return out


def thresholds() -> QualityThresholds:
    """The quality thresholds in force: the paper's, overridden by HISTOSTUDY_QUALITY_THRESHOLDS."""
    overrides = getattr(settings, "HISTOSTUDY_QUALITY_THRESHOLDS", {}) or {}
    known = set(QualityThresholds.__dataclass_fields__)
    unknown = set(overrides) - known
    if unknown:
        raise AnnotationError(
            f"HISTOSTUDY_QUALITY_THRESHOLDS: unknown keys {sorted(unknown)}; "
            f"expected some of {sorted(known)}"
        )
    return QualityThresholds(**overrides)


def annotate_dataset(
    dataset: str,
    *,
    embedding: str = "morphometrics",
    embedding_path: str | None = None,
    clusters: int = 33,
    seed: int = 0,
    n_init: int = 10,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> AnnotateSummary:
    """Run the four phases on `dataset`; see the module docstring."""
    started = time.perf_counter()
    if embedding not in EMBEDDINGS:
        raise AnnotationError(
            f"unknown embedding {embedding!r}; expected one of {', '.join(EMBEDDINGS)}"
        )
    try:
        ds = Dataset.objects.get(name=dataset)
    except Dataset.DoesNotExist as exc:
        raise AnnotationError(f"no dataset {dataset!r}; import tiles first (import_tiles)") from exc
    limits = thresholds()
    embedder = _embedder(embedding, embedding_path, device)  # bad weights fail before any work
    summary = AnnotateSummary(dataset=dataset, embedding=embedding)
    summary.annotated = _measure_missing(ds, limits, workers, progress)
    _apply_verdicts(ds, limits, summary)
    ids, labels, features = _accepted_features(ds)
    if len(ids) < clusters:
        raise AnnotationError(
            f"dataset {dataset!r} has {len(ids)} accepted tiles; {clusters} clusters need at least "
            f"{clusters} (lower --clusters or import more tiles)"
        )
    vectors, key = _embeddings(ds, ids, features, embedder, progress, summary)
    clustering, fitted = _clustering(
        ds, key, embedding, embedding_path, vectors, features, clusters, seed, n_init, summary
    )
    _assign(ds, clustering, fitted, ids, labels, features, vectors, summary, progress)
    summary.seconds = time.perf_counter() - started
    return summary


# --- phase 1: per-tile measurements -----------------------------------------------------------


def _measure_missing(
    ds: Dataset, limits: QualityThresholds, workers: int | None, progress: bool
) -> int:
    pending = list(
        ds.tiles.filter(annotation__isnull=True).order_by("id").values_list("id", "sha256")
    )
    if not pending:
        return 0
    store = Path(settings.MEDIA_ROOT)
    paths = [str(store / Tile(sha256=sha).relpath) for _, sha in pending]
    rows: list[TileAnnotation] = []
    done = 0
    results = ordered_map(annotate_file, paths, worker_count(workers, len(paths)), chunksize=16)
    bar = tqdm(total=len(pending), unit="tile", desc=f"measure {ds.name}", disable=not progress)
    with bar, contextlib.closing(results):
        for (tile_id, _), measured in zip(pending, results, strict=True):
            reasons = Quality(**measured["quality"]).reasons(limits)
            rows.append(
                TileAnnotation(
                    tile_id=tile_id,
                    quality_ok=not reasons,
                    quality_reasons=reasons,
                    quality=measured["quality"],
                    features=measured["features"],
                )
            )
            if len(rows) >= BATCH:
                done += _save_measurements(rows)
                bar.update(len(rows))
                rows = []
        done += _save_measurements(rows)
        bar.update(len(rows))
    return done


def _save_measurements(rows: list[TileAnnotation]) -> int:
    # ignore_conflicts: a concurrent run that measured the same tile wins; the values are equal
    with transaction.atomic():
        TileAnnotation.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _apply_verdicts(ds: Dataset, limits: QualityThresholds, summary: AnnotateSummary) -> None:
    """Re-derive every verdict from stored statistics; write only those that changed."""
    changed = []
    reasons_count: Counter[str] = Counter()
    annotations = TileAnnotation.objects.filter(tile__dataset=ds).only(
        "tile_id", "quality", "quality_ok", "quality_reasons"
    )
    for annotation in annotations.iterator(chunk_size=2000):
        failures = Quality(**annotation.quality).failures(limits)
        reasons_count.update(failure.rule for failure in failures)
        reasons = [failure.text for failure in failures]
        ok = not reasons
        summary.tiles += 1
        summary.accepted += ok
        if annotation.quality_ok != ok or annotation.quality_reasons != reasons:
            annotation.quality_ok, annotation.quality_reasons = ok, reasons
            changed.append(annotation)
    summary.rejected = summary.tiles - summary.accepted
    summary.rejection_reasons = dict(reasons_count)
    with transaction.atomic():
        update_rows(
            TileAnnotation,
            ["quality_ok", "quality_reasons"],
            [(a.quality_ok, json.dumps(a.quality_reasons), a.tile_id) for a in changed],
        )


def _accepted_features(ds: Dataset) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rows = list(
        TileAnnotation.objects.filter(tile__dataset=ds, quality_ok=True)
        .order_by("tile_id")
        .values_list("tile_id", "tile__label", "features")
    )
    ids = np.array([r[0] for r in rows], np.int64)
    labels = np.array([r[1] for r in rows], np.int64)
    features = {name: np.array([r[2][name] for r in rows], np.float64) for name in FEATURE_NAMES}
    return ids, labels, features


# --- phase 2: embeddings ----------------------------------------------------------------------


def _embedder(embedding: str, path: str | None, device: str) -> PixelEmbedder | None:
    if embedding == "morphometrics":
        return None
    try:
        return pixel_embedder(
            embedding, path, getattr(settings, "HISTOSTUDY_INCEPTION_WEIGHTS", None), device
        )
    except EmbeddingError as exc:
        raise AnnotationError(str(exc)) from exc


def _embeddings(
    ds: Dataset,
    ids: np.ndarray,
    features: dict[str, np.ndarray],
    embedder: PixelEmbedder | None,
    progress: bool,
    summary: AnnotateSummary,
) -> tuple[np.ndarray, str]:
    if embedder is None:
        # morphometrics: standardised inside the clustering; the key names the feature set
        return np.column_stack([features[n] for n in FEATURE_NAMES]), "morphometrics:v1"
    sha_by_id = dict(ds.tiles.filter(id__in=ids.tolist()).values_list("id", "sha256"))
    shas = [sha_by_id[i] for i in ids.tolist()]

    def count(n: int) -> None:
        summary.embedded += n

    return cached_features(shas, embedder, progress, count), embedder.key


# --- phase 3: clusters ------------------------------------------------------------------------


def _clustering(
    ds: Dataset,
    key: str,
    embedding: str,
    path: str | None,
    vectors: np.ndarray,
    features: dict[str, np.ndarray],
    k: int,
    seed: int,
    n_init: int,
    summary: AnnotateSummary,
) -> tuple[MorphologyClustering, FittedClusters]:
    existing = MorphologyClustering.objects.filter(
        dataset=ds, embedding_key=key, k=k, seed=seed, n_init=n_init
    ).first()
    if existing is not None:
        summary.clustering_reused = True
        return existing, fitted_from(existing)
    fitted = fit_clusters(vectors, k=k, seed=seed, n_init=n_init)
    vocabulary = P.fit_vocabulary(features)
    with transaction.atomic():
        clustering = MorphologyClustering.objects.create(
            dataset=ds,
            embedding=embedding,
            embedding_key=key,
            embedding_path=path or "",
            k=k,
            seed=seed,
            n_init=n_init,
            fitted_on=len(vectors),
            scaler_mean=fitted.mean.tolist(),
            scaler_scale=fitted.scale.tolist(),
            centres=fitted.centres.tolist(),
            inertia=fitted.inertia,
            vocabulary=P.vocabulary_to_json(vocabulary),
        )
        MorphologyCluster.objects.bulk_create(
            MorphologyCluster(
                clustering=clustering, index=i, name=f"morphology type {P.number_words(i)}"
            )
            for i in range(k)
        )
    return clustering, fitted


def fitted_from(clustering: MorphologyClustering) -> FittedClusters:
    return FittedClusters(
        np.array(clustering.scaler_mean),
        np.array(clustering.scaler_scale),
        np.array(clustering.centres),
        clustering.inertia,
    )


# --- phase 4: clusters and prompts per tile ---------------------------------------------------


def _assign(
    ds: Dataset,
    clustering: MorphologyClustering,
    fitted: FittedClusters,
    ids: np.ndarray,
    labels: np.ndarray,
    features: dict[str, np.ndarray],
    vectors: np.ndarray,
    summary: AnnotateSummary,
    progress: bool,
) -> None:
    assigned = fitted.assign(vectors)  # (N,)
    vocabulary = P.vocabulary_from_json(clustering.vocabulary)
    names = list(features)
    matrix = np.column_stack([features[n] for n in names])
    rows = []
    for i, tile_id in enumerate(ids.tolist()):
        values = dict(zip(names, matrix[i].tolist(), strict=True))
        text = P.prompts_for(int(labels[i]), int(assigned[i]), values, vocabulary)
        rows.append((clustering.pk, int(assigned[i]), json.dumps(text), tile_id))
    bar = tqdm(total=len(rows), unit="tile", desc="prompts", disable=not progress)
    with bar, transaction.atomic():
        TileAnnotation.objects.filter(tile__dataset=ds, quality_ok=False).update(
            cluster=None, clustering=None, prompts={}
        )
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            update_rows(TileAnnotation, ["clustering_id", "cluster", "prompts"], chunk)
            bar.update(len(chunk))
        _cluster_stats(clustering, assigned, labels, matrix, names)
    summary.clusters = clustering.k
    summary.cluster_sizes = np.bincount(assigned, minlength=clustering.k).tolist()


def update_rows(model: type, columns: list[str], rows: list[tuple]) -> None:
    """UPDATE many rows by primary key in one executemany (bulk_update's CASE is far slower).

    Each row is (value per column..., pk); JSON columns take json.dumps text.
    """
    if not rows:
        return
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(c)} = %s" for c in columns)
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _cluster_stats(
    clustering: MorphologyClustering,
    assigned: np.ndarray,
    labels: np.ndarray,
    matrix: np.ndarray,
    names: list[str],
) -> None:
    clusters = list(clustering.clusters.order_by("index"))
    for cluster in clusters:
        members = assigned == cluster.index
        cluster.size = int(members.sum())
        cluster.tumour = int((labels[members] == 1).sum())
        cluster.healthy = cluster.size - cluster.tumour
        means = matrix[members].mean(axis=0) if cluster.size else np.zeros(len(names))
        cluster.mean_features = {n: round(float(v), 4) for n, v in zip(names, means, strict=True)}
    MorphologyCluster.objects.bulk_update(clusters, ["size", "healthy", "tumour", "mean_features"])
