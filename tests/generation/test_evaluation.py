"""evaluate_generator: the pure measures, then the command on a tiny generator (CPU, seconds)."""

from __future__ import annotations

import json
import re
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from sklearn.metrics import roc_auc_score

from generation.evaluation import fidelity
from generation.evaluation.classifier import ClassifierConfig
from generation.evaluation.measures import presented
from generation.models import Cohort, CohortMember, FidelityEvaluation, TileAnnotation
from tests.generation.test_utility import bright_vs_dark

FAST = ClassifierConfig(channels=(8, 8, 16), steps=40, batch_size=16, warmup_steps=5,
                        max_minutes=None, colour_jitter=0.0)  # fmt: skip


# --- pure measures ----------------------------------------------------------------------------


def test_reconstruction_quality_is_psnr_and_ssim_per_tile():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 5, 0, 255).astype(np.uint8)
    same = fidelity.reconstruction_quality(a, a)
    assert same.ssim == pytest.approx(1.0) and same.psnr > 90
    shifted = fidelity.reconstruction_quality(a, b)
    mse = ((a.astype(float) - b) ** 2).reshape(3, -1).mean(1)
    assert shifted.psnr == pytest.approx(np.mean(10 * np.log10(255**2 / mse)))
    with pytest.raises(ValueError, match="one shape"):
        fidelity.reconstruction_quality(a, b[:2])


def test_morphology_agreement_counts_hits_beside_the_chance_share():
    prompted = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    assigned = np.array([0, 1, 1, 1, 2, 2, 0, 2])
    result = fidelity.morphology_agreement(prompted, assigned)
    assert (result.k, result.n, result.share) == (6, 8, 0.75)
    p, q = np.array([2, 2, 4]) / 8, np.array([2, 3, 3]) / 8
    assert result.chance == pytest.approx((p * q).sum())
    assert result.low < 0.75 < result.high
    # assignments that ignore the prompt land at chance on average
    rng = np.random.default_rng(1)
    prompted = rng.integers(0, 5, 5000)
    shuffled = fidelity.morphology_agreement(prompted, rng.permutation(prompted))
    assert shuffled.share == pytest.approx(shuffled.chance, abs=0.02)


def test_folds_are_balanced_per_kind():
    folds = fidelity.fold_ids(10, 6, 3, seed=0)
    assert sorted(np.bincount(folds[:10])) == [3, 3, 4]
    assert sorted(np.bincount(folds[10:])) == [2, 2, 2]
    with pytest.raises(ValueError, match="3 folds need at least 3"):
        fidelity.fold_ids(10, 2, 3, seed=0)


def test_machine_readers_tell_different_sets_apart_and_not_equal_ones():
    x, y = bright_vs_dark(96, seed=4)
    dark, bright = x[y == 1], x[y == 0]
    cnn = fidelity.cnn_reader(bright, dark, FAST, folds=2, seed=0)
    assert cnn.scores.auc > 0.9 and cnn.scores.n == len(x)
    sizes = [1000] * len(x)
    stats = fidelity.statistics_reader(
        fidelity.image_statistics(bright, sizes[: len(bright)]),
        fidelity.image_statistics(dark, sizes[len(bright) :]),
        folds=2,
    )
    assert stats.scores.auc > 0.95
    rng = np.random.default_rng(5)
    same = x[rng.permutation(len(x))]
    half = len(same) // 2
    blind = fidelity.statistics_reader(
        fidelity.image_statistics(same[:half], sizes[:half]),
        fidelity.image_statistics(same[half:], sizes[half:]),
        folds=2,
    )
    assert 0.25 < blind.scores.auc < 0.75


def test_presentation_gives_both_kinds_the_same_jpeg_history():
    x, _ = bright_vs_dark(4, seed=6)
    shown, sizes = presented(x)
    assert shown.shape == x.shape and shown.dtype == np.uint8
    assert not np.array_equal(shown, x)  # the JPEG q75 round-trip changed pixels
    assert len(sizes) == 4 and all(s > 100 for s in sizes)


# --- the command --------------------------------------------------------------------------------


