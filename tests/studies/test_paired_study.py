"""A paired (2AFC) study on the server: its design checks, the pairs drawn when it opens, each
reader's trials with balanced sides, the two tiles served by side, side answers, practice
feedback, and the statistics, dashboard and exports that read them."""

from __future__ import annotations

import csv
import io
from collections import Counter

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from studies import paired
from studies.models import CasePair, Response, Study, Trial
from studies.paired_results import paired_results
from tests.factories import UserFactory, open_study, second_arm

pytestmark = pytest.mark.django_db


def paired_study(cohort, readers, **fields) -> Study:
    return open_study(cohort, readers, name=fields.pop("name", "pairs"),
                      cases=fields.pop("cases", 6), trial_design="paired", **fields)  # fmt: skip


def test_design_checks(cohort, alice):
    study = Study(name="p", title="t", instructions="i", cohort=cohort, cases_per_reader=11,
                  trial_design="paired")  # fmt: skip
    with pytest.raises(
        ValidationError, match=r"pairs per reader: the pool makes 5 (healthy|tumour)"
    ):
        study.full_clean()  # 5 real and 5 synthetic tiles of each label: 5 pairs a label
    study.cases_per_reader, study.case_selection = 6, "per-reader"
    with pytest.raises(ValidationError, match="the same pairs"):
        study.full_clean()
    study.case_selection = "shared"
    study.full_clean()
    study.save()
    study.pending_arms = [second_arm(cohort, "other")]
    with pytest.raises(ValidationError, match="one cohort"):
        study.full_clean()


