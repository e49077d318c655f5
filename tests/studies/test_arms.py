"""Studies with several arms: cohorts of other generators or prompt schemes read in one session,
real tiles shared, each arm analysed as an MRMC modality and the arms compared."""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import re
from collections import Counter

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from sklearn.metrics import roc_auc_score

from histostudy import mrmc
from histostudy import statistics as st
from studies.design import Design, DesignError, PoolCase, check_capacity, draw
from studies.exports import imrmc_lines
from studies.models import Study
from studies.results import study_results
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study, second_arm

# --- the pure design ------------------------------------------------------------------------------


def arm_pool(arms: int = 2, per_stratum: int = 8) -> list[PoolCase]:
    cases, next_id = [], 0
    for label in (0, 1):
        for _ in range(per_stratum):
            cases.append(PoolCase(next_id, "real", label))
            next_id += 1
    for arm in range(arms):
        for label in (0, 1):
            for _ in range(per_stratum):
                cases.append(PoolCase(next_id, "synthetic", label, arm))
                next_id += 1
    return cases


@pytest.mark.parametrize("n", [20, 21, 23])
def test_the_synthetic_quota_is_split_evenly_across_arms_labels_balanced_inside(n):
    pool = arm_pool(arms=3)
    by_id = {c.id: c for c in pool}
    design = Design(n, 1, 1, True, arms=3)
    extra = Counter()
    for seed in range(60):
        chosen = [by_id[i] for i in draw(pool, design, seed)]
        assert len(chosen) == len(set(c.id for c in chosen)) == n
        per_arm = Counter(c.arm for c in chosen if c.kind == "synthetic")
        assert max(per_arm.values()) - min(per_arm.values()) <= 1
        for arm in range(3):
            labels = Counter(c.label for c in chosen if c.kind == "synthetic" and c.arm == arm)
            assert abs(labels[0] - labels[1]) <= 1
        extra.update(a for a, k in per_arm.items() if k > min(per_arm.values()))
    if n == 23:  # 11 or 12 synthetic into three arms: the extra cases go to every arm by turns
        assert len(extra) == 3


def test_arms_interleave_in_one_seeded_order():
    pool = arm_pool(arms=2)
    by_id = {c.id: c for c in pool}
    order = [by_id[i] for i in draw(pool, Design(24, 1, 2, True, arms=2), seed=7)]
    synthetic = [c.arm for c in order if c.kind == "synthetic"]
    runs = sum(a != b for a, b in itertools.pairwise(synthetic))
    assert runs > 2  # not one arm after the other
    assert order == [by_id[i] for i in draw(pool, Design(24, 1, 2, True, arms=2), seed=7)]


def test_an_arm_too_small_for_the_design_is_named():
    pool = [c for c in arm_pool(arms=2) if not (c.arm == 1 and c.kind == "synthetic" and c.label)]
    with pytest.raises(DesignError, match="0 synthetic tumour tiles of arm 2 available"):
        check_capacity(pool, Design(12, 1, 1, True, arms=2))


# --- studies over several cohorts ---------------------------------------------------------------


@pytest.fixture
def two_arms(db):
    first = cohort_from_fixture_tiles("morph-arm", per_stratum=6)
    return first, second_arm(first, "label-arm")


def arm_of(case) -> str:
    return case.member.cohort.name


def test_a_two_arm_study_shares_its_real_tiles_and_gives_each_reader_both_arms(two_arms):
    first, second = two_arms
    readers = [UserFactory(username=f"reader-{i}") for i in range(3)]
    study = open_study(first, readers, cases=24, ratio_real=1, ratio_synthetic=2, arms=(second,))
    assert [c.name for c in study.arm_cohorts()] == ["morph-arm", "label-arm"]
    kinds = Counter((c.kind, arm_of(c)) for c in study.cases.select_related("member__cohort"))
    # the 12 real tiles of both cohorts are the same tiles: one case each, under the first arm
    assert kinds == {("real", "morph-arm"): 12, ("synthetic", "morph-arm"): 12,
                     ("synthetic", "label-arm"): 12}  # fmt: skip
    for assignment in study.assignments.all():
        trials = assignment.trials.select_related("case__member__cohort")
        counts = Counter((t.case.kind, arm_of(t.case)) for t in trials)
        assert counts == {("real", "morph-arm"): 8, ("synthetic", "morph-arm"): 8,
                          ("synthetic", "label-arm"): 8}  # fmt: skip


