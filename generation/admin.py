from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from generation.models import Dataset, ImportRun, Tile


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
