"""The reader's pages with the test client: list, instructions, trial, resume, feedback, done."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from studies.models import Response
from tests.factories import open_study

pytestmark = pytest.mark.django_db


def trial_token(page) -> str:
    return re.search(rb'data-trial="([^"]+)"', page.content).group(1).decode()


def test_my_studies_lists_assignments_with_progress(study_with_two_readers, alice_client):
    page = alice_client.get(reverse("studies:my-studies"))
    assert page.status_code == 200
    assert b"Real or synthetic?" in page.content and b"0 of 10" in page.content
    assert b"Start" in page.content


def test_anonymous_users_are_sent_to_login(client, study_with_two_readers):
    page = client.get(reverse("studies:my-studies"))
    assert page.status_code == 302 and page["Location"].startswith(reverse("login"))


def test_login_page_signs_a_reader_in_and_lands_on_my_studies(client, study_with_two_readers):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'autocomplete="current-password"' in page.content
    bad = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert b"did not match" in bad.content
    done = client.post(reverse("login"), {"username": "alice", "password": "read-tiles-2026"})
    assert done.status_code == 302 and done["Location"] == reverse("studies:my-studies")


def test_trial_page_resumes_at_the_next_unanswered_case(
    study_with_two_readers, alice, alice_client
):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    url = reverse("studies:trial", args=[assignment.token])
    first = alice_client.get(url)
    assert first.status_code == 200 and first["Cache-Control"].startswith("max-age=0")
    token = trial_token(first)
    assert trial_token(alice_client.get(url)) == token  # reload: the same case
    posted = alice_client.post(
        reverse("studies:answer", args=[assignment.token, token]),
        {"call": "synthetic", "confidence": "4"},
    )
    assert posted.status_code == 302 and posted["Location"] == url
    assert trial_token(alice_client.get(url)) != token
    stored = Response.objects.get()
    assert (stored.call, stored.confidence, stored.trial.position) == ("synthetic", 4, 0)
    assert b"Tile 2 of 10" in alice_client.get(url).content


def test_no_going_back_a_second_post_changes_nothing(study_with_two_readers, alice, alice_client):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    token = trial_token(alice_client.get(reverse("studies:trial", args=[assignment.token])))
    answer = reverse("studies:answer", args=[assignment.token, token])
    alice_client.post(answer, {"call": "real", "confidence": "2"})
    again = alice_client.post(answer, {"call": "synthetic", "confidence": "5"})
    assert again.status_code == 302
    assert list(Response.objects.values_list("call", "confidence")) == [("real", 2)]


def test_form_errors_are_400_and_store_nothing(study_with_two_readers, alice, alice_client):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    token = trial_token(alice_client.get(reverse("studies:trial", args=[assignment.token])))
    answer = reverse("studies:answer", args=[assignment.token, token])
    for data in ({"call": "real"}, {"call": "x", "confidence": "3"}, {"confidence": "9"},
                 {"call": "real", "confidence": "\u00b2"}):  # fmt: skip
        page = alice_client.post(answer, data)
        assert page.status_code == 400
    assert not Response.objects.exists()


def test_practice_trials_give_feedback_scored_ones_do_not(cohort, alice, alice_client):
    study = open_study(cohort, [alice], cases=4, practice_trials=2)
    assignment = study.assignments.get()
    trial_url = reverse("studies:trial", args=[assignment.token])
    for _ in range(2):
        page = alice_client.get(trial_url)
        assert b"practice" in page.content
        token = trial_token(page)
        posted = alice_client.post(
            reverse("studies:answer", args=[assignment.token, token]),
            {"call": "real", "confidence": "3"},
        )
        feedback = alice_client.get(posted["Location"])
        truth = assignment.trials.get(token=token).case.kind
        assert f"This tile was <strong>{truth}</strong>".encode() in feedback.content
    page = alice_client.get(trial_url)
    token = trial_token(page)
    posted = alice_client.post(
        reverse("studies:answer", args=[assignment.token, token]),
        {"call": "real", "confidence": "3"},
    )
    assert posted["Location"] == trial_url
    scored_feedback = reverse("studies:feedback", args=[assignment.token, token])
    assert alice_client.get(scored_feedback).status_code == 404


def test_completion_page_after_the_last_answer(study_with_two_readers, alice, alice_client):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    done_url = reverse("studies:done", args=[assignment.token])
    assert alice_client.get(done_url).status_code == 302  # not finished yet
    trial_url = reverse("studies:trial", args=[assignment.token])
    for _ in range(10):
        token = trial_token(alice_client.get(trial_url))
        alice_client.post(
            reverse("studies:answer", args=[assignment.token, token]),
            {"call": "real", "confidence": "1"},
        )
    finished = alice_client.get(trial_url)
    assert finished.status_code == 302 and finished["Location"] == done_url
    assert b"You have answered every tile" in alice_client.get(done_url).content
    assert b"Completed" in alice_client.get(reverse("studies:my-studies")).content


def test_closed_study_page_says_so(study_with_two_readers, alice, alice_client):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    study_with_two_readers.close()
    page = alice_client.get(reverse("studies:trial", args=[assignment.token]))
    assert page.status_code == 409 and b"closed" in page.content
