"""Datasets of tiles and the tiles themselves (DESIGN.md, "Data conventions")."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Count

from generation.tilestore import tile_relpath

SHA256_REGEX = r"^[0-9a-f]{64}$"


class Dataset(models.Model):
    """A named set of tiles, e.g. `pcam-sample`, imported from one or more sources."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    tile_size = models.PositiveSmallIntegerField(default=96)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def counts(self) -> dict[str, dict[str, int]]:
        """Tiles per split and label: {"train": {"healthy": n, "tumour": m}, ...}."""
        result: dict[str, dict[str, int]] = {}
        rows = self.tiles.values("split", "label").annotate(n=Count("id")).order_by("split")
        for row in rows:
            labels = result.setdefault(row["split"], {name: 0 for name in Tile.Label.names_lower()})
            labels[Tile.Label(row["label"]).name.lower()] = row["n"]
        return result


class LabelChoices(models.IntegerChoices):
    HEALTHY = 0, "healthy"
    TUMOUR = 1, "tumour"

    @classmethod
    def names_lower(cls) -> list[str]:
        return [name.lower() for name in cls.names]


class TileQuerySet(models.QuerySet):
    def accepted(self) -> TileQuerySet:
        """Tiles that passed the quality filter: what training and cohorts use by default."""
        return self.filter(annotation__quality_ok=True)


