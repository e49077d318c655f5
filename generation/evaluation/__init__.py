"""Fidelity of generators: `evaluate_generator` is the entry point (manage.py evaluate_generator).

fidelity.py holds the pure measures (no Django); run.py picks the tiles, runs the measures
and stores one FidelityEvaluation; summary.py formats it for people and scripts.
"""

from generation.evaluation.run import (
    MEASURES,
    EvaluationError,
    EvaluationRequest,
    evaluate_generator,
)
from generation.evaluation.summary import summary_dict, summary_lines

__all__ = [
    "MEASURES",
    "EvaluationError",
    "EvaluationRequest",
    "evaluate_generator",
    "summary_dict",
    "summary_lines",
]
