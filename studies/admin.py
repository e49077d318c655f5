"""Researchers configure studies here: create from a cohort, pick readers, open, close, watch."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from generation.admin import thumbnail
from studies.models import Assignment, Case, Response, Study
from studies.planning import TARGET_POWER, panel


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    max_num = 0

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class AssignmentInline(ReadOnlyInline):
    model = Assignment
    fields = ["reader", "answered", "started_at", "completed_at", "seed"]
    readonly_fields = fields
    verbose_name_plural = "readers' progress"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assignment]:
        return (
            super()
            .get_queryset(request)
            .select_related("reader")
            .annotate(n_answered=Count("trials", filter=Q(trials__response__isnull=False)))
        )

    @admin.display(description="answered")
    def answered(self, obj: Assignment) -> str:
        return f"{obj.n_answered} / {obj.n_trials}"  # type: ignore[attr-defined]


class StudyForm(forms.ModelForm):
    """The admin's form (its fields come from StudyAdmin.fieldsets)."""

    def clean(self) -> dict:
        """Study.clean checks the design against every arm, before the form saves the further
        arms (a many-to-many field is saved after the study): hand it the arms chosen here."""
        cleaned = super().clean()
        if "other_arms" in self.fields and "other_arms" in cleaned:
            self.instance.pending_arms = list(cleaned["other_arms"])
        return cleaned


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    form = StudyForm
    list_display = [
        "name", "title", "cohort", "trial_design", "status", "readers_count", "progress",
        "dashboard", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "trial_design", "cohort"]
    search_fields = ["name", "title"]
    filter_horizontal = ["readers", "owners", "editors", "other_arms"]
    actions = ["open_studies", "close_studies"]
    inlines = [AssignmentInline]
    fieldsets = [
        (None, {"fields": ["name", "title", "instructions", "status"]}),
        (
            "Cases",
            {
                "fields": [
                    "cohort",
                    "other_arms",
                    "cases_per_reader",
                    ("ratio_real", "ratio_synthetic"),
                    "stratify_by_label",
                    "case_selection",
                    "practice_trials",
                    "seed",
                ]
            },
        ),
        ("Presentation", {"fields": ["response_scale", "magnification", "jpeg_quality"]}),
        (
            "Trial design",
            {
                "fields": ["trial_design", ("exposure_ms", "staircase_start_ms")],
                "description": "Paired: a real and a synthetic tile of one label side by side, "
                "the reader picks the synthetic one (cases per reader counts pairs; one cohort, "
                "every reader the same pairs; the ratio does not apply). "
                "Timed: each tile is shown for a limited time once the reader "
                "presses Space, then masked; the reader answers from what they saw. A fixed "
                "exposure gives HYPE's error rate at that exposure; without one, each reader's "
                "staircase finds their threshold exposure (the dashboard fits the curve).",
            },
        ),
        ("Analysis plan", {"fields": [("equivalence_margin", "equivalence_alpha"), "sample_size"]}),
        ("Readers", {"fields": ["readers", "reader_group"]}),
        (
            "Roles",
            {
                "fields": ["owners", "editors"],
                "description": "Owners and editors (and superusers) see this study, its answer "
                "key and its results; other staff see neither. Owners decide the roles.",
            },
        ),
        ("Dates", {"fields": ["created_at", "opened_at", "closed_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        return (
            Study.objects.for_staff(request.user)
            .select_related("cohort")
            .annotate(
                n_readers=Count("assignments", distinct=True),
                n_trials=Count("assignments__trials", distinct=True),
                n_answered=Count("cases__responses", distinct=True),
            )
        )

    @admin.display(description="sample size (TOST, true AUC 0.5)")
    def sample_size(self, obj: Study | None) -> str:
        if obj is None or obj.pk is None:
            return "Save the study to see its power."
        if obj.paired:
            return (
                "The power panel plans single-tile studies (AUC within the margin of 0.5). For a "
                "paired study, readers at chance reach the equivalence verdict at margin 0.1 in "
                "every one of 200 simulated studies of 20 readers x 100 pairs (docs/BENCHMARKS.md)."
            )
        p = panel(obj)
        configured = (
            format_html("As configured ({} readers x {} cases{}): power {}.", p.configured.readers,
                        p.configured.cases,
                        f", per arm: every real tile and 1/{p.arms} of the synthetic ones"
                        if p.arm_cases else "",
                        f"{p.configured.power:.0%}")
            if p.configured else p.problem
        )  # fmt: skip
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((s.readers, s.cases, f"{s.power:.0%}") for s in p.smallest),
        )  # fmt: skip
        return format_html(
            '<p>{}</p><table id="sample-size"><thead><tr><th>readers</th><th>cases each</th>'
            "<th>power</th></tr></thead><tbody>{}</tbody></table><p>The fewest cases per reader "
            "count that reach {} power to show the readers' AUC within {} of 0.5 at alpha {}, "
            "every reader reading the same cases. Variance components: {}.</p>",
            configured, rows, f"{TARGET_POWER:.0%}", obj.equivalence_margin,
            obj.equivalence_alpha, p.planning.source,
        )  # fmt: skip

    def get_deleted_objects(self, objs, request: HttpRequest):
        """A study with answers is kept for the record: say so, instead of Django's "your
        account doesn't have permission to delete ... response" (answers are protected)."""
        to_delete, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        answered = [
            f"{study}: {n} answer{'s' if n != 1 else ''}. A study with answers cannot be "
            "deleted, so that its results stay reproducible; close it instead."
            for study in objs
            if (n := Response.objects.filter(case__study=study).count())
        ]
        if answered:
            return to_delete, counts, set(), answered
        return to_delete, counts, perms_needed, protected

    def get_readonly_fields(self, request: HttpRequest, obj: Study | None = None) -> list[str]:
        always = ["status", "created_at", "opened_at", "closed_at", "sample_size"]
        roles = [] if obj is None or self._owns(request, obj) else ["owners", "editors"]
        locked = list(obj.locked_fields() if obj else ())
        arms = ["other_arms"] if locked else []  # frozen with the design (Study, m2m_changed)
        return always + roles + locked + arms

    @staticmethod
    def _owns(request: HttpRequest, obj: Study) -> bool:
        return request.user.is_superuser or obj.owners.filter(pk=request.user.pk).exists()

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        """Whoever creates a study owns it (and can then add owners and editors)."""
        super().save_related(request, form, formsets, change)
        form.instance.__dict__.pop("pending_arms", None)  # saved: read them back from now on
        if not change and not request.user.is_superuser:
            form.instance.owners.add(request.user)
        self._assign_readers(form.instance)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("instructions", DEFAULT_INSTRUCTIONS)
        return initial

    def _assign_readers(self, study: Study) -> None:
        if study.status == Study.Status.OPEN:
            for reader in study.eligible_readers():
                study.assignment_for(reader)  # readers added to an open study get their trials

    @admin.display(description="results")
    def dashboard(self, obj: Study) -> str:
        return format_html('<a href="{}">dashboard</a>', reverse("dashboards:study", args=[obj.pk]))

    @admin.display(description="readers")
    def readers_count(self, obj: Study) -> int:
        return obj.n_readers  # type: ignore[attr-defined]

    @admin.display(description="answered")
    def progress(self, obj: Study) -> str:
        return f"{obj.n_answered} / {obj.n_trials}"  # type: ignore[attr-defined]

    @admin.action(description="Open the selected studies (build cases, assign readers)")
    def open_studies(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            try:
                study.open()
            except ValidationError as exc:
                self.message_user(request, f"{study}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                n = study.assignments.count()
                self.message_user(request, f"{study} is open; {n} readers have their trials.")

    @admin.action(description="Close the selected studies (no more answers)")
    def close_studies(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset.filter(status=Study.Status.OPEN):
            study.close()
            self.message_user(request, f"{study} is closed.")


DEFAULT_INSTRUCTIONS = (
    "Some of the tiles you will see are real H&E tissue tiles from lymph node sections; the "
    "others were generated by a computer model. Decide which tiles are synthetic (the page "
    "says how to answer). Judge the tissue only; all tiles have been processed the same way."
)  # neutral about confidence: the page's "How to answer" follows the study's response scale


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "kind", "label", "practice", "thumb", "responses_count"]
    list_filter = [("study", admin.RelatedOnlyFieldListFilter), "kind", "label", "practice"]
    readonly_fields = ["study", "member", "tile", "kind", "label", "practice", "large_thumb"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Case]:
        return (  # a case's kind is the answer key: only on studies this account has a role on
            super()
            .get_queryset(request)
            .filter(study__in=Study.objects.for_staff(request.user))
            .select_related("study", "tile")
            .annotate(n_responses=Count("responses"))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # built when a study opens

    @admin.display(description="tile")
    def thumb(self, obj: Case) -> str:
        return thumbnail(obj.tile)

    @admin.display(description="tile")
    def large_thumb(self, obj: Case) -> str:
        return thumbnail(obj.tile, scale=4)

    @admin.display(description="responses", ordering="n_responses")
    def responses_count(self, obj: Case) -> int:
        return obj.n_responses  # type: ignore[attr-defined]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["answered_at", "reader", "study", "truth", "call", "confidence", "seconds"]
    list_filter = [("case__study", admin.RelatedOnlyFieldListFilter), "call", "case__kind"]
    search_fields = ["reader__username"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Response]:
        return (
            super()
            .get_queryset(request)
            .filter(case__study__in=Study.objects.for_staff(request.user))
            .select_related("reader", "case__study", "trial")  # truth reads the trial
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # answers are never edited

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(ordering="case__study")
    def study(self, obj: Response) -> str:
        return str(obj.case.study)

    @admin.display(ordering="case__kind")
    def truth(self, obj: Response) -> str:
        side = " (synthetic side)" if obj.trial.pair_id is not None else ""
        return format_html("<strong>{}</strong>{}", obj.truth, side)

    @admin.display(description="seconds")
    def seconds(self, obj: Response) -> str:
        return f"{obj.seconds:.1f}"
