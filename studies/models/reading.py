"""What readers read and answer: cases with their truth, assignments and trials (tokens only
reach the reader), and one response per reader and case, a database constraint."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from generation.models import CohortMember, LabelChoices, Tile
from studies.models.study import Call, Study, new_token
from studies.models.timing import timing_flag


class Case(models.Model):
    """A cohort tile in a study, with its truth. Practice cases are never scored."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="cases")
    member = models.ForeignKey(CohortMember, on_delete=models.PROTECT, related_name="cases")
    tile = models.ForeignKey(Tile, on_delete=models.PROTECT, related_name="cases")
    kind = models.CharField(max_length=16, choices=Tile.Kind.choices)
    label = models.PositiveSmallIntegerField(choices=LabelChoices.choices)
    practice = models.BooleanField(default=False)

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "member"], name="case_once_per_study"),
        ]

    def __str__(self) -> str:
        return f"{self.study} case {self.pk}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and self.responses.exists():
            stored = Case.objects.values("member_id", "tile_id", "kind", "label", "practice").get(
                pk=self.pk
            )
            if any(getattr(self, field) != value for field, value in stored.items()):
                raise ValidationError(f"case {self.pk} has been read; it cannot change")
        super().save(*args, **kwargs)


class Assignment(models.Model):
    """One reader's trials in one study, in the order drawn from the recorded seed."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="assignments")
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments"
    )
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    seed = models.BigIntegerField()
    n_trials = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "reader"]
        constraints = [
            models.UniqueConstraint(fields=["study", "reader"], name="one_assignment_per_reader"),
        ]

    def __str__(self) -> str:
        return f"{self.study} / {self.reader}"

    def progress(self) -> Progress:
        counts = self.trials.aggregate(
            total=Count("id"),
            answered=Count("id", filter=Q(response__isnull=False)),
        )
        return Progress(counts["answered"], counts["total"])

    def next_trial(self) -> Trial | None:
        """The first unanswered trial in order, marked as served now (server clock)."""
        trial = (self.trials.filter(response__isnull=True).order_by("position")).first()
        if trial is None:
            return None
        now = timezone.now()
        if self.started_at is None:
            Assignment.objects.filter(pk=self.pk, started_at=None).update(started_at=now)
            self.started_at = now
        Trial.objects.filter(pk=trial.pk).update(
            served_at=now,
            first_served_at=Coalesce("first_served_at", Value(now)),
            serve_count=F("serve_count") + 1,  # concurrent loads both count
        )
        if self.study.timed and trial.exposure_ms is None:
            asked = self.study.asked_exposure(self.scored_answers(), trial.practice)
            # a concurrent first serving computed the same exposure from the same answers
            Trial.objects.filter(pk=trial.pk, exposure_ms=None).update(exposure_ms=asked)
            trial.exposure_ms = asked
        trial.served_at = now
        trial.first_served_at = trial.first_served_at or now
        trial.serve_count += 1
        return trial

    def scored_answers(self) -> list[tuple[int, bool]]:
        """(exposure asked, right) of the reader's answered scored trials, in order."""
        answered = (
            self.trials.filter(practice=False, response__isnull=False)
            .order_by("position")
            .values_list("exposure_ms", "response__call", "case__kind")
        )
        return [(exposure, call == kind) for exposure, call, kind in answered]

    def record_display(self, trial_token: str, serving: int, ms: float, frame_ms: float) -> None:
        """Keep the duration the page measured of a timed trial's exposure: the first report
        (the tile is handed out once, so there is one exposure to report)."""
        with transaction.atomic():
            trial = self.served_trial(trial_token, lock=True)
            trial.check_serving(serving)
            if trial.exposure_ms is None:
                raise ValidationError({"trial": "this trial has no time limit"})
            if trial.displayed_ms is None:
                trial.displayed_ms, trial.frame_ms = ms, frame_ms
                trial.save(update_fields=["displayed_ms", "frame_ms"])

    def hand_out_image(self, trial: Trial) -> bool:
        """Whether the trial's tile may be sent: always without a time limit; for a timed
        trial, on its first request only (counted: it is shown once, and a reload shows the
        mask instead)."""
        if trial.exposure_ms is None:
            return True  # no time limit: served as often as asked, not counted
        trials = Trial.objects.filter(pk=trial.pk)
        if trials.filter(image_requests=0).update(image_requests=1):
            return True  # the first request, whichever of two concurrent ones came first
        trials.update(image_requests=F("image_requests") + 1)
        return False

    def served_trial(self, trial_token: str, lock: bool = False) -> Trial:
        """The reader's trial with this token, once served (locked for update if asked);
        Trial.DoesNotExist otherwise."""
        trials = self.trials.select_for_update() if lock else self.trials
        trial = trials.filter(token=trial_token, served_at__isnull=False).first()
        if trial is None:
            raise Trial.DoesNotExist(trial_token)
        return trial

    def record_screen_time(self, trial_token: str, serving: int, ms: int) -> None:
        """Keep what the page reports of one serving's time on screen (its largest report, at
        most the time since the tile was first served): the page reports when it is hidden or
        closed, so a reload or a closed tab keeps the time the tile was actually shown."""
        with transaction.atomic():
            trial = self.served_trial(trial_token, lock=True)
            trial.check_serving(serving)
            if Response.objects.filter(trial=trial).exists():
                return  # the answer fixed the time on screen
            ms = trial.bounded_ms(ms)
            if ms > trial.screen_ms.get(str(serving), 0):
                trial.screen_ms = {**trial.screen_ms, str(serving): ms}
                trial.save(update_fields=["screen_ms"])

    def submit(
        self,
        trial_token: str,
        call: str,
        confidence: int | None,
        on_screen: tuple[int, int] | None = None,
    ) -> tuple[Response, bool]:
        """Store the answer to a served trial once. Returns (response, created).

        on_screen: (serving, milliseconds) the page measured for the serving it answers; the
        time on screen stored is that plus the other servings' reported times.
        A retry of the same answer returns the stored response; a different answer to an
        answered trial raises AnswerLocked. Concurrent submits store exactly one row.
        """
        trial = self.served_trial(trial_token)
        validate_answer(self.study, call, confidence)
        if trial.exposure_ms is not None and not trial.image_requests:
            raise ValidationError(
                {"trial": "the tile has not been shown yet: press Space to show it first"}
            )
        seconds_on_screen = None
        if on_screen is not None:
            serving, ms = on_screen
            trial.check_serving(serving)
            others = sum(v for k, v in trial.screen_ms.items() if k != str(serving))
            # the sum is bounded too: two windows showing the tile at once count once
            seconds_on_screen = trial.bounded_ms(others + ms) / 1000
        if self.study.status != Study.Status.OPEN:
            stored = Response.objects.filter(trial=trial).first()
            if stored is not None and (stored.call, stored.confidence) == (call, confidence):
                return stored, False  # a retry of an answer taken before the study closed
            raise ValidationError("this study is closed; no more answers are taken")
        # Outside a transaction the INSERT is one round trip; inside one (tests, callers that
        # batch) a savepoint keeps a duplicate from breaking the caller's transaction.
        guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
        try:
            with guard:
                response = Response.objects.create(
                    trial=trial,
                    reader_id=self.reader_id,
                    case_id=trial.case_id,
                    call=call,
                    confidence=confidence,
                    served_at=trial.served_at,
                    answered_at=timezone.now(),
                    on_screen_seconds=seconds_on_screen,
                )
        except IntegrityError:
            response = Response.objects.get(trial=trial)
            if (response.call, response.confidence) != (call, confidence):
                raise AnswerLocked(response) from None
            created = False
        else:
            created = True
        # On a retry too: the first attempt may have stored the answer and died before this.
        progress = self.progress()
        if progress.answered == progress.total:
            now = timezone.now()
            Assignment.objects.filter(pk=self.pk, completed_at=None).update(completed_at=now)
            self.completed_at = self.completed_at or now
        response.progress = progress  # the API reply shows it; no second count
        return response, created

    def served_progress(self, current: Trial) -> Progress:
        """Progress while `current` is served, without a count: answers are strictly in order
        (only the first unanswered trial is ever served), so `position` trials are answered."""
        return Progress(current.position, self.n_trials)


