from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from generation.models import (
    Cohort,
    CohortMember,
    Dataset,
    Experiment,
    FidResult,
    Generator,
    ImportRun,
    MorphologyCluster,
    MorphologyClustering,
    Tile,
    TileAnnotation,
    UtilityResult,
)


def thumbnail(tile: Tile, scale: int = 1) -> str:
    size = 96 * scale
    return format_html(
        '<img src="{}" width="{}" height="{}" alt="tile {}" style="image-rendering: pixelated">',
        reverse("generation:tile-image", args=[tile.pk]),
        size,
        size,
        tile.pk,
    )


class ImportRunInline(admin.TabularInline):
    model = ImportRun
    extra = 0
    can_delete = False
    fields = ["created_at", "source", "format", "summary"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "tile_size", "tile_count", "split_label_counts", "created_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "split_label_counts"]
    inlines = [ImportRunInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dataset]:
        return super().get_queryset(request).annotate(n_tiles=Count("tiles"))

    @admin.display(description="tiles", ordering="n_tiles")
    def tile_count(self, obj: Dataset) -> int:
        return obj.n_tiles  # type: ignore[attr-defined]

    @admin.display(description="split: healthy / tumour")
    def split_label_counts(self, obj: Dataset) -> str:
        return "; ".join(f"{s}: {c['healthy']} / {c['tumour']}" for s, c in obj.counts().items())


@admin.register(Tile)
class TileAdmin(admin.ModelAdmin):
    list_display = ["id", "thumb", "dataset", "kind", "label", "split", "source", "short_sha"]
    list_filter = ["label", "kind", "split", "dataset"]
    list_select_related = ["dataset"]
    search_fields = ["sha256", "source"]
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) on a few hundred thousand tiles is slow
    readonly_fields = [
        "large_thumb",
        "dataset",
        "cohort",
        "sha256",
        "kind",
        "label",
        "split",
        "width",
        "height",
        "source",
        "source_index",
        "provenance",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tiles come from import_tiles or generate_cohort, with provenance

    @admin.display(description="tile")
    def thumb(self, obj: Tile) -> str:
        return thumbnail(obj)

    @admin.display(description="tile (4x)")
    def large_thumb(self, obj: Tile) -> str:
        return thumbnail(obj, scale=4)

    @admin.display(description="sha256")
    def short_sha(self, obj: Tile) -> str:
        return obj.sha256[:12]


class TileAnnotationInline(admin.StackedInline):
    model = TileAnnotation
    can_delete = False
    fields = [
        "quality_ok",
        "quality_reasons",
        "cluster",
        "clustering",
        "prompts",
        "feature_table",
        "quality_table",
    ]
    readonly_fields = fields

    @admin.display(description="features")
    def feature_table(self, obj: TileAnnotation) -> str:
        return _number_table(obj.features)

    @admin.display(description="quality measures")
    def quality_table(self, obj: TileAnnotation) -> str:
        return _number_table(obj.quality)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _number_table(values: dict | None) -> str:
    """A JSON object of measurements as a two-column table, numbers to 4 significant digits."""
    if not values:
        return "-"

    def shown(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = format_html_join(
        "", "<tr><th>{}</th><td>{}</td></tr>", ((k, shown(v)) for k, v in values.items())
    )
    return format_html('<table class="numbers"><tbody>{}</tbody></table>', rows)


TileAdmin.inlines = [TileAnnotationInline]
TileAdmin.list_filter = [*TileAdmin.list_filter, "annotation__quality_ok", "annotation__cluster"]


class MorphologyClusterInline(admin.TabularInline):
    model = MorphologyCluster
    extra = 0
    can_delete = False
    fields = ["index", "name", "size", "healthy", "tumour"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(MorphologyClustering)
class MorphologyClusteringAdmin(admin.ModelAdmin):
    list_display = ["dataset", "embedding", "k", "seed", "n_init", "fitted_on", "created_at"]
    list_filter = ["dataset", "embedding"]
    readonly_fields = [
        "dataset",
        "embedding",
        "embedding_key",
        "embedding_path",
        "k",
        "seed",
        "n_init",
        "fitted_on",
        "inertia",
        "vocabulary",
        "created_at",
    ]
    exclude = ["scaler_mean", "scaler_scale", "centres"]
    inlines = [MorphologyClusterInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # fitted by annotate_tiles


@admin.register(MorphologyCluster)
class MorphologyClusterAdmin(admin.ModelAdmin):
    """What 'morphology type twelve' looks like: sample tiles, size, label mix, mean features."""

    list_display = ["name", "clustering", "size", "healthy", "tumour", "tumour_share"]
    list_filter = ["clustering__dataset", "clustering"]
    list_select_related = ["clustering__dataset"]
    readonly_fields = [
        "clustering",
        "index",
        "name",
        "size",
        "healthy",
        "tumour",
        "gallery",
        "features_table",
    ]
    exclude = ["mean_features"]
    GALLERY = 24

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="tumour share")
    def tumour_share(self, obj: MorphologyCluster) -> str:
        return f"{obj.tumour / obj.size:.0%}" if obj.size else "-"

    @admin.display(description="sample tiles (healthy first, then tumour)")
    def gallery(self, obj: MorphologyCluster) -> str:
        members = Tile.objects.filter(
            annotation__clustering=obj.clustering, annotation__cluster=obj.index
        ).order_by("label", "sha256")  # sha order: a stable, unbiased sample
        half = self.GALLERY // 2
        tiles = [*members.filter(label=0)[:half], *members.filter(label=1)[:half]]
        return format_html_join(
            "",
            '<a href="{}" title="{}">{}</a> ',
            (
                (
                    reverse("admin:generation_tile_change", args=[t.pk]),
                    t.get_label_display(),
                    thumbnail(t),
                )
                for t in tiles
            ),
        )

    @admin.display(description="mean features")
    def features_table(self, obj: MorphologyCluster) -> str:
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>", sorted(obj.mean_features.items())
        )
        return format_html("<table>{}</table>", rows)


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "backbone",
        "scheme",
        "preset",
        "dataset",
        "tiles_trained",
        "unet_steps",
        "final_loss",
        "created_at",
    ]
    list_filter = ["backbone", "scheme", "preset"]
    readonly_fields = [
        "name",
        "backbone",
        "scheme",
        "preset",
        "dataset",
        "split",
        "tiles_trained",
        "training_tiles_recorded",
        "vae_steps",
        "unet_steps",
        "wall_seconds",
        "final_loss",
        "path",
        "weights_sha256",
        "created_at",
        "samples",
        "losses",
        "config",
    ]
    # a relation of up to every tile in the database: shown as a count, never edited here
    exclude = ["training_tiles"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by train_generator

    @admin.display(description="training tiles recorded (held out of its cohorts)")
    def training_tiles_recorded(self, obj: Generator) -> int:
        return obj.training_tiles.count()

    def _preview(self, obj: Generator, kind: str, width: int) -> str:
        url = reverse("generation:generator-preview", args=[obj.pk, kind])
        return format_html('<img src="{}" width="{}" alt="{} of {}">', url, width, kind, obj.name)

    @admin.display(description="samples (seeds 0-15, most common prompts)")
    def samples(self, obj: Generator) -> str:
        return self._preview(obj, "samples", 900)

    @admin.display(description="training loss")
    def losses(self, obj: Generator) -> str:
        return self._preview(obj, "loss", 800)


class CohortMemberInline(admin.TabularInline):
    model = CohortMember
    extra = 0
    can_delete = False
    fields = ["kind", "position", "label", "cluster", "prompt", "thumb"]
    readonly_fields = fields
    ordering = ["kind", "position"]
    max_num = 0

    @admin.display(description="tile")
    def thumb(self, obj: CohortMember) -> str:
        return thumbnail(obj.tile)


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "generator",
        "real_dataset",
        "split",
        "size",
        "steps",
        "guidance",
        "scheduler",
        "completed_at",
    ]
    list_filter = ["generator", "real_dataset"]
    readonly_fields = [
        "name",
        "generator",
        "real_dataset",
        "split",
        "size",
        "seed",
        "steps",
        "guidance",
        "scheduler",
        "created_at",
        "completed_at",
        "composition",
        "new_study",
    ]
    exclude = ["plan"]
    inlines = [CohortMemberInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by generate_cohort

    @admin.display(description="reader study")
    def new_study(self, obj: Cohort) -> str:
        if obj.completed_at is None:
            return "available once generation completes"
        url = reverse("admin:studies_study_add") + f"?cohort={obj.pk}"
        return format_html('<a href="{}">Create a reader study from this cohort</a>', url)

    @admin.display(description="composition: tiles per kind x label x cluster")
    def composition(self, obj: Cohort) -> str:
        rows = (
            obj.members.values("kind", "label", "cluster")
            .annotate(n=Count("id"))
            .order_by("cluster", "label", "kind")
        )
        cells = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r["cluster"], Tile.Label(r["label"]).label, r["kind"], r["n"]) for r in rows),
        )
        return format_html(
            "<table><tr><th>cluster</th><th>label</th><th>kind</th><th>tiles</th></tr>{}</table>",
            cells,
        )


