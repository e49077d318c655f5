"""evaluate_utility: the classifier (pure) and the command on fixture tiles (tiny preset)."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from sklearn.metrics import roc_auc_score

from generation.evaluation import classifier
from generation.evaluation.classifier import ClassifierConfig, evaluate, predict, train
from generation.evaluation.utility import summarise
from generation.models import CohortMember, UtilityResult
from tests.generation.conftest import fixture_cohort

FAST = ClassifierConfig(channels=(8, 8, 16), steps=60, batch_size=16, warmup_steps=5,
                        max_minutes=None, colour_jitter=0.0)  # fmt: skip


def bright_vs_dark(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Tumour tiles darker and more purple than healthy ones, with noise: easily separable."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    base = np.where(labels[:, None], [120, 70, 160], [230, 170, 210])
    tiles = base[:, None, None, :] + rng.normal(0, 25, (n, 96, 96, 3))
    return np.clip(tiles, 0, 255).astype(np.uint8), labels


def test_classifier_learns_a_separable_problem_and_scores_like_sklearn():
    x, y = bright_vs_dark(64, seed=1)
    model, log = train(x, y, FAST, seed=0, progress=False)
    assert log.steps == 60 and not log.stopped_early and np.isfinite(log.final_loss)
    x_test, y_test = bright_vs_dark(40, seed=2)
    p = predict(model, x_test)
    scores = evaluate(y_test, p)
    assert scores.auc == pytest.approx(roc_auc_score(y_test, p), abs=1e-12)
    assert scores.auc > 0.95 and scores.auc_low <= scores.auc <= scores.auc_high
    called = p >= 0.5
    assert scores.accuracy == pytest.approx(np.mean(called == y_test.astype(bool)))
    assert scores.sensitivity == pytest.approx(np.mean(called[y_test == 1]))
    assert scores.specificity == pytest.approx(np.mean(~called[y_test == 0]))
    assert scores.n == 40 and scores.n_tumour == int(y_test.sum())


def test_training_is_seeded_and_pools_are_drawn_at_their_shares():
    x, y = bright_vs_dark(32, seed=3)
    a = predict(train(x, y, FAST.replace(steps=5), seed=7, progress=False)[0], x)
    b = predict(train(x, y, FAST.replace(steps=5), seed=7, progress=False)[0], x)
    np.testing.assert_array_equal(a, b)
    pools = [np.zeros((10, 96, 96, 3), np.uint8), np.full((1000, 96, 96, 3), 255, np.uint8)]
    sampler = classifier._Sampler(pools, [np.zeros(10), np.ones(1000)], [0.25, 0.75],
                                  np.random.default_rng(0))  # fmt: skip
    labels = np.concatenate([sampler.batch(64)[1].numpy() for _ in range(100)])
    assert labels.mean() == pytest.approx(0.75, abs=0.02)  # small pool recycled, not diluted
    with pytest.raises(ValueError, match="shares"):
        train(pools, [np.zeros(10), np.ones(1000)], FAST, shares=[0.5, 0.6], progress=False)


def test_time_limit_stops_training_early():
    x, y = bright_vs_dark(16, seed=4)
    _, log = train(x, y, FAST.replace(steps=10_000, max_minutes=0.02), progress=False)
    assert log.stopped_early and 0 < log.steps < 10_000


@pytest.fixture
def cohort(tiny_generator, annotated) -> str:
    fixture_cohort("util-cohort", 8, dataset=annotated)
    return "util-cohort"


def run(*args: str) -> list[dict]:
    out = StringIO()
    call_command("evaluate_utility", *args, "--preset", "tiny", "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_three_arms_are_stored_and_never_test_on_what_they_saw(annotated, cohort):
    (real,) = run("--train", "real", "--dataset", annotated, "--test-dataset", annotated,
                  "--split", "valid")  # fmt: skip
    (synthetic,) = run("--train", "synthetic", "--cohort", cohort, "--test-dataset", annotated,
                       "--split", "valid")  # fmt: skip
    mixed = run("--train", "mixed", "--dataset", annotated, "--cohort", cohort,
                "--synthetic-share", "0.25", "--test-dataset", annotated, "--split", "valid",
                "--seeds", "2")  # fmt: skip
    assert real["n_synthetic"] == 0 and real["n_real"] > 0
    assert synthetic["n_real"] == 0 and synthetic["n_synthetic"] == 8
    assert [m["seed"] for m in mixed] == [0, 1]
    held_back = CohortMember.objects.filter(cohort__name=cohort, kind="real").count()
    assert held_back == 8
    # the cohort's real half is left out of the synthetic and mixed arms' test sets
    assert synthetic["n_test"] == real["n_test"] - held_back == mixed[0]["n_test"]
    for row in [real, synthetic, *mixed]:
        assert 0 <= row["auc_low"] <= row["auc"] <= row["auc_high"] <= 1
    stored = UtilityResult.objects.get(arm="mixed", seed=1)
    assert stored.synthetic_share == 0.25 and stored.scheme == "morphology"
    assert stored.generator.name == "tiny" and stored.config["steps"] == 12
    rows = summarise(UtilityResult.objects.all())
    assert [r.arm for r in rows] == ["real", "synthetic (morphology)",
                                     "mixed 25% synthetic (morphology)"]  # fmt: skip
    assert rows[2].seeds == [0, 1] and rows[2].auc_min <= rows[2].auc_mean <= rows[2].auc_max


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--train", "real", "--test-dataset", "gen-fixture", "--split", "valid"],
         "needs --dataset"),
        (["--train", "synthetic", "--test-dataset", "gen-fixture", "--split", "valid"],
         "needs --cohort"),
        (["--train", "synthetic", "--cohort", "nope", "--test-dataset", "gen-fixture",
          "--split", "valid"], "no cohort named 'nope'"),
        (["--train", "real", "--dataset", "gen-fixture", "--test-dataset", "gen-fixture",
          "--split", "test"], "no accepted tiles in split 'test' (splits: train, valid)"),
        (["--train", "real", "--dataset", "other", "--test-dataset", "gen-fixture",
          "--split", "valid"], "no dataset named 'other'"),
        (["--train", "mixed", "--dataset", "gen-fixture", "--cohort", "any",
          "--synthetic-share", "1.5", "--test-dataset", "gen-fixture", "--split", "valid"],
         "strictly in"),
        (["--train", "real", "--dataset", "gen-fixture", "--synthetic-share", "0.5",
          "--test-dataset", "gen-fixture", "--split", "valid"], "mixed only"),
        (["--train", "real", "--dataset", "gen-fixture", "--test-dataset", "gen-fixture",
          "--split", "valid", "--steps", "0"], "at least 1"),
    ],
)  # fmt: skip
def test_bad_requests_are_clear_errors_and_store_nothing(annotated, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("evaluate_utility", *args, "--preset", "tiny", stdout=StringIO())
    assert not UtilityResult.objects.exists()


def test_a_test_set_needs_two_tiles_of_each_label_for_an_interval():
    from generation.evaluation.utility import UtilityError, _needs_both_labels

    _needs_both_labels([("a", 0), ("b", 0), ("c", 1), ("d", 1)], "test set")
    with pytest.raises(UtilityError, match="test set: needs two healthy and two tumour tiles at "
                       "least, found 3 healthy and 1 tumour"):  # fmt: skip
        _needs_both_labels([("a", 0), ("b", 0), ("e", 0), ("c", 1)], "test set")
