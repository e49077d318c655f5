"""Staff pages: a study's dashboard and its exports. Readers never reach them."""

from __future__ import annotations

import csv
import json
import math

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from histostudy.statistics import INTERVALS
from studies import plots
from studies.exports import imrmc_lines, response_rows
from studies.models import Study
from studies.paired_results import paired_results
from studies.results import study_results
from studies.timed_results import timed_results


def _study(request: HttpRequest, pk: int) -> Study:
    """The study, for its owners, editors and superusers; 403 for other staff (the answer key
    and results of a study are theirs to see), 404 where there is none."""
    studies = Study.objects.select_related("cohort__generator").prefetch_related("other_arms")
    study = get_object_or_404(studies, pk=pk)
    if not Study.objects.for_staff(request.user).filter(pk=study.pk).exists():
        raise PermissionDenied("you have no role on this study (owner or editor)")
    return study


def _method(request: HttpRequest) -> str:
    method = request.GET.get("interval", "wilson")
    return method if method in INTERVALS else "wilson"


@staff_member_required
@require_GET
def study_dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    study = _study(request, pk)
    if study.paired:  # its own statistics: a trial is a pair, an answer a side
        pairs = paired_results(study, _method(request))
        figures = {"paired": mark_safe(plots.paired_accuracy(pairs))} if pairs.readers else {}
        context = {"study": study, "pairs": pairs, "figures": figures, "arms": [study.cohort],
                   "progress": study.assignments.count()}  # fmt: skip
        return render(request, "studies/dashboard_paired.html", context)
    results = study_results(study, _method(request))
    figures = {}
    if results.readers:
        figures = {
            "roc": mark_safe(plots.roc_space(results)),
            "intervals": mark_safe(plots.intervals(results)),
            "fool": mark_safe(plots.fool_rate_histogram(results)),
        }
    timing = timed_results(study, _method(request))
    if timing is not None and timing.exposures:
        figures["psychometric"] = mark_safe(plots.psychometric(timing))
        if timing.adaptive:  # at one fixed exposure no threshold can be fitted
            figures["thresholds"] = mark_safe(plots.thresholds(timing))
    context = {"study": study, "results": results, "figures": figures, "timed": timing,
               "arms": study.arm_cohorts(), "progress": study.assignments.count()}  # fmt: skip
    return render(request, "studies/dashboard.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


@staff_member_required
@require_GET
def export_responses(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Every response in one CSV file, streamed (no pagination, no size limit)."""
    study = _study(request, pk)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in response_rows(study)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.name}-responses.csv"'
    return response


@staff_member_required
@require_GET
def export_imrmc(request: HttpRequest, pk: int) -> HttpResponse:
    study = _study(request, pk)
    if study.paired or study.adaptive:
        return HttpResponse(
            "iMRMC's model (one reading condition per modality, one score per case) does not "
            "describe a paired study (a trial is a pair, the answer a side) or an adaptive timed "
            "one (each reader's own exposures). The answers are in the responses export, the "
            "statistics on the dashboard.", status=409, content_type="text/plain",
        )  # fmt: skip
    response = StreamingHttpResponse((line + "\n" for line in imrmc_lines(study)),
                                     content_type="text/csv")  # fmt: skip
    # iMRMC's command line and RJafroc take list-mode files by their .imrmc extension
    response["Content-Disposition"] = f'attachment; filename="{study.name}.imrmc"'
    return response


def _finite(value):
    """JSON has no NaN: statistics without data become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@staff_member_required
@require_GET
def export_statistics(request: HttpRequest, pk: int) -> JsonResponse:
    study = _study(request, pk)
    method = _method(request)
    if study.paired:
        data = {"study": study.name, "design": "paired",
                "paired": paired_results(study, method).as_dict()}  # fmt: skip
    else:
        data = study_results(study, method).as_dict()
        timing = timed_results(study, method)
        if timing is not None:
            data["timed"] = timing.as_dict()
    response = JsonResponse(_finite(json.loads(json.dumps(data, default=float))))
    response["Content-Disposition"] = f'attachment; filename="{study.name}-statistics.json"'
    return response