@admin.register(FidResult)
class FidResultAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "set_a",
        "set_b",
        "label",
        "floor",
        "n_a",
        "n_b",
        "fid",
        "kid_mean",
    ]
    list_filter = ["floor", "generator", "generator__scheme", "label"]
    readonly_fields = [f.name for f in FidResult._meta.fields]
    list_select_related = ["generator"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by compute_fid


@admin.register(UtilityResult)
class UtilityResultAdmin(admin.ModelAdmin):
    list_display = ["created_at", "arm", "scheme", "cohort", "n_real", "n_synthetic", "n_test",
                    "seed", "auc", "auc_low", "auc_high", "accuracy", "steps"]  # fmt: skip
    list_filter = ["arm", "generator__scheme", "preset", "test_dataset"]
    readonly_fields = [f.name for f in UtilityResult._meta.fields]
    list_select_related = ["generator", "cohort"]

    @admin.display(description="scheme", ordering="generator__scheme")
    def scheme(self, obj: UtilityResult) -> str:
        return obj.scheme

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by evaluate_utility


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "started_at", "finished_at", "dashboard"]
    readonly_fields = [f.name for f in Experiment._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by run_experiment

    @admin.display(description="dashboard")
    def dashboard(self, obj: Experiment) -> str:
        url = reverse("dashboards:experiment", args=[obj.name])
        return format_html('<a href="{}">results</a>', url)
