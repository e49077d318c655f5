"""A reader study over one cohort or several (arms), its design, its lock once reading starts,
its cases and each reader's assignment (drawn by studies.design)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.db.models.signals import m2m_changed
from django.utils import timezone

from generation.models import Cohort, CohortMember
from studies import design
from studies.models import pairing
from studies.models.arms import StudyArms, arms_frozen_once_opened
from studies.models.images import StudyImages
from studies.models.timing import ReadingDesign

if TYPE_CHECKING:  # a type only: reading.py imports this module
    from studies.models.reading import Assignment


def _reading(name: str) -> type[models.Model]:
    """A model of studies.models.reading, which refers to Study: looked up in Django's
    registry at call time, so that the two modules do not import each other."""
    return apps.get_model("studies", name)


def new_token() -> str:
    """An opaque id for URLs and payloads: 128 random bits, nothing derived from the data."""
    return secrets.token_urlsafe(16)


def new_seed() -> int:
    return secrets.randbits(62)


class Call(models.TextChoices):
    REAL = "real", "Real"
    SYNTHETIC = "synthetic", "Synthetic"
    # paired studies: the side the reader takes for synthetic
    LEFT = "left", "Left"
    RIGHT = "right", "Right"


class StudyQuerySet(models.QuerySet):
    def for_staff(self, user) -> StudyQuerySet:
        """Studies whose configuration, answer key and results the user may see: all for a
        superuser, else those where the user is an owner or an editor."""
        if getattr(user, "is_superuser", False):
            return self
        if not getattr(user, "is_staff", False):
            return self.none()
        return self.filter(Q(owners=user) | Q(editors=user)).distinct()

    def for_reader(self, user) -> StudyQuerySet:
        """Open studies the user may read, and any study they already have trials in."""
        eligible = Q(readers=user) | Q(reader_group__in=user.groups.all())
        return self.filter(
            (Q(status=Study.Status.OPEN) & eligible) | Q(assignments__reader=user)
        ).distinct()


class Study(StudyArms, StudyImages, ReadingDesign):
    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        CLOSED = "closed"

    class Scale(models.TextChoices):
        CALL_CONFIDENCE = "call+confidence", "Real/synthetic and confidence 1-5"
        CALL = "call", "Real/synthetic only"

    class Selection(models.TextChoices):
        SHARED = "shared", "Every reader reads the same cases (own order)"
        PER_READER = "per-reader", "Each reader gets their own random subset"

    # Fields that define what a reader reads: frozen once the study has been opened.
    DESIGN_FIELDS = (
        "cohort",
        "cases_per_reader",
        "ratio_real",
        "ratio_synthetic",
        "stratify_by_label",
        "case_selection",
        "response_scale",
        "practice_trials",
        "magnification",
        "jpeg_quality",
        "seed",
        "equivalence_margin",
        "equivalence_alpha",
        "trial_design",
        "exposure_ms",
        "staircase_start_ms",
    )
    # Text readers have read: frozen once the first response exists.
    READ_FIELDS = ("title", "instructions")

    name = models.SlugField(max_length=100, unique=True, help_text="internal; readers never see it")
    title = models.CharField(max_length=200, help_text="shown to readers")
    instructions = models.TextField(help_text="shown to readers before their first trial")
    cohort = models.ForeignKey(
        Cohort, on_delete=models.PROTECT, related_name="studies", help_text="the first arm"
    )
    # arms: cohorts of other generators or prompt schemes read in the same sessions, so that
    # one study compares them (the MRMC test of arm differences on the dashboard)
    other_arms = models.ManyToManyField(
        Cohort,
        blank=True,
        related_name="arm_studies",
        verbose_name="further arms",
        help_text=(
            "more cohorts of the same real dataset, read interleaved with the first: their real "
            "tiles are pooled and shared by every arm, the synthetic cases split evenly across "
            "the arms (raise the synthetic ratio to keep as many per arm)"
        ),
    )
    cases_per_reader = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    ratio_real = models.PositiveSmallIntegerField(default=1)
    ratio_synthetic = models.PositiveSmallIntegerField(default=1)
    stratify_by_label = models.BooleanField(
        default=True, help_text="healthy and tumour balanced inside each kind"
    )
    case_selection = models.CharField(
        max_length=16, choices=Selection.choices, default=Selection.SHARED
    )
    response_scale = models.CharField(
        max_length=20, choices=Scale.choices, default=Scale.CALL_CONFIDENCE
    )
    practice_trials = models.PositiveSmallIntegerField(
        default=0, help_text="shown first, with feedback; drawn apart from scored cases"
    )
    magnification = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(8)]
    )
    jpeg_quality = models.PositiveSmallIntegerField(
        default=75,
        validators=[MinValueValidator(10), MaxValueValidator(95)],
        help_text="JPEG round-trip applied to real and synthetic alike (PCam: 75)",
    )
    seed = models.BigIntegerField(default=new_seed)
    # the analysis plan, fixed before the study opens: "indistinguishable" means the readers'
    # AUC lies within this margin of 0.5 by two one-sided tests at this alpha
    equivalence_margin = models.FloatField(
        default=0.10,
        validators=[MinValueValidator(0.01), MaxValueValidator(0.5)],
        help_text="the readers' AUC within this of 0.5 counts as indistinguishable (TOST)",
    )
    equivalence_alpha = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.001), MaxValueValidator(0.25)],
        help_text="significance level of each one-sided test",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    readers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="reader_studies"
    )
    reader_group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="studies"
    )
    # who may see this study's answer key and results besides superusers: owners (who also
    # decide the roles) and editors; other staff see neither
    owners = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="owned_studies"
    )
    editors = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="edited_studies"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = StudyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"
        constraints = [
            models.CheckConstraint(
                condition=Q(ratio_real__gt=0) | Q(ratio_synthetic__gt=0), name="study_ratio"
            ),
            models.CheckConstraint(
                condition=Q(magnification__gte=1, magnification__lte=8), name="study_magnification"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self._check_locked()
        super().save(*args, **kwargs)

    @property
    def design(self) -> design.Design:
        return self._design(self.cases_per_reader)

    @property
    def practice_design(self) -> design.Design:
        return self._design(self.practice_trials)

    def _design(self, n: int) -> design.Design:
        arms = len(self.arm_cohorts()) or 1
        return design.Design(n, self.ratio_real, self.ratio_synthetic, self.stratify_by_label, arms)

    @property
    def asks_confidence(self) -> bool:
        return self.response_scale == self.Scale.CALL_CONFIDENCE

    def has_responses(self) -> bool:
        if self.pk is None:
            return False
        return _reading("Response").objects.filter(case__study=self).exists()

    def locked_fields(self) -> tuple[str, ...]:
        """Fields an edit may no longer change: the design once opened, texts once read.

        Whether it was opened is read from the database: a stale copy loaded as a draft must
        not be able to write an opened study's design back."""
        if self.pk is None:
            return ()
        if not Study.objects.filter(pk=self.pk, opened_at__isnull=False).exists():
            return ()
        return self.DESIGN_FIELDS + (self.READ_FIELDS if self.has_responses() else ())

    def clean(self) -> None:
        """One validator for admin, API and commands: the design must fit the arms' cohorts."""
        if self.ratio_real == 0 and self.ratio_synthetic == 0:
            raise ValidationError({"ratio_synthetic": "real:synthetic ratio must not be 0:0"})
        self._check_locked()
        self._check_design()
        if self.cohort_id is None:
            return
        if self.paired:
            pairing.check(self)  # one arm, shared pairs
            self._check_arms(self.arm_cohorts())
            pairing.draw(self)  # enough pairs
            return
        arms = self.arm_cohorts()
        self._check_arms(arms)
        pool = self.cohort_pool()
        names = ", ".join(f"{i} = {c.name}" for i, c in enumerate(arms, 1))
        where = f" (arms: {names})" if len(arms) > 1 else ""
        _fit(pool, self.practice_design, "practice_trials", f"{where}; at most {{}} practice "
             "trials fit this ratio")  # fmt: skip
        practice = set(design.draw(pool, self.practice_design, self.seed))
        _fit([c for c in pool if c.id not in practice], self.design, "cases_per_reader",
             f"{where}; the largest that fits: {{}} cases per reader at this ratio"
             + (" and these practice trials" if practice else ""))  # fmt: skip

    def _check_locked(self) -> None:
        locked = self.locked_fields()
        if not locked:
            return
        stored = Study.objects.filter(pk=self.pk).values(*[_attname(f) for f in locked]).first()
        changed = [
            f for f in locked if stored and stored[_attname(f)] != getattr(self, _attname(f))
        ]
        if changed:
            raise ValidationError(
                f"{', '.join(changed)} cannot change: readers have already read this study"
            )

    def eligible_readers(self) -> models.QuerySet:
        from django.contrib.auth import get_user_model

        condition = Q(reader_studies=self)
        if self.reader_group_id:
            condition |= Q(groups=self.reader_group_id)
        return get_user_model().objects.filter(condition, is_active=True).distinct()

    @transaction.atomic
    def open(self) -> None:
        """Validate, build the cases once, open the study and give every reader their trials."""
        Study.objects.select_for_update().filter(pk=self.pk).first()  # one opener at a time
        self.full_clean()
        if not self.cases.exists():
            self._build_cases()
        self.render_images()
        self.status = self.Status.OPEN
        self.opened_at = self.opened_at or timezone.now()
        self.closed_at = None
        self.save()
        for reader in self.eligible_readers():
            self.assignment_for(reader)

    def close(self) -> None:
        self.status = self.Status.CLOSED
        self.closed_at = timezone.now()
        self.save(update_fields=["status", "closed_at"])

    def _build_cases(self) -> None:
        if self.paired:
            pairing.build_cases(self)
            return
        pool = self.cohort_pool()
        practice = set(design.draw(pool, self.practice_design, self.seed))
        chosen = {c.id for c in pool}
        members = CohortMember.objects.filter(cohort__in=self.arm_cohorts())
        _reading("Case").objects.bulk_create(
            _reading("Case")(
                study=self,
                member_id=m.id,
                tile_id=m.tile_id,
                kind=m.kind,
                label=m.label,
                practice=m.id in practice,
            )
            for m in members.only("id", "tile_id", "kind", "label")
            if m.id in chosen
        )

    def assignment_for(self, reader) -> Assignment | None:
        """The reader's assignment, created with its trials on first use; None if not a reader."""
        existing = self.assignments.filter(reader=reader).first()
        if existing is not None or self.status != self.Status.OPEN:
            return existing
        if not self.eligible_readers().filter(pk=reader.pk).exists():
            return None
        try:
            with transaction.atomic():
                return self._create_assignment(reader)
        except IntegrityError:  # a concurrent request created it first
            return self.assignments.get(reader=reader)

    def _create_assignment(self, reader) -> Assignment:
        seed = design.reader_seed(self.seed, reader.pk)
        if self.paired:
            assignment = _reading("Assignment").objects.create(study=self, reader=reader, seed=seed)
            assignment.n_trials = pairing.create_trials(self, assignment)
            assignment.save(update_fields=["n_trials"])
            return assignment
        arm = {c.pk: i for i, c in enumerate(self.arm_cohorts())}
        cases = list(self.cases.values_list("id", "kind", "label", "practice", "member__cohort_id"))
        practice = [design.PoolCase(i, k, lbl, arm[c]) for i, k, lbl, p, c in cases if p]
        scored = [design.PoolCase(i, k, lbl, arm[c]) for i, k, lbl, p, c in cases if not p]
        if self.case_selection == self.Selection.SHARED:
            chosen = design.shuffle(design.draw(scored, self.design, self.seed), seed)
        else:
            chosen = design.draw(scored, self.design, seed)
        order = design.shuffle([c.id for c in practice], seed) + chosen
        assignment = _reading("Assignment").objects.create(
            study=self, reader=reader, seed=seed, n_trials=len(order)
        )
        _reading("Trial").objects.bulk_create(
            _reading("Trial")(
                assignment=assignment, case_id=case_id, position=i, practice=i < len(practice)
            )
            for i, case_id in enumerate(order)
        )
        return assignment


def _fit(pool: list[design.PoolCase], plan: design.Design, field: str, advice: str) -> None:
    """ValidationError on `field` unless the plan fits the pool; `advice` gets the largest
    size that fits in its {}."""
    try:
        design.check_capacity(pool, plan)
    except design.DesignError as exc:
        most = design.largest_fitting(pool, plan)
        raise ValidationError({field: f"{exc}{advice.format(most)}"}) from exc


def _attname(field: str) -> str:
    return f"{field}_id" if field == "cohort" else field


m2m_changed.connect(arms_frozen_once_opened, sender=Study.other_arms.through)
