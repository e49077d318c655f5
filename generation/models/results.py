"""What the evaluations measured: FID/KID rows with their floors, a generator's fidelity
profile, classifier utility and the experiments that group them."""

from __future__ import annotations

from django.db import models

from generation.models.generators import Cohort, Generator
from generation.models.tiles import Dataset, LabelChoices


class FidResultQuerySet(models.QuerySet):
    def paper_table(self) -> list[dict]:
        """The latest result per (generator, scheme, label, reference set), each with the
        real-vs-real floor measured beside it."""
        latest: dict[tuple, FidResult] = {}
        rows = (
            self.filter(floor=False)
            .select_related("generator")
            .prefetch_related("floors")
            .order_by("created_at")
        )
        for r in rows:
            latest[(r.generator_id, r.label, r.set_b)] = r

        def order(r: FidResult) -> tuple:
            name, scheme = (r.generator.name, r.generator.scheme) if r.generator else ("", "")
            return (name, scheme, r.label is not None, r.label or 0)

        return [{"result": r, "floor": r.floor_row} for r in sorted(latest.values(), key=order)]


class FidResult(models.Model):
    """One FID/KID measurement between two tile sets, with how it was measured."""

    name = models.CharField(max_length=300, help_text="set A vs set B, as the command printed it")
    cohort = models.ForeignKey(
        Cohort, null=True, blank=True, on_delete=models.CASCADE, related_name="fid_results"
    )
    generator = models.ForeignKey(
        Generator,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fid_results",
        help_text="the cohort's generator; empty: real vs real",
    )
    label = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=LabelChoices.choices, help_text="empty: both labels"
    )
    floor = models.BooleanField(default=False, help_text="real vs real: the floor to beat")
    floor_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,  # the floor is a measurement of its own: kept
        related_name="floors",
        help_text="a floor row: the comparison it was measured beside (same run, label, sizes)",
    )
    set_a = models.CharField(max_length=200)
    set_b = models.CharField(max_length=200)
    n_a = models.PositiveIntegerField()
    n_b = models.PositiveIntegerField()
    fid = models.FloatField()
    kid_mean = models.FloatField()
    kid_std = models.FloatField()
    precision = models.FloatField(null=True, blank=True, help_text="improved precision, k = 3")
    recall = models.FloatField(null=True, blank=True, help_text="improved recall, k = 3")
    kid_subsets = models.PositiveIntegerField()
    kid_subset_size = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    extractor = models.CharField(max_length=100)
    weights_sha256 = models.CharField(max_length=64)
    preprocessing = models.CharField(max_length=200)
    warning = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FidResultQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name}: FID {self.fid:.1f}"

    @property
    def floor_row(self) -> FidResult | None:
        """The latest floor measured beside this comparison (prefetch `floors` for many)."""
        return max(self.floors.all(), key=lambda f: f.created_at, default=None)


class FidelityEvaluation(models.Model):
    """Everything `evaluate_generator` measured of one cohort of a generator, against held-out
    real tiles: the cohort's real half is the reference, and a second draw of held-out real
    tiles of the same strata and size gives the floor (what a perfect generator would score)
    and the autoencoder's reconstruction ceiling."""

    generator = models.ForeignKey(Generator, on_delete=models.CASCADE, related_name="evaluations")
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="evaluations")
    n_synthetic = models.PositiveIntegerField()
    n_real = models.PositiveIntegerField(help_text="the reference: the cohort's real half")
    n_floor = models.PositiveIntegerField(help_text="the second real draw (floor, rFID)")
    seed = models.BigIntegerField()
    # image quality (Inception-v3 pool features, the reference preprocessing)
    fid = models.FloatField()
    kid = models.FloatField()
    precision = models.FloatField(null=True, blank=True)  # undefined at 3 tiles or fewer
    recall = models.FloatField(null=True, blank=True)
    floor_fid = models.FloatField()
    floor_kid = models.FloatField()
    floor_precision = models.FloatField(null=True, blank=True)
    floor_recall = models.FloatField(null=True, blank=True)
    # the autoencoder alone: encode-decode of the floor draw
    rfid = models.FloatField(null=True, blank=True)
    psnr = models.FloatField(null=True, blank=True)
    ssim = models.FloatField(null=True, blank=True)
    # does a tile show what its prompt asked for
    label_auc = models.FloatField(
        null=True, blank=True, help_text="real-trained tumour classifier on synthetic tiles"
    )
    label_auc_low = models.FloatField(null=True, blank=True)
    label_auc_high = models.FloatField(null=True, blank=True)
    label_auc_real = models.FloatField(
        null=True, blank=True, help_text="the same classifier on the reference tiles"
    )
    morphology_share = models.FloatField(
        null=True, blank=True, help_text="synthetic tiles in their prompted cluster"
    )
    morphology_low = models.FloatField(null=True, blank=True)
    morphology_high = models.FloatField(null=True, blank=True)
    morphology_chance = models.FloatField(
        null=True, blank=True, help_text="the share chance agreement would give"
    )
    # can a machine tell them apart after the presentation pipeline (positive = synthetic)
    reader_auc = models.FloatField(null=True, blank=True, help_text="CNN, out of fold")
    reader_auc_low = models.FloatField(null=True, blank=True)
    reader_auc_high = models.FloatField(null=True, blank=True)
    statistics_reader_auc = models.FloatField(
        null=True, blank=True, help_text="logistic regression on image statistics, out of fold"
    )
    utility = models.ForeignKey(
        "UtilityResult",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="evaluations",
        help_text="a classifier trained on the synthetic half alone, tested on real tiles",
    )
    details = models.JSONField(default=dict, help_text="per-label rows, settings, timings")
    seconds = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.cohort}: FID {self.fid:.1f} (floor {self.floor_fid:.1f})"


