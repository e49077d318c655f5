"""REST API: the reader's assignments, next trial, idempotent answers; staff-only results."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from studies.models import Response

pytestmark = pytest.mark.django_db


def next_trial(api: APIClient, token: str) -> dict:
    reply = api.get(reverse("api:assignment-next", args=[token]))
    assert reply.status_code == 200
    return reply.json()


def test_list_detail_and_progress(study_with_two_readers, alice, api):
    token = study_with_two_readers.assignments.get(reader=alice).token
    listed = api.get(reverse("api:assignment-list")).json()
    assert [a["token"] for a in listed] == [token]
    assert listed[0]["progress"] == {"answered": 0, "total": 10, "percent": 0}
    assert api.get(reverse("api:assignment-detail", args=[token])).json()["title"]
    progress = api.get(reverse("api:assignment-progress", args=[token])).json()
    assert progress["total"] == 10


def test_next_submit_retry_and_locked(study_with_two_readers, alice, api):
    token = study_with_two_readers.assignments.get(reader=alice).token
    current = next_trial(api, token)
    assert current["done"] is False and current["trial"]["position"] == 0
    url = reverse("api:assignment-responses", args=[token])
    body = {"trial": current["trial"]["token"], "call": "synthetic", "confidence": 5}
    created = api.post(url, body, format="json")
    assert created.status_code == 201
    assert created.json()["progress"]["answered"] == 1 and created.json()["feedback"] is None
    retry = api.post(url, body, format="json")
    assert retry.status_code == 200 and retry.json() == created.json()
    changed = api.post(url, body | {"call": "real"}, format="json")
    assert changed.status_code == 409 and changed.json()["call"] == "synthetic"
    assert Response.objects.count() == 1
    assert next_trial(api, token)["trial"]["position"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"trial": "x", "call": "real", "confidence": 3},
        {"call": "real", "confidence": 3},
        {"trial": "T", "call": "maybe", "confidence": 3},
        {"trial": "T", "call": "real", "confidence": 6},
        {"trial": "T", "call": "real", "confidence": "high"},
        {"trial": "T", "call": "real"},
        {"trial": "T" * 500, "call": "real", "confidence": 3},
        ["not", "an", "object"],
    ],
)
def test_bad_bodies_are_400_naming_the_field(study_with_two_readers, alice, api, body):
    token = study_with_two_readers.assignments.get(reader=alice).token
    served = next_trial(api, token)["trial"]["token"]
    if isinstance(body, dict) and body.get("trial") == "T":
        body = body | {"trial": served}
    reply = api.post(reverse("api:assignment-responses", args=[token]), body, format="json")
    assert reply.status_code == 400, reply.content
    assert not Response.objects.exists()


def test_done_after_the_last_answer(study_with_two_readers, alice, api):
    token = study_with_two_readers.assignments.get(reader=alice).token
    url = reverse("api:assignment-responses", args=[token])
    for _ in range(10):
        trial = next_trial(api, token)["trial"]["token"]
        reply = api.post(url, {"trial": trial, "call": "real", "confidence": 2}, format="json")
        assert reply.status_code == 201
    assert next_trial(api, token) == {
        "done": True,
        "trial": None,
        "progress": {"answered": 10, "total": 10, "percent": 100},
    }


def test_other_readers_assignment_is_404(study_with_two_readers, bob, api):
    token = study_with_two_readers.assignments.get(reader=bob).token
    for name in ("detail", "next", "progress"):
        assert api.get(reverse(f"api:assignment-{name}", args=[token])).status_code == 404
    reply = api.post(reverse("api:assignment-responses", args=[token]), {}, format="json")
    assert reply.status_code == 404


def test_token_auth_for_scripts_and_session_needs_csrf(study_with_two_readers, alice, client):
    key = Token.objects.create(user=alice).key
    scripted = APIClient()
    scripted.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert scripted.get(reverse("api:assignment-list")).status_code == 200
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    token = study_with_two_readers.assignments.get(reader=alice).token
    trial = browser.get(reverse("api:assignment-next", args=[token])).json()["trial"]["token"]
    reply = browser.post(
        reverse("api:assignment-responses", args=[token]),
        {"trial": trial, "call": "real", "confidence": 1},
        format="json",
    )
    assert reply.status_code == 403 and "CSRF" in reply.json()["detail"]


def test_staff_results_carry_the_truth_readers_cannot_reach_them(
    study_with_two_readers, alice, api, admin_user
):
    token = study_with_two_readers.assignments.get(reader=alice).token
    trial = next_trial(api, token)["trial"]["token"]
    api.post(
        reverse("api:assignment-responses", args=[token]),
        {"trial": trial, "call": "real", "confidence": 3},
        format="json",
    )
    results_url = reverse("api:study-results", args=[study_with_two_readers.pk])
    assert api.get(results_url).status_code == 403
    assert api.get(reverse("api:study-list")).status_code == 403
    staff = APIClient()
    staff.force_authenticate(admin_user)
    rows = staff.get(results_url).json()
    assert (
        len(rows) == 1
        and rows[0]["reader"] == "alice"
        and rows[0]["truth"]
        in (
            "real",
            "synthetic",
        )
    )
    assert rows[0]["seconds"] >= 0
    assert staff.get(reverse("api:study-list")).json()[0]["name"] == "turing-test"


def test_openapi_schema_is_valid_and_covers_every_endpoint(tmp_path, alice, api):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    paths = yaml.safe_load(out.read_text())["paths"]
    assert set(paths) == {
        "/api/v1/assignments/",
        "/api/v1/assignments/{token}/",
        "/api/v1/assignments/{token}/next/",
        "/api/v1/assignments/{token}/progress/",
        "/api/v1/assignments/{token}/responses/",
        "/api/v1/assignments/{token}/screen-time/",
        "/api/v1/assignments/{token}/display/",
        "/api/v1/studies/",
        "/api/v1/studies/{id}/",
        "/api/v1/studies/{id}/results/",
    }
    assert api.get(reverse("api:schema")).status_code == 200


def test_time_on_screen_is_summed_over_servings_bounded_and_frozen_by_the_answer(
    study_with_two_readers, alice, api
):
    from datetime import timedelta

    from django.db.models import F

    from studies.models import Trial

    token = study_with_two_readers.assignments.get(reader=alice).token
    first = next_trial(api, token)["trial"]["token"]
    next_trial(api, token)  # a reload: serving 2 of the same trial
    trial = Trial.objects.get(token=first)
    Trial.objects.filter(pk=trial.pk).update(  # served 20 s ago, so reports up to 21 s count
        first_served_at=trial.first_served_at - timedelta(seconds=20)
    )
    url = reverse("api:assignment-screen-time", args=[token])
    for serving, ms in ((1, 4000), (1, 3000), (2, 500)):  # a smaller late report keeps 4 s
        assert api.post(url, {"trial": first, "serving": serving, "ms": ms},
                        format="json").status_code == 204  # fmt: skip
    assert Trial.objects.get(pk=trial.pk).screen_ms == {"1": 4000, "2": 500}
    # no serving 3 yet; a negative time; an unknown trial: each named
    for body, field in (({"serving": 3, "ms": 1}, "serving"), ({"serving": 1, "ms": -1}, "ms"),
                        ({"trial": "nope", "serving": 1, "ms": 1}, "trial")):  # fmt: skip
        reply = api.post(url, {"trial": first} | body, format="json")
        assert reply.status_code == 400 and field in reply.json()
    answers = reverse("api:assignment-responses", args=[token])
    half = {"trial": first, "call": "real", "confidence": 2, "serving": 2}
    assert api.post(answers, half, format="json").status_code == 400  # without its time
    reply = api.post(answers, half | {"on_screen_ms": 2500}, format="json")
    assert reply.status_code == 201
    stored = Response.objects.get(trial__token=first)
    assert stored.on_screen_seconds == pytest.approx(6.5)  # 4 s, then 2.5 s of serving 2
    api.post(url, {"trial": first, "serving": 1, "ms": 9000}, format="json")
    assert Trial.objects.get(pk=trial.pk).screen_ms["1"] == 4000  # the answer froze it

    # a page cannot have shown a tile longer than since it was first served (+1 s of skew),
    # nor can two servings (two windows side by side, say) add up to more
    second = next_trial(api, token)["trial"]["token"]
    next_trial(api, token)
    Trial.objects.filter(token=second).update(first_served_at=F("first_served_at") - timedelta(
        seconds=10))  # fmt: skip
    api.post(url, {"trial": second, "serving": 1, "ms": 10_000}, format="json")
    reply = api.post(answers, {"trial": second, "call": "real", "confidence": 2, "serving": 2,
                               "on_screen_ms": 3_600_000}, format="json")  # fmt: skip
    assert reply.status_code == 201
    assert 10 <= Response.objects.get(trial__token=second).on_screen_seconds < 12
