"""Admin for the synthetic side: generators, cohorts, and the results measured on them."""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from generation.admin.tiles import thumbnail
from generation.models import (
    Cohort,
    CohortMember,
    Experiment,
    FidResult,
    Generator,
    Tile,
    UtilityResult,
)


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
        return format_html(  # readable at the page's width; the link opens it at full size
            '<a href="{}" title="open at full size"><img src="{}" width="{}" alt="{} of {}" '
            'class="generator-preview"></a>', url, url, width, kind, obj.name,
        )  # fmt: skip

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

    @admin.display(description="prompt")
    def prompt(self, obj: CohortMember) -> str:
        # the cohort's plan is read once a page (an inline is made afresh for each request)
        cached = getattr(self, "_prompts", None)
        if cached is None or cached[0] != obj.cohort_id:
            cached = self._prompts = (obj.cohort_id, Cohort.objects.get(pk=obj.cohort_id).prompts)
        return cached[1][obj.position]

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
    actions = ["study_of_arms"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by generate_cohort

    @admin.action(description="Create one reader study with the selected cohorts as its arms")
    def study_of_arms(self, request: HttpRequest, queryset: QuerySet[Cohort]) -> HttpResponse:
        """The paper's comparison as one study: the study form, its first arm and further arms
        filled in (the form checks them when it is saved)."""
        cohorts = list(queryset.order_by("pk").values_list("pk", flat=True))
        others = ",".join(map(str, cohorts[1:]))
        url = reverse("admin:studies_study_add") + f"?cohort={cohorts[0]}&other_arms={others}"
        return HttpResponseRedirect(url)

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
