"""A study's arms: its cohort, then further cohorts of the same real dataset read in the same
sessions. The pool of candidate cases shares the arms' real tiles; the checks that make that
sound; the rule that the arms freeze with the design once the study opens."""

from __future__ import annotations

from django.apps import apps
from django.core.exceptions import ValidationError

from generation.models import Cohort, CohortMember, Tile
from studies import design


class StudyArms:
    """Arm methods of studies.models.Study, which owns the fields they read."""

    def arm_cohorts(self) -> list[Cohort]:
        """The study's arms in order: its cohort, then the further arms by name. An admin form
        being validated sets `pending_arms` to the further arms it is about to save."""
        if self.cohort_id is None:
            return []
        pending = getattr(self, "pending_arms", None)
        if pending is not None:
            others = list(pending)
        else:
            others = list(self.other_arms.all()) if self.pk else []
        others = sorted({c.pk: c for c in others if c.pk != self.cohort_id}.values(),
                        key=lambda c: c.name)  # fmt: skip
        return [self.cohort, *others]

    def _check_arms(self, arms: list[Cohort]) -> None:
        """Every arm complete, of the study's real dataset, and no real tile that any arm's
        generator trained on: the real tiles are shared, so each must be held out from all."""
        for i, cohort in enumerate(arms):
            field = "cohort" if i == 0 else "other_arms"
            if cohort.completed_at is None:
                raise ValidationError({field: f"cohort {cohort} is not complete yet"})
            if cohort.real_dataset_id != self.cohort.real_dataset_id:
                raise ValidationError({field: (
                    f"cohort {cohort} draws its real tiles from dataset {cohort.real_dataset}, "
                    f"the first arm from {self.cohort.real_dataset}; the arms of a study share "
                    f"one real dataset"
                )})  # fmt: skip
        if len(arms) < 2:
            return
        for cohort in arms:
            trained = cohort.generator.training_tiles
            if trained.count() != cohort.generator.tiles_trained:
                raise ValidationError({"other_arms": (
                    f"generator {cohort.generator} (arm {cohort}) has {trained.count()} of the "
                    f"{cohort.generator.tiles_trained} tiles it trained on recorded, so its "
                    f"training tiles cannot be held out of the shared real tiles"
                )})  # fmt: skip
            # by pixels, as cohort planning holds them out: a copy in another dataset counts
            leaked = Tile.objects.filter(
                memberships__cohort__in=arms,
                kind=Tile.Kind.REAL,
                sha256__in=trained.values("sha256"),
            ).first()
            if leaked is not None:
                raise ValidationError({"other_arms": (
                    f"real tile {leaked.sha256[:12]} of these arms is in the training set of "
                    f"generator {cohort.generator} (arm {cohort}); the real tiles serve every arm, "
                    f"so each must be held out from every arm's generator"
                )})  # fmt: skip

    def cohort_pool(self) -> list[design.PoolCase]:
        """Every member of every arm as a candidate case (member id, kind, label, arm). A real
        tile in several arms' cohorts is one case, under the member of its first arm."""
        arm = {c.pk: i for i, c in enumerate(self.arm_cohorts())}
        members = CohortMember.objects.filter(cohort_id__in=arm).values_list(
            "id", "cohort_id", "tile_id", "kind", "label"
        )
        pool, seen = [], set()
        for member, cohort, tile, kind, label in sorted(members, key=lambda m: (arm[m[1]], m[0])):
            if kind == Tile.Kind.REAL:
                if tile in seen:
                    continue
                seen.add(tile)
            pool.append(design.PoolCase(member, kind, label, arm[cohort]))
        return pool


def arms_frozen_once_opened(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """The arms are part of the design: once a study has its cases (built when it first opens)
    they cannot change. A backup being restored adds an opened study's arms before its cases,
    so it passes."""
    if action not in ("pre_add", "pre_remove", "pre_clear"):
        return
    study = apps.get_model("studies", "Study")
    if not reverse:
        studies = study.objects.filter(pk=instance.pk)
    elif pk_set is not None:
        studies = study.objects.filter(pk__in=pk_set)
    else:
        studies = study.objects.filter(other_arms=instance)
    opened = (
        studies.filter(opened_at__isnull=False, cases__isnull=False)
        .values_list("name", flat=True)
        .first()
    )
    if opened is not None:
        raise ValidationError(
            f"other_arms cannot change: study {opened} has been opened and readers read its arms"
        )
