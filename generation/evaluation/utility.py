"""Does synthetic data train a classifier? Django side of evaluate_utility.

Picks the training tiles of an arm (real tiles of a dataset split, a cohort's synthetic half, or
both at a stated ratio), trains the CNN of classifier.py on them, scores it on held-out real
tiles and stores a UtilityResult. The test set never holds a tile the classifier saw, nor the
real half of a cohort it trained on (those tiles' prompts conditioned the synthetic ones).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from generation import presets
from generation.annotation.embeddings import EmbeddingError, pick_device
from generation.evaluation.classifier import evaluate, predict, train
from generation.models import Cohort, CohortMember, Dataset, Experiment, Tile, UtilityResult
from generation.presets import ClassifierConfig
from generation.tiles.store import read_tile, tile_relpath

ARMS = ("real", "synthetic", "mixed")


class UtilityError(ValueError):
    """The evaluation cannot run as asked; the message says what to change."""


@dataclass
class TileArrays:
    tiles: np.ndarray
    labels: np.ndarray
    shas: list[str]


def load_tiles(rows: list[tuple[str, int]]) -> TileArrays:
    """(sha256, label) rows -> uint8 tiles from the store, in the given order."""
    store = Path(settings.MEDIA_ROOT)
    if not rows:
        return TileArrays(np.zeros((0, 96, 96, 3), np.uint8), np.zeros(0, np.int64), [])
    tiles = np.stack([read_tile(store / tile_relpath(sha)) for sha, _ in rows])
    return TileArrays(tiles, np.array([label for _, label in rows]), [sha for sha, _ in rows])


def real_rows(dataset: str, split: str) -> list[tuple[str, int]]:
    """Accepted real tiles of a split (tiles without an annotation count as accepted only when
    the dataset has no annotations at all), ordered by id."""
    if not Dataset.objects.filter(name=dataset).exists():
        raise UtilityError(f"no dataset named {dataset!r}; import it with import_tiles")
    tiles = Tile.objects.filter(dataset__name=dataset, split=split, kind=Tile.Kind.REAL)
    if Tile.objects.filter(dataset__name=dataset, annotation__isnull=False).exists():
        tiles = tiles.accepted()
    rows = list(tiles.order_by("id").values_list("sha256", "label"))
    if not rows:
        splits = sorted(
            set(Tile.objects.filter(dataset__name=dataset).values_list("split", flat=True))
        )
        raise UtilityError(
            f"dataset {dataset!r} has no accepted tiles in split {split!r} "
            f"(splits: {', '.join(splits) or 'none'})"
        )
    return rows


def subsample(rows: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))
    return [rows[i] for i in keep]


def _needs_both_labels(rows: list[tuple[str, int]], what: str) -> None:
    """Two tiles of each label at least: the AUC's DeLong interval needs two of each."""
    counts = [sum(label == wanted for _, label in rows) for wanted in (0, 1)]
    if min(counts) < 2:
        raise UtilityError(
            f"{what}: needs two healthy and two tumour tiles at least, found {counts[0]} "
            f"healthy and {counts[1]} tumour"
        )


