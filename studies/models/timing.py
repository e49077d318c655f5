"""A study's trial design (single tiles without a time limit, pairs of a real and a synthetic
tile (studies.models.pairing), or time-limited exposure) and what a timed trial records: the
exposure the server asked for, the one the page measured, and whether the two agree within a
couple of display frames.

The exposure of a trial is fixed when it is first served: the study's fixed exposure, or the
next step of the reader's 1-up-2-down staircase (studies.timed.next_exposure), a pure function
of the reader's scored answers so far. Answers are strictly in order, so a reload, a second
window or an audit later computes the same exposure.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from studies import timed

# what the page may differ by before a trial is flagged: this many frames of its display
FRAMES_TOLERATED = 2
DEFAULT_FRAME_MS = 1000 / 60  # where the page measured no frame interval


class TrialDesign(models.TextChoices):
    SINGLE = "single", "Single tile, no time limit (the paper's design)"
    PAIRED = "paired", "A real and a synthetic tile side by side: which is synthetic? (2AFC)"
    TIMED = "timed", "Single tile shown for a limited time, then masked (HYPE)"


class ReadingDesign(models.Model):
    """The fields of studies.models.Study that say how a tile is shown."""

    trial_design = models.CharField(
        max_length=10, choices=TrialDesign.choices, default=TrialDesign.SINGLE
    )
    exposure_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(50), MaxValueValidator(10_000)],
        verbose_name="exposure (ms)",
        help_text="timed studies: every tile shown this long; blank: an adaptive staircase per "
        "reader finds the exposure at which they become reliable",
    )
    staircase_start_ms = models.PositiveIntegerField(
        default=1000,
        choices=[(ms, f"{ms} ms") for ms in timed.LADDER],
        verbose_name="staircase start",
        help_text=f"timed studies without a fixed exposure: the first exposure; two right answers "
        f"in a row step down the ladder ({', '.join(map(str, timed.LADDER))} ms), a wrong one up; "
        "practice trials are shown this long",
    )

    class Meta:
        abstract = True

    @property
    def timed(self) -> bool:
        return self.trial_design == TrialDesign.TIMED

    @property
    def adaptive(self) -> bool:
        return self.timed and not self.exposure_ms

    @property
    def paired(self) -> bool:
        return self.trial_design == TrialDesign.PAIRED

    @property
    def calls(self) -> tuple[str, str]:
        """The answers a trial takes: a kind, or (paired) the side taken for synthetic."""
        return ("left", "right") if self.paired else ("real", "synthetic")

    def _check_design(self) -> None:
        if not self.timed and self.exposure_ms:
            raise ValidationError(
                {"exposure_ms": "only a timed study shows tiles for a fixed time; leave it blank"}
            )
        if self.staircase_start_ms not in timed.LADDER:
            raise ValidationError(
                {"staircase_start_ms": f"must be one of {', '.join(map(str, timed.LADDER))} ms"}
            )

    def asked_exposure(self, answered: list[tuple[int, bool]], practice: bool) -> int:
        """The exposure of a trial served after the reader's scored (exposure, right) answers
        in order: the fixed one, the staircase start for practice, else the staircase's
        (which follows the exposures recorded, should one ever differ from its own)."""
        if self.exposure_ms:
            return self.exposure_ms
        if practice:
            return self.staircase_start_ms
        return timed.next_exposure(answered, start=self.staircase_start_ms, strict=False)


def timing_flag(asked: int | None, displayed: float | None, frame: float | None,
                fetched: int) -> str:  # fmt: skip
    """Empty where a timed trial's tile was shown as asked; otherwise why not: never shown,
    shown but not reported (a closed page), or off by more than two of the page's frames.
    A tile requested again (a second window, the image's address) says so: it was sent once."""
    if asked is None:
        return ""
    if not fetched:
        return "not shown"
    again = f"; requested {fetched} times, sent once" if fetched > 1 else ""
    if displayed is None:
        return "shown, duration not reported" + again
    frame = min(max(frame or DEFAULT_FRAME_MS, 4.0), 50.0)
    if abs(displayed - asked) > FRAMES_TOLERATED * frame:
        return f"displayed {displayed:.0f} ms of {asked} ms asked" + again
    return again.lstrip("; ")
