"""Admin for the real side: datasets, tiles with their annotations, morphology clusters."""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from generation.models import (
    Dataset,
    ImportRun,
    MorphologyCluster,
    MorphologyClustering,
    Tile,
    TileAnnotation,
)


def thumbnail(tile: Tile, scale: int = 1) -> str:
    size = 96 * scale
    return format_html(
        '<img src="{}" width="{}" height="{}" alt="tile {}" class="tile-thumb">',
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
