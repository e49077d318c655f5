"""Reader-study scenarios built from fixture tiles: no generator needs to run."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study


@pytest.fixture
def cohort(db):
    return cohort_from_fixture_tiles(per_stratum=5)  # 10 real + 10 synthetic, half tumour


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def study_with_two_readers(cohort, alice, bob):
    return open_study(cohort, [alice, bob], cases=10)


@pytest.fixture
def api(alice) -> APIClient:
    """The REST API as alice."""
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client