def test_arms_are_frozen_once_the_study_opens(two_arms, db):
    first, second = two_arms
    study = open_study(first, [UserFactory()], cases=12)
    # (a savepoint each: the test runs inside one transaction, which an error would break)
    with pytest.raises(ValidationError, match="other_arms cannot change"), transaction.atomic():
        study.other_arms.add(second)
    with pytest.raises(ValidationError, match="other_arms cannot change"), transaction.atomic():
        second.arm_studies.add(study)
    assert not study.other_arms.exists()


def test_an_arm_must_be_complete_of_the_same_real_dataset_and_held_out(two_arms, db):
    first, second = two_arms
    study = Study(name="arms", title="t", instructions="i", cohort=first, cases_per_reader=12)
    study.pending_arms = [second]
    study.full_clean()  # fits

    stranger = cohort_from_fixture_tiles("other-dataset", per_stratum=6)
    study.pending_arms = [stranger]
    with pytest.raises(ValidationError, match="share one real dataset"):
        study.full_clean()

    second.completed_at = None
    second.save()
    study.pending_arms = [second]
    with pytest.raises(ValidationError, match="label-arm is not complete"):
        study.full_clean()
    second.completed_at = first.completed_at
    second.save()

    real = first.members.filter(kind="real").first().tile
    second.generator.training_tiles.add(real)  # the second generator trained on a shared tile
    second.generator.tiles_trained = 1
    second.generator.save()
    with pytest.raises(ValidationError, match="training set of generator label-arm-generator"):
        study.full_clean()


def test_the_admin_form_checks_the_design_against_the_arms_it_is_saving(two_arms, admin_client):
    first, second = two_arms
    form = {
        "name": "two-arms", "title": "Real or synthetic?", "instructions": "Judge each tile.",
        "cohort": first.pk, "other_arms": [second.pk], "cases_per_reader": 40,
        "ratio_real": 1, "ratio_synthetic": 3, "stratify_by_label": "on",
        "case_selection": "shared", "practice_trials": 0, "seed": 1,
        "response_scale": "call+confidence", "magnification": 4, "jpeg_quality": 75,
        "equivalence_margin": 0.1, "equivalence_alpha": 0.05, "trial_design": "single",
        "staircase_start_ms": 1000, "assignments-TOTAL_FORMS": 0, "assignments-INITIAL_FORMS": 0,
    }  # fmt: skip
    page = admin_client.post("/admin/studies/study/add/", form)
    assert page.status_code == 200
    assert (
        "synthetic healthy tiles of arm 1 available" in page.content.decode()
        and "arms: 1 = morph-arm, 2 = label-arm" in (page.content.decode())
    )
    form["cases_per_reader"] = 32  # 8 real, 12 synthetic in each arm
    assert admin_client.post("/admin/studies/study/add/", form).status_code == 302
    assert [c.name for c in Study.objects.get(name="two-arms").arm_cohorts()] == [
        "morph-arm", "label-arm",
    ]  # fmt: skip


# --- results, dashboard and exports ---------------------------------------------------------------


def read_arms(study, readers) -> None:
    """Readers catch the first arm's synthetic tiles (confidently) and are fooled by the
    second arm's about three times in four: a difference clear whatever order each reader
    reads in (the orders follow the readers' database ids, which differ from run to run)."""
    for i, reader in enumerate(readers):
        assignment = study.assignments.get(reader=reader)
        while (trial := assignment.next_trial()) is not None:
            case, k = trial.case, trial.position + 3 * i
            if case.kind == "real":
                call, confidence = ("real", 2 + k % 4) if k % 5 else ("synthetic", 2)
            elif arm_of(case) == "morph-arm":
                call, confidence = ("synthetic", 3 + k % 3) if k % 6 else ("real", 2)
            else:
                call, confidence = ("synthetic", 1) if k % 4 == 0 else ("real", 2 + k % 4)
            assignment.submit(trial.token, call, confidence)