def embedded(cohort: Cohort, kind: str) -> np.ndarray:
    """Inception features of one half of a cohort, read from the tile files."""
    import torch

    from generation.annotation.embeddings import InceptionEmbedder, inception_weights
    from generation.tiles.store import read_tile

    members = CohortMember.objects.filter(cohort=cohort, kind=kind).select_related("tile")
    tiles = np.stack([read_tile(m.tile.path) for m in members])
    embedder = InceptionEmbedder(inception_weights(None), torch.device("cpu"))
    return embedder.embed(tiles).astype(np.float64)


def textbook_fid(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), by eigendecompositions."""
    from scipy import linalg

    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = linalg.eigh(s_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = linalg.eigvalsh(root_a @ s_b @ root_a)
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b)
                 - 2 * np.sqrt(np.clip(middle, 0, None)).sum())  # fmt: skip


def knn_precision(manifold: np.ndarray, points: np.ndarray, k: int) -> float:
    """Share of points inside a ball around some manifold point reaching its k-th neighbour
    (Kynkäänniemi et al. 2019), by scikit-learn's neighbour search."""
    from sklearn.neighbors import NearestNeighbors

    radii = NearestNeighbors(n_neighbors=k + 1).fit(manifold).kneighbors(manifold)[0][:, k]
    distances = np.linalg.norm(points[:, None, :] - manifold[None, :, :], axis=2)
    return float((distances <= radii[None, :]).any(axis=1).mean())


def evaluate(*args: str) -> dict:
    out = StringIO()
    call_command(
        "evaluate_generator", *args, "--classifier-preset", "tiny", "--reader-folds", "2",
        "--steps", "2", "--json", stdout=out,
    )  # fmt: skip
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_evaluation_measures_everything_against_held_out_tiles(
    tiny_generator, admin_client, client, monkeypatch
):
    result = evaluate("tiny", "--size", "8")
    assert (result["n_synthetic"], result["n_real"], result["n_floor"]) == (8, 8, 8)
    evaluation = FidelityEvaluation.objects.get(pk=result["id"])
    cohort = evaluation.cohort
    trained = set(tiny_generator.training_tiles.values_list("sha256", flat=True))
    members = CohortMember.objects.filter(cohort=cohort, kind="real")
    assert cohort.split == "valid"
    assert not set(members.values_list("tile__sha256", flat=True)) & trained
    measured = ("fid", "floor_fid", "rfid", "psnr", "ssim", "label_auc", "label_auc_real",
                "morphology_share", "reader_auc", "statistics_reader_auc",
                "utility_auc")  # fmt: skip
    for key in measured:
        assert result[key] is not None and np.isfinite(result[key]), key
    # the headline compares the cohort's synthetic half with its real half: recomputed here
    # from the stored tiles by the textbook formulas, not by generation.evaluation.metrics
    synthetic, real = (embedded(cohort, kind) for kind in ("synthetic", "real"))
    assert result["fid"] == pytest.approx(textbook_fid(synthetic, real), rel=1e-3)
    assert result["precision"] == pytest.approx(knn_precision(real, synthetic, k=3))
    assert result["recall"] == pytest.approx(knn_precision(synthetic, real, k=3))
    morphology = result["details"]["morphology"]
    assert morphology["n"] == 8 and result["morphology_share"] == morphology["k"] / 8
    assert result["details"]["label_classifier"]["cached"] is False

    # the staff dashboard lists it with its plot; readers never reach either
    html = admin_client.get(reverse("dashboards:generation")).content.decode()
    assert "Generator fidelity" in html and f"{result['fid']:.1f}" in html
    plot = admin_client.get(reverse("generation:evaluation-plot", args=[result["id"]]))
    assert plot.status_code == 200 and plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(reverse("generation:evaluation-plot", args=[result["id"]])).status_code == 302

    # label fidelity scores each synthetic tile against the label it was prompted with: a
    # classifier whose output rises along the cohort gives the AUC of that ordering
    def rising(model, tiles, device=None, batch=256):
        return np.linspace(0, 1, len(tiles))

    monkeypatch.setattr("generation.evaluation.measures.predict", rising)
    again = evaluate("tiny", "--size", "8", "--skip", "readers,utility")
    assert again["details"]["label_classifier"]["cached"] is True  # trained once per data
    assert again["reader_auc"] is None and again["utility_auc"] is None
    assert again["fid"] == pytest.approx(result["fid"])  # the same cohort, not a new one
    labels = [p["label"] for p in sorted(cohort.plan, key=lambda p: p["position"])]
    assert again["label_auc"] == pytest.approx(roc_auc_score(labels, np.linspace(0, 1, 8)))


