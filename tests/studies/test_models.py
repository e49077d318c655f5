"""Study invariants: cases, assignments, one response per reader and case, locked designs."""

from __future__ import annotations

from collections import Counter

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from studies.models import AnswerLocked, Assignment, Response, Study, Trial
from tests.factories import UserFactory, open_study

pytestmark = pytest.mark.django_db


def answer_all(assignment: Assignment, call: str = "real", confidence: int = 3) -> None:
    while (trial := assignment.next_trial()) is not None:
        assignment.submit(trial.token, call, confidence)


def test_opening_builds_cases_and_balanced_trials_per_reader(study_with_two_readers, alice, bob):
    study = study_with_two_readers
    assert study.status == "open" and study.opened_at is not None
    assert study.cases.count() == 20
    for reader in (alice, bob):
        assignment = study.assignments.get(reader=reader)
        counts = Counter(
            (t.case.kind, t.case.label) for t in assignment.trials.select_related("case")
        )
        for kind in ("real", "synthetic"):  # 5 per kind, split 3/2 between labels by seed
            assert counts[(kind, 0)] + counts[(kind, 1)] == 5
            assert {counts[(kind, 0)], counts[(kind, 1)]} == {2, 3}
    alice_cases = {t.case_id for t in study.assignments.get(reader=alice).trials.all()}
    bob_cases = {t.case_id for t in study.assignments.get(reader=bob).trials.all()}
    assert alice_cases == bob_cases  # shared selection: same cases
    orders = [list(a.trials.values_list("case_id", flat=True)) for a in study.assignments.all()]
    assert orders[0] != orders[1]  # each reader their own order


def test_per_reader_selection_and_recorded_seeds(cohort, alice, bob):
    study = open_study(cohort, [alice, bob], cases=6, case_selection="per-reader")
    seeds = set(study.assignments.values_list("seed", flat=True))
    assert len(seeds) == 2
    sets = [set(a.trials.values_list("case_id", flat=True)) for a in study.assignments.all()]
    assert sets[0] != sets[1]


def test_practice_cases_come_first_and_are_never_scored(cohort, alice, bob):
    study = open_study(cohort, [alice, bob], cases=8, practice_trials=2)
    practice = set(study.cases.filter(practice=True).values_list("id", flat=True))
    assert len(practice) == 2
    for assignment in study.assignments.all():
        trials = list(assignment.trials.order_by("position"))
        assert [t.practice for t in trials] == [True] * 2 + [False] * 8
        assert {t.case_id for t in trials[:2]} == practice
        assert not practice & {t.case_id for t in trials[2:]}


def test_group_members_become_readers_when_they_first_look(cohort, alice):
    group = Group.objects.create(name="pathologists")
    carol = UserFactory(username="carol")
    carol.groups.add(group)
    study = open_study(cohort, [alice], reader_group=group)
    assert study.assignments.count() == 2  # alice and carol at opening
    dave = UserFactory(username="dave")
    dave.groups.add(group)
    assert study.assignment_for(dave) is not None
    outsider = UserFactory(username="eve")
    assert study.assignment_for(outsider) is None
    assert list(Study.objects.for_reader(outsider)) == []


def test_resume_serves_the_same_unanswered_trial_and_records_server_times(
    study_with_two_readers, alice
):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    first = assignment.next_trial()
    again = assignment.next_trial()
    assert first.pk == again.pk and again.serve_count == 2
    assert again.first_served_at <= again.served_at
    response, created = assignment.submit(first.token, "synthetic", 4)
    assert created and response.served_at == again.served_at <= response.answered_at
    assert assignment.next_trial().position == 1
    assert assignment.progress().answered == 1


def test_submit_is_idempotent_and_answers_are_locked(study_with_two_readers, alice):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    trial = assignment.next_trial()
    first, created = assignment.submit(trial.token, "real", 2)
    retry, created_again = assignment.submit(trial.token, "real", 2)
    assert created and not created_again and retry.pk == first.pk
    with pytest.raises(AnswerLocked):
        assignment.submit(trial.token, "synthetic", 5)
    assert Response.objects.count() == 1
    assert Response.objects.get().call == "real"


def test_unserved_or_foreign_trials_cannot_be_answered(study_with_two_readers, alice, bob):
    alice_a = study_with_two_readers.assignments.get(reader=alice)
    bob_a = study_with_two_readers.assignments.get(reader=bob)
    unserved = alice_a.trials.get(position=5)
    with pytest.raises(Trial.DoesNotExist):
        alice_a.submit(unserved.token, "real", 1)
    bob_trial = bob_a.next_trial()
    with pytest.raises(Trial.DoesNotExist):
        alice_a.submit(bob_trial.token, "real", 1)