@pytest.fixture
def read_two_arms(two_arms):
    first, second = two_arms
    readers = [UserFactory(username=f"pathologist{i}") for i in range(1, 5)]
    study = open_study(first, readers, cases=24, ratio_real=1, ratio_synthetic=2, arms=(second,))
    read_arms(study, readers)
    return study


def test_each_arm_is_a_modality_and_the_arms_are_compared(read_two_arms):
    study = read_two_arms
    results = study_results(study)
    arms = results.arms
    assert arms is not None and arms.readers == 4 and not arms.problem
    assert arms.arms == ["morph-arm", "label-arm"]
    # each reader's AUC in an arm: that arm's synthetic tiles against every real tile,
    # recomputed with scikit-learn from the stored answers
    for j, reader in enumerate(arms.auc.readers):
        mine = [r for r in results.rows if r.reader == reader]
        for i, arm in enumerate(arms.arms):
            used = [r for r in mine if r.truth == "real" or r.arm == arm]
            scores = [st.ordinal_score(r.call, r.confidence) for r in used]
            expected = roc_auc_score([r.truth == "synthetic" for r in used], scores)
            assert arms.auc.foms[i, j] == pytest.approx(expected)
    first, second = arms.auc.modalities
    assert first.estimate > second.estimate
    (difference,) = arms.auc.differences
    assert difference.name == "morph-arm - label-arm"
    assert difference.estimate == pytest.approx(first.estimate - second.estimate)
    assert difference.ci_low > 0  # the readers catch the first arm more often
    assert len(arms.equivalence) == 2
    assert set(results.breakdowns["arm"]) == {"morph-arm", "label-arm"}
    assert results.as_dict()["arms"]["auc"]["difference"]["estimate"] == difference.estimate


def test_the_dashboard_and_exports_of_a_two_arm_study(read_two_arms, admin_client):
    study = read_two_arms
    page = admin_client.get(f"/dashboards/studies/{study.pk}/").content.decode()
    assert 'id="arms"' in page and 'id="arm-differences"' in page
    assert "morph-arm - label-arm" in page and "Arm 2: cohort label-arm" in page

    text = b"".join(admin_client.get(f"/dashboards/studies/{study.pk}/responses.csv")
                    .streaming_content).decode()  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["arm"] for r in rows if r["truth"] == "synthetic"} == {"morph-arm", "label-arm"}
    assert {r["arm"] for r in rows if r["truth"] == "real"} == {""}
    assert {r["generator"] for r in rows if r["arm"] == "label-arm"} == {"label-arm-generator"}

    lines = b"".join(admin_client.get(f"/dashboards/studies/{study.pk}/imrmc.csv")
                     .streaming_content).decode().splitlines()  # fmt: skip
    assert "NM: 2" in lines
    data = lines[lines.index("BEGIN DATA:") + 1 :]
    truth = {line.split(",")[1]: int(line.split(",")[3]) for line in data if line[:3] == "-1,"}
    readings = [line.split(",") for line in data if line[:3] != "-1,"]
    # the export, read back as iMRMC would, gives the dashboard's analysis
    design = mrmc.Design.from_rows([(r, m, c, truth[c], float(s)) for r, c, m, s in readings])
    exported = mrmc.analyse(design, "auc")
    shown = study_results(study).arms.auc
    by_name = {m.name: m.estimate for m in exported.modalities}
    assert by_name == pytest.approx({m.name: m.estimate for m in shown.modalities})
    assert exported.p == pytest.approx(shown.p)
    real_cases = {c for c, t in truth.items() if t == 0}
    per_modality = Counter(m for _, c, m, _ in readings if c in real_cases)
    assert per_modality["morph-arm"] == per_modality["label-arm"] > 0


