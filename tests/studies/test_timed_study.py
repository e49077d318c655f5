"""A timed study (HYPE) on the server: its design checks, the exposure each trial is served at
(fixed, or the reader's staircase), the tile handed out once, the displayed duration the page
reports, and the statistics, dashboard and exports that read them."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db.models import F
from django.urls import reverse
from rest_framework.test import APIClient

from studies import timed
from studies.models import Response, Study, Trial
from studies.models.timing import timing_flag
from studies.timed_results import timed_results
from tests.factories import UserFactory, open_study

pytestmark = pytest.mark.django_db


def serve_and_answer(api: APIClient, token: str, right: bool) -> Trial:
    """Serve the next trial, hand its tile out (as the page's Space does), answer it right or
    wrong (the test knows the truth); the trial."""
    current = api.get(reverse("api:assignment-next", args=[token])).json()["trial"]
    trial = Trial.objects.select_related("case", "assignment").get(token=current["token"])
    assert current["exposure_ms"] == trial.exposure_ms
    trial.assignment.hand_out_image(trial)
    call = trial.case.kind if right else ("real" if trial.case.kind == "synthetic" else "synthetic")
    reply = api.post(
        reverse("api:assignment-responses", args=[token]),
        {"trial": trial.token, "call": call, "confidence": 3},
        format="json",
    )
    assert reply.status_code == 201, reply.json()
    trial.refresh_from_db()
    return trial


def test_design_fields_are_checked_and_frozen_once_opened(cohort, alice):
    study = Study(name="s", title="t", instructions="i", cohort=cohort, cases_per_reader=6,
                  exposure_ms=250)  # fmt: skip
    with pytest.raises(ValidationError, match="only a timed study"):
        study.full_clean()
    study.trial_design = "timed"
    study.staircase_start_ms = 300
    with pytest.raises(ValidationError) as refused:
        study.full_clean()
    assert "staircase_start_ms" in refused.value.message_dict
    opened = open_study(cohort, [alice], name="timed", cases=6, trial_design="timed")
    opened.exposure_ms = 500
    with pytest.raises(ValidationError, match="exposure_ms"):
        opened.save()


def test_the_staircase_sets_each_exposure_from_the_answers_so_far(cohort, alice, api):
    study = open_study(cohort, [alice], name="stair", cases=10, trial_design="timed",
                       practice_trials=2, staircase_start_ms=600)  # fmt: skip
    token = study.assignments.get(reader=alice).token
    pattern = [True, True, True, True, False, True, True, True, False, True, True, True]
    served = [serve_and_answer(api, token, right) for right in pattern]
    practice, scored = served[:2], served[2:]
    assert [t.exposure_ms for t in practice] == [600, 600]  # practice: the start, not stepped
    # the scored trials follow 1-up-2-down from 600 over the scored answers only
    expected, answered = [], []
    for right in pattern[2:]:
        expected.append(timed.next_exposure(answered, start=600))
        answered.append((expected[-1], right))
    assert [t.exposure_ms for t in scored] == expected == [
        600, 600, 400, 600, 600, 400, 400, 600, 600, 400,
    ]  # fmt: skip


def test_a_fixed_exposure_is_asked_for_every_trial_and_kept_on_reload(cohort, alice, api):
    study = open_study(cohort, [alice], name="fixed", cases=6, trial_design="timed",
                       exposure_ms=250)  # fmt: skip
    token = study.assignments.get(reader=alice).token
    first = api.get(reverse("api:assignment-next", args=[token])).json()["trial"]["token"]
    Study.objects.filter(pk=study.pk).update(exposure_ms=900)  # (cannot happen: locked)
    again = api.get(reverse("api:assignment-next", args=[token])).json()["trial"]["token"]
    assert again == first
    assert Trial.objects.get(token=first).exposure_ms == 250  # fixed when first served


def test_a_timed_tile_is_handed_out_once_and_the_reload_shows_the_mask(cohort, alice,
                                                                       alice_client):  # fmt: skip
    study = open_study(cohort, [alice], name="once", cases=6, trial_design="timed",
                       exposure_ms=250)  # fmt: skip
    assignment = study.assignments.get(reader=alice)
    page = alice_client.get(reverse("studies:trial", args=[assignment.token]))
    trial = assignment.trials.get(position=0)
    image_url = reverse("studies:image", args=[assignment.token, trial.token])
    body = page.content.decode()
    assert f'data-src="{image_url}"' in body and f'src="{image_url}"' not in body.replace(
        "data-src", ""
    )
    assert 'data-exposure="250"' in body and "js/timed.js" in body
    first = alice_client.get(image_url)
    assert first.status_code == 200 and first["Content-Type"] == "image/png"
    second = alice_client.get(image_url)
    assert second.status_code == 410 and second["Cache-Control"] == first["Cache-Control"]
    trial.refresh_from_db()
    assert trial.image_requests == 2
    reloaded = alice_client.get(reverse("studies:trial", args=[assignment.token])).content.decode()
    assert image_url not in reloaded and "it is not shown again" in reloaded
    assert 'data-shown="true"' in reloaded


def test_an_untimed_tile_is_served_as_often_as_asked(study_with_two_readers, alice,
                                                     alice_client):  # fmt: skip
    assignment = study_with_two_readers.assignments.get(reader=alice)
    body = alice_client.get(reverse("studies:trial", args=[assignment.token])).content.decode()
    assert "js/timed.js" not in body and "data-design" not in body
    trial = assignment.trials.get(position=0)
    url = reverse("studies:image", args=[assignment.token, trial.token])
    assert [alice_client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    trial.refresh_from_db()
    assert (trial.exposure_ms, trial.image_requests, trial.timing_flag) == (None, 0, "")


def test_the_displayed_duration_is_kept_once(cohort, alice, api, study_with_two_readers):
    study = open_study(cohort, [alice], name="shown", cases=6, trial_design="timed",
                       exposure_ms=250)  # fmt: skip
    token = study.assignments.get(reader=alice).token
    current = api.get(reverse("api:assignment-next", args=[token])).json()["trial"]
    url = reverse("api:assignment-display", args=[token])
    body = {"trial": current["token"], "serving": 1, "ms": 266.6, "frame_ms": 16.67}
    assert api.post(url, body, format="json").status_code == 204
    assert api.post(url, body | {"ms": 900}, format="json").status_code == 204
    trial = Trial.objects.get(token=current["token"])
    assert (trial.displayed_ms, trial.frame_ms) == (266.6, 16.67)
    for bad in ({"serving": 2}, {"ms": -1}, {"frame_ms": 0}, {"trial": "nope"}):
        assert api.post(url, body | bad, format="json").status_code == 400, bad
    # a study without a time limit has no exposure to report
    untimed = study_with_two_readers.assignments.get(reader=alice).token
    plain = api.get(reverse("api:assignment-next", args=[untimed])).json()["trial"]["token"]
    refused = api.post(reverse("api:assignment-display", args=[untimed]),
                       body | {"trial": plain}, format="json")  # fmt: skip
    assert refused.status_code == 400 and "no time limit" in str(refused.json())


@pytest.mark.parametrize(
    ("asked", "displayed", "frame", "fetched", "flag"),
    [
        (None, None, None, 0, ""),
        (250, None, None, 0, "not shown"),
        (250, None, None, 1, "shown, duration not reported"),
        (250, 266.0, 16.7, 1, ""),
        (250, 283.0, 16.7, 1, ""),  # within two frames (33.4 ms)
        (250, 290.0, 16.7, 1, "displayed 290 ms of 250 ms asked"),
        (250, 290.0, 33.3, 1, ""),  # a 30 Hz display: two frames are 66.6 ms
        (250, 260.0, None, 1, ""),  # no frame reported: 60 Hz assumed
        (250, 260.0, 16.7, 3, "requested 3 times, sent once"),
    ],
)
def test_timing_flags(asked, displayed, frame, fetched, flag):
    assert timing_flag(asked, displayed, frame, fetched) == flag


def simulate_readers(study: Study, readers: list, threshold: float, seed: int) -> None:
    """Readers with a known psychometric curve answer every trial through the model, with
    the page's report of a displayed duration one frame over the asked one."""
    rng = np.random.default_rng(seed)
    for reader in readers:
        assignment = study.assignment_for(reader)
        while (trial := assignment.next_trial()) is not None:
            assignment.hand_out_image(trial)
            assignment.record_display(trial.token, trial.serve_count, trial.exposure_ms + 16.7,
                                      16.7)  # fmt: skip
            right = rng.random() < timed.curve(trial.exposure_ms, threshold, 0.4)
            kind = trial.case.kind
            call = kind if right else ("real" if kind == "synthetic" else "synthetic")
            assignment.submit(trial.token, call, 3)


def test_timed_statistics_dashboard_and_exports(cohort, admin_client):
    readers = [UserFactory(username=f"r{i}") for i in range(4)]
    study = open_study(cohort, readers, name="hype", cases=20, trial_design="timed",
                       ratio_real=1, ratio_synthetic=1)  # fmt: skip
    simulate_readers(study, readers, threshold=400, seed=3)

    results = timed_results(study)
    answers = list(
        Response.objects.filter(case__study=study).values_list(
            "reader__username", "trial__exposure_ms", "call", "case__kind"
        )
    )
    assert results.trials == len(answers) == 80
    # accuracy per exposure recounted from the rows
    for row in results.exposures:
        mine = [c == k for _, e, c, k in answers if e == row.exposure]
        assert (row.right, row.n) == (sum(mine), len(mine))
        assert row.accuracy.low <= row.accuracy.value <= row.accuracy.high
    assert [r.reader for r in results.readers] == ["r0", "r1", "r2", "r3"]
    for r in results.readers:
        mine = [(e, c == k) for u, e, c, k in answers if u == r.reader]
        exposures = [e for e, _ in mine]
        # the staircase's reversals, the step after the last answer included
        after = timed.next_exposure(mine, start=study.staircase_start_ms)
        assert r.staircase == timed.staircase_threshold([*exposures, after])
        if r.fit is not None:
            again = timed.fit(exposures, [ok for _, ok in mine])
            assert math.isclose(r.fit.threshold, again.threshold)
    assert results.pooled is not None and results.pooled.low <= results.pooled.high
    found = [r.staircase for r in results.readers if r.staircase is not None]
    assert results.hype_time == pytest.approx(sum(found) / len(found))
    assert results.flagged == []  # one frame over: within two

    page = admin_client.get(reverse("dashboards:study", args=[study.pk])).content.decode()
    assert 'id="timed"' in page and "Psychometric curve" in page and "Threshold exposure" in page
    assert "HYPE<sub>time</sub>" in page and "iMRMC list mode" not in page
    assert admin_client.get(reverse("dashboards:imrmc-csv", args=[study.pk])).status_code == 409
    stats = admin_client.get(reverse("dashboards:statistics-json", args=[study.pk])).json()
    assert stats["timed"]["trials"] == 80 and len(stats["timed"]["readers"]) == 4
    assert stats["timed"]["hype_time_ms"] == pytest.approx(results.hype_time)
    export = admin_client.get(reverse("dashboards:responses-csv", args=[study.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(rows) == 80 and {r["design"] for r in rows} == {"timed"}
    by_trial = {t.token: t for t in Trial.objects.filter(assignment__study=study)}
    assert sorted(int(r["exposure_ms"]) for r in rows) == sorted(
        t.exposure_ms for t in by_trial.values()
    )
    assert all(float(r["displayed_ms"]) == float(r["exposure_ms"]) + 16.7 for r in rows)
    assert {r["image_requests"] for r in rows} == {"1"} and {r["timing_flag"] for r in rows} == {""}


def test_a_fixed_exposure_study_reports_hypes_error_rate(cohort, admin_client):
    readers = [UserFactory(username=f"r{i}") for i in range(2)]
    study = open_study(cohort, readers, name="fixed-hype", cases=10, trial_design="timed",
                       exposure_ms=250)  # fmt: skip
    simulate_readers(study, readers, threshold=400, seed=4)
    results = timed_results(study)
    wrong = Response.objects.filter(case__study=study).exclude(call=F("case__kind")).count()
    assert results.error_rate.k == wrong and results.error_rate.n == 20
    assert [r.exposure for r in results.exposures] == [250] and results.hype_time is None
    page = admin_client.get(reverse("dashboards:study", args=[study.pk])).content.decode()
    assert "error rate at this exposure" in page
    assert admin_client.get(reverse("dashboards:imrmc-csv", args=[study.pk])).status_code == 200


def test_timed_results_follow_new_answers_and_reports(cohort, alice, api):
    """The results are kept between dashboard loads, and recomputed once anything they read
    changes: an answer, a displayed duration, a request for a tile."""
    study = open_study(cohort, [alice], name="fresh", cases=6, trial_design="timed",
                       exposure_ms=250)  # fmt: skip
    token = study.assignments.get(reader=alice).token
    assert timed_results(study).trials == 0
    trial = serve_and_answer(api, token, right=True)
    first = timed_results(study)
    assert first.trials == 1 and first.flagged == [("alice", 0, "shown, duration not reported")]
    assignment = study.assignments.get(reader=alice)
    assignment.record_display(trial.token, 1, 251.0, 16.7)
    assert timed_results(study).flagged == []
    serve_and_answer(api, token, right=False)
    assert timed_results(study).trials == 2


def test_a_timed_trial_is_answered_only_once_its_tile_was_shown(cohort, alice, api,
                                                                alice_client):  # fmt: skip
    """Without the page's script (a grey square, no tile) or from an API client that never
    asked for the image, an answer would move the staircase on a tile nobody saw."""
    study = open_study(cohort, [alice], name="unseen", cases=6, trial_design="timed")
    assignment = study.assignments.get(reader=alice)
    page = alice_client.get(reverse("studies:trial", args=[assignment.token])).content.decode()
    assert "<noscript>" in page
    trial = assignment.trials.get(position=0)
    url = reverse("api:assignment-responses", args=[assignment.token])
    refused = api.post(url, {"trial": trial.token, "call": "real", "confidence": 3},
                       format="json")  # fmt: skip
    assert refused.status_code == 400 and "not been shown" in str(refused.json())
    form = alice_client.post(reverse("studies:answer", args=[assignment.token, trial.token]),
                             {"call": "real", "confidence": "3"})  # fmt: skip
    assert form.status_code == 400 and "not been shown" in form.content.decode()
    assert not Response.objects.exists()
    assert alice_client.get(reverse("studies:image", args=[assignment.token, trial.token]))
    assert api.post(url, {"trial": trial.token, "call": "real", "confidence": 3},
                    format="json").status_code == 201  # fmt: skip
