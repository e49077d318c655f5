"""Hostile requests to the answer endpoints: each is refused with a 4xx, never a 5xx, and the
database is exactly as it was (answers, serving times, progress).

tests/studies/test_api.py and test_permissions.py cover the ordinary refusals (a bad field,
another reader's token, staff-only URLs, the status of every URL per role); this file covers
what an attacker or a broken client sends on top of those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from studies.models import Assignment, Response, Study, Trial
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study

pytestmark = pytest.mark.django_db

SERVED = "<served>"  # replaced by alice's served trial token in a body


@dataclass
class Midway:
    """alice and bob read one study; each has answered one trial and is shown the next."""

    study: Study
    alice: AbstractBaseUser
    bob: AbstractBaseUser
    mine: Assignment
    theirs: Assignment
    answered: Trial  # alice: synthetic, confidence 4
    served: Trial  # alice's current trial
    bobs_answered: Trial
    bobs_served: Trial

    def api(self, assignment: Assignment | None = None) -> str:
        return reverse("api:assignment-responses", args=[(assignment or self.mine).token])

    def form(self, trial: Trial, assignment: Assignment | None = None) -> str:
        return reverse("studies:answer", args=[(assignment or self.mine).token, trial.token])


@pytest.fixture
def midway(db) -> Midway:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    study = open_study(cohort_from_fixture_tiles(per_stratum=3), [alice, bob], cases=4)
    mine, theirs = (study.assignments.get(reader=user) for user in (alice, bob))
    answered = mine.next_trial()
    mine.submit(answered.token, "synthetic", 4)
    bobs_answered = theirs.next_trial()
    theirs.submit(bobs_answered.token, "real", 2)
    served, bobs_served = mine.next_trial(), theirs.next_trial()
    return Midway(study, alice, bob, mine, theirs, answered, served, bobs_answered, bobs_served)


@pytest.fixture
def alice_client(midway: Midway) -> Client:
    client = Client()
    client.force_login(midway.alice)
    return client


def database_state() -> tuple:
    """Everything a request to the reader endpoints could change."""
    responses = Response.objects.order_by("pk").values_list(
        "trial_id", "reader_id", "case_id", "call", "confidence", "served_at", "answered_at"
    )
    trials = Trial.objects.order_by("pk").values_list("served_at", "first_served_at", "serve_count")
    assignments = Assignment.objects.order_by("pk").values_list("started_at", "completed_at")
    return list(responses), list(trials), list(assignments)


def post_json(client: Client, url: str, body: bytes | str, **extra: str) -> HttpResponse:
    return client.post(url, body, content_type="application/json", **extra)


# --- malformed and oversized bodies ------------------------------------------------------------

MALFORMED = {
    "truncated": b'{"trial": "<served>", "call": ',
    "form-encoded-as-json": b"trial=<served>&call=real&confidence=3",
    "invalid-utf8": b'{"trial": "<served>", "call": "re\xffal", "confidence": 3}',
    "nan": b'{"trial": "<served>", "call": "real", "confidence": NaN}',
    "infinity": b'{"trial": "<served>", "call": "real", "confidence": Infinity}',
    "huge-integer": b'{"trial": "<served>", "call": "real", "confidence": 3' + b"0" * 5000 + b"}",
    "deeply-nested-arrays": b"[" * 100_000 + b"]" * 100_000,
    "deeply-nested-objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "nested-answer": b'{"trial": "<served>", "call": "real", "confidence": 3, "x": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
    "scalar": b'"real"',
    "null": b"null",
    "empty": b"",
    "nul-in-token": b'{"trial": "<served>\\u0000", "call": "real", "confidence": 3}',
    "lone-surrogate": b'{"trial": "<served>\\ud800", "call": "real", "confidence": 3}',
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_json_is_a_400_and_changes_nothing(midway, alice_client, case):
    body = MALFORMED[case].replace(SERVED.encode(), midway.served.token.encode())
    before = database_state()
    reply = post_json(alice_client, midway.api(), body)
    assert reply.status_code == 400, (case, reply.status_code, reply.content[:200])
    assert reply["Content-Type"] == "application/json"
    assert database_state() == before


def test_a_body_past_the_upload_limit_is_refused_unread(midway, alice_client, settings):
    answer = {"trial": midway.served.token, "call": "real", "confidence": 3}
    padding = "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    before = database_state()
    reply = post_json(alice_client, midway.api(), json.dumps(answer | {"pad": padding}))
    assert reply.status_code == 400
    form = alice_client.post(midway.form(midway.served), answer | {"pad": padding})
    assert form.status_code == 400
    assert database_state() == before
    # The same answer without the padding is taken: the size was the only problem.
    assert post_json(alice_client, midway.api(), json.dumps(answer)).status_code == 201


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"],
)
def test_the_api_takes_json_only(midway, alice_client, content_type):
    body = f"trial={midway.served.token}&call=real&confidence=3"
    before = database_state()
    reply = alice_client.post(midway.api(), body, content_type=content_type)
    assert reply.status_code == 415
    assert database_state() == before


# --- wrong types for each field of an answer ---------------------------------------------------

WRONG_TYPES = [
    ("trial", None),
    ("trial", True),
    ("trial", 12345),
    ("trial", [SERVED]),
    ("trial", {"token": SERVED}),
    ("trial", ""),
    ("trial", f" {SERVED}/.."),
    ("call", None),
    ("call", 1),
    ("call", True),
    ("call", ["real"]),
    ("call", {"call": "real"}),
    ("call", "REAL"),
    ("call", "real "),
    ("call", ""),
    ("confidence", None),
    ("confidence", 3.5),
    ("confidence", True),
    ("confidence", "three"),
    ("confidence", [3]),
    ("confidence", {"value": 3}),
    ("confidence", 0),
    ("confidence", -1),
    ("confidence", 10**30),
    ("confidence", "1e3"),
    ("confidence", "\uff13"),  # a full-width 3: int() takes it, the form does not
    ("confidence", "\u0663"),  # an Arabic-Indic 3
    ("confidence", " 3"),
    ("confidence", "+3"),
    ("confidence", "03"),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES, ids=lambda v: repr(v)[:20])
def test_a_wrong_type_for_any_field_is_a_400_naming_it(midway, alice_client, field, value):
    body = {"trial": SERVED, "call": "real", "confidence": 3} | {field: value}
    before = database_state()
    reply = post_json(
        alice_client, midway.api(), json.dumps(body).replace(SERVED, midway.served.token)
    )
    assert reply.status_code == 400, reply.content
    assert field in reply.json()
    assert database_state() == before


def test_ownership_comes_from_the_login_never_from_the_body(midway, alice_client):
    body = {
        "trial": midway.served.token,
        "call": "real",
        "confidence": 3,
        "reader": midway.bob.pk,
        "assignment": midway.theirs.token,
        "case": midway.bobs_served.case_id,
    }
    reply = post_json(alice_client, midway.api(), json.dumps(body))
    assert reply.status_code == 201
    stored = Response.objects.get(trial=midway.served)
    assert (stored.reader, stored.case_id) == (midway.alice, midway.served.case_id)
    assert not Response.objects.filter(trial=midway.bobs_served).exists()


# --- another reader's ids ----------------------------------------------------------------------


def test_another_readers_trial_is_indistinguishable_from_a_made_up_one(midway, alice_client):
    before = database_state()
    replies = [
        post_json(
            alice_client,
            midway.api(),
            json.dumps({"trial": token, "call": "real", "confidence": 3}),
        )
        for token in (midway.bobs_served.token, midway.bobs_answered.token, "A" * 22)
    ]
    assert {r.status_code for r in replies} == {400}
    assert replies[0].content == replies[1].content == replies[2].content
    assert database_state() == before


def test_another_readers_assignment_gives_404_and_no_side_effect(midway, alice_client):
    body = {"trial": midway.bobs_served.token, "call": "real", "confidence": 3}
    before = database_state()
    posted = post_json(alice_client, midway.api(midway.theirs), json.dumps(body))
    made_up = post_json(alice_client, reverse("api:assignment-responses", args=["B" * 22]), "{}")
    assert posted.status_code == made_up.status_code == 404
    assert posted.content == made_up.content
    # Reads of bob's assignment serve nothing: his trial's serve count is untouched.
    for name in ("detail", "next", "progress"):
        reply = alice_client.get(reverse(f"api:assignment-{name}", args=[midway.theirs.token]))
        assert reply.status_code == 404
        assert midway.bobs_served.token.encode() not in reply.content
    assert database_state() == before


@pytest.mark.parametrize(
    ("view", "method"),
    [("answer", "post"), ("image", "get"), ("feedback", "get")],
)
def test_mixing_own_assignment_with_another_readers_trial_is_404(
    midway, alice_client, view, method
):
    before = database_state()
    for assignment, trial in (
        (midway.mine, midway.bobs_served),  # own assignment, bob's trial
        (midway.mine, midway.bobs_answered),
        (midway.theirs, midway.bobs_served),  # bob's assignment and trial
        (midway.theirs, midway.served),  # bob's assignment, own trial
    ):
        url = reverse(f"studies:{view}", args=[assignment.token, trial.token])
        data = {"call": "real", "confidence": "3"} if method == "post" else {}
        reply = getattr(alice_client, method)(url, data)
        assert reply.status_code == 404, (view, url)
    assert database_state() == before


# --- replays -----------------------------------------------------------------------------------


def test_replays_return_the_stored_answer_and_never_change_it(midway, alice_client):
    stored = {"trial": midway.answered.token, "call": "synthetic", "confidence": 4}
    before = database_state()
    same = post_json(alice_client, midway.api(), json.dumps(stored))
    assert same.status_code == 200
    assert (same.json()["call"], same.json()["confidence"]) == ("synthetic", 4)
    for changed in ({"call": "real"}, {"confidence": 1}, {"call": "real", "confidence": 4}):
        reply = post_json(alice_client, midway.api(), json.dumps(stored | changed))
        assert reply.status_code == 409
        assert reply.json() == same.json()
    form = alice_client.post(midway.form(midway.answered), {"call": "real", "confidence": "1"})
    assert form.status_code == 302  # the form moves on; the stored answer stands
    assert database_state() == before


def test_replays_after_the_study_closed(midway, alice_client):
    midway.study.close()
    stored = {"trial": midway.answered.token, "call": "synthetic", "confidence": 4}
    before = database_state()
    assert post_json(alice_client, midway.api(), json.dumps(stored)).status_code == 200
    changed = post_json(alice_client, midway.api(), json.dumps(stored | {"call": "real"}))
    assert changed.status_code == 400 and "closed" in changed.content.decode()
    fresh = {"trial": midway.served.token, "call": "real", "confidence": 3}
    assert post_json(alice_client, midway.api(), json.dumps(fresh)).status_code == 400
    assert database_state() == before


def test_a_trial_not_yet_served_cannot_be_answered_ahead(midway, alice_client):
    ahead = midway.mine.trials.filter(served_at__isnull=True).order_by("-position").first()
    before = database_state()
    body = {"trial": ahead.token, "call": "real", "confidence": 3}
    assert post_json(alice_client, midway.api(), json.dumps(body)).status_code == 400
    form = alice_client.post(midway.form(ahead), {"call": "real", "confidence": "3"})
    assert form.status_code == 404
    assert database_state() == before


def test_form_confidence_with_thousands_of_digits_is_a_400(midway, alice_client):
    before = database_state()
    reply = alice_client.post(
        midway.form(midway.served), {"call": "real", "confidence": "3" + "0" * 5000}
    )
    assert reply.status_code == 400
    assert database_state() == before


# --- CSRF and authentication -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["api", "form", "logout"])
def test_session_posts_without_a_csrf_token_are_403(midway, target):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(midway.alice)
    answer = {"trial": midway.served.token, "call": "real", "confidence": 3}
    before = database_state()
    if target == "api":
        reply = post_json(browser, midway.api(), json.dumps(answer))
    elif target == "form":
        reply = browser.post(midway.form(midway.served), {"call": "real", "confidence": "3"})
    else:
        reply = browser.post(reverse("logout"))
    assert reply.status_code == 403
    assert database_state() == before
    assert browser.get(reverse("api:assignment-list")).status_code == 200  # still signed in


def test_a_csrf_token_that_does_not_match_the_cookie_is_403(midway):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(midway.alice)
    browser.get(reverse("studies:trial", args=[midway.mine.token]))  # sets the csrftoken cookie
    assert "csrftoken" in browser.cookies
    answer = {"trial": midway.served.token, "call": "real", "confidence": 3}
    before = database_state()
    forged = "x" * 32
    reply = post_json(browser, midway.api(), json.dumps(answer), HTTP_X_CSRFTOKEN=forged)
    assert reply.status_code == 403
    form = browser.post(
        midway.form(midway.served),
        {"call": "real", "confidence": "3", "csrfmiddlewaretoken": forged},
    )
    assert form.status_code == 403
    assert database_state() == before
    token = browser.cookies["csrftoken"].value
    taken = post_json(browser, midway.api(), json.dumps(answer), HTTP_X_CSRFTOKEN=token)
    assert taken.status_code == 201  # the same request with the real token goes through


def inactive_token(midway: Midway) -> str:
    user = UserFactory(username="gone", is_active=False)
    midway.study.readers.add(user)
    return f"Token {Token.objects.create(user=user).key}"


AUTHORIZATIONS = {
    "no-header": lambda m: None,
    "unknown-token": lambda m: "Token " + "0" * 40,
    "token-without-key": lambda m: "Token",
    "token-with-two-keys": lambda m: "Token abc def",
    "bearer": lambda m: "Bearer " + "0" * 40,
    "basic": lambda m: "Basic YWxpY2U6cmVhZC10aWxlcy0yMDI2",  # alice:<her password>
    "non-ascii": lambda m: "Token caf\u00e9",
    "inactive-user": inactive_token,
}


@pytest.mark.parametrize("case", AUTHORIZATIONS)
def test_requests_without_valid_credentials_are_403_and_change_nothing(midway, case):
    header = AUTHORIZATIONS[case](midway)
    client = Client() if header is None else Client(HTTP_AUTHORIZATION=header)
    answer = {"trial": midway.served.token, "call": "real", "confidence": 3}
    before = database_state()
    assert post_json(client, midway.api(), json.dumps(answer)).status_code == 403
    for name, args in (
        ("api:assignment-list", []),
        ("api:assignment-next", [midway.mine.token]),
        ("api:study-results", [midway.study.pk]),
    ):
        assert client.get(reverse(name, args=args)).status_code == 403, name
    form = client.post(midway.form(midway.served), {"call": "real", "confidence": "3"})
    assert form.status_code == 302 and form["Location"].startswith(reverse("login"))
    assert database_state() == before


def test_confidence_as_an_ascii_digit_or_an_integer_is_taken(midway, alice_client):
    reply = post_json(alice_client, midway.api(), json.dumps(
        {"trial": midway.served.token, "call": "real", "confidence": "3"}))  # fmt: skip
    assert reply.status_code == 201 and reply.json()["confidence"] == 3


# --- every API response: JSON errors, never cached ------------------------------------------------


def test_api_errors_are_json_from_any_layer_and_nothing_is_cached(midway, alice_client,
                                                                  monkeypatch):  # fmt: skip
    unknown = alice_client.get("/api/v1/no-such-thing/")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not found."}
    assert unknown["X-Content-Type-Options"] == "nosniff"  # the site's headers stay
    theirs = alice_client.get(reverse("api:assignment-detail", args=[midway.theirs.token]))
    assert theirs.status_code == 404 and theirs["Content-Type"] == "application/json"
    mine = alice_client.get(reverse("api:assignment-detail", args=[midway.mine.token]))
    for reply in (unknown, theirs, mine):
        assert {"private", "no-store"} <= {
            part.strip() for part in reply["Cache-Control"].split(",")
        }, reply["Cache-Control"]

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("studies.api.ReaderAssignmentViewSet.retrieve", broken)
    alice_client.raise_request_exception = False
    crashed = alice_client.get(reverse("api:assignment-detail", args=[midway.mine.token]))
    assert crashed.status_code == 500 and crashed.json() == {"detail": "Server error."}
    assert "no-store" in crashed["Cache-Control"]
    page = alice_client.get("/no-such-page/")  # outside /api/, the site's own 404 page
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
