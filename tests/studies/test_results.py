"""Study results, exports and the dashboard on a study whose answers are scripted."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from sklearn.metrics import roc_auc_score

from histostudy import statistics as st
from studies.models import Response, Trial
from studies.results import study_results
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study

pytestmark = pytest.mark.django_db


def answer(study, reader, rule) -> None:
    """rule(kind, position) -> (call, confidence) for every trial of the reader."""
    assignment = study.assignments.get(reader=reader)
    while (trial := assignment.next_trial()) is not None:
        assignment.submit(trial.token, *rule(trial.case.kind, trial.position))


def answer_in_bulk(study, reader, rule) -> None:
    """As answer(), in a few queries: every trial served and answered in order, stored in one
    INSERT (for tests about what is read back, not about how answers are taken)."""
    assignment = study.assignments.get(reader=reader)
    now = timezone.now()
    trials = list(assignment.trials.select_related("case").order_by("position"))
    for trial in trials:
        trial.served_at = trial.first_served_at = now + timedelta(seconds=trial.position)
        trial.serve_count = 1
    Trial.objects.bulk_update(trials, ["served_at", "first_served_at", "serve_count"])
    Response.objects.bulk_create(
        Response(
            trial=trial,
            reader=reader,
            case=trial.case,
            call=(verdict := rule(trial.case.kind, trial.position))[0],
            confidence=verdict[1],
            served_at=trial.served_at,
            answered_at=trial.served_at + timedelta(seconds=2),
        )
        for trial in trials
    )
    assignment.started_at, assignment.completed_at = now, now + timedelta(seconds=len(trials))
    assignment.save(update_fields=["started_at", "completed_at"])


def perfect(kind, position):
    return kind, 5


def always_real(kind, position):
    return "real", 1 + position % 5


@pytest.fixture
def answered_study(cohort, alice, bob):
    study = open_study(cohort, [alice, bob], cases=12, practice_trials=2)
    answer(study, alice, perfect)
    answer(study, bob, always_real)
    return study


def test_results_per_reader_headline_agreement_and_breakdowns(answered_study):
    results = study_results(answered_study)
    assert len(results.rows) == 24  # practice left out
    by_name = {r.reader: r.summary for r in results.readers}
    alice, bob = by_name["alice"], by_name["bob"]
    assert (alice.sensitivity.value, alice.specificity.value, alice.auc.value) == (1.0, 1.0, 1.0)
    assert (bob.sensitivity.value, bob.specificity.value) == (0.0, 1.0)
    assert alice.p_value == pytest.approx(st.binomial_test(12, 12))
    assert results.headline["sensitivity"].median == 0.5
    assert "2 readers, 24 scored answers: median sensitivity 0.50" in results.sentence
    assert results.fleiss_cases == 12 and results.fleiss_kappa is not None
    assert set(results.cohen_kappas) == {("alice", "bob")}
    assert all(rate == 0.5 for rate in results.fool_rates.values())  # alice right, bob fooled
    assert set(results.breakdowns) == {"label", "generator", "scheme", "block"}
    assert sum(p.n for p in results.breakdowns["block"].values()) == 24
    assert results.breakdowns["scheme"]["morphology"].sensitivity.k == 6


def test_exports(answered_study, admin_client):
    rows = list(csv.reader(io.StringIO(b"".join(admin_client.get(
        reverse("dashboards:responses-csv", args=[answered_study.pk])).streaming_content
    ).decode())))  # fmt: skip
    assert rows[0][:3] == ["study", "reader", "position"] and len(rows) == 1 + 28
    header = rows[0]
    first = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    assert all(int(r["serve_count"]) >= 1 and r["first_served_at"] <= r["served_at"] for r in first)
    assert all(float(r["seconds_since_first_shown"]) >= float(r["seconds"]) for r in first)
    assert {r[6] for r in rows[1:]} == {"real", "synthetic"}
    imrmc = b"".join(admin_client.get(
        reverse("dashboards:imrmc-csv", args=[answered_study.pk])).streaming_content
    ).decode().splitlines()  # fmt: skip
    start = imrmc.index("BEGIN DATA:")
    data = [line.split(",") for line in imrmc[start + 1 :]]
    truth = [d for d in data if d[0] == "-1"]
    scores = [d for d in data if d[0] != "-1"]
    assert len(truth) == 12 and len(scores) == 24 and "NR: 2" in imrmc
    assert all(d[2] == "0" and d[3] in ("0", "1") for d in truth)
    assert all(1 <= int(d[3]) <= 10 and d[2] == answered_study.name for d in scores)
    stats = admin_client.get(reverse("dashboards:statistics-json", args=[answered_study.pk]))
    payload = stats.json()
    assert payload["n_answers"] == 24 and len(payload["readers"]) == 2
    assert payload["positive"] == "synthetic"


def test_dashboard_renders_for_staff_and_readers_never_reach_it(answered_study, admin_client,
                                                                alice_client):  # fmt: skip
    url = reverse("dashboards:study", args=[answered_study.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert page.content.count(b"<svg") == 3 and b"median sensitivity 0.50" in page.content
    assert alice_client.get(url).status_code == 302
    for name in ("responses-csv", "imrmc-csv", "statistics-json"):
        reply = alice_client.get(reverse(f"dashboards:{name}", args=[answered_study.pk]))
        assert reply.status_code == 302 and "/admin/login/" in reply["Location"]
    clopper = admin_client.get(url, {"interval": "clopper-pearson"})
    assert b"intervals: clopper-pearson" in clopper.content


QUERY_BOUND = 10  # 8 measured on 2026-12-02; one per reader would be 20 more


def test_dashboard_of_20_readers_x_200_answers_takes_a_bounded_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    cohort = cohort_from_fixture_tiles("big-cohort", per_stratum=55)
    readers = [UserFactory(username=f"r{i:02d}") for i in range(20)]
    study = open_study(cohort, readers, name="big", cases=200)
    for i, reader in enumerate(readers):
        answer_in_bulk(
            study, reader, lambda kind, pos, i=i: (kind if (pos + i) % 3 else "real", 1 + pos % 5)
        )
    url = reverse("dashboards:study", args=[study.pk])
    # its speed is measured in bench/; here, that the page's queries do not grow with readers
    # or answers (a query per reader or per answer would be 20 or 4,000 more)
    with django_assert_max_num_queries(QUERY_BOUND):
        page = admin_client.get(url)
    assert page.status_code == 200 and b"20 readers, 4000 scored answers" in page.content


def test_empty_study_dashboard(study_with_two_readers, admin_client):
    page = admin_client.get(reverse("dashboards:study", args=[study_with_two_readers.pk]))
    assert page.status_code == 200 and b"No scored answers yet." in page.content


def test_the_study_level_answer_carries_readers_and_cases(answered_study, admin_client):
    """The MRMC reader average equals the mean of the readers' own AUCs; its interval and the
    equivalence verdict follow the plan fixed in the study."""
    results = study_results(answered_study)
    inference = results.inference
    own = [r.summary.auc.value for r in results.readers]
    assert inference.auc.estimate == pytest.approx(sum(own) / len(own))
    # alice perfect; bob calls every tile real, so his AUC ranks the tiles by his confidence
    # alone (1 + position % 5 in a shuffled order: anywhere from about 0.3 to 0.7)
    bob = [r for r in results.rows if r.reader == "bob"]
    by_confidence = roc_auc_score(
        [r.truth == st.POSITIVE for r in bob], [-r.confidence for r in bob]
    )
    assert own[0] == 1.0 and own[1] == pytest.approx(by_confidence)
    assert (inference.readers, inference.cases) == (2, 12)
    assert inference.sensitivity.estimate == pytest.approx(0.5)  # alice 1, bob 0
    assert inference.specificity.estimate == pytest.approx(1.0)
    assert inference.auc.ci_low < inference.auc.estimate < inference.auc.ci_high
    # a perfect reader and a fooled one: wide, and nowhere near "indistinguishable within 0.10"
    assert inference.equivalence.margin == 0.10 and not inference.equivalence.equivalent
    assert {"equivalence_margin", "equivalence_alpha"} <= set(answered_study.locked_fields())
    assert "Indistinguishable within 0.10 of chance: no" in inference.sentence
    html = admin_client.get(reverse("dashboards:study", args=[answered_study.pk])).content.decode()
    assert inference.sentence.replace("'", "&#x27;") in html and 'id="mrmc"' in html
    data = admin_client.get(reverse("dashboards:statistics-json", args=[answered_study.pk])).json()
    assert data["mrmc"]["auc"]["estimate"] == pytest.approx(inference.auc.estimate)
    assert data["mrmc"]["equivalence"]["equivalent"] is False


def test_breakdowns_give_reader_averages_with_intervals_for_readers_and_cases(answered_study):
    results = study_results(answered_study)
    healthy = results.breakdowns["label"]["healthy"]
    # alice called every synthetic tile synthetic, bob none: a reader average of 0.5, and an
    # interval that carries that spread, unlike the pooled one of the same answers
    assert healthy.mrmc["sensitivity"].estimate == pytest.approx(0.5)
    assert healthy.sensitivity.value == pytest.approx(0.5)
    mrmc_width = healthy.mrmc["sensitivity"].ci_high - healthy.mrmc["sensitivity"].ci_low
    assert mrmc_width > healthy.sensitivity.high - healthy.sensitivity.low
    assert mrmc_width == 1.0  # two readers at 0 and 1: the interval is all there is
    assert healthy.shown_sensitivity is healthy.mrmc["sensitivity"]
    assert results.learning is not None and results.learning.readers == 2
    assert results.as_dict()["breakdowns"]["label"]["healthy"]["mrmc"]["sensitivity"]


def test_a_reader_with_too_few_tiles_of_a_kind_is_left_out_by_name(answered_study):
    """carol answered a few tiles and stopped: the analysis goes on without her, by name."""
    carol = UserFactory(username="carol")
    answered_study.readers.add(carol)
    assignment = answered_study.assignment_for(carol)
    kinds = []
    while len([k for k in kinds if k == "synthetic"]) < 1:  # stop after her first synthetic
        trial = assignment.next_trial()
        assignment.submit(trial.token, "real", 3)
        if not trial.practice:
            kinds.append(trial.case.kind)
    inference = study_results(answered_study).inference
    assert inference.left_out == ["carol"] and inference.readers == 2
    assert "Left out, with fewer than two tiles of a kind answered: carol." in inference.sentence


def test_a_study_with_one_reader_says_why_it_has_no_study_level_answer(cohort, alice):
    study = open_study(cohort, [alice], cases=12)
    answer(study, alice, perfect)
    results = study_results(study)
    inference = results.inference
    assert inference.auc is None
    assert "at least two readers, got 1" in inference.sentence
    group = results.breakdowns["label"]["tumour"]
    assert group.mrmc == {} and "at least two readers" in group.problem
    assert group.shown_sensitivity is group.sensitivity  # the pooled one, marked * on the page


def test_the_imrmc_header_reads_right_whatever_the_study_is_called(answered_study, admin_client):
    """iMRMC takes NR:/N0:/N1:/NM: from anywhere in a header line (case aside): a name ending
    in n1 followed by a colon would be read as N1. Each key must appear once, on its line."""
    import re

    answered_study.name = "pilot-run1"
    answered_study.save(update_fields=["name"])
    response = admin_client.get(reverse("dashboards:imrmc-csv", args=[answered_study.pk]))
    assert 'filename="pilot-run1.imrmc"' in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    header = lines[: lines.index("BEGIN DATA:")]
    found = [(n, key.upper()) for n, line in enumerate(header)
             for key in re.findall(r"(?i)(nr|n0|n1|nm)\s*:", line)]  # fmt: skip
    assert found == [(1, "NR"), (2, "N0"), (3, "N1"), (4, "NM")]
    assert "pilot-run1" in header[0]


def test_the_export_keeps_the_first_showing_and_the_serve_count(cohort, alice, admin_client):
    """A reload serves the trial again: the export keeps both the last serving and the first."""
    from datetime import timedelta

    from django.utils import timezone

    from studies.models import Trial

    study = open_study(cohort, [alice], cases=4)
    assignment = study.assignments.get(reader=alice)
    trial = assignment.next_trial()
    now = timezone.now()
    Trial.objects.filter(pk=trial.pk).update(  # shown 10 s ago, reloaded 3 s ago
        first_served_at=now - timedelta(seconds=10), served_at=now - timedelta(seconds=3),
        serve_count=2,
    )  # fmt: skip
    assignment.submit(trial.token, "real", 3)
    reply = admin_client.get(reverse("dashboards:responses-csv", args=[study.pk]))
    (row,) = csv.DictReader(io.StringIO(b"".join(reply.streaming_content).decode()))
    assert row["serve_count"] == "2"
    assert float(row["seconds"]) == pytest.approx(3, abs=0.5)
    assert float(row["seconds_since_first_shown"]) == pytest.approx(10, abs=0.5)


def test_the_roc_plot_names_each_reader_in_a_colour_of_their_own(answered_study):
    from studies import plots

    svg = plots.roc_space(study_results(answered_study))
    assert ">alice</text>" in svg and ">bob</text>" in svg
    assert plots.READERS[0] in svg and plots.READERS[1] in svg
