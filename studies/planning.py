"""The sample-size panel of a study in admin: the power of the study as configured, and the
smallest readers x cases that reach 80% power, for its equivalence margin and alpha.

Variance components come from the most recent closed study with the same case selection and
response scale and a study-level analysis (a pilot), else from published defaults
(histostudy.mrmc.planning.DEFAULT). The power assumes every reader reads the same cases; a
study that gives each reader its own cases has no case covariance between readers, so its
power is at least what is shown. With several arms, each arm's equivalence test reads every
real tile and only its share of the synthetic ones: the power as configured is that of one
arm, at that number of cases (an approximation: the planning model scales the case variance
with the number of cases, not with positives and negatives apart)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from histostudy.mrmc import MrmcError
from histostudy.mrmc.planning import DEFAULT, Planning, Power, equivalence_power, smallest_study
from studies.models import Study
from studies.results import fetch_rows, inference

TARGET_POWER = 0.8


@dataclass
class Panel:
    planning: Planning
    configured: Power | None  # this study's readers x cases_per_reader (per arm with several)
    smallest: list[Power]
    problem: str = ""
    arms: int = 1
    arm_cases: int | None = None  # with several arms: the cases one arm's comparison reads


def pilot_planning(study: Study) -> Planning:
    """Components of the latest other closed study read the same way (case selection and
    response scale) whose answers support an MRMC analysis."""
    pilots = (
        Study.objects.filter(
            status=Study.Status.CLOSED,
            case_selection=study.case_selection,
            response_scale=study.response_scale,
        )
        .exclude(pk=study.pk)
        .order_by("-closed_at")
    )
    for pilot in pilots[:3]:
        found = inference(fetch_rows(pilot), pilot.equivalence_margin, pilot.equivalence_alpha)
        c = found.components
        if c is not None:
            return Planning(c.var_r, c.var_e, c.cov2, pilot.cases_per_reader,
                            f"pilot study {pilot.name!r} ({found.readers} readers, "
                            f"{pilot.cases_per_reader} cases each)")  # fmt: skip
    return DEFAULT


def panel(study: Study) -> Panel:
    planning = pilot_planning(study)
    margin, alpha = study.equivalence_margin, study.equivalence_alpha
    readers = study.eligible_readers().count() if study.pk else 0
    arms = len(study.arm_cohorts()) if study.pk else 1
    cases, arm_cases = study.cases_per_reader, None
    if arms > 1:  # each arm's AUC: every real tile read, and its share of the synthetic ones
        real = cases * study.ratio_real / (study.ratio_real + study.ratio_synthetic)
        arm_cases = cases = max(1, round(real + (cases - real) / arms))
    configured, smallest, problem = None, [], ""
    try:
        smallest = smallest_study(planning, TARGET_POWER, margin, alpha)
        configured = equivalence_power(planning, readers, cases, margin, alpha)
    except MrmcError as exc:
        problem = f"as configured: {exc}"
    if arms > 1:  # the table in cases per reader of the study: an arm reads only part of them
        share = study.ratio_real / (study.ratio_real + study.ratio_synthetic)
        per_arm = share + (1 - share) / arms
        smallest = [dataclasses.replace(s, cases=math.ceil(s.cases / per_arm)) for s in smallest]
    return Panel(planning, configured, smallest, problem, arms, arm_cases)
