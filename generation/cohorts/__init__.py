"""Cohorts: real tiles held out of a generator's training paired with synthetic ones made for
the same label, cluster and prompt. planner is the pure choice of tiles; storage plans,
generates and stores a cohort in the database."""

from generation import lazy_exports

_EXPORTS = {
    "Candidate": "planner",
    "PlanError": "planner",
    "allocate": "planner",
    "plan": "planner",
    "CohortRequest": "storage",
    "CohortSummary": "storage",
    "Runtime": "storage",
    "generate_cohort": "storage",
    "plan_cohort": "storage",
    "sample_tiles": "storage",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
