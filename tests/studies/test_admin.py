"""Researchers configure studies in admin: create from a cohort, pick readers, open, watch."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from studies.models import Study
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def add_form(cohort, **changes) -> dict:
    data = {
        "name": "pilot",
        "title": "Pilot study",
        "instructions": "Real or synthetic?",
        "cohort": cohort.pk,
        "cases_per_reader": 8,
        "ratio_real": 1,
        "ratio_synthetic": 1,
        "stratify_by_label": "on",
        "case_selection": "shared",
        "practice_trials": 0,
        "seed": 42,
        "response_scale": "call+confidence",
        "magnification": 4,
        "jpeg_quality": 75,
        "equivalence_margin": 0.1,
        "equivalence_alpha": 0.05,
        "trial_design": "single",
        "staircase_start_ms": 1000,
        "assignments-TOTAL_FORMS": 0,
        "assignments-INITIAL_FORMS": 0,
        "assignments-MIN_NUM_FORMS": 0,
        "assignments-MAX_NUM_FORMS": 0,
    }
    return data | changes


def test_create_from_cohort_pick_readers_open_and_watch_progress(admin_client, cohort, alice):
    cohort_page = admin_client.get(reverse("admin:generation_cohort_change", args=[cohort.pk]))
    link = reverse("admin:studies_study_add") + f"?cohort={cohort.pk}"
    assert link.encode() in cohort_page.content.replace(b"&amp;", b"&")
    prefilled = admin_client.get(link)
    assert f'<option value="{cohort.pk}" selected>'.encode() in prefilled.content
    group = Group.objects.create(name="pathologists")
    UserFactory(username="carol").groups.add(group)
    saved = admin_client.post(
        reverse("admin:studies_study_add"),
        add_form(cohort, readers=[alice.pk], reader_group=group.pk),
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    study = Study.objects.get(name="pilot")
    assert study.status == "draft" and not study.assignments.exists()
    opened = admin_client.post(
        reverse("admin:studies_study_changelist"),
        {"action": "open_studies", "_selected_action": [study.pk], "index": 0},
        follow=True,
    )
    assert b"ilot is open; 2 readers have their trials." in opened.content
    study.refresh_from_db()
    assignment = study.assignments.get(reader=alice)
    assignment.submit(assignment.next_trial().token, "real", 4)
    listing = admin_client.get(reverse("admin:studies_study_changelist"))
    assert b"1 / 16" in listing.content  # answered / trials over both readers
    change = admin_client.get(reverse("admin:studies_study_change", args=[study.pk]))
    assert b"1 / 8" in change.content and b"alice" in change.content
    responses = admin_client.get(reverse("admin:studies_response_changelist"))
    assert b"<strong>" in responses.content and b"alice" in responses.content
    cases = admin_client.get(
        reverse("admin:studies_case_changelist"), {"study__id__exact": study.pk}
    )
    assert cases.content.count(b'class="tile-thumb"') == 20


def test_a_design_the_cohort_cannot_satisfy_is_a_form_error(admin_client, cohort):
    page = admin_client.post(
        reverse("admin:studies_study_add"), add_form(cohort, cases_per_reader=50)
    )
    assert page.status_code == 200
    assert b"the design needs" in page.content and not Study.objects.exists()


def test_opened_design_fields_are_read_only_and_close_works(admin_client, study_with_two_readers):
    study = study_with_two_readers
    change = admin_client.get(reverse("admin:studies_study_change", args=[study.pk]))
    assert b'name="cases_per_reader"' not in change.content  # shown read-only
    assert b'name="readers"' in change.content  # readers can still be added
    closed = admin_client.post(
        reverse("admin:studies_study_changelist"),
        {"action": "close_studies", "_selected_action": [study.pk], "index": 0},
        follow=True,
    )
    assert b"uring-test is closed." in closed.content
    study.refresh_from_db()
    assert study.status == "closed" and study.closed_at is not None


def test_readers_added_to_an_open_study_get_their_trials(admin_client, study_with_two_readers):
    study = study_with_two_readers
    newcomer = UserFactory(username="newcomer")
    data = {
        "name": study.name,
        "title": study.title,
        "instructions": study.instructions,
        "readers": [*study.readers.values_list("pk", flat=True), newcomer.pk],
        "assignments-TOTAL_FORMS": 2,
        "assignments-INITIAL_FORMS": 2,
        "assignments-MIN_NUM_FORMS": 0,
        "assignments-MAX_NUM_FORMS": 0,
    }
    for i, assignment in enumerate(study.assignments.all()):
        data[f"assignments-{i}-id"] = assignment.pk
        data[f"assignments-{i}-study"] = study.pk
    saved = admin_client.post(reverse("admin:studies_study_change", args=[study.pk]), data)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    assert study.assignments.filter(reader=newcomer).exists()


def test_the_sample_size_panel_uses_a_finished_pilot_when_there_is_one(admin_client, cohort, alice):
    from studies.models import Study
    from tests.factories import UserFactory, open_study

    bob = UserFactory(username="bob")
    draft = Study.objects.create(name="next", title="t", instructions="i", cohort=cohort,
                                 cases_per_reader=10)  # fmt: skip
    draft.readers.set([alice, bob])
    page = admin_client.get(reverse("admin:studies_study_change", args=[draft.pk])).content.decode()
    assert 'id="sample-size"' in page and "As configured (2 readers x 10 cases): power" in page
    assert "defaults: AUC 0.5" in page
    pilot = open_study(cohort, [alice, bob], name="pilot", cases=12)
    for reader, rule in ((alice, lambda kind, pos: (kind, 1 + pos % 5)),
                         (bob, lambda kind, pos: ("real", 1 + pos % 5))):  # fmt: skip
        assignment = pilot.assignments.get(reader=reader)
        while (trial := assignment.next_trial()) is not None:
            assignment.submit(trial.token, *rule(trial.case.kind, trial.position))
    pilot.close()
    page = admin_client.get(reverse("admin:studies_study_change", args=[draft.pk])).content.decode()
    assert "pilot study &#x27;pilot&#x27; (2 readers, 12 cases each)" in page


def test_the_default_instructions_fit_either_response_scale(admin_client, cohort, alice):
    """The prefilled text says nothing of confidence; the reader's 'How to answer' list asks
    for it only where the scale has it."""
    from django.test import Client

    from studies.admin import DEFAULT_INSTRUCTIONS
    from tests.factories import open_study

    assert "confiden" not in DEFAULT_INSTRUCTIONS.lower()
    page = admin_client.get(reverse("admin:studies_study_add")).content.decode()
    assert "others were generated by a computer model" in page
    reader = Client()
    reader.force_login(alice)
    for scale, asks in (("call", False), ("call+confidence", True)):
        study = open_study(cohort, [alice], name=f"scale-{scale.replace('+', '-')}", cases=4,
                           response_scale=scale)  # fmt: skip
        assignment = study.assignments.get(reader=alice)
        html = reader.get(reverse("studies:instructions", args=[assignment.token])).content
        assert (b"for your confidence" in html) is asks, scale


def test_deleting_a_study_with_answers_states_the_rule(admin_client, cohort, alice):
    from studies.models import Study
    from tests.factories import open_study

    study = open_study(cohort, [alice], name="answered", cases=4)
    assignment = study.assignments.get(reader=alice)
    trial = assignment.next_trial()
    assignment.submit(trial.token, "real", 3)
    page = admin_client.get(reverse("admin:studies_study_delete", args=[study.pk]))
    text = page.content.decode()
    assert "1 answer. A study with answers cannot be deleted" in text
    assert "permission to delete" not in text
    admin_client.post(reverse("admin:studies_study_delete", args=[study.pk]), {"post": "yes"})
    assert Study.objects.filter(pk=study.pk).exists()


def test_staff_see_only_the_studies_they_have_a_role_on(cohort, alice):
    """Model permissions let a helper into the admin; the role decides which studies, cases
    and answers they see. Whoever creates a study owns it."""
    from django.contrib.auth.models import Permission
    from django.test import Client

    from studies.models import Response, Study
    from tests.factories import UserFactory, open_study

    study = open_study(cohort, [alice], name="secret", cases=4)
    assignment = study.assignments.get(reader=alice)
    trial = assignment.next_trial()
    assignment.submit(trial.token, "real", 3)
    perms = Permission.objects.filter(content_type__app_label__in=["studies", "generation"])
    helper, editor = (UserFactory(username=n, is_staff=True) for n in ("helper", "editor"))
    for user in (helper, editor):
        user.user_permissions.set(perms)
    study.editors.add(editor)
    pages = {
        "study": reverse("admin:studies_study_change", args=[study.pk]),
        "studies": reverse("admin:studies_study_changelist"),
        "cases": reverse("admin:studies_case_changelist"),
        "answers": reverse("admin:studies_response_changelist"),
        "api": reverse("api:study-list"),
    }
    for user, sees in ((helper, False), (editor, True)):
        client = Client()
        client.force_login(user)
        change = client.get(pages["study"])
        assert (change.status_code == 200) is sees, user
        studies = client.get(pages["studies"]).content.decode()
        assert ("secret" in studies) is sees
        cases = client.get(pages["cases"]).content.decode()
        assert (f"{study.cases.count()} cases" in cases or "secret" in cases) is sees
        answers = client.get(pages["answers"]).content.decode()
        assert ("1 response" in answers) is sees, answers[:200]
        listed = [s["id"] for s in client.get(pages["api"]).json()]
        assert (study.pk in listed) is sees
    assert Response.objects.count() == 1

    creator = Client()
    creator.force_login(helper)
    creator.post(reverse("admin:studies_study_add"), add_form(cohort, name="helpers-own"))
    made = Study.objects.get(name="helpers-own")
    assert list(made.owners.all()) == [helper]
    change = creator.get(reverse("admin:studies_study_change", args=[made.pk])).content.decode()
    assert 'name="owners"' in change  # an owner decides the roles
    editor_client = Client()
    editor_client.force_login(editor)
    study_page = editor_client.get(pages["study"]).content.decode()
    assert 'name="owners"' not in study_page  # an editor does not
