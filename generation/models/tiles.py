"""Datasets of tiles, the tiles themselves and what is derived from their pixels (DESIGN.md,
"Data conventions")."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Count

from generation.tiles.store import tile_relpath

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
        owner = f"dataset {self.dataset}" if self.dataset_id else f"cohort {self.cohort}"
        return f"{self.kind} tile {self.sha256[:12]} of {owner}"

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
    features = models.JSONField(help_text="morphometric features (generation.annotation.features)")
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
