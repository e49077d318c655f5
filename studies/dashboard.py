"""Staff pages: a study's dashboard and its exports. Readers never reach them."""

from __future__ import annotations

import csv
import json
import math

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from generation.models import (
    Experiment,
    FidelityEvaluation,
    FidResult,
    Generator,
    UtilityResult,
)
from generation.utility import summarise
from studies import plots
from studies.exports import imrmc_lines, response_rows
from studies.models import Study
from studies.results import study_results
from studies.statistics import INTERVALS


def _study(pk: int) -> Study:
    return get_object_or_404(Study.objects.select_related("cohort__generator"), pk=pk)


def _method(request: HttpRequest) -> str:
    method = request.GET.get("interval", "wilson")
    return method if method in INTERVALS else "wilson"


@staff_member_required
@require_GET
def study_dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    study = _study(pk)
    results = study_results(study, _method(request))
    figures = {}
    if results.readers:
        figures = {
            "roc": mark_safe(plots.roc_space(results)),
            "intervals": mark_safe(plots.intervals(results)),
            "fool": mark_safe(plots.fool_rate_histogram(results)),
        }
    context = {"study": study, "results": results, "figures": figures,
               "progress": study.assignments.count()}  # fmt: skip
    return render(request, "studies/dashboard.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


@staff_member_required
@require_GET
def export_responses(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Every response in one CSV file, streamed (no pagination, no size limit)."""
    study = _study(pk)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in response_rows(study)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.name}-responses.csv"'
    return response


@staff_member_required
@require_GET
def export_imrmc(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    study = _study(pk)
    response = StreamingHttpResponse((line + "\n" for line in imrmc_lines(study)),
                                     content_type="text/csv")  # fmt: skip
    response["Content-Disposition"] = f'attachment; filename="{study.name}-imrmc.csv"'
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
    results = study_results(_study(pk), _method(request))
    response = JsonResponse(_finite(json.loads(json.dumps(results.as_dict(), default=float))))
    response["Content-Disposition"] = f'attachment; filename="{results.study.name}-statistics.json"'
    return response


@staff_member_required
@require_GET
def generation_dashboard(request: HttpRequest) -> HttpResponse:
    """FID/KID by generator x prompt scheme x label, the real-vs-real floor beside them, and
    the classifier utility of each arm (mean and range over seeds)."""
    rows = FidResult.objects.paper_table()
    return render(
        request,
        "studies/generation_dashboard.html",
        {
            "rows": rows,
            "warnings": sorted({r["result"].warning for r in rows if r["result"].warning}),
            "generators": Generator.objects.all(),
            "utility": summarise(UtilityResult.objects.select_related("cohort", "generator")),
            "experiments": Experiment.objects.all(),
            "evaluations": FidelityEvaluation.objects.select_related(
                "generator", "cohort", "utility"
            ),
        },
    )


@staff_member_required
@require_GET
def experiment_dashboard(request: HttpRequest, name: str) -> HttpResponse:
    """One run_experiment: its steps, FID/KID per scheme with the floor, utility arms, plots."""
    from generation.experiment import Options, experiment_dir
    from generation.report import arm_results, fid_rows

    experiment = get_object_or_404(Experiment, name=name)
    options = Options.from_json(experiment.options)
    utility = arm_results(experiment, options)
    folder = experiment_dir(experiment.name)
    images = [p.name for p in sorted(folder.glob("*.png"))] if folder.is_dir() else []
    return render(
        request,
        "studies/experiment_dashboard.html",
        {
            "experiment": experiment,
            "options": options,
            "fid_rows": fid_rows(experiment, options.schemes),
            "utility": utility,
            "plots": [p for p in images if not p.startswith("samples-")],
            "samples": [p for p in images if p.startswith("samples-")],
            "steps": [
                {"name": k, "minutes": v.get("seconds", 0) / 60}
                for k, v in experiment.steps.items()
            ],
        },
    )
