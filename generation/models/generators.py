"""Trained generators and the cohorts they made: real tiles paired with synthetic ones."""

from __future__ import annotations

from functools import cached_property

from django.db import models

from generation.models.tiles import Dataset, LabelChoices, Tile


class Generator(models.Model):
    """A trained generator: a loadable pipeline folder plus how it was made."""

    name = models.SlugField(max_length=100, unique=True)
    backbone = models.CharField(max_length=20)
    scheme = models.CharField(max_length=20, help_text="prompt scheme it was trained on")
    preset = models.CharField(max_length=20)
    config = models.JSONField()
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="generators")
    split = models.CharField(max_length=32)
    tiles_trained = models.PositiveIntegerField()
    vae_steps = models.PositiveIntegerField()
    unet_steps = models.PositiveIntegerField()
    wall_seconds = models.FloatField()
    final_loss = models.FloatField(null=True)
    path = models.CharField(max_length=1024, help_text="pipeline folder")
    weights_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    # held out of every cohort and evaluation of this generator (by pixel hash, so a copy of a
    # training tile in another dataset is held out too)
    training_tiles = models.ManyToManyField(Tile, related_name="trained_generators", blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Cohort(models.Model):
    """Real tiles of a split and synthetic tiles generated for the same strata, with the plan."""

    name = models.SlugField(max_length=100, unique=True)
    generator = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="cohorts")
    real_dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="cohorts")
    split = models.CharField(max_length=32)
    size = models.PositiveIntegerField(help_text="tiles per half (real and synthetic)")
    seed = models.BigIntegerField()
    steps = models.PositiveSmallIntegerField()
    guidance = models.FloatField()
    scheduler = models.CharField(max_length=16)
    # the one record of the prompt each position was generated with (its members and tiles
    # read it here); a tile's annotation may be recomputed later, the cohort keeps what it asked
    plan = models.JSONField(help_text="per synthetic position: label, cluster, prompt, seed")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @cached_property
    def prompts(self) -> dict[int, str]:
        """Position -> the prompt its synthetic tile was generated with (its real tile's
        prompt under the generator's scheme when the cohort was planned)."""
        return {int(p["position"]): p["prompt"] for p in self.plan}


class CohortMember(models.Model):
    """A tile in a cohort: the real half references dataset tiles, the synthetic half its own."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="members")
    tile = models.ForeignKey(Tile, on_delete=models.PROTECT, related_name="memberships")
    kind = models.CharField(max_length=16, choices=Tile.Kind.choices)
    position = models.PositiveIntegerField()
    label = models.PositiveSmallIntegerField(choices=LabelChoices.choices)
    cluster = models.PositiveSmallIntegerField(null=True)

    class Meta:
        ordering = ["cohort", "kind", "position"]
        constraints = [
            models.UniqueConstraint(fields=["cohort", "kind", "position"], name="member_position"),
            models.UniqueConstraint(fields=["cohort", "tile"], name="member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.cohort} {self.kind} #{self.position}"

    @property
    def prompt(self) -> str:
        """The prompt of its position in the cohort's plan: the one its synthetic tile was
        generated with, which its real counterpart's annotation gave."""
        return self.cohort.prompts[self.position]