class Tile(models.Model):
    """One tile, stored once per dataset as a lossless PNG named by the hash of its pixels."""

    class Kind(models.TextChoices):
        REAL = "real"
        SYNTHETIC = "synthetic"

    Label = LabelChoices

    # a real tile belongs to a dataset, a synthetic one to the cohort it was generated for
    dataset = models.ForeignKey(
        Dataset, on_delete=models.CASCADE, related_name="tiles", null=True, blank=True
    )
    cohort = models.ForeignKey(
        "Cohort", on_delete=models.CASCADE, related_name="synthetic_tiles", null=True, blank=True
    )
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the decoded RGB pixels")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REAL)
    label = models.PositiveSmallIntegerField(choices=LabelChoices.choices)
    split = models.CharField(max_length=32)
    width = models.PositiveSmallIntegerField()
    height = models.PositiveSmallIntegerField()
    source = models.CharField(
        max_length=1024,
        blank=True,
        help_text="File the pixels came from, relative to the import root",
    )
    source_index = models.IntegerField(
        null=True, blank=True, help_text="Row in an HDF5 file or line in a CSV manifest"
    )
    provenance = models.JSONField(
        default=dict, blank=True, help_text="Import run, duplicate sources; later generator details"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TileQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="tile_once_per_dataset"),
            models.UniqueConstraint(fields=["cohort", "sha256"], name="tile_once_per_cohort"),
            models.CheckConstraint(
                condition=models.Q(kind="real", dataset__isnull=False, cohort__isnull=True)
                | models.Q(kind="synthetic", dataset__isnull=True, cohort__isnull=False),
                name="tile_real_in_dataset_synthetic_in_cohort",
            ),
            models.CheckConstraint(condition=models.Q(label__in=[0, 1]), name="tile_label_0_or_1"),
            models.CheckConstraint(
                condition=models.Q(sha256__regex=SHA256_REGEX), name="tile_sha256_hex"
            ),
        ]
        indexes = [
            models.Index(fields=["dataset", "split", "label"]),
            models.Index(fields=["sha256"]),
        ]

    def __str__(self) -> str:
        owner = f"dataset {self.dataset_id}" if self.dataset_id else f"cohort {self.cohort_id}"
        return f"{owner}:{self.sha256[:12]}"

    @property
    def relpath(self) -> str:
        return tile_relpath(self.sha256).as_posix()

    @property
    def path(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.relpath


class ImportRun(models.Model):
    """One successful `import_tiles` run: where from, with what options, and its summary."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="imports")
    source = models.CharField(max_length=1024)
    format = models.CharField(max_length=16)
    options = models.JSONField(default=dict)
    summary = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.dataset} <- {self.source}"


class MorphologyClustering(models.Model):
    """K-means over one embedding of a dataset's accepted tiles, kept to assign new tiles."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="clusterings")
    embedding = models.CharField(max_length=40, help_text="morphometrics, inception or dino")
    embedding_key = models.CharField(
        max_length=80, help_text="embedding plus a checksum of its weights; keys the cache"
    )
    embedding_path = models.CharField(max_length=1024, blank=True)
    k = models.PositiveSmallIntegerField()
    seed = models.IntegerField()
    n_init = models.PositiveSmallIntegerField()
    fitted_on = models.PositiveIntegerField(help_text="accepted tiles the centres were fitted on")
    scaler_mean = models.JSONField()
    scaler_scale = models.JSONField()
    centres = models.JSONField(help_text="k x D centres in standardised space")
    inertia = models.FloatField()
    vocabulary = models.JSONField(help_text="feature bins (tertile edges) of the features prompts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "embedding_key", "k", "seed", "n_init"],
                name="one_clustering_per_setting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.dataset} / {self.embedding} k={self.k} seed={self.seed}"


class MorphologyCluster(models.Model):
    """One morphology type: its size, label mix and mean features, for the admin gallery."""

    clustering = models.ForeignKey(
        MorphologyClustering, on_delete=models.CASCADE, related_name="clusters"
    )
    index = models.PositiveSmallIntegerField()
    name = models.CharField(
        max_length=60, help_text="as the prompts say it: 'morphology type twelve'"
    )
    size = models.PositiveIntegerField(default=0)
    healthy = models.PositiveIntegerField(default=0)
    tumour = models.PositiveIntegerField(default=0)
    mean_features = models.JSONField(default=dict)

    class Meta:
        ordering = ["clustering", "index"]
        constraints = [
            models.UniqueConstraint(fields=["clustering", "index"], name="cluster_index_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.clustering})"


class TileAnnotation(models.Model):
    """What the images say about a tile: quality verdict, features, cluster, prompts."""

    tile = models.OneToOneField(
        Tile, on_delete=models.CASCADE, primary_key=True, related_name="annotation"
    )
    quality_ok = models.BooleanField(db_index=True)
    quality_reasons = models.JSONField(default=list, blank=True)
    quality = models.JSONField(help_text="statistics behind the paper's outlier rules")
    features = models.JSONField(help_text="morphometric features (generation.features)")
    clustering = models.ForeignKey(
        MorphologyClustering,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="annotations",
    )
    cluster = models.PositiveSmallIntegerField(null=True, blank=True, db_index=True)
    prompts = models.JSONField(default=dict, blank=True, help_text="scheme -> prompt")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"annotation of {self.tile_id}"


class TileEmbedding(models.Model):
    """Cached embedding of a tile's pixels (float32), shared by every dataset holding them."""

    sha256 = models.CharField(max_length=64)
    embedding_key = models.CharField(max_length=80)
    vector = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sha256", "embedding_key"], name="embedding_once")
        ]

    def __str__(self) -> str:
        return f"{self.embedding_key} of {self.sha256[:12]}"


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
    plan = models.JSONField(help_text="per synthetic position: label, cluster, prompt, seed")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class CohortMember(models.Model):
    """A tile in a cohort: the real half references dataset tiles, the synthetic half its own."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="members")
    tile = models.ForeignKey(Tile, on_delete=models.PROTECT, related_name="memberships")
    kind = models.CharField(max_length=16, choices=Tile.Kind.choices)
    position = models.PositiveIntegerField()
    label = models.PositiveSmallIntegerField(choices=LabelChoices.choices)
    cluster = models.PositiveSmallIntegerField(null=True)
    prompt = models.TextField()

    class Meta:
        ordering = ["cohort", "kind", "position"]
        constraints = [
            models.UniqueConstraint(fields=["cohort", "kind", "position"], name="member_position"),
            models.UniqueConstraint(fields=["cohort", "tile"], name="member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.cohort} {self.kind} #{self.position}"


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