def test_pairs_are_drawn_once_and_every_reader_reads_them_with_own_balanced_sides(
    cohort, alice, bob
):
    study = paired_study(cohort, [alice, bob], cases=7, practice_trials=2)
    pairs = list(CasePair.objects.filter(study=study).select_related("real", "synthetic"))
    assert len(pairs) == 9 and sum(p.practice for p in pairs) == 2
    assert study.cases.count() == 18  # each tile in one pair at most
    for p in pairs:
        assert (p.real.kind, p.synthetic.kind) == ("real", "synthetic")
        assert p.real.label == p.synthetic.label == p.label
        assert p.real.practice == p.synthetic.practice == p.practice
    assert Counter(p.label for p in pairs if not p.practice) in ({0: 3, 1: 4}, {0: 4, 1: 3})
    orders = {}
    for reader in (alice, bob):
        trials = list(Trial.objects.filter(assignment__reader=reader).order_by("position"))
        assert [t.practice for t in trials] == [True] * 2 + [False] * 7
        assert {t.pair_id for t in trials} == {p.pk for p in pairs}
        by_pair = {p.pk: p for p in pairs}
        assert all(t.case_id == by_pair[t.pair_id].synthetic_id for t in trials)
        for block in (trials[:2], trials[2:]):  # sides balanced within practice and scored
            left = sum(t.synthetic_side == "left" for t in block)
            assert left in (len(block) // 2, (len(block) + 1) // 2)
        orders[reader.username] = [(t.pair_id, t.synthetic_side) for t in trials]
    assert orders["alice"] != orders["bob"]  # each reader's own order and sides


def test_the_two_tiles_are_served_by_side(cohort, alice, alice_client):
    study = paired_study(cohort, [alice])
    assignment = study.assignments.get(reader=alice)
    page = alice_client.get(reverse("studies:trial", args=[assignment.token])).content.decode()
    trial = assignment.trials.select_related("pair__real__tile", "case__tile").get(position=0)
    images = {}
    for side in ("left", "right"):
        url = reverse("studies:image-side", args=[assignment.token, trial.token, side])
        assert f'src="{url}"' in page
        images[side] = alice_client.get(url)
        assert images[side].status_code == 200
    other = "right" if trial.synthetic_side == "left" else "left"
    assert images[trial.synthetic_side].content == study.image(trial.case.tile)
    assert images[other].content == study.image(trial.pair.real.tile)
    assert images["left"].headers.keys() == images["right"].headers.keys()
    plain = reverse("studies:image", args=[assignment.token, trial.token])
    assert alice_client.get(plain).status_code == 404  # a paired tile is asked for by side
    wrong = reverse("studies:image-side", args=[assignment.token, trial.token, "middle"])
    assert alice_client.get(wrong).status_code == 404


def test_answers_are_sides_and_practice_feedback_names_the_synthetic_side(cohort, alice, api):
    study = paired_study(cohort, [alice], practice_trials=1)
    token = study.assignments.get(reader=alice).token
    current = api.get(reverse("api:assignment-next", args=[token])).json()["trial"]
    assert current["image_url"] is None and set(current["pair_image_urls"]) == {"left", "right"}
    url = reverse("api:assignment-responses", args=[token])
    refused = api.post(url, {"trial": current["token"], "call": "real", "confidence": 3},
                       format="json")  # fmt: skip
    assert refused.status_code == 400 and "left, right" in str(refused.json())
    reply = api.post(url, {"trial": current["token"], "call": "left", "confidence": 3},
                     format="json").json()  # fmt: skip
    side = Trial.objects.get(token=current["token"]).synthetic_side
    assert reply["feedback"] == {"truth": side, "correct": side == "left"}


def simulate(study: Study, readers: list, accuracy: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for reader in readers:
        assignment = study.assignment_for(reader)
        while (trial := assignment.next_trial()) is not None:
            right = rng.random() < accuracy
            other = "right" if trial.synthetic_side == "left" else "left"
            assignment.submit(trial.token, trial.synthetic_side if right else other, 3)


def test_paired_statistics_dashboard_and_exports(cohort, admin_client):
    readers = [UserFactory(username=f"r{i}") for i in range(4)]
    study = paired_study(cohort, readers, cases=10)
    simulate(study, readers, accuracy=0.7, seed=2)
    results = paired_results(study)
    rows = list(Response.objects.filter(case__study=study).values_list(
        "reader__username", "trial__pair_id", "call", "trial__synthetic_side",
    ))  # fmt: skip
    assert results.answers == len(rows) == 40
    expected = paired.analyse_pairs([(r, p, c == s) for r, p, c, s in rows], 0.1, 0.05)
    assert results.analysis.average.estimate == pytest.approx(expected.average.estimate)
    for reader in results.readers:
        mine = [(c, s) for r, _, c, s in rows if r == reader.reader]
        assert reader.accuracy.k == sum(c == s for c, s in mine)
        assert reader.left.k == sum(c == "left" for c, _ in mine)
    assert sum(p.n for p in results.by_label.values()) == 40
    assert results.analysis.average.estimate == pytest.approx(
        sum(c == s for _, _, c, s in rows) / 40
    )  # every reader reads every pair: the reader average is the pooled share

    page = admin_client.get(reverse("dashboards:study", args=[study.pk])).content.decode()
    assert "Paired: picked the synthetic tile" in page and results.sentence in page
    assert "iMRMC list mode" not in page
    assert admin_client.get(reverse("dashboards:imrmc-csv", args=[study.pk])).status_code == 409
    stats = admin_client.get(reverse("dashboards:statistics-json", args=[study.pk])).json()
    assert stats["paired"]["answers"] == 40 and len(stats["paired"]["readers"]) == 4
    export = admin_client.get(reverse("dashboards:responses-csv", args=[study.pk]))
    table = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(table) == 40 and {r["design"] for r in table} == {"paired"}
    pairs = {p.pk: p for p in CasePair.objects.select_related("real__tile", "synthetic__tile")}
    for row in table:
        pair = pairs[int(row["pair"])]
        assert row["tile_sha256"] == pair.synthetic.tile.sha256 and row["truth"] == "synthetic"
        assert row["partner_tile_sha256"] == pair.real.tile.sha256
        assert row["synthetic_side"] in ("left", "right") and row["call"] in ("left", "right")


def test_each_reader_has_own_sides_without_practice_and_a_short_practice_is_named(cohort):
    """The sides come from a stream of their own: drawn from the order's stream, every reader
    had the same pairs on the left when the study had no practice pairs."""
    readers = [UserFactory(username=f"r{i}") for i in range(8)]
    study = paired_study(cohort, readers, cases=8)
    left = Counter()
    for trial in Trial.objects.filter(assignment__study=study):
        left[trial.pair_id] += trial.synthetic_side == "left"
    assert len(left) == 8 and any(0 < n < 8 for n in left.values()), left
    short = Study(name="short", title="t", instructions="i", cohort=cohort, cases_per_reader=8,
                  practice_trials=3, trial_design="paired")  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        short.full_clean()  # 10 pairs in all: 8 scored leave 2
    assert list(refused.value.message_dict) == ["practice_trials"]


def test_staff_results_and_the_export_score_a_pair_by_its_synthetic_side(cohort, alice, api,
                                                                         admin_client):  # fmt: skip
    study = paired_study(cohort, [alice], cases=4)
    simulate(study, [alice], accuracy=0.5, seed=9)
    results = admin_client.get(reverse("api:study-results", args=[study.pk])).json()
    trials = {t.pair_id: t for t in Trial.objects.filter(assignment__study=study)
              .select_related("pair__real__tile")}  # fmt: skip
    assert len(results) == 4
    for row in results:
        trial = trials[row["pair"]]
        assert row["truth"] == trial.synthetic_side
        assert row["partner_tile_sha256"] == trial.pair.real.tile.sha256
    detail = admin_client.get(reverse("api:study-detail", args=[study.pk])).json()
    assert detail["trial_design"] == "paired"
    export = admin_client.get(reverse("dashboards:responses-csv", args=[study.pk]))
    for row in csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())):
        picked = row["call"] == row["synthetic_side"]  # confidence 3: 8 if picked, else 3
        assert int(row["score"]) == (8 if picked else 3)
