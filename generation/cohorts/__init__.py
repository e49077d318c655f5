"""Cohorts: real tiles held out of a generator's training paired with synthetic ones made for
the same label, cluster and prompt. planner is the pure choice of tiles; storage plans,
generates and stores a cohort in the database."""

from generation import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    planner="Candidate PlanError allocate plan",
    storage="CohortRequest CohortSummary Runtime generate_cohort plan_cohort sample_tiles",
)
