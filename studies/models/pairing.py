"""The paired design in the database: a study's pairs of a real and a synthetic case (drawn once,
when the study opens, by studies.paired), and each reader's trials over them with the
synthetic tile's side drawn from the reader's own seed, balanced.

A paired trial's `case` is the pair's synthetic case (so one response per reader and tile
holds as for single tiles) and `pair` the pair; the reader answers with the side they take
for synthetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

from generation.models import CohortMember
from studies import paired

if TYPE_CHECKING:  # types only: study.py imports this module
    from studies.models.reading import Assignment
    from studies.models.study import Study


class CasePair(models.Model):
    """A real and a synthetic case of one label (and, where the pool allowed, one morphology
    cluster), read side by side in a paired study."""

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="pairs")
    real = models.OneToOneField(
        "studies.Case", on_delete=models.CASCADE, related_name="pair_as_real"
    )
    synthetic = models.OneToOneField(
        "studies.Case", on_delete=models.CASCADE, related_name="pair_as_synthetic"
    )
    label = models.PositiveSmallIntegerField()
    matched_on = models.CharField(max_length=10, help_text="cluster, or label alone")
    practice = models.BooleanField(default=False)

    class Meta:
        ordering = ["study", "id"]

    def __str__(self) -> str:
        return f"{self.study} pair {self.pk}"


def _pool(study: Study) -> list[paired.PairCase]:
    members = CohortMember.objects.filter(cohort=study.cohort).order_by("id")
    return [
        paired.PairCase(m.id, m.kind, m.label, m.cluster)
        for m in members.only("id", "kind", "label", "cluster")
    ]


def draw(study: Study) -> tuple[list[paired.Pair], list[paired.Pair]]:
    """(practice pairs, scored pairs) of the study's cohort, seeded: the scored pairs first
    (they get the cluster-matched pairs where those are scarce), the practice ones from the
    tiles left. ValidationError on the field whose number of pairs the cohort cannot give."""
    pool = _pool(study)
    try:
        scored = paired.draw_pairs(pool, study.cases_per_reader, study.seed)
    except paired.PairingError as exc:
        raise ValidationError({"cases_per_reader": f"pairs per reader: {exc}"}) from exc
    used = {i for p in scored for i in (p.real, p.synthetic)}
    rest = [c for c in pool if c.id not in used]
    try:
        practice = paired.draw_pairs(rest, study.practice_trials, study.seed + 1)
    except paired.PairingError as exc:
        raise ValidationError(
            {"practice_trials": f"practice pairs, from the tiles the scored pairs leave: {exc}"}
        ) from exc
    return practice, scored


def check(study: Study) -> None:
    """The paired design's own checks: one arm, every reader the same pairs (the cohort's
    own checks and then draw(), for enough pairs, come after)."""
    if len(study.arm_cohorts()) > 1:
        raise ValidationError({"other_arms": "a paired study reads one cohort (one arm)"})
    if study.case_selection != study.Selection.SHARED:
        raise ValidationError(
            {"case_selection": "a paired study gives every reader the same pairs (shared)"}
        )


def build_cases(study: Study) -> None:
    """The cases of every pair and the pairs, once, when the study opens."""
    case_model = apps.get_model("studies", "Case")
    practice, scored = draw(study)
    wanted = [(p, True) for p in practice] + [(p, False) for p in scored]
    members = CohortMember.objects.in_bulk([i for p, _ in wanted for i in (p.real, p.synthetic)])
    cases = {}
    for pair, is_practice in wanted:
        for member_id in (pair.real, pair.synthetic):
            m = members[member_id]
            cases[member_id] = case_model(
                study=study, member_id=m.id, tile_id=m.tile_id, kind=m.kind, label=m.label,
                practice=is_practice,
            )  # fmt: skip
    case_model.objects.bulk_create(cases.values())
    stored = dict(study.cases.values_list("member_id", "id"))
    CasePair.objects.bulk_create([
        CasePair(study=study, real_id=stored[p.real], synthetic_id=stored[p.synthetic],
                 label=p.label, matched_on=p.matched_on, practice=is_practice)
        for p, is_practice in wanted
    ])  # fmt: skip


def create_trials(study: Study, assignment: Assignment) -> int:
    """The reader's trials: the practice pairs, then the scored pairs, each in the reader's
    own seeded order, the synthetic tile's side drawn from the reader's seed and balanced
    within each block. Returns how many."""
    trial_model = apps.get_model("studies", "Trial")
    # independent streams for the order and the sides of each block: drawn from one stream,
    # a block's sides would follow its order, the same pairs on the same side for everyone
    streams = np.random.SeedSequence(assignment.seed).spawn(4)
    trials = []
    for block, practice in enumerate((True, False)):
        ids = list(study.pairs.filter(practice=practice).order_by("id")
                   .values_list("id", "synthetic_id"))  # fmt: skip
        order_rng, side_rng = (np.random.default_rng(s) for s in streams[2 * block : 2 * block + 2])
        order = [ids[i] for i in order_rng.permutation(len(ids))]
        for (pair_id, synthetic_id), side in zip(order, paired.sides(len(order), side_rng),
                                                 strict=True):  # fmt: skip
            trials.append(trial_model(
                assignment=assignment, case_id=synthetic_id, pair_id=pair_id,
                synthetic_side=side, position=len(trials), practice=practice,
            ))  # fmt: skip
    trial_model.objects.bulk_create(trials)
    return len(trials)