def test_a_reader_without_two_tiles_of_an_arm_is_left_out_by_name(two_arms):
    first, second = two_arms
    readers = [UserFactory(username=f"r{i}") for i in range(3)]
    study = open_study(first, readers, cases=24, ratio_real=1, ratio_synthetic=2, arms=(second,))
    read_arms(study, readers[:2])
    assignment = study.assignments.get(reader=readers[2])
    trial = assignment.next_trial()
    assignment.submit(trial.token, "real", 3)
    arms = study_results(study).arms
    assert arms.left_out == ["r2"] and arms.readers == 2 and arms.auc is not None
    assert np.isfinite(arms.auc.modalities[0].se)


def test_a_one_arm_study_has_no_arm_comparison(two_arms):
    first, _ = two_arms
    study = open_study(first, [UserFactory(username="solo")], cases=12)
    assert study_results(study).arms is None
    assert "NM: 1" in list(imrmc_lines(study))


def test_the_cohort_admin_starts_a_study_with_the_selected_cohorts_as_arms(two_arms, admin_client):
    first, second = two_arms
    page = admin_client.post(
        "/admin/generation/cohort/",
        {"action": "study_of_arms", "_selected_action": [first.pk, second.pk]},
    )
    assert page.status_code == 302
    form = admin_client.get(page.url).content.decode()
    # the study form opens with the older cohort as the first arm, the other as a further arm
    cohort = re.search(r'<select name="cohort".*?</select>', form, re.S).group(0)
    others = re.search(r'<select name="other_arms".*?</select>', form, re.S).group(0)
    assert f'<option value="{first.pk}" selected>' in cohort
    assert f'<option value="{second.pk}" selected>' in others
    assert f'<option value="{first.pk}" selected>' not in others


def test_an_arm_every_reader_reads_perfectly_has_no_equivalence_test_and_still_shows(
    read_two_arms, admin_client
):
    from studies.arms import compare_arms
    from studies.results import fetch_rows

    study = read_two_arms
    rows = [  # every reader now calls every morph-arm tile synthetic at confidence 5
        dataclasses.replace(r, call="synthetic", confidence=5) if r.arm == "morph-arm" else r
        for r in fetch_rows(study)
    ]
    arms = compare_arms(rows, ["morph-arm", "label-arm"], 0.1, 0.05)
    assert arms.auc.modalities[0].estimate == 1.0 and arms.equivalence[0] is None
    assert arms.equivalence[1] is not None
    assert arms.as_dict()["equivalence"][0] is None

    # the same, stored: the dashboard shows the arm without a verdict
    first, second = study.arm_cohorts()
    readers = [UserFactory(username=f"sharp{i}") for i in range(3)]
    sharp = open_study(first, readers, name="sharp", cases=24, ratio_real=1, ratio_synthetic=2,
                       arms=(second,))  # fmt: skip
    for reader in readers:
        assignment = sharp.assignments.get(reader=reader)
        while (trial := assignment.next_trial()) is not None:
            k = trial.position
            if trial.case.kind == "real":
                answer = ("real", 1 + k % 5)
            elif arm_of(trial.case) == "morph-arm":
                answer = ("synthetic", 5)
            else:
                answer = ("synthetic", 1 + k % 3) if k % 2 else ("real", 1 + k % 4)
            assignment.submit(trial.token, *answer)
    page = admin_client.get(f"/dashboards/studies/{sharp.pk}/").content.decode()
    assert "(no variance)</td>" in page


def test_the_sample_size_panel_gives_the_power_of_one_arm(two_arms, admin_client):
    from studies.planning import panel

    first, second = two_arms
    readers = [UserFactory(username=f"p{i}") for i in range(4)]
    one = open_study(first, readers, name="one-arm", cases=18, ratio_real=1, ratio_synthetic=2)
    two = open_study(first, readers, name="two-arms", cases=18, ratio_real=1, ratio_synthetic=2,
                     arms=(second,))  # fmt: skip
    alone, split = panel(one), panel(two)
    assert alone.arm_cases is None and split.arm_cases == 12  # 6 real + 12 / 2 synthetic
    assert split.configured.se > alone.configured.se  # fewer cases per comparison
    page = admin_client.get(f"/admin/studies/study/{two.pk}/change/").content.decode()
    assert "4 readers x 12 cases, per arm: every real tile and 1/2 of the synthetic ones" in page
