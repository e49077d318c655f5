"""Multi-reader multi-case (MRMC) analysis: Obuchowski-Rockette with Hillis degrees of freedom.

Pure numpy and scipy, no Django. The question a reader study asks ("can pathologists tell these
synthetic tiles from real ones?") is about readers AND cases in general, so both are random:
each modality's reader-averaged figure of merit gets an interval that carries the spread of
readers (the reader mean square) and the sampling of cases (the covariances of the figures of
merit across cases), and several modalities get the F test of equal means and intervals of
their differences.

- Figures of merit per modality x reader: the empirical AUC (ties count one half), or the
  sensitivity, specificity or accuracy of binary calls.
- Their case-sampling covariance matrix, by the jackknife over cases (the default, as OR-DBM
  MRMC and RJafroc), DeLong's structural components, or the unbiased U-statistic estimator
  (Gallas, Pennello and Myers 2007).
- The Obuchowski-Rockette (1995) model with Hillis's (2007) denominator degrees of freedom, its
  variance components (var_R, var_TR, Cov1, Cov2, Cov3, Var) as the OR papers name them.

Readers need not read every case: a reading left out is NaN, each figure of merit uses the cases
its reader read, and every covariance uses the cases both figures share.

Conventions: `ratings` is (modalities, readers, cases), higher = more confident the case is
positive; `truth` is (cases,) with 1 = positive. For sensitivity, specificity and accuracy a
rating is a call, 1 = positive and 0 = negative.
"""

from histostudy.mrmc.analysis import Analysis, Components, Estimate, analyse
from histostudy.mrmc.covariance import covariance_matrix, figures_of_merit
from histostudy.mrmc.data import COLUMNS, COVARIANCES, METRICS, Design, MrmcError, read_csv
from histostudy.mrmc.equivalence import Equivalence, equivalence

__all__ = [
    "COLUMNS",
    "COVARIANCES",
    "METRICS",
    "Analysis",
    "Components",
    "Design",
    "Equivalence",
    "Estimate",
    "MrmcError",
    "analyse",
    "covariance_matrix",
    "equivalence",
    "figures_of_merit",
    "read_csv",
]
