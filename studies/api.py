"""REST API for readers: their assignments, next trial, answers, progress and what the trial
page measured (studies.api_staff has the staff's study results).

Denies by default (settings: IsAuthenticated); the reader is always request.user, never a
field of the payload. Reader payloads carry tokens and progress only: no kind, label, tile,
cohort or generator. Staff endpoints add the truth.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse

from studies.models import AnswerLocked, Assignment, Call, Response, Study, Trial
from studies.paired import SIDES
from studies.views import next_url


class BoundedJSONParser(JSONParser):
    """JSON bodies only; nesting too deep for the decoder is bad JSON (400), not a crash.

    The stock parser catches ValueError only, so the decoder's RecursionError on `[[[[...`
    would be a 500. Size is bounded before parsing: DRF reads request.body, which refuses a
    body past DATA_UPLOAD_MAX_MEMORY_SIZE."""

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: dict | None = None
    ) -> object:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


# The refusals every endpoint gives, documented so that clients (and the schemathesis tests)
# can tell an expected refusal from a bug. Unauthenticated requests are 403, not 401: session
# authentication comes first and sends no WWW-Authenticate challenge.
REFUSED = {
    403: OpenApiResponse(ErrorSerializer, description="not signed in, or not allowed here"),
    404: OpenApiResponse(ErrorSerializer, description="no such id for the signed-in user"),
}
INVALID = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="invalid body: field -> messages"),
}


class ProgressSerializer(serializers.Serializer):
    answered = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.IntegerField()


class AssignmentSerializer(serializers.ModelSerializer):
    title = serializers.CharField(source="study.title")
    instructions = serializers.CharField(source="study.instructions")
    status = serializers.CharField(source="study.status")
    response_scale = serializers.CharField(source="study.response_scale")
    progress = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = [
            "token",
            "title",
            "instructions",
            "status",
            "response_scale",
            "progress",
            "started_at",
            "completed_at",
            "url",
        ]

    @extend_schema(responses=ProgressSerializer)
    def get_progress(self, obj: Assignment) -> dict:
        return ProgressSerializer(obj.progress()).data

    def get_url(self, obj: Assignment) -> str:
        return reverse("studies:instructions", args=[obj.token])


class TrialSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    pair_image_urls = serializers.SerializerMethodField()
    magnification = serializers.IntegerField(source="assignment.study.magnification")
    exposure_ms = serializers.IntegerField(
        allow_null=True, help_text="timed studies: show the tile this long, then mask it (its "
        "image is sent once; report the displayed time to display/); null: no time limit",
    )  # fmt: skip

    class Meta:
        model = Trial
        fields = ["token", "position", "practice", "image_url", "pair_image_urls",
                  "magnification", "served_at", "exposure_ms"]  # fmt: skip

    @extend_schema_field({"type": "string", "nullable": True})
    def get_image_url(self, obj: Trial) -> str | None:
        if obj.pair_id is not None:
            return None
        return reverse("studies:image", args=[obj.assignment.token, obj.token])

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {"left": {"type": "string"}, "right": {"type": "string"}},
        }
    )
    def get_pair_image_urls(self, obj: Trial) -> dict | None:
        """Paired studies: the two tiles by side (answer with the side taken for synthetic)."""
        if obj.pair_id is None:
            return None
        args = [obj.assignment.token, obj.token]
        return {side: reverse("studies:image-side", args=[*args, side]) for side in SIDES}


class NextSerializer(serializers.Serializer):
    done = serializers.BooleanField()
    trial = TrialSerializer(allow_null=True)
    progress = ProgressSerializer()


class ConfidenceField(serializers.IntegerField):
    """1-5 as a JSON integer or one ASCII digit, as the trial page's form takes it: int()
    alone would also take a full-width digit, padding or '+3'."""

    default_error_messages = {"invalid": "Expected 1, 2, 3, 4 or 5."}

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not (
            isinstance(data, int) or (isinstance(data, str) and re.fullmatch(r"[1-5]", data))
        ):
            self.fail("invalid")
        return super().to_internal_value(data)


@contextmanager
def refused_as_400() -> Iterator[None]:
    """A reader's request the model refuses, as the API's 400: an unknown or unserved trial,
    or a Django ValidationError with its fields."""
    try:
        yield
    except Trial.DoesNotExist:
        raise ValidationError(
            {"trial": "no served trial with this id in this assignment"}
        ) from None
    except DjangoValidationError as exc:
        raise ValidationError(getattr(exc, "message_dict", {"detail": exc.messages})) from None


class ScreenTimeSerializer(serializers.Serializer):
    """What the trial page measured of one serving: how long the tile was on screen."""

    trial = serializers.CharField(max_length=32)
    serving = serializers.IntegerField(min_value=1, help_text="the page's serving of the trial")
    ms = serializers.IntegerField(min_value=0, max_value=10**10, help_text="visible time")


class DisplaySerializer(serializers.Serializer):
    """What the page measured of a timed trial's exposure (requestAnimationFrame timestamps)."""

    trial = serializers.CharField(max_length=32)
    serving = serializers.IntegerField(min_value=1, help_text="the page's serving of the trial")
    ms = serializers.FloatField(min_value=0, max_value=600_000, help_text="displayed duration")
    frame_ms = serializers.FloatField(
        min_value=1, max_value=1000, help_text="the display's frame interval, as measured"
    )


class AnswerSerializer(serializers.Serializer):
    trial = serializers.CharField(max_length=32)
    call = serializers.ChoiceField(choices=Call.choices)
    confidence = ConfidenceField(min_value=1, max_value=5, required=False, allow_null=True)
    serving = serializers.IntegerField(min_value=1, required=False)
    on_screen_ms = serializers.IntegerField(min_value=0, max_value=10**10, required=False)

    def validate(self, data: dict) -> dict:
        if ("serving" in data) != ("on_screen_ms" in data):
            raise serializers.ValidationError("serving and on_screen_ms go together")
        return data


