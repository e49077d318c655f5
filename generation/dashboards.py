"""Staff pages of generation: every generator's fidelity and utility, and one experiment's
report. Mounted under /dashboards/ beside the studies' pages (histostudy/urls.py)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from generation.evaluation import summarise
from generation.experiment import Options, arm_results, experiment_dir, fid_rows
from generation.models import Experiment, FidelityEvaluation, FidResult, Generator, UtilityResult


@staff_member_required
@require_GET
def generation_dashboard(request: HttpRequest) -> HttpResponse:
    """FID/KID by generator x prompt scheme x label, the real-vs-real floor beside them, and
    the classifier utility of each arm (mean and range over seeds)."""
    rows = FidResult.objects.paper_table()
    return render(
        request,
        "generation/dashboard.html",
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

    experiment = get_object_or_404(Experiment, name=name)
    options = Options.from_json(experiment.options)
    utility = arm_results(experiment, options)
    folder = experiment_dir(experiment.name)
    images = [p.name for p in sorted(folder.glob("*.png"))] if folder.is_dir() else []
    return render(
        request,
        "generation/experiment.html",
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
