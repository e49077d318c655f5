"""Fidelity and utility of generators.

- evaluate_generator (run; manage.py evaluate_generator): every fidelity measure of one
  generator against held-out real tiles, stored as one FidelityEvaluation; fidelity.py holds
  its pure measures, summary.py formats it for people and scripts;
- compute_fid (fid; manage.py compute_fid): FID/KID and precision/recall of a cohort or tile
  set with its real-vs-real floor; the maths is metrics.py;
- evaluate_utility (utility; manage.py evaluate_utility): a tumour classifier (classifier.py)
  trained on real, synthetic or mixed tiles and scored on real ones.
"""

from generation import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    fid="FidError FidRequest FidSummary compute_fid",
    measures="inception_seconds",
    run="EvaluationError EvaluationRequest MEASURES evaluate_generator",
    summary="summary_dict summary_lines",
    utility="UtilityError UtilityRequest evaluate_utility summarise",
)
