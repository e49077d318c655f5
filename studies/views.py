"""The reader's pages: my studies, instructions, one trial at a time, feedback, completion.

Every URL carries an assignment or trial token; a token that is not the signed-in reader's
is a 404, never a 403, so a reader cannot even learn that another reader's trial exists.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from studies.models import AnswerLocked, Assignment, Study, Trial
from studies.paired import SIDES


def reader_assignment(request: HttpRequest, token: str) -> Assignment:
    return get_object_or_404(
        Assignment.objects.select_related("study__cohort__real_dataset"),
        token=token,
        reader=request.user,
    )


def next_url(assignment: Assignment, trial: Trial) -> str:
    """Where the reader goes after answering: practice feedback, or the next trial."""
    if trial.practice:
        return reverse("studies:feedback", args=[assignment.token, trial.token])
    return reverse("studies:trial", args=[assignment.token])


@never_cache
@login_required
@require_GET
def my_studies(request: HttpRequest) -> HttpResponse:
    rows = []
    for study in Study.objects.for_reader(request.user):
        assignment = study.assignment_for(request.user)
        if assignment is not None:
            rows.append((study, assignment, assignment.progress()))
    return render(request, "studies/my_studies.html", {"rows": rows})


@never_cache
@login_required
@require_GET
def instructions(request: HttpRequest, token: str) -> HttpResponse:
    assignment = reader_assignment(request, token)
    context = {"assignment": assignment, "study": assignment.study}
    return render(
        request, "studies/instructions.html", context | {"progress": assignment.progress()}
    )


@never_cache
@login_required
@require_GET
def trial(request: HttpRequest, token: str) -> HttpResponse:
    """The next unanswered trial; a reload serves the same one again (resume)."""
    assignment = reader_assignment(request, token)
    if assignment.study.status != Study.Status.OPEN:
        return render(request, "studies/closed.html", {"study": assignment.study}, status=409)
    current = assignment.next_trial()
    if current is None:
        return redirect("studies:done", token=assignment.token)
    context = {
        "assignment": assignment,
        "study": assignment.study,
        "trial": current,
        "progress": assignment.served_progress(current),
        "size": assignment.study.presentation.size * assignment.study.magnification,
        # a timed trial whose tile was handed out already (a reload): the mask, not the tile
        "shown": current.exposure_ms is not None and current.image_requests > 0,
        "sides": SIDES,  # a paired trial's two tiles, always in this order
    }
    return render(request, "studies/trial.html", context)


def form_confidence(raw: str) -> int | str | None:
    """The form's confidence as an int where it is a number; anything else is passed on as it
    is, for validate_answer to refuse with the same message the API gives."""
    if not raw:
        return None
    try:
        return int(raw) if raw.isascii() and raw.isdecimal() else raw
    except ValueError:  # more digits than int() will convert (sys.get_int_max_str_digits)
        return raw


@never_cache
@login_required
@require_POST
def answer(request: HttpRequest, token: str, trial_token: str) -> HttpResponse:
    """The form post for browsers without JavaScript; the page's script uses the API instead."""
    assignment = reader_assignment(request, token)
    try:
        assignment.submit(
            trial_token,
            request.POST.get("call", ""),
            form_confidence(request.POST.get("confidence", "")),
        )
    except Trial.DoesNotExist as exc:
        raise Http404("no such trial") from exc
    except AnswerLocked:
        pass  # the stored answer stands; go on to the next trial
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=400, content_type="text/plain")
    return redirect(next_url(assignment, assignment.trials.get(token=trial_token)))


@never_cache
@login_required
@require_GET
def feedback(request: HttpRequest, token: str, trial_token: str) -> HttpResponse:
    """After a practice trial only: the truth and the reader's call."""
    assignment = reader_assignment(request, token)
    practice = get_object_or_404(
        assignment.trials.select_related("case", "response"),
        token=trial_token,
        practice=True,
        response__isnull=False,
    )
    return render(
        request,
        "studies/feedback.html",
        {"assignment": assignment, "trial": practice, "progress": assignment.progress()},
    )


@never_cache
@login_required
@require_GET
def done(request: HttpRequest, token: str) -> HttpResponse:
    assignment = reader_assignment(request, token)
    progress = assignment.progress()
    if progress.answered < progress.total:
        return redirect("studies:trial", token=assignment.token)
    return render(
        request, "studies/done.html", {"assignment": assignment, "study": assignment.study}
    )


@login_required
@require_GET
def trial_image(
    request: HttpRequest, token: str, trial_token: str, side: str | None = None
) -> HttpResponse:
    """A served trial's tile through the study's presentation pipeline; identical headers. A
    paired trial's two tiles are asked for by side, never by kind."""
    assignment = reader_assignment(request, token)
    served = get_object_or_404(
        assignment.trials.select_related("case__tile", "pair__real__tile"),
        token=trial_token,
        served_at__isnull=False,
    )
    tile = served.case.tile
    if (served.pair_id is None) != (side is None) or side not in (None, "left", "right"):
        raise Http404("no such image")
    if side is not None and side != served.synthetic_side:
        tile = served.pair.real.tile
    try:
        data = assignment.study.image(tile)
    except FileNotFoundError as exc:
        raise Http404("image unavailable") from exc
    if assignment.hand_out_image(served):
        response = HttpResponse(data, content_type="image/png")
    else:  # a timed trial's tile is handed out once: asked for again, it is not sent
        response = HttpResponse(
            "This tile has been shown; it is not shown again.", status=410,
            content_type="text/plain",
        )  # fmt: skip
    response["Cache-Control"] = "private, no-store"
    return response
