"""The sample-size panel of a study in admin: the power of the study as configured, and the
smallest readers x cases that reach 80% power, for its equivalence margin and alpha.

Variance components come from the most recent closed study with a study-level analysis (a
pilot), else from published defaults (histostudy.mrmc.planning.DEFAULT)."""

from __future__ import annotations

from dataclasses import dataclass

from histostudy.mrmc import MrmcError
from histostudy.mrmc.planning import DEFAULT, Planning, Power, equivalence_power, smallest_study
from studies.models import Study
from studies.results import study_results

TARGET_POWER = 0.8


@dataclass
class Panel:
    planning: Planning
    configured: Power | None  # this study's readers x cases_per_reader
    smallest: list[Power]
    problem: str = ""


def pilot_planning(study: Study) -> Planning:
    """Components of the latest other closed study whose answers support an MRMC analysis."""
    for pilot in Study.objects.filter(status=Study.Status.CLOSED).exclude(pk=study.pk)[:5]:
        inference = study_results(pilot).inference
        c = inference.components
        if c is not None:
            return Planning(c.var_r, c.var_e, c.cov2, pilot.cases_per_reader,
                            f"pilot study {pilot.name!r} ({inference.readers} readers, "
                            f"{pilot.cases_per_reader} cases each)")  # fmt: skip
    return DEFAULT


def panel(study: Study) -> Panel:
    planning = pilot_planning(study)
    margin, alpha = study.equivalence_margin, study.equivalence_alpha
    readers = study.eligible_readers().count() if study.pk else 0
    configured, problem = None, ""
    try:
        configured = equivalence_power(planning, readers, study.cases_per_reader, margin, alpha)
    except MrmcError as exc:
        problem = f"as configured: {exc}"
    return Panel(planning, configured, smallest_study(planning, TARGET_POWER, margin, alpha),
                 problem)  # fmt: skip