class FeedbackSerializer(serializers.Serializer):
    truth = serializers.ChoiceField(choices=Call.choices)
    correct = serializers.BooleanField()


class StoredAnswerSerializer(serializers.ModelSerializer):
    trial = serializers.CharField(source="trial.token")
    progress = serializers.SerializerMethodField()
    next = serializers.SerializerMethodField()
    feedback = serializers.SerializerMethodField()

    class Meta:
        model = Response
        fields = [
            "trial",
            "call",
            "confidence",
            "served_at",
            "answered_at",
            "progress",
            "next",
            "feedback",
        ]

    @extend_schema(responses=ProgressSerializer)
    def get_progress(self, obj: Response) -> dict:
        progress = getattr(obj, "progress", None) or obj.trial.assignment.progress()
        return ProgressSerializer(progress).data

    def get_next(self, obj: Response) -> str:
        return next_url(obj.trial.assignment, obj.trial)

    @extend_schema(responses=FeedbackSerializer(allow_null=True))
    def get_feedback(self, obj: Response) -> dict | None:
        """Only practice trials are told the truth; scored trials never are."""
        if not obj.trial.practice:
            return None
        return {"truth": obj.truth, "correct": obj.call == obj.truth}


@extend_schema_view(
    list=extend_schema(responses={200: AssignmentSerializer(many=True), **REFUSED}),
    retrieve=extend_schema(responses={200: AssignmentSerializer, **REFUSED}),
)
class ReaderAssignmentViewSet(viewsets.ReadOnlyModelViewSet):
    """The signed-in reader's assignments; another reader's token is a 404."""

    serializer_class = AssignmentSerializer
    parser_classes = [BoundedJSONParser]
    lookup_field = "token"
    lookup_value_regex = r"[A-Za-z0-9_\-]{1,32}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Assignment.objects.none()
        user = self.request.user
        if self.action == "list":
            for study in Study.objects.for_reader(user).filter(status=Study.Status.OPEN):
                study.assignment_for(user)
        return Assignment.objects.filter(reader=user).select_related("study__cohort__real_dataset")

    @extend_schema(
        responses={
            200: NextSerializer,
            409: OpenApiResponse(ErrorSerializer, description="the study is not open"),
            **REFUSED,
        }
    )
    @action(detail=True, methods=["get"])
    def next(self, request: Request, token: str | None = None) -> ApiResponse:
        """The next unanswered trial (served now), or done."""
        assignment = self.get_object()
        if assignment.study.status != Study.Status.OPEN:
            return ApiResponse(
                {"detail": "this study is not open"}, status=status.HTTP_409_CONFLICT
            )
        current = assignment.next_trial()
        payload = {"done": current is None, "trial": current, "progress": assignment.progress()}
        return ApiResponse(NextSerializer(payload).data)

    @extend_schema(responses={200: ProgressSerializer, **REFUSED})
    @action(detail=True, methods=["get"])
    def progress(self, request: Request, token: str | None = None) -> ApiResponse:
        return ApiResponse(ProgressSerializer(self.get_object().progress()).data)

    @extend_schema(
        request=AnswerSerializer,
        responses={
            201: StoredAnswerSerializer,
            200: OpenApiResponse(StoredAnswerSerializer, description="a retry: the stored answer"),
            409: OpenApiResponse(StoredAnswerSerializer, description="answered otherwise; locked"),
            **INVALID,
            **REFUSED,
        },
    )
    @action(detail=True, methods=["post"])
    def responses(self, request: Request, token: str | None = None) -> ApiResponse:
        """Answer a served trial. Idempotent: a retried submit returns the stored answer."""
        assignment = self.get_object()
        answer = AnswerSerializer(data=request.data)
        answer.is_valid(raise_exception=True)
        data = answer.validated_data
        screen = (data["serving"], data["on_screen_ms"]) if "serving" in data else None
        try:
            with refused_as_400():
                stored, created = assignment.submit(
                    data["trial"], data["call"], data.get("confidence"), screen
                )
        except AnswerLocked as exc:
            return ApiResponse(StoredAnswerSerializer(exc.response).data, status.HTTP_409_CONFLICT)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return ApiResponse(StoredAnswerSerializer(stored).data, status=code)

    @extend_schema(request=ScreenTimeSerializer, responses={204: None, **INVALID, **REFUSED})
    @action(detail=True, methods=["post"], url_path="screen-time")
    def screen_time(self, request: Request, token: str | None = None) -> ApiResponse:
        """The page's time on screen for one serving of a trial, sent when the page is hidden
        or closed; reports after the answer change nothing."""
        assignment = self.get_object()
        report = ScreenTimeSerializer(data=request.data)
        report.is_valid(raise_exception=True)
        data = report.validated_data
        with refused_as_400():
            assignment.record_screen_time(data["trial"], data["serving"], data["ms"])
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=DisplaySerializer, responses={204: None, **INVALID, **REFUSED})
    @action(detail=True, methods=["post"])
    def display(self, request: Request, token: str | None = None) -> ApiResponse:
        """How long a timed trial's tile was displayed, as the page measured it; the first
        report of a trial is kept."""
        assignment = self.get_object()
        report = DisplaySerializer(data=request.data)
        report.is_valid(raise_exception=True)
        data = report.validated_data
        with refused_as_400():
            assignment.record_display(data["trial"], data["serving"], data["ms"], data["frame_ms"])
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)
