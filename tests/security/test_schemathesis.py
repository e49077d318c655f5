"""Requests generated from the OpenAPI schema, sent to the WSGI app in-process.

Every operation is fuzzed with data that fits the schema and data that does not, once with
generated ids and once with ids that exist (the reader's assignment, a study), as a reader
and as staff. No request may end in a 5xx, and every response must have a documented status
and a body that matches the schema for it. Hypothesis runs derandomized: the same requests
on every run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from histostudy.wsgi import application
from studies.models import Assignment, Response
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study

pytestmark = pytest.mark.django_db

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = 8  # per operation, mode and id choice: about 300 requests, a few seconds
SCHEMA_URL = "/api/v1/schema/"


@dataclass
class Tally:
    requests: int = 0
    server_errors: int = 0
    by_status: Counter = field(default_factory=Counter)

    def add(self, case: Case, status: int) -> None:
        self.requests += 1
        self.server_errors += status >= 500
        self.by_status[f"{case.operation.label} {status}"] += 1


@contextmanager
def app_keeps_the_test_connection() -> Iterator[None]:
    """Django's handler closes the connection after each request; inside a test transaction
    that would lose it. Django's test client disconnects the same signals."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def answer_a_served_trial(case: Case, assignment: Assignment | None) -> None:
    """Point a generated answer at a real served trial, so 201, 200 and 409 get checked too."""
    if assignment is None or case.operation.method.upper() != "POST":
        return
    if not isinstance(case.body, dict) or "trial" not in case.body:
        return
    served = assignment.next_trial() or assignment.trials.order_by("-position").first()
    case.body["trial"] = served.token
    calls = assignment.study.calls  # the schema's calls are every design's; a study takes two
    if case.body.get("call") in ("real", "synthetic", "left", "right"):
        case.body["call"] = calls[case.body["call"] in ("synthetic", "right")]
    if isinstance(case.body.get("serving"), int):  # a serving the page could have had
        case.body["serving"] = 1 + case.body["serving"] % served.serve_count


def fuzz(
    schema: schemathesis.BaseSchema,
    headers: dict[str, str],
    existing: dict[str, object],
    assignment: Assignment | None,
    tally: Tally,
) -> None:
    """Run every operation of `schema` with generated and existing path ids, both modes."""
    for result in schema.get_all_operations():
        operation = result.ok()
        ids = {name: value for name, value in existing.items() if name in operation.path}
        for params in [{}, ids] if ids else [{}]:
            modes = [GenerationMode.POSITIVE]
            if len(operation.body) or (len(operation.path_parameters) and not params):
                modes.append(GenerationMode.NEGATIVE)  # nothing to break in a bare GET
            for mode in modes:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=params)
                run(strategy, headers, assignment if params else None, tally)


def run(strategy, headers: dict[str, str], assignment: Assignment | None, tally: Tally) -> None:
    @given(case=strategy)
    @hypothesis_settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Case) -> None:
        answer_a_served_trial(case, assignment)
        response = case.call(headers=headers)
        tally.add(case, response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()


@pytest.fixture
def wsgi_host(settings) -> None:
    """The in-process client sends Host: localhost over plain http."""
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.SECURE_SSL_REDIRECT = False


def test_generated_requests_get_no_server_error_and_match_the_schema(wsgi_host, capsys):
    reader = UserFactory(username="alice")
    staff = UserFactory(username="boss", is_staff=True)
    study = open_study(cohort_from_fixture_tiles(per_stratum=3), [reader], cases=6)
    study.owners.add(staff)  # results are its owners' to read
    assignment = study.assignments.get(reader=reader)
    tally = Tally()
    started = time.perf_counter()
    with app_keeps_the_test_connection():
        for user, existing, answering in (
            (reader, {"token": assignment.token}, assignment),
            (staff, {"id": study.pk, "token": assignment.token}, None),
        ):
            headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
            schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, application, headers=headers)
            fuzz(schema, headers, existing, answering, tally)
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nschemathesis: {tally.requests} requests, {tally.server_errors} server errors "
            f"in {seconds:.1f} s"
        )
        for outcome, n in sorted(tally.by_status.items()):
            print(f"  {n:4d}  {outcome}")
    assert tally.server_errors == 0
    assert tally.requests > 200
    # The fuzzing reached past the refusals: reads and stored answers were checked too.
    assert tally.by_status["POST /api/v1/assignments/{token}/responses/ 201"] > 0
    assert tally.by_status["POST /api/v1/assignments/{token}/screen-time/ 204"] > 0
    assert tally.by_status["GET /api/v1/studies/{id}/results/ 200"] > 0
    assert Response.objects.filter(reader=reader).count() > 0
    assert not Response.objects.exclude(reader=reader).exists()
