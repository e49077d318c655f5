"""REST API for staff: studies with their arms and every response with its truth, for the
owners and editors of a study (and superusers)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse

from studies.api import REFUSED
from studies.models import Response, Study


class StudySerializer(serializers.ModelSerializer):
    cohort = serializers.CharField(source="cohort.name")
    arms = serializers.SerializerMethodField(help_text="the cohorts read: the first, then others")

    def get_arms(self, study: Study) -> list[str]:
        return [cohort.name for cohort in study.arm_cohorts()]

    class Meta:
        model = Study
        fields = [
            "id",
            "name",
            "title",
            "status",
            "cohort",
            "arms",
            "cases_per_reader",
            "ratio_real",
            "ratio_synthetic",
            "practice_trials",
            "response_scale",
            "trial_design",
            "exposure_ms",
            "seed",
            "opened_at",
            "closed_at",
        ]


class ResultSerializer(serializers.ModelSerializer):
    reader = serializers.CharField(source="reader.get_username")
    case = serializers.IntegerField(source="case_id")
    truth = serializers.CharField(
        help_text="the right call: the tile's kind, or (paired) the synthetic tile's side"
    )
    label = serializers.IntegerField(source="case.label")
    tile_sha256 = serializers.CharField(source="case.tile.sha256")
    position = serializers.IntegerField(source="trial.position")
    practice = serializers.BooleanField(source="trial.practice")
    seconds = serializers.FloatField()
    exposure_ms = serializers.IntegerField(source="trial.exposure_ms", allow_null=True)
    displayed_ms = serializers.FloatField(source="trial.displayed_ms", allow_null=True)
    pair = serializers.IntegerField(source="trial.pair_id", allow_null=True)
    partner_tile_sha256 = serializers.SerializerMethodField(
        help_text="paired: the pair's real tile (tile_sha256 is its synthetic one)"
    )

    def get_partner_tile_sha256(self, obj: Response) -> str | None:
        return obj.trial.pair.real.tile.sha256 if obj.trial.pair_id else None

    class Meta:
        model = Response
        fields = [
            "reader",
            "case",
            "truth",
            "label",
            "tile_sha256",
            "position",
            "practice",
            "call",
            "confidence",
            "served_at",
            "answered_at",
            "seconds",
            "exposure_ms",
            "displayed_ms",
            "pair",
            "partner_tile_sha256",
        ]


@extend_schema_view(
    list=extend_schema(responses={200: StudySerializer(many=True), **REFUSED}),
    retrieve=extend_schema(responses={200: StudySerializer, **REFUSED}),
)
class StaffStudyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Studies with their ground truth: staff only."""

    permission_classes = [permissions.IsAdminUser]
    serializer_class = StudySerializer
    queryset = Study.objects.select_related("cohort").prefetch_related("other_arms")

    def get_queryset(self):
        if self.action == "list":  # only the studies this account has a role on
            studies = Study.objects.for_staff(self.request.user)
            return studies.select_related("cohort").prefetch_related("other_arms")
        return super().get_queryset()

    def get_object(self) -> Study:
        study = super().get_object()
        if not Study.objects.for_staff(self.request.user).filter(pk=study.pk).exists():
            raise PermissionDenied("you have no role on this study (owner or editor)")
        return study

    @extend_schema(responses={200: ResultSerializer(many=True), **REFUSED})
    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str | None = None) -> ApiResponse:
        """Every response of the study with truth, in answer order."""
        study = self.get_object()
        rows = Response.objects.filter(case__study=study).select_related(
            "reader", "case__tile", "trial__pair__real__tile"
        )
        return ApiResponse(ResultSerializer(rows, many=True).data)