class Experiment(models.Model):
    """One run of `manage.py run_experiment`: its options, the state of each step, its report."""

    name = models.SlugField(max_length=100, unique=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="experiments")
    options = models.JSONField(help_text="what it was started with; a resume must match")
    steps = models.JSONField(default=dict, help_text="step -> {done, seconds, detail}")
    report = models.TextField(blank=True, help_text="the Markdown report, once finished")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return self.name


class UtilityResult(models.Model):
    """A tumour classifier trained on real, synthetic or mixed tiles, scored on held-out real
    tiles (positive = tumour): one arm of the utility comparison, one seed."""

    class Arm(models.TextChoices):
        REAL = "real"
        SYNTHETIC = "synthetic"
        MIXED = "mixed"

    arm = models.CharField(max_length=16, choices=Arm.choices)
    cohort = models.ForeignKey(
        Cohort, null=True, blank=True, on_delete=models.CASCADE, related_name="utility_results"
    )
    generator = models.ForeignKey(
        Generator,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="utility_results",
        help_text="the cohort's generator; empty: trained on real tiles only",
    )
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.SET_NULL, related_name="utility"
    )
    step = models.CharField(max_length=60, blank=True, help_text="the experiment step it answers")
    train_dataset = models.CharField(max_length=100, blank=True)
    train_split = models.CharField(max_length=32, blank=True)
    synthetic_share = models.FloatField(help_text="share of each batch drawn from synthetic tiles")
    n_real = models.PositiveIntegerField()
    n_synthetic = models.PositiveIntegerField()
    test_dataset = models.CharField(max_length=100)
    test_split = models.CharField(max_length=32)
    n_test = models.PositiveIntegerField()
    n_test_tumour = models.PositiveIntegerField()
    preset = models.CharField(max_length=20)
    seed = models.BigIntegerField()
    config = models.JSONField()
    steps = models.PositiveIntegerField(help_text="optimiser steps actually taken")
    stopped_early = models.BooleanField(default=False)
    seconds = models.FloatField()
    device = models.CharField(max_length=20)
    final_loss = models.FloatField(null=True)
    auc = models.FloatField()
    auc_se = models.FloatField()
    auc_low = models.FloatField()
    auc_high = models.FloatField()
    accuracy = models.FloatField()
    accuracy_low = models.FloatField()
    accuracy_high = models.FloatField()
    sensitivity = models.FloatField()
    sensitivity_low = models.FloatField()
    sensitivity_high = models.FloatField()
    specificity = models.FloatField()
    specificity_low = models.FloatField()
    specificity_high = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(synthetic_share__gte=0, synthetic_share__lte=1),
                name="utility_share_in_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.arm_name}: AUC {self.auc:.3f}"

    @property
    def scheme(self) -> str:
        """The prompt scheme of the generator whose tiles it trained on; empty for real only."""
        return self.generator.scheme if self.generator else ""

    @property
    def arm_name(self) -> str:
        """'real', 'synthetic (morphology)', 'mixed 50% (morphology)'."""
        if self.arm == self.Arm.REAL:
            return "real"
        tag = f" ({self.scheme})" if self.generator_id else ""
        if self.arm == self.Arm.MIXED:
            return f"mixed {self.synthetic_share:.0%} synthetic{tag}"
        return f"synthetic{tag}"
