"""Two (or eight) concurrent POSTs of one answer store exactly one response."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from studies.models import Response
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def test_concurrent_submits_of_one_answer_store_one_response():
    reader = UserFactory(username="racer")
    study = open_study(cohort_from_fixture_tiles(per_stratum=3), [reader], cases=6)
    assignment = study.assignments.get()
    url = reverse("api:assignment-responses", args=[assignment.token])
    clients = [Client() for _ in range(THREADS)]
    for client in clients:
        client.force_login(reader)
    for _ in range(6):
        trial = assignment.next_trial()
        body = json.dumps({"trial": trial.token, "call": "synthetic", "confidence": 4})
        barrier = threading.Barrier(THREADS)

        def post(client: Client, body: str = body, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            try:
                return client.post(url, body, content_type="application/json").status_code
            finally:
                connection.close()

        with ThreadPoolExecutor(THREADS) as pool:
            codes = sorted(pool.map(post, clients))
        assert codes == [200] * (THREADS - 1) + [201], codes
        assert Response.objects.filter(trial=trial).count() == 1
    assert Response.objects.count() == 6
    assignment.refresh_from_db()
    assert assignment.completed_at is not None
