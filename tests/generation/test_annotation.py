"""annotate_tiles end to end on fixture tiles: verdicts, clusters, prompts, resumption."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from PIL import Image

from generation.annotation import annotate as annotation
from generation.annotation.annotate import annotate_dataset
from generation.annotation.signal import feature_signal
from generation.models import MorphologyCluster, Tile, TileAnnotation, TileEmbedding
from generation.tiles.importer import import_tiles
from tests.generation.test_features import draw_discs, scattered

pytestmark = pytest.mark.django_db

MORPHOLOGY = re.compile(r"^Histology image of (healthy|cancer) tissue, morphology type [a-z-]+$")
FEATURES = re.compile(
    MORPHOLOGY.pattern[:-1]
    + r", (sparse|moderately dense|dense) nuclei, (small|medium|large) nuclei, "
    r"(pale|moderate|dark) haematoxylin, (pale|moderate|dark) eosin$"
)


@pytest.fixture
def annotatable(tmp_path: Path) -> str:
    """30 tissue-like tiles of varied density and nuclear size, plus 2 blank ones."""
    root = tmp_path / "tiles" / "train"
    for i in range(30):
        label = i % 2
        radius = 2.5 + (i % 5) * 0.6
        image = draw_discs(scattered(12 + 2 * (i % 7), radius, seed=i), radius, seed=i)
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(label) / f"t{i:02d}.png")
    for i in range(2):
        blank = np.full((96, 96, 3), 248 - i, np.uint8)
        Image.fromarray(blank).save(root / "0" / f"blank{i}.png")
    import_tiles(tmp_path / "tiles", "fixture", progress=False)
    return "fixture"


def test_every_accepted_tile_gets_a_cluster_and_three_prompts(annotatable):
    summary = annotate_dataset(annotatable, clusters=4, progress=False)
    assert (summary.tiles, summary.accepted, summary.rejected) == (32, 30, 2)
    # counted by rule, each blank tile once per rule it fails
    assert summary.rejection_reasons["mean saturation"] == 2
    assert set(summary.rejection_reasons) <= {
        "mean value", "mean saturation", "std of value", "std of saturation", "std of hue",
        "variance of Laplacian", "contours at grey 150",
    }  # fmt: skip
    for a in TileAnnotation.objects.select_related("tile"):
        if not a.quality_ok:
            assert (
                a.tile.source.startswith("train/0/blank") and a.cluster is None and a.prompts == {}
            )
            assert any(r.startswith("mean saturation") for r in a.quality_reasons)
            continue
        assert 0 <= a.cluster < 4
        label = "cancer" if a.tile.label else "healthy"
        assert a.prompts["label"] == f"Histology image of {label} tissue"
        assert MORPHOLOGY.match(a.prompts["morphology"]) and FEATURES.match(a.prompts["features"])
        assert a.prompts["features"].startswith(a.prompts["morphology"] + ", ")
    assert sum(summary.cluster_sizes) == 30
    assert Tile.objects.accepted().count() == 30
    clusters = MorphologyCluster.objects.order_by("index")
    assert [c.name for c in clusters][:2] == ["morphology type zero", "morphology type one"]
    assert sum(c.healthy + c.tumour for c in clusters) == 30


def test_rerun_reuses_measurements_and_clusters(annotatable):
    annotate_dataset(annotatable, clusters=4, progress=False)
    before = dict(TileAnnotation.objects.values_list("tile_id", "prompts"))
    again = annotate_dataset(annotatable, clusters=4, progress=False)
    assert again.annotated == 0 and again.clustering_reused
    assert dict(TileAnnotation.objects.values_list("tile_id", "prompts")) == before


def test_killed_run_resumes_to_the_same_result(annotatable, monkeypatch, tmp_path):
    monkeypatch.setattr(annotation, "BATCH", 8)
    real_save = annotation._save_measurements
    calls = {"n": 0}

    def save_then_die(rows):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if killed after two committed batches
        return real_save(rows)

    monkeypatch.setattr(annotation, "_save_measurements", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        annotate_dataset(annotatable, clusters=4, workers=1, progress=False)
    assert TileAnnotation.objects.count() == 16
    monkeypatch.setattr(annotation, "_save_measurements", real_save)
    resumed = annotate_dataset(annotatable, clusters=4, workers=1, progress=False)
    assert resumed.annotated == 16 and TileAnnotation.objects.count() == 32
    result = {
        a.tile.sha256: (a.cluster, a.prompts) for a in TileAnnotation.objects.select_related("tile")
    }

    TileAnnotation.objects.all().delete()
    for clustering in annotation.MorphologyClustering.objects.all():
        clustering.delete()
    annotate_dataset(annotatable, clusters=4, workers=1, progress=False)
    fresh = {
        a.tile.sha256: (a.cluster, a.prompts) for a in TileAnnotation.objects.select_related("tile")
    }
    assert fresh == result


def test_worker_processes_measure_the_same_features(annotatable):
    annotate_dataset(annotatable, clusters=4, workers=2, progress=False)
    two = dict(TileAnnotation.objects.values_list("tile_id", "features"))
    TileAnnotation.objects.all().delete()
    annotate_dataset(annotatable, clusters=4, workers=1, progress=False)
    assert dict(TileAnnotation.objects.values_list("tile_id", "features")) == two


def test_changed_thresholds_apply_without_remeasuring(annotatable, settings):
    annotate_dataset(annotatable, clusters=4, progress=False)
    settings.HISTOSTUDY_QUALITY_THRESHOLDS = {
        "min_mean_saturation": 0,
        "min_std_value": 0,
        "min_std_saturation": 0,
        "min_std_hue": 0,
        "min_laplacian_variance": 0,
        "min_contours": 0,
    }
    summary = annotate_dataset(annotatable, clusters=4, progress=False)
    assert summary.annotated == 0 and summary.accepted == 32
    settings.HISTOSTUDY_QUALITY_THRESHOLDS = {"min_nuclei": 3}
    with pytest.raises(annotation.AnnotationError, match="unknown keys \\['min_nuclei'\\]"):
        annotate_dataset(annotatable, clusters=4, progress=False)


def test_command_json_and_errors(annotatable, capsys):
    call_command("annotate_tiles", "--dataset", annotatable, "--clusters", "4", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["accepted"] == 30 and data["clusters"] == 4 and data["embedding"] == "morphometrics"
    with pytest.raises(CommandError, match="no dataset 'nope'; import tiles first"):
        call_command("annotate_tiles", "--dataset", "nope")
    with pytest.raises(CommandError, match="30 accepted tiles; 33 clusters need at least 33"):
        call_command("annotate_tiles", "--dataset", annotatable)


def test_inception_embedding_is_offline_2048d_and_cached(annotatable):
    first = annotate_dataset(annotatable, embedding="inception", clusters=3, progress=False)
    assert first.embedded == 30
    vectors = [
        np.frombuffer(bytes(v), np.float32)
        for v in TileEmbedding.objects.values_list("vector", flat=True)
    ]
    assert len(vectors) == 30 and {len(v) for v in vectors} == {2048}
    assert all(np.isfinite(v).all() for v in vectors)
    again = annotate_dataset(annotatable, embedding="inception", clusters=3, progress=False)
    assert again.embedded == 0 and again.clustering_reused


def test_missing_inception_weights_name_the_setting(annotatable, settings, tmp_path, monkeypatch):
    settings.HISTOSTUDY_INCEPTION_WEIGHTS = str(tmp_path / "missing.pt")
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(
        CommandError,
        match=r"Inception weights not found at .*missing\.pt; set HISTOSTUDY_INCEPTION_WEIGHTS",
    ):
        call_command(
            "annotate_tiles",
            "--dataset",
            annotatable,
            "--embedding",
            "inception",
            "--clusters",
            "3",
        )
    from generation.checks import inception_weights_check

    assert [m.id for m in inception_weights_check()] == ["histostudy.W001"]


def test_dino_embedding_from_a_local_checkpoint(annotatable, tmp_path):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    checkpoint = tmp_path / "tiny-vit"
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(checkpoint)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(checkpoint)
    summary = annotate_dataset(
        annotatable, embedding="dino", embedding_path=str(checkpoint), clusters=3, progress=False
    )
    assert summary.embedded == 30
    vector = TileEmbedding.objects.first()
    assert vector.embedding_key.startswith("dino:") and len(bytes(vector.vector)) == 32 * 4
    with pytest.raises(CommandError, match="needs --embedding-path DIR"):
        call_command("annotate_tiles", "--dataset", annotatable, "--embedding", "dino")


def test_cluster_gallery_and_tile_annotation_in_admin(annotatable, admin_client):
    annotate_dataset(annotatable, clusters=4, progress=False)
    cluster = MorphologyCluster.objects.order_by("-size").first()
    page = admin_client.get(reverse("admin:generation_morphologycluster_change", args=[cluster.pk]))
    assert page.status_code == 200
    assert page.content.count(b'class="tile-thumb"') == min(cluster.size, 24)
    assert b"nuclei_density" in page.content
    listing = admin_client.get(reverse("admin:generation_morphologycluster_changelist"))
    assert b"morphology type" in listing.content
    tile = Tile.objects.accepted().first()
    detail = admin_client.get(reverse("admin:generation_tile_change", args=[tile.pk]))
    assert tile.annotation.prompts["features"].encode() in detail.content
    html = detail.content.decode()
    # named by kind, hash and owner; nothing editable; measurements as a readable table
    assert f"real tile {tile.sha256[:12]} of dataset {tile.dataset.name}" in html
    assert 'name="cohort"' not in html and 'name="dataset"' not in html
    name, value = next((k, v) for k, v in tile.annotation.features.items()
                       if isinstance(v, float))  # fmt: skip
    assert f"<th>{name}</th><td>{value:.4g}</td>" in html
    assert repr(value) not in html or len(repr(value)) <= 6
    clustering = admin_client.get(reverse("admin:generation_morphologyclustering_changelist"))
    assert clustering.status_code == 200


def test_feature_signal_pipeline_on_a_fixture_where_tumour_means_dense_large_nuclei(tmp_path):
    """The AUC check of the features, on tiles whose label is visible in the nuclei."""
    for split, n, offset in (("train", 24, 0), ("valid", 12, 1000)):
        for i in range(n):
            label = i % 2
            radius, count = (4.2, 30) if label else (2.6, 12)
            seed = offset + i
            image = draw_discs(scattered(count + i % 3, radius, seed=seed), radius, seed=seed)
            folder = tmp_path / "t" / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.png")
    import_tiles(tmp_path / "t", "signal", progress=False)
    annotate_dataset("signal", clusters=2, progress=False)
    auc, n_train, n_valid = feature_signal("signal")
    assert (n_train, n_valid) == (24, 12)
    assert auc > 0.95
    with pytest.raises(annotation.AnnotationError, match="split 'test' of 'signal' needs"):
        feature_signal("signal", test_split="test")


@pytest.mark.slow
def test_full_sample_annotation(shared_pcam):
    """Acceptance on ../shared/pcam: clusters 0..32, three prompts each, features AUC >= 0.80."""
    import_tiles(shared_pcam, "pcam-sample", progress=False)
    summary = annotate_dataset("pcam-sample", progress=False)
    assert summary.tiles == 22078 and summary.clusters == 33
    accepted = TileAnnotation.objects.filter(quality_ok=True)
    assert accepted.count() == summary.accepted > 21000
    assert not accepted.filter(cluster=None).exists()
    assert set(accepted.values_list("cluster", flat=True).distinct()) <= set(range(33))
    for prompts in accepted.values_list("prompts", flat=True).iterator(chunk_size=5000):
        assert set(prompts) == {"label", "morphology", "features"}
        assert MORPHOLOGY.match(prompts["morphology"]) and FEATURES.match(prompts["features"])
    auc, _, _ = feature_signal("pcam-sample")
    assert auc >= 0.80
