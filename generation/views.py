import re
import tempfile
from pathlib import Path

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from generation.experiment import experiment_dir
from generation.models import Experiment, FidelityEvaluation, Generator, Tile
from generation.plots import fidelity_profile


@staff_member_required
def tile_image(request: HttpRequest, pk: int) -> FileResponse:
    """The stored PNG of a tile, for staff only (admin thumbnails); readers never reach it."""
    tile = get_object_or_404(Tile, pk=pk)
    try:
        handle = tile.path.open("rb")
    except FileNotFoundError as exc:
        raise Http404(f"tile file {tile.relpath} is missing from MEDIA_ROOT") from exc
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


PREVIEWS = {"samples": "samples.png", "loss": "loss.png"}


@staff_member_required
def generator_preview(request: HttpRequest, pk: int, kind: str) -> FileResponse:
    """A generator's sample grid or loss curve (PNG files beside its weights), staff only."""

    generator = get_object_or_404(Generator, pk=pk)
    if kind not in PREVIEWS:
        raise Http404("unknown preview")
    try:
        handle = (Path(generator.path) / PREVIEWS[kind]).open("rb")
    except FileNotFoundError as exc:
        raise Http404(f"{kind} preview missing for {generator.name}") from exc
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


EXPERIMENT_IMAGES = re.compile(r"^(fid|utility|samples-[a-z]+|fidelity-[a-z]+)\.png$")


@staff_member_required
def experiment_image(request: HttpRequest, name: str, filename: str) -> FileResponse:
    """A plot or sample grid of run_experiment's report (staff only; names from a fixed set)."""

    experiment = get_object_or_404(Experiment, name=name)
    if not EXPERIMENT_IMAGES.match(filename):
        raise Http404("unknown report image")
    try:
        handle = (experiment_dir(experiment.name) / filename).open("rb")
    except FileNotFoundError as exc:
        raise Http404(f"{filename} not written yet for {experiment.name}") from exc
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


@staff_member_required
def evaluation_plot(request: HttpRequest, pk: int) -> HttpResponse:
    """The fidelity profile of one evaluate_generator result, drawn on request (staff only)."""

    evaluation = get_object_or_404(
        FidelityEvaluation.objects.select_related("generator", "cohort", "utility"), pk=pk
    )
    with tempfile.TemporaryDirectory() as folder:
        out = fidelity_profile(evaluation, Path(folder) / "profile.png")
        response = HttpResponse(out.read_bytes(), content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response
