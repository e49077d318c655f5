"""Researchers browse datasets and tiles in admin; tile images are for staff only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from generation.models import Tile
from generation.tiles.importer import import_tiles

pytestmark = pytest.mark.django_db


@pytest.fixture
def imported(tile_folder):
    import_tiles(tile_folder.root, "sample", progress=False)
    return Tile.objects.first()


@pytest.fixture
def reader(client):
    user = get_user_model().objects.create_user("reader", password="pw-reader-123")
    client.force_login(user)
    return client


def test_dataset_and_tile_lists_with_thumbnails_and_filters(admin_client, imported, tile_folder):
    import_tiles(tile_folder.root / "train", "other", split="holdout", progress=False)
    page = admin_client.get(reverse("admin:generation_dataset_changelist"))
    assert page.status_code == 200 and b"train: 6 / 6; valid: 2 / 2" in page.content
    assert b"holdout: 6 / 6" in page.content
    tiles = admin_client.get(
        reverse("admin:generation_tile_changelist"), {"label": 1, "split": "valid", "kind": "real"}
    )
    assert tiles.status_code == 200
    assert tiles.content.count(b'class="tile-thumb"') == 2
    for heading in (b"By label", b"By kind", b"By split", b"By dataset"):
        assert heading in tiles.content
    detail = admin_client.get(reverse("admin:generation_tile_change", args=[imported.pk]))
    assert detail.status_code == 200 and imported.sha256.encode() in detail.content


def test_staff_get_the_png(admin_client, imported):
    response = admin_client.get(reverse("generation:tile-image", args=[imported.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png" and response["Cache-Control"].startswith(
        "private"
    )
    assert b"".join(response.streaming_content) == imported.path.read_bytes()


def test_readers_and_anonymous_users_never_get_tile_files(client, reader, imported):
    url = reverse("generation:tile-image", args=[imported.pk])
    assert reader.get(url).status_code == 302  # to the admin login
    reader.logout()
    assert client.get(url).status_code == 302
    assert reader.get(reverse("admin:generation_tile_changelist")).status_code == 302


def test_missing_file_is_a_404_not_a_crash(admin_client, imported):
    imported.path.unlink()
    assert admin_client.get(reverse("generation:tile-image", args=[imported.pk])).status_code == 404


def test_home_page(client):
    assert client.get("/").status_code == 200