@pytest.mark.parametrize(
    ("call", "confidence", "field"),
    [
        ("maybe", 3, "call"),
        ("real", 0, "confidence"),
        ("real", 6, "confidence"),
        ("real", None, "confidence"),
        ("real", True, "confidence"),
        ("real", "3", "confidence"),
    ],
)
def test_bad_answers_name_the_field(study_with_two_readers, alice, call, confidence, field):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    trial = assignment.next_trial()
    with pytest.raises(ValidationError) as caught:
        assignment.submit(trial.token, call, confidence)
    assert field in caught.value.message_dict
    assert not Response.objects.exists()


def test_call_only_scale_refuses_a_confidence(cohort, alice):
    study = open_study(cohort, [alice], response_scale="call")
    assignment = study.assignments.get()
    trial = assignment.next_trial()
    with pytest.raises(ValidationError, match="does not ask for confidence"):
        assignment.submit(trial.token, "real", 3)
    assert assignment.submit(trial.token, "real", None)[1]


def test_database_enforces_one_response_per_reader_and_case(study_with_two_readers, alice):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    trial = assignment.next_trial()
    response, _ = assignment.submit(trial.token, "real", 3)
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.create(
            trial=assignment.trials.get(position=1),
            reader=alice,
            case=trial.case,
            call="real",
            confidence=1,
            served_at=response.served_at,
            answered_at=response.answered_at,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.filter(pk=response.pk).update(confidence=9)


def test_completion_is_recorded_once_every_trial_is_answered(study_with_two_readers, alice):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    answer_all(assignment)
    assignment.refresh_from_db()
    assert assignment.completed_at is not None and assignment.progress().percent == 100
    assert assignment.next_trial() is None


def test_design_is_locked_once_opened_and_texts_once_answered(study_with_two_readers, alice):
    study = study_with_two_readers
    study.cases_per_reader = 4
    with pytest.raises(ValidationError, match="cases_per_reader cannot change"):
        study.save()
    study.refresh_from_db()
    study.instructions = "Typo fixed before anyone answered."
    study.save()
    assignment = study.assignments.get(reader=alice)
    assignment.submit(assignment.next_trial().token, "real", 3)
    study.instructions = "Changed after answers."
    with pytest.raises(ValidationError, match="instructions cannot change"):
        study.save()


def test_a_study_with_responses_cannot_be_deleted(study_with_two_readers, alice):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    assignment.submit(assignment.next_trial().token, "real", 3)
    with pytest.raises(ProtectedError):
        study_with_two_readers.delete()
    assert Response.objects.count() == 1


def test_designs_the_cohort_cannot_satisfy_are_refused_before_opening(cohort, alice):
    study = Study(name="too-big", title="t", instructions="i", cohort=cohort, cases_per_reader=40)
    with pytest.raises(ValidationError, match="the design needs up to 10"):
        study.full_clean()
    cohort.completed_at = None
    cohort.save()
    study.cases_per_reader = 4
    with pytest.raises(ValidationError, match="not complete"):
        study.full_clean()


def test_closed_study_takes_no_answers(study_with_two_readers, alice):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    trial = assignment.next_trial()
    study_with_two_readers.close()
    assignment.study.refresh_from_db()
    with pytest.raises(ValidationError, match="closed"):
        assignment.submit(trial.token, "real", 3)


def test_a_case_that_has_been_read_cannot_change(study_with_two_readers, alice):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    trial = assignment.next_trial()
    assignment.submit(trial.token, "real", 3)
    case = trial.case
    case.kind = "synthetic" if case.kind == "real" else "real"
    with pytest.raises(ValidationError, match="has been read"):
        case.save()
    unread = study_with_two_readers.cases.exclude(pk=case.pk).first()
    unread.practice = True
    unread.save()  # nobody has answered it yet


def test_a_retry_after_the_study_closed_returns_the_stored_answer(study_with_two_readers, alice):
    assignment = study_with_two_readers.assignments.get(reader=alice)
    trial = assignment.next_trial()
    assignment.submit(trial.token, "real", 3)
    study_with_two_readers.close()
    assignment.study.refresh_from_db()
    stored, created = assignment.submit(trial.token, "real", 3)
    assert not created and stored.call == "real"


def test_a_stale_draft_copy_cannot_write_back_an_opened_design(cohort, alice):
    study = Study.objects.create(
        name="stale", title="t", instructions="i", cohort=cohort, cases_per_reader=4
    )
    stale = Study.objects.get(pk=study.pk)
    study.readers.set([alice])
    study.open()
    stale.cases_per_reader = 2
    with pytest.raises(ValidationError, match="cases_per_reader cannot change"):
        stale.save()