@pytest.mark.django_db
def test_another_guidance_makes_its_own_cohort_and_a_stale_one_is_named(tiny_generator):
    cheap = ("--size", "8", "--skip", "label,morphology,readers,utility")
    first = evaluate("tiny", *cheap)
    other = evaluate("tiny", *cheap, "--guidance", "1.0")
    cohorts = {e.cohort.name: e.cohort for e in FidelityEvaluation.objects.all()}
    default = first["details"]["sampling"]["guidance"]
    assert len(cohorts) == 2 and default != 1.0
    assert other["details"]["sampling"]["guidance"] == 1.0 and other["fid"] != first["fid"]
    assert {c.guidance for c in cohorts.values()} == {default, 1.0}
    # a cohort of the same name made at other settings (an earlier default): not scored as if
    made = next(c for c in cohorts.values() if c.guidance == 1.0)
    Cohort.objects.filter(pk=made.pk).update(guidance=4.0)
    stale = f"cohort '{re.escape(made.name)}' was generated with .*guidance 4, not"
    with pytest.raises(CommandError, match=stale):
        evaluate("tiny", *cheap, "--guidance", "1.0")
    assert FidelityEvaluation.objects.count() == 2
    as_made = evaluate("tiny", *cheap, "--cohort", made.name)
    assert as_made["details"]["sampling"]["guidance"] == 4.0


@pytest.mark.django_db
def test_missing_generator_files_are_named_and_nothing_is_written(tiny_generator):
    kept = list(tiny_generator.training_tiles.all())
    tiny_generator.training_tiles.remove(*kept[:3])  # e.g. tiles deleted since it trained
    with pytest.raises(CommandError, match="training tiles cannot be held out"):
        evaluate("tiny", "--size", "8")
    assert not FidelityEvaluation.objects.exists() and not Cohort.objects.exists()
    tiny_generator.training_tiles.add(*kept[:3])
    shutil.rmtree(Path(tiny_generator.path) / "unet")
    with pytest.raises(CommandError, match="generator 'tiny'"):
        evaluate("tiny", "--size", "8")
    with pytest.raises(CommandError, match="no generator named 'nope'"):
        evaluate("nope")
    with pytest.raises(CommandError, match="--skip colour"):
        evaluate("tiny", "--skip", "colour")
    assert not FidelityEvaluation.objects.exists()


@pytest.mark.django_db
def test_no_held_out_tiles_of_a_label_for_the_floor_is_named(tiny_generator):
    evaluate("tiny", "--size", "8", "--skip", "label,morphology,readers,utility")
    cohort = FidelityEvaluation.objects.get().cohort
    in_cohort = CohortMember.objects.filter(cohort=cohort, kind="real").values("tile")
    # every other accepted tumour tile of the split is rejected by the quality filter
    TileAnnotation.objects.filter(tile__split="valid", tile__label=1).exclude(
        tile__in=in_cohort
    ).update(quality_ok=False)
    with pytest.raises(CommandError, match="no held-out tumour tiles left"):
        evaluate("tiny", "--size", "8")
    assert FidelityEvaluation.objects.count() == 1
    # a new evaluation cohort that the split cannot fill is refused before anything is made
    cohorts = Cohort.objects.count()
    with pytest.raises(CommandError, match="held-out tumour tiles with a morphology type"):
        evaluate("tiny", "--size", "8", "--seed", "1")
    assert Cohort.objects.count() == cohorts and FidelityEvaluation.objects.count() == 1
    with pytest.raises(CommandError, match="--size 2: at least 4"):
        evaluate("tiny", "--size", "2", "--skip", "readers")