@dataclass(frozen=True)
class Progress:
    answered: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.answered / self.total) if self.total else 100


class AnswerLocked(Exception):
    """A different answer for a trial that already has one: answers never change."""

    def __init__(self, response: Response) -> None:
        super().__init__("this trial has already been answered; answers are locked")
        self.response = response


def validate_answer(study: Study, call: str, confidence: int | None) -> None:
    """The one answer validator (form, API, tests), backed by the Response constraints."""
    errors = {}
    if call not in study.calls:
        errors["call"] = f"must be one of {', '.join(study.calls)}, got {call!r}"
    if study.asks_confidence:
        if (
            not isinstance(confidence, int)
            or isinstance(confidence, bool)
            or not 1 <= confidence <= 5
        ):
            errors["confidence"] = f"must be an integer from 1 to 5, got {confidence!r}"
    elif confidence is not None:
        errors["confidence"] = "this study does not ask for confidence; leave it empty"
    if errors:
        raise ValidationError(errors)


class Trial(models.Model):
    """A case in one reader's order. Its token is the only id the reader's browser sees."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="trials")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="trials")
    position = models.PositiveIntegerField()
    practice = models.BooleanField(default=False)
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    first_served_at = models.DateTimeField(null=True, blank=True)
    served_at = models.DateTimeField(null=True, blank=True, help_text="last time it was served")
    serve_count = models.PositiveIntegerField(default=0)
    # milliseconds the page had the tile on screen, per serving ("1", "2", ...), as reported
    screen_ms = models.JSONField(default=dict, blank=True)
    # timed studies: the exposure asked for (fixed when first served), how often the page
    # fetched the tile (it is handed out once), and the duration the page measured
    exposure_ms = models.PositiveIntegerField(null=True, blank=True)
    image_requests = models.PositiveIntegerField(default=0)
    # paired studies: the pair (its synthetic case is `case`) and the synthetic tile's side
    pair = models.ForeignKey(
        "studies.CasePair", null=True, blank=True, on_delete=models.CASCADE, related_name="trials"
    )
    synthetic_side = models.CharField(max_length=5, blank=True)
    displayed_ms = models.FloatField(null=True, blank=True)
    frame_ms = models.FloatField(null=True, blank=True, help_text="the page's frame interval")

    class Meta:
        ordering = ["assignment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "position"], name="trial_position"),
            models.UniqueConstraint(fields=["assignment", "case"], name="trial_case_once"),
        ]

    def __str__(self) -> str:
        return f"{self.assignment} #{self.position}"

    def check_serving(self, serving: int) -> None:
        if not 1 <= serving <= self.serve_count:
            raise ValidationError(
                {"serving": f"must be a serving of this trial (1 to {self.serve_count}), got "
                            f"{serving}"}
            )  # fmt: skip

    @property
    def timing_flag(self) -> str:
        return timing_flag(self.exposure_ms, self.displayed_ms, self.frame_ms,
                           self.image_requests)  # fmt: skip

    def bounded_ms(self, ms: int) -> int:
        """A reported time on screen, at most the time since the tile was first served (plus
        a second of clock skew): a page cannot have shown the tile longer than that."""
        since = timezone.now() - (self.first_served_at or self.served_at)
        return max(0, min(int(ms), int(since.total_seconds() * 1000) + 1000))


class Response(models.Model):
    """A reader's answer to one trial; times from the server clock. Never edited."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="response")
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="responses"
    )
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="responses")
    call = models.CharField(max_length=16, choices=Call.choices)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    served_at = models.DateTimeField()
    answered_at = models.DateTimeField()
    on_screen_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="time the tile was on screen, summed over its servings, as the page measured "
        "it; empty where the page ran no script",
    )

    class Meta:
        ordering = ["answered_at"]
        constraints = [
            models.UniqueConstraint(fields=["reader", "case"], name="one_response_per_reader_case"),
            models.CheckConstraint(condition=Q(call__in=Call.values), name="response_call_valid"),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__gte=1, confidence__lte=5),
                name="response_confidence_1_5",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reader} {self.case}: {self.call}"

    @property
    def truth(self) -> str:
        """The right answer: the tile's kind, or in a paired trial the synthetic tile's side."""
        return self.trial.synthetic_side or self.case.kind

    @property
    def seconds(self) -> float:
        return (self.answered_at - self.served_at).total_seconds()
