"""An answer stored just before the database fails: the reply is lost, the page retries.

The PostgreSQL restart test hits these windows only by chance; here the failure is injected
exactly there (an OperationalError, as a dropped connection raises), in-process and on any
database.
"""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.db import OperationalError
from django.test import Client
from django.urls import reverse

from studies.models import Assignment, Response, Trial
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

DROPPED = "server closed the connection unexpectedly"


@pytest.fixture
def reader_at_work() -> tuple[Client, Assignment]:
    """A signed-in reader's browser (500s come back as responses) and their assignment."""
    reader = UserFactory(username="steady")
    study = open_study(cohort_from_fixture_tiles(per_stratum=2), [reader], cases=4)
    client = Client(raise_request_exception=False)
    client.force_login(reader)
    return client, study.assignments.get()


def submit(client: Client, assignment: Assignment, trial: Trial) -> int:
    """POST an answer as static/js/trial.js does; the status code."""
    url = reverse("api:assignment-responses", args=[assignment.token])
    body = {"trial": trial.token, "call": "synthetic", "confidence": 4}
    return client.post(url, body, content_type="application/json").status_code


def test_the_database_failing_while_the_session_is_saved_is_a_5xx_that_the_page_retries(
    reader_at_work: tuple[Client, Assignment], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, assignment = reader_at_work
    trial = assignment.next_trial()
    assert trial is not None
    saved = Session.save

    def unreachable(self: Session, *args: object, **kwargs: object) -> None:
        raise OperationalError(DROPPED)

    monkeypatch.setattr(Session, "save", unreachable)  # after the view stored the answer
    status = submit(client, assignment, trial)
    assert status >= 500, (
        f"{status}: trial.js gives up on a 4xx and tells the reader their (stored) answer was "
        "refused; an unreachable database must be a server error, which it retries"
    )
    monkeypatch.setattr(Session, "save", saved)
    assert submit(client, assignment, trial) == 200
    assert Response.objects.filter(trial=trial).count() == 1


def test_a_retried_last_answer_whose_reply_was_lost_completes_the_assignment(
    reader_at_work: tuple[Client, Assignment], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, assignment = reader_at_work
    for _ in range(assignment.n_trials - 1):
        assert submit(client, assignment, assignment.next_trial()) == 201
    last = assignment.next_trial()
    assert last is not None
    counted = Assignment.progress
    failures = iter([OperationalError(DROPPED)])

    def progress_after_a_drop(self: Assignment) -> object:
        for error in failures:  # the first call only: right after the INSERT
            raise error
        return counted(self)

    monkeypatch.setattr(Assignment, "progress", progress_after_a_drop)
    assert submit(client, assignment, last) == 500  # stored, but the reply never came
    assert Response.objects.filter(trial=last).exists()
    assert submit(client, assignment, last) == 200  # the page's retry
    assignment.refresh_from_db()
    assert assignment.completed_at is not None, "every trial answered, assignment not complete"