def classifier_config(
    preset: str, steps: int | None = None, max_minutes: float | None = None
) -> ClassifierConfig:
    try:
        config = presets.preset(preset).classifier
    except presets.PresetError as exc:
        raise UtilityError(str(exc)) from None
    if steps is not None:
        if steps < 1:
            raise UtilityError("--steps must be at least 1")
        config = config.replace(steps=steps, warmup_steps=min(config.warmup_steps, steps // 4))
    if max_minutes is not None:
        config = config.replace(max_minutes=max_minutes)
    return config


def _check_arm(
    train_on: str, dataset: str | None, cohort: str | None, synthetic_share: float | None
) -> float:
    """The arm's synthetic share, once its arguments are checked."""
    if train_on not in ARMS:
        raise UtilityError(f"--train {train_on!r}: expected one of {', '.join(ARMS)}")
    if train_on in ("real", "mixed") and not dataset:
        raise UtilityError(f"--train {train_on} needs --dataset (the real training tiles)")
    if train_on in ("synthetic", "mixed") and not cohort:
        raise UtilityError(f"--train {train_on} needs --cohort (its synthetic half is trained on)")
    if train_on == "real" and cohort:
        raise UtilityError("--train real takes no --cohort; use --train mixed for both")
    if train_on == "synthetic" and dataset:
        raise UtilityError("--train synthetic takes no --dataset; use --train mixed for both")
    share: float | None = {"real": 0.0, "synthetic": 1.0}.get(train_on, synthetic_share)
    if train_on == "mixed":
        share = 0.5 if synthetic_share is None else synthetic_share
        if not 0 < share < 1:
            raise UtilityError(f"--synthetic-share {share}: expected a share strictly in (0, 1)")
    elif synthetic_share is not None:
        raise UtilityError("--synthetic-share applies to --train mixed only")
    return float(share)  # type: ignore[arg-type]


@dataclass(frozen=True)
class UtilityRequest:
    """One arm of the utility comparison: train a tumour classifier on real tiles (dataset,
    split), a cohort's synthetic half, or both (mixed, at synthetic_share), and score it on
    test_dataset's test_split, never on a tile it saw."""

    train_on: str
    test_dataset: str
    test_split: str
    dataset: str | None = None
    split: str = "train"
    cohort: str | None = None
    synthetic_share: float | None = None
    max_tiles: int | None = None
    preset: str = "cpu"
    seed: int = 0
    steps: int | None = None
    max_minutes: float | None = None


def evaluate_utility(
    request: UtilityRequest,
    device: str = "auto",
    experiment: Experiment | None = None,
    step: str = "",
    progress: bool = True,
) -> UtilityResult:
    """Train one arm's classifier and store its scores on held-out real tiles; `experiment`
    and `step` record which run_experiment step it belongs to (in the same insert)."""
    share = _check_arm(request.train_on, request.dataset, request.cohort, request.synthetic_share)
    if request.max_tiles is not None and request.max_tiles < 2:
        raise UtilityError("--max-tiles must be at least 2")
    config = classifier_config(request.preset, request.steps, request.max_minutes)
    try:
        torch_device = pick_device(device)
    except EmbeddingError as exc:
        raise UtilityError(str(exc)) from exc

    source = None
    real: list[tuple[str, int]] = []
    synthetic: list[tuple[str, int]] = []
    held_back: set[str] = set()
    if request.cohort:
        source = Cohort.objects.select_related("generator").filter(name=request.cohort).first()
        if source is None:
            raise UtilityError(f"--cohort: no cohort named {request.cohort!r}")
        synthetic = list(
            Tile.objects.filter(cohort=source, kind=Tile.Kind.SYNTHETIC)
            .order_by("id")
            .values_list("sha256", "label")
        )
        if not synthetic:
            raise UtilityError(
                f"cohort {request.cohort!r} has no synthetic tiles yet; run generate_cohort"
            )
        synthetic = subsample(synthetic, request.max_tiles, request.seed)
        _needs_both_labels(synthetic, f"cohort {request.cohort!r}")
        held_back = set(
            CohortMember.objects.filter(cohort=source, kind="real").values_list(
                "tile__sha256", flat=True
            )
        )
    if request.dataset:
        real = subsample(real_rows(request.dataset, request.split), request.max_tiles, request.seed)
        _needs_both_labels(real, f"dataset {request.dataset!r} split {request.split!r}")
    seen = {sha for sha, _ in real} | {sha for sha, _ in synthetic} | held_back
    test = [
        row for row in real_rows(request.test_dataset, request.test_split) if row[0] not in seen
    ]
    if not test:
        raise UtilityError(
            f"no tiles of {request.test_dataset!r} split {request.test_split!r} are left for "
            "testing once the training tiles and the cohort's real half are held back"
        )
    _needs_both_labels(test, f"test set {request.test_dataset!r} split {request.test_split!r}")

    pools = [p for p in (load_tiles(real), load_tiles(synthetic)) if len(p.shas)]
    shares = [1 - share, share] if len(pools) == 2 else [1.0]
    model, log = train(
        [p.tiles for p in pools],
        [p.labels for p in pools],
        config,
        seed=request.seed,
        device=torch_device,
        shares=shares,
        progress=progress,
    )
    held_out = load_tiles(test)
    scores = evaluate(held_out.labels, predict(model, held_out.tiles, torch_device))
    return UtilityResult.objects.create(
        arm=request.train_on,
        cohort=source,
        generator=source.generator if source else None,
        experiment=experiment,
        step=step,
        train_dataset=request.dataset or "",
        train_split=request.split if request.dataset else "",
        synthetic_share=share,
        n_real=len(real),
        n_synthetic=len(synthetic),
        test_dataset=request.test_dataset,
        test_split=request.test_split,
        n_test=scores.n,
        n_test_tumour=scores.n_tumour,
        preset=request.preset,
        seed=request.seed,
        config=dataclasses.asdict(config),
        steps=log.steps,
        stopped_early=log.stopped_early,
        seconds=log.seconds,
        device=str(torch_device),
        final_loss=log.final_loss if np.isfinite(log.final_loss) else None,
        **{
            f.name: getattr(scores, f.name)
            for f in dataclasses.fields(scores)
            if f.name not in ("n", "n_tumour")
        },
    )


def result_lines(r: UtilityResult) -> list[str]:
    early = ", stopped by the time limit" if r.stopped_early else ""
    return [
        f"{r.arm_name}: trained on {r.n_real} real + {r.n_synthetic} synthetic tiles, "
        f"{r.steps} steps in {r.seconds:.0f} s on {r.device}{early} (seed {r.seed})",
        f"  tested on {r.n_test} real tiles of {r.test_dataset}/{r.test_split} "
        f"({r.n_test_tumour} tumour)",
        f"  ROC AUC      {r.auc:.3f}  95% CI {r.auc_low:.3f}-{r.auc_high:.3f} (DeLong)",
        f"  accuracy     {r.accuracy:.3f}  95% CI {r.accuracy_low:.3f}-{r.accuracy_high:.3f}",
        f"  sensitivity  {r.sensitivity:.3f}  95% CI {r.sensitivity_low:.3f}-"
        f"{r.sensitivity_high:.3f} (tumour called tumour, threshold 0.5)",
        f"  specificity  {r.specificity:.3f}  95% CI {r.specificity_low:.3f}-"
        f"{r.specificity_high:.3f}",
    ]


@dataclass
class ArmSummary:
    """Every seed of one arm: mean and range of the AUC, and the last result's interval."""

    arm: str
    cohort: str
    test: str
    preset: str
    n_real: int
    n_synthetic: int
    seeds: list[int]
    aucs: list[float]
    accuracies: list[float]
    latest: UtilityResult

    @property
    def auc_mean(self) -> float:
        return statistics.fmean(self.aucs)

    @property
    def auc_min(self) -> float:
        return min(self.aucs)

    @property
    def auc_max(self) -> float:
        return max(self.aucs)

    @property
    def accuracy_mean(self) -> float:
        return statistics.fmean(self.accuracies)


def summarise(results: list[UtilityResult] | object) -> list[ArmSummary]:
    """Group results by arm, cohort, test set, preset and training sizes; one row each, the
    latest result per seed counted once."""
    groups: dict[tuple, dict[int, UtilityResult]] = defaultdict(dict)
    for r in sorted(results, key=lambda r: r.created_at):  # type: ignore[arg-type]
        key = (
            r.arm_name,
            r.cohort.name if r.cohort_id else "",
            f"{r.test_dataset}/{r.test_split}",
            r.preset,
            r.n_real,
            r.n_synthetic,
        )
        groups[key][r.seed] = r
    rows = []
    for key, by_seed in groups.items():
        runs = [by_seed[s] for s in sorted(by_seed)]
        rows.append(
            ArmSummary(
                *key,
                seeds=sorted(by_seed),
                aucs=[r.auc for r in runs],
                accuracies=[r.accuracy for r in runs],
                latest=max(runs, key=lambda r: r.created_at),
            )
        )
    order = {"real": 0, "synthetic": 1, "mixed": 2}
    return sorted(rows, key=lambda s: (order[s.latest.arm], s.cohort, s.arm, s.test, s.n_real))
